"""The AWS service APIs of a running local runtime, on 127.0.0.1, for the AWS CLI, boto3 and other SDKs.

    endpoint = AwsEndpoint.start(runtime, port=0)     # moto's server app over the runtime's own backends
    endpoint.environment()   # {"AWS_ENDPOINT_URL": "http://127.0.0.1:PORT", "AWS_ACCESS_KEY_ID": ...}
    publish_endpoint(endpoint)                        # $MXFLOW_STATE_DIR/local-aws-endpoint.json
    ...
    withdraw_endpoint(endpoint); endpoint.close()

What it serves. moto's own WSGI application (`moto.moto_server.werkzeug_app.DomainDispatcherApplication`,
what `moto_server` and `ThreadedMotoServer` run) on a server thread of the process that runs the runtime.
moto keeps its backends in process-wide dictionaries (per account and Region), so that application answers
from the very objects the runtime created its stack in, and the runtime's additions are patches of moto's
classes (`stepfunctions.install`, `lambda_runner.install`, `dynamodb.install`), so a request that arrives
over HTTP reaches the same patched code as a boto3 call inside the process: RedriveExecution is the
runtime's redrive, a heartbeat timeout is `States.HeartbeatTimeout`, JSONata is evaluated, SendTaskFailure
keeps its cause, `lambda invoke` runs the real handler through the runtime's runner (its faults and its
Region switch included), and DynamoDB item writes take the runtime's lock.

Threads. The runtime runs moto in decorator mode (`mock_aws`, see runtime.py), and that mode stays on while
this server runs: requests are answered on the server's threads by calling the backends directly (no
botocore on that path), and whatever they set off -- an execution started or redriven, a task token
completed, a Lambda invoked -- runs the interpreter's and the handlers' boto3 calls in-process exactly as
before, because moto's botocore stub is process-wide, not per thread. Nothing else is needed for the two to
share state: one process, one set of backends, the runtime's locks where moto itself needs them. The
server must stop before the runtime (its `mock_aws` drops the backends when the last runtime stops).

Regions. moto keeps backends per Region and takes a request's Region from its SigV4 credential scope
(`Credential=KEY/DATE/REGION/SERVICE/aws4_request`), so one endpoint serves every Region of the process:
`--region us-west-2` reaches us-west-2's backends (empty unless a runtime runs there). `mxflow local up
--regions A,B` still starts one endpoint per Region (the port after the first's) and publishes each with its
Region's environment, so a script picks a Region by its endpoint as it would in AWS.

Account and keys. Any access key is accepted (signatures are not checked) and every request is in the
runtime's account (123456789012, moto's default); the environment printed carries a dummy key pair
because SDKs refuse to sign without one.

Guard rails, on top of moto's app: the server binds 127.0.0.1 only and answers only requests whose Host
is a loopback name; requests from web browsers (they carry an `Origin` header; moto's app would answer
them with permissive CORS) are refused, so a web page cannot read the payment table; moto's
`/moto-api/` routes are refused (`/moto-api/reset` would wipe the runtime's stack); an operation moto
does not implement answers 501 `NotImplemented`, any other server-side failure 500 `InternalFailure`,
never a traceback; request lines are not logged (paths and bodies carry payment ids).

AWS CLI v1 (the `awscli` package on PyPI) ignores `AWS_ENDPOINT_URL` for `aws sqs` in every Region
(aws/aws-cli#8737: its SSL-common-name customisation replaces the endpoint unless `--endpoint-url` is
given), so `aws sqs ...` needs `--endpoint-url "$AWS_ENDPOINT_URL"`; AWS CLI v2 and boto3 honour the
variable for every service.
"""
from __future__ import annotations

import contextlib
import html
import json
import logging
import os
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from mxflow_local.auth import NoRunningServer, process_alive, state_dir, write_private_json

LOG = logging.getLogger("mxflow_local.aws_endpoint")

HOST = "127.0.0.1"
# `sam local start-lambda` listens on 3001 too, so `aws lambda invoke --endpoint-url http://127.0.0.1:3001`
# keeps working for SAM users (and reaches every other service here as well).
DEFAULT_PORT = 3001
ACCESS_KEY_ID = "testing"       # dummy credentials: the endpoint does not check signatures
SECRET_ACCESS_KEY = "testing"
ENDPOINT_FILE = "local-aws-endpoint.json"
STATE_FORMAT = 1
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")   # and *.localhost (RFC 6761), for S3 virtual hosts
REFUSED_PREFIX = "/moto-api"
SQS_CLI_NOTE = ('AWS CLI v1 ignores AWS_ENDPOINT_URL for "aws sqs" (aws/aws-cli#8737): '
                'add --endpoint-url "$AWS_ENDPOINT_URL" to aws sqs commands')


