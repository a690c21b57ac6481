"""The local API's HTTP server: werkzeug's threaded WSGI server, bound to 127.0.0.1 only.

werkzeug parses HTTP/1.1 (request line, headers, chunked bodies, `Expect: 100-continue`); this module
turns each request into an `HttpRequest` for the gateway and its `HttpReply` into the response. What
it adds is API Gateway's: the 10 MB payload quota (413, with the body read and dropped so the client
sees the answer rather than a reset), and JSON, never HTML, for a request it cannot parse.
"""
from __future__ import annotations

import json
import logging
import socket
from http import HTTPStatus
from typing import Callable

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request

from mxflow_local.gateway.admin import json_reply
from mxflow_local.gateway.proxy import HOST, HttpReply, HttpRequest
from mxflow_local.gateway.responses import gateway_reply

LOG = logging.getLogger("mxflow_local.gateway")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload quota (10 MB)
DRAIN_LIMIT_BYTES = 4 * MAX_BODY_BYTES  # larger declared bodies are not read at all: 413 and close
RAW_HEADERS = "mxflow.raw_headers"
HOP_BY_HOP = ("content-length", "connection", "transfer-encoding")


class _RequestHandler(WSGIRequestHandler):
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no delayed-ACK stalls

    def make_environ(self):
        environ = super().make_environ()
        # API Gateway passes header names as sent and keeps repeated headers apart; the WSGI
        # environment folds both, so the gateway reads them from here.
        environ[RAW_HEADERS] = list(self.headers.items())
        return environ

    def send_error(self, code, message=None, explain=None):
        """A request werkzeug cannot parse (malformed request line, headers too long, ...): the
        problem as JSON, not http.server's HTML page."""
        self.close_connection = True
        self.request_version = self.protocol_version  # a status line even when the request line had no version
        phrase = _phrase(code)
        body = json.dumps({"message": message or phrase}).encode("utf-8")
        self.send_response(code, phrase)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        """No request lines on stderr: paths hold payment ids (the gateway logs route templates)."""

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        LOG.debug(format, *args)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class _WsgiApplication:
    """WSGI in front of `handle(HttpRequest) -> HttpReply`."""

    def __init__(self, handle: Callable[[HttpRequest], HttpReply]):
        self.handle = handle

    def __call__(self, environ, start_response):
        reply = self._reply(environ)
        body = b"" if environ["REQUEST_METHOD"] == "HEAD" else reply.body
        headers = [(k, v) for k, v in reply.headers if k.lower() not in HOP_BY_HOP]
        headers.append(("Content-Length", str(len(body))))
        start_response(f"{reply.status} {_phrase(reply.status)}".rstrip(), headers)
        return [body]

    def _reply(self, environ) -> HttpReply:
        declared = environ.get("CONTENT_LENGTH")
        if declared and not declared.strip().isdigit():
            return json_reply(400, {"message": "malformed request body framing"})
        request = Request(environ)
        request.max_content_length = MAX_BODY_BYTES
        too_large = False
        try:
            body = request.get_data(cache=False)
        except RequestEntityTooLarge:
            body, too_large = b"", True
            _drain(environ, int(declared or 0))
        except (HTTPException, OSError, ValueError):  # a chunk header that is not one, a cut-off body
            return json_reply(400, {"message": "malformed request body framing"})
        http_request = HttpRequest(environ["REQUEST_METHOD"], environ.get("RAW_URI") or "/",
                                   environ[RAW_HEADERS], body, environ.get("REMOTE_ADDR", ""),
                                   environ.get("SERVER_PROTOCOL", "HTTP/1.1"), too_large)
        try:
            return self.handle(http_request)
        except Exception:  # never a stack trace to the client
            LOG.exception("the local API failed on %s", http_request.method)
            return gateway_reply("INTEGRATION_ERROR", None, {}, None)


def _drain(environ, declared: int) -> None:
    """Read and drop a declared body over the quota (up to DRAIN_LIMIT_BYTES), so the client, still
    sending, gets the 413 rather than a reset."""
    left = declared if 0 < declared <= DRAIN_LIMIT_BYTES else 0
    stream = environ["wsgi.input"]
    while left > 0:
        piece = stream.read(min(left, 1 << 16))
        if not piece:
            break
        left -= len(piece)


def http_server(handle: Callable[[HttpRequest], HttpReply], port: int) -> BaseWSGIServer:
    """A threaded server for `handle` on 127.0.0.1:`port` (0: a free port); OSError when the port is
    taken. Run it with `serve_forever`, stop it with `shutdown` and `server_close`."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, port))  # here, not in werkzeug: a taken port is an OSError, not an exit
        listener.listen(128)
        server = make_server(HOST, port, _WsgiApplication(handle), threaded=True,
                             request_handler=_RequestHandler, fd=listener.fileno())
    finally:
        listener.close()  # the server holds its own duplicate of the socket
    server.daemon_threads = True
    return server
