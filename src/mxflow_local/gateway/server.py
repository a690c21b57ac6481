"""The local API's HTTP server: the standard library's ThreadingHTTPServer on 127.0.0.1 only.

http.server parses HTTP/1.1 (request line, headers, keep-alive); chunked bodies are decoded by
werkzeug's `DechunkedInput`. This module turns each request into an `HttpRequest` for the gateway and
its `HttpReply` into the response, whatever the method (an undeclared one such as TRACE is the
gateway's to answer, as API Gateway does). What it adds is API Gateway's: the 10 MB payload quota
(413, with the body read and dropped so the client sees the answer rather than a reset), and JSON,
never HTML, for a request it cannot parse.
"""
from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from werkzeug.serving import DechunkedInput

from mxflow_local.gateway.admin import json_reply
from mxflow_local.gateway.proxy import HOST, HttpReply, HttpRequest
from mxflow_local.gateway.responses import gateway_reply

LOG = logging.getLogger("mxflow_local.gateway")

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload quota (10 MB)
DRAIN_LIMIT_BYTES = 4 * MAX_BODY_BYTES  # larger bodies are not read at all: 413 and close
READ_SIZE = 1 << 16
HOP_BY_HOP = ("content-length", "connection", "transfer-encoding")


class _BodyTooLarge(Exception):
    def __init__(self, drained: bool):
        super().__init__("request body over the payload quota")
        self.drained = drained  # the whole body was read: the connection can serve the next request


def read_body(stream, declared: int | None) -> bytes:
    """The body from `stream` (`declared` bytes, or to its end when None): _BodyTooLarge over the
    quota, after reading and dropping the rest up to DRAIN_LIMIT_BYTES; ValueError when it ends early."""
    if declared is not None and declared > DRAIN_LIMIT_BYTES:
        raise _BodyTooLarge(drained=False)
    chunks, total = [], 0
    while declared is None or total < declared:
        piece = stream.read(READ_SIZE if declared is None else min(READ_SIZE, declared - total))
        if not piece:
            break
        total += len(piece)
        if total > DRAIN_LIMIT_BYTES:
            raise _BodyTooLarge(drained=False)
        if total <= MAX_BODY_BYTES:
            chunks.append(piece)
    if declared is not None and total < declared:
        raise ValueError("the body ended before its Content-Length")
    if total > MAX_BODY_BYTES:
        raise _BodyTooLarge(drained=True)
    return b"".join(chunks)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no delayed-ACK stalls
    server_version = "mxflow-local"
    sys_version = ""
    server: "_Server"

    def __getattr__(self, name: str):
        if name.startswith("do_"):  # every method, declared by a route or not, goes to the gateway
            return self._dispatch
        raise AttributeError(name)

    def _dispatch(self) -> None:
        too_large = False
        try:
            body = self._read_body()
        except _BodyTooLarge as exc:
            body, too_large = b"", True
            self.close_connection = not exc.drained  # unread bytes would be taken for the next request
        except (OSError, ValueError):  # a chunk header that is not one, a cut-off body, a bad length
            self.close_connection = True
            self._send(json_reply(400, {"message": "malformed request body framing"}))
            return
        request = HttpRequest(self.command, self.path, list(self.headers.items()), body, self.client_address[0],
                              self.request_version, too_large)
        try:
            reply = self.server.gateway(request)
        except Exception:  # never a stack trace to the client
            LOG.exception("the local API failed on %s", self.command)
            reply = gateway_reply("INTEGRATION_ERROR", None, {}, None)
        self._send(reply)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return read_body(DechunkedInput(self.rfile), None)
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        if not length.strip().isdigit():
            raise ValueError("bad Content-Length")
        return read_body(self.rfile, int(length))

    def _send(self, reply: HttpReply) -> None:
        body = b"" if self.command == "HEAD" else reply.body
        self.send_response(reply.status)
        for name, value in reply.headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(body)

    def send_error(self, code, message=None, explain=None):
        """A request http.server cannot parse (malformed request line, headers too long, ...): the
        problem as JSON, not http.server's HTML page."""
        self.close_connection = True
        self.request_version = self.protocol_version  # a status line even when the request line had no version
        self._send(json_reply(code, {"message": message or _phrase(code)}))

    def log_request(self, code="-", size="-"):
        """No request lines on stderr: paths hold payment ids (the gateway logs route templates)."""

    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        LOG.debug(format, *args)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The listen backlog. socketserver's default of 5 made the kernel reset connections that arrived
    # while five others waited to be accepted (a burst of concurrent clients saw "connection reset by
    # peer"); API Gateway queues them. 128 is werkzeug's and the usual Linux default.
    request_queue_size = 128

    def __init__(self, gateway: Callable[[HttpRequest], HttpReply], port: int):
        self.gateway = gateway
        super().__init__((HOST, port), _RequestHandler)  # OSError when the port is taken


def http_server(gateway: Callable[[HttpRequest], HttpReply], port: int) -> ThreadingHTTPServer:
    """A threaded server answering through `gateway` on 127.0.0.1:`port` (0: a free port). Run it
    with `serve_forever`, stop it with `shutdown` and `server_close`."""
    return _Server(gateway, port)