class AwsEndpoint:
    """moto's server application on 127.0.0.1:port, over the backends of the runtimes in this process."""

    def __init__(self, runtimes: Iterable[Any], *, port: int = 0):
        self.runtimes = list(runtimes)
        if not self.runtimes:
            raise ValueError("the AWS endpoint serves running runtimes: give at least one")
        if any(getattr(runtime, "template", None) is None for runtime in self.runtimes):
            # before LocalRuntime.start() moto's in-process mode and the runtime's patches are not in place
            raise ValueError("start the runtime before its AWS endpoint")
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self.requests = 0       # requests answered (tests check that calls really came over HTTP)
        self._count_lock = threading.Lock()
        self._app = DomainDispatcherApplication(create_backend_app)
        listener = socket.create_server((HOST, port))   # OSError (e.g. EADDRINUSE) as is: the caller says it
        try:
            self._server = _server_class()(HOST, listener.getsockname()[1], self._guarded, handler=_quiet_handler(),
                                           fd=listener.fileno())
        finally:
            listener.close()    # the server holds its own duplicate of the socket
        self._thread: threading.Thread | None = None

    @classmethod
    def start(cls, *runtimes: Any, port: int = 0) -> "AwsEndpoint":
        return cls(runtimes, port=port).serve()

    def serve(self) -> "AwsEndpoint":
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                            name="mxflow-local-aws-endpoint", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> "AwsEndpoint":
        return self.serve()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what clients need ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def regions(self) -> list[str]:
        return list(dict.fromkeys(runtime.region for runtime in self.runtimes))

    @property
    def region(self) -> str:
        """The default Region: the first runtime's."""
        return self.regions[0]

    def environment(self, region: str | None = None) -> dict[str, str]:
        return aws_environment(self.url, region or self.region)

    def stacks(self) -> dict[str, dict]:
        """Per Region: the stack name and what `Ref` gives for each created resource (names, URLs, ARNs)."""
        return {runtime.region: {"stackName": runtime.stack_name,
                                 "resources": {logical: created.ref for logical, created in runtime.record.resources.items()
                                               if isinstance(created.ref, str)},
                                 "outputs": {k: v for k, v in runtime.outputs.items() if isinstance(v, str)}}
                for runtime in self.runtimes}

    # -- the WSGI application -------------------------------------------------------------------------
    def _guarded(self, environ: dict, start_response):
        with self._count_lock:
            self.requests += 1
        refusal = _refusal(environ)
        if refusal:
            return _error(start_response, environ, 403, "AccessDenied", refusal)
        try:
            return self._app(environ, start_response)
        except NotImplementedError as exc:   # an operation or a parameter moto does not implement
            return _error(start_response, environ, 501, "NotImplemented",
                          f"not implemented by the local runtime (moto): {exc or _operation(environ)}")
        except Exception as exc:  # noqa: BLE001 - an AWS-shaped 500, never a traceback to the client
            LOG.warning("AWS endpoint: %s failed: %s", _operation(environ), type(exc).__name__)
            return _error(start_response, environ, 500, "InternalFailure",
                          f"the local runtime failed on {_operation(environ)}: {type(exc).__name__}")


def _refusal(environ: dict) -> str | None:
    """Why a request is refused, or None."""
    if environ.get("REMOTE_ADDR") not in ("127.0.0.1", "::1"):
        return "the local AWS endpoint answers loopback clients only"
    host = (environ.get("HTTP_HOST") or "").lower()
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if name not in LOOPBACK_HOSTS and not name.endswith(".localhost"):
        return f"the local AWS endpoint answers requests for {HOST} only, not for {host or 'no Host'}"
    if environ.get("HTTP_ORIGIN"):
        return "the local AWS endpoint does not answer web browsers (requests with an Origin header)"
    if (environ.get("PATH_INFO") or "").startswith(REFUSED_PREFIX):
        return "moto's /moto-api/ routes are not served: they would reset or reconfigure the running runtime"
    return None


def _operation(environ: dict) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    return target.rsplit(".", 1)[-1] if target else f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}"


def _error(start_response, environ: dict, status: int, code: str, message: str):
    """An error in the shape the request's protocol expects: JSON for JSON protocols, XML otherwise."""
    reason = {403: "Forbidden", 500: "Internal Server Error", 501: "Not Implemented"}[status]
    json_protocol = bool(environ.get("HTTP_X_AMZ_TARGET")) or "json" in (environ.get("CONTENT_TYPE") or "")
    if json_protocol:
        body = json.dumps({"__type": code, "message": message}).encode()
        content_type = "application/x-amz-json-1.0"
    else:
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{html.escape(message)}</Message>"
                f"</Error><RequestId>mxflow-local</RequestId></ErrorResponse>").encode()
        content_type = "text/xml"
    start_response(f"{status} {reason}", [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                          ("x-amzn-ErrorType", code)])
    return [body]


def _quiet_handler():
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class QuietRequestHandler(MotoRequestHandler):
        """moto's request handler without request lines on stderr (paths and bodies hold payment ids)."""

        def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
            LOG.debug("%s: " + message, type, *args)

    return QuietRequestHandler


def _server_class():
    from werkzeug.serving import ThreadedWSGIServer

    class Server(ThreadedWSGIServer):
        def handle_error(self, request, client_address) -> None:
            # a client that went away mid-request: nothing to tell anyone beyond a debug line
            LOG.debug("AWS endpoint: connection from %s ended with an error", client_address, exc_info=True)

    return Server


# ---------------------------------------------------------------------------------------------------------
# the environment clients use, and where `mxflow local up` publishes it

def aws_environment(endpoint_url: str, region: str) -> dict[str, str]:
    """What the AWS CLI, boto3 and other SDKs need to talk to the endpoint (AWS_REGION for SDKs that read it)."""
    return {"AWS_ENDPOINT_URL": endpoint_url, "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY, "AWS_DEFAULT_REGION": region, "AWS_REGION": region}


def shell_exports(environment: dict[str, str]) -> str:
    """`export K=V` lines for `eval "$(mxflow local env)"`."""
    return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in environment.items())


def aws_cli_command(endpoint_url: str, region: str, *arguments: str) -> str:
    """A self-contained AWS CLI command line against the endpoint (works with CLI v1 for every service)."""
    words = ["aws", *arguments, "--endpoint-url", endpoint_url, "--region", region]
    return (f"AWS_ACCESS_KEY_ID={ACCESS_KEY_ID} AWS_SECRET_ACCESS_KEY={SECRET_ACCESS_KEY} "
            + " ".join(shlex.quote(word) for word in words))


def endpoint_path(directory: Path | None = None) -> Path:
    return (directory or state_dir()) / ENDPOINT_FILE


def publish_endpoint(endpoint: AwsEndpoint, *others: AwsEndpoint, directory: Path | None = None) -> Path:
    """Write where the endpoint is and the environment to use (mode 0600, atomically), for `mxflow local env`
    and scripts; withdraw_endpoint (given the first endpoint) removes it. With two Regions (`local up
    --regions`) one endpoint per Region: `endpoints` maps each Region to its endpoint's URL and
    `environments` gives each Region's environment; the first endpoint's are the defaults."""
    path = endpoint_path(directory)
    every = (endpoint, *others)
    endpoints = {region: each.url for each in every for region in each.regions}
    write_private_json(path, {
        "format": STATE_FORMAT, "endpointUrl": endpoint.url, "host": HOST, "port": endpoint.port,
        "region": endpoint.region, "regions": list(endpoints), "environment": endpoint.environment(),
        "endpoints": endpoints, "environments": {region: aws_environment(url, region) for region, url in endpoints.items()},
        "stacks": {region: stack for each in every for region, stack in each.stacks().items()},
        "pid": os.getpid(), "createdAt": int(time.time())})
    return path


def withdraw_endpoint(endpoint: AwsEndpoint, *, directory: Path | None = None) -> None:
    """Remove the published endpoint if it is still this one (another `local up` may have replaced it)."""
    path = endpoint_path(directory)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if state.get("pid") == os.getpid() and state.get("port") == endpoint.port:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def load_published_endpoint(directory: Path | None = None) -> dict:
    """The running `mxflow local up`'s endpoint state; NoRunningServer when there is none."""
    path = endpoint_path(directory)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoRunningServer(f"no running 'mxflow local up' with an AWS endpoint found (no {path}); "
                              "start it first (without --no-aws-endpoint)") from None
    except (OSError, ValueError) as exc:
        raise NoRunningServer(f"cannot read {path}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise NoRunningServer(f"{path} was not written by this version of mxflow")
    if not process_alive(state.get("pid")):
        raise NoRunningServer(f"the 'mxflow local up' that wrote {path} (pid {state.get('pid')}) is no longer "
                              "running; start it again")
    return state
