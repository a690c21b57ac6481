"""The local HTTP API: API Gateway REST API (v1) semantics in front of the embedded runtime.

Routes come from the SAM template (`routes_from_template`): every `Api` event of every
`AWS::Serverless::Function`, on its `AWS::Serverless::Api` (`RestApiId`) or the implicit API, with the
Api's Cognito authorizer and scopes. A request is matched the way API Gateway resolves resources
(literal segment before `{param}` before `{proxy+}`, then the method, then `ANY`), authorized as the
COGNITO_USER_POOLS authorizer does (`mxflow_local.auth`), turned into the Lambda proxy event API Gateway
builds (`build_proxy_event`), given to `LocalRuntime.invoke`, and the proxy response is sent back.
Answers the gateway makes itself (missing route, 401, 403, 413, 502, ...) honour the Api's
`GatewayResponses` and otherwise carry AWS's default bodies.

Local-only admin routes live under `/_local/` (never part of the application): `POST /_local/faults`,
`POST /_local/region/stop|start`, `GET /_local/routes`. The server binds 127.0.0.1 only.

    with LocalApi.start("template.yaml", port=0) as api:
        token = api.issue_token(["payments/submit"], client_id="local")
        ... api.url ...
"""
from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import string
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from mxflow_local.auth import CognitoAuthorizer, LocalTokenIssuer, cognito_issuer, gateway_claims

LOG = logging.getLogger("mxflow_local.http_api")

HOST = "127.0.0.1"
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload quota (10 MB)
DRAIN_LIMIT_BYTES = 4 * MAX_BODY_BYTES  # larger bodies are not read at all: 413 and close
ADMIN_PREFIX = "/_local"
IMPLICIT_API = "ServerlessRestApi"  # SAM's logical id for the implicit API
IMPLICIT_STAGE = "Prod"
DEFAULT_ACCOUNT = "123456789012"
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")

# API Gateway's gateway response types used here: default status, x-amzn-ErrorType, default message.
GATEWAY_RESPONSE_DEFAULTS = {
    "MISSING_AUTHENTICATION_TOKEN": (403, "MissingAuthenticationTokenException", "Missing Authentication Token"),
    "UNAUTHORIZED": (401, "UnauthorizedException", "Unauthorized"),
    "ACCESS_DENIED": (403, "AccessDeniedException", "User is not authorized to access this resource"),
    "REQUEST_TOO_LARGE": (413, "RequestTooLargeException", "Request Too Long"),
    "AUTHORIZER_CONFIGURATION_ERROR": (500, "AuthorizerConfigurationException", "Authorizer configuration error"),
    "BAD_REQUEST_BODY": (400, "BadRequestException", "Bad request"),
    # A function error or a malformed proxy response: 502; the Lambda service refusing the invocation
    # (throttled, service error): 500. Both "Internal server error", customised through DEFAULT_5XX.
    "INTEGRATION_ERROR": (502, "InternalServerErrorException", "Internal server error"),
    "INVOCATION_REFUSED": (500, "InternalServerErrorException", "Internal server error"),
}
_INTEGRATION_TYPES = ("INTEGRATION_ERROR", "INVOCATION_REFUSED")  # not gateway response types of their own
DEFAULT_RESPONSE_TEMPLATE = '{"message":$context.error.messageString}'


# ---------------------------------------------------------------------------------------------------
# Routes from the SAM template
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiDefinition:
    """What the local API needs of one `AWS::Serverless::Api` (or the implicit API)."""

    logical_id: str
    stage: str
    authorizers: dict = field(default_factory=dict)  # name -> SAM authorizer properties
    default_authorizer: str | None = None
    gateway_responses: dict = field(default_factory=dict)  # response type -> SAM GatewayResponse
    binary_media_types: tuple = ()
    stage_variables: dict | None = None


@dataclass(frozen=True)
class Route:
    function: str  # logical id of the AWS::Serverless::Function
    method: str  # upper case, or ANY
    path: str  # the resource path, e.g. /items/{id}
    api: str  # logical id of the Api
    authorizer: str | None = None  # authorizer name, None for no authorization
    authorizer_type: str | None = None  # "cognito", or "unsupported" (Lambda / IAM authorizers)
    identity_header: str = "Authorization"
    scopes: tuple = ()

    @property
    def segments(self) -> tuple:
        return tuple(s for s in self.path.split("/") if s)


def _merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _resolve(value, parameters: dict):
    """Resolve the intrinsics a route needs: Ref to a parameter or a resource (its logical id)."""
    if isinstance(value, dict) and len(value) == 1:
        (name, arg), = value.items()
        if name == "Ref":
            return parameters.get(arg, arg)
        if name == "Fn::Sub" and isinstance(arg, str):
            return re.sub(r"\$\{([^}!][^}]*)\}", lambda m: str(parameters.get(m.group(1), m.group(0))), arg)
    return value


def _binary_types(props: dict) -> tuple:
    # SAM writes "/" as "~1" in BinaryMediaTypes (image~1png).
    return tuple(str(t).replace("~1", "/").lower() for t in props.get("BinaryMediaTypes") or ())


def load_apis(sam_template: dict, parameters: dict | None = None) -> dict:
    """ApiDefinition per Api logical id, Globals.Api applied; the implicit API is always present."""
    parameters = parameters or {}
    global_api = ((sam_template.get("Globals") or {}).get("Api")) or {}
    resources = sam_template.get("Resources") or {}
    specs = {IMPLICIT_API: (_merge(global_api, {}), IMPLICIT_STAGE)}
    for logical_id, resource in resources.items():
        if resource.get("Type") == "AWS::Serverless::Api":
            props = _merge(global_api, resource.get("Properties") or {})
            specs[logical_id] = (props, str(_resolve(props.get("StageName", IMPLICIT_STAGE), parameters)))
    apis = {}
    for logical_id, (props, stage) in specs.items():
        auth = props.get("Auth") or {}
        variables = props.get("Variables")
        apis[logical_id] = ApiDefinition(
            logical_id=logical_id,
            stage=stage,
            authorizers=dict(auth.get("Authorizers") or {}),
            default_authorizer=_resolve(auth.get("DefaultAuthorizer"), parameters),
            gateway_responses=dict(props.get("GatewayResponses") or {}),
            binary_media_types=_binary_types(props),
            stage_variables={k: str(_resolve(v, parameters)) for k, v in variables.items()} if variables else None,
        )
    return apis


def routes_from_template(sam_template: dict, parameters: dict | None = None, apis: dict | None = None) -> list:
    """Every `Api` event of every AWS::Serverless::Function as a Route."""
    parameters = parameters or {}
    apis = apis if apis is not None else load_apis(sam_template, parameters)
    routes = []
    for function, resource in (sam_template.get("Resources") or {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        for event_name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") != "Api":
                continue
            props = event.get("Properties") or {}
            api_id = _resolve(props.get("RestApiId"), parameters) or IMPLICIT_API
            if api_id not in apis:
                raise ValueError(f"{function}.Events.{event_name}: RestApiId {api_id!r} is not an AWS::Serverless::Api")
            api = apis[api_id]
            path = "/" + str(_resolve(props.get("Path"), parameters)).strip("/")
            method = str(_resolve(props.get("Method"), parameters)).upper()
            if method != "ANY" and method not in HTTP_METHODS:
                raise ValueError(f"{function}.Events.{event_name}: unsupported method {method!r}")
            auth = props.get("Auth") or {}
            name = _resolve(auth.get("Authorizer"), parameters) or api.default_authorizer
            if name in (None, "NONE"):
                routes.append(Route(function, method, path, api_id))
                continue
            config = api.authorizers.get(name) or {}
            scopes = auth.get("AuthorizationScopes")
            if scopes is None:
                scopes = config.get("AuthorizationScopes") or ()
            header = ((config.get("Identity") or {}).get("Header")) or "Authorization"
            kind = "cognito" if "UserPoolArn" in config else "unsupported"
            routes.append(Route(function, method, path, api_id, name, kind, header, tuple(scopes)))
    return routes


class RouteTable:
    """API Gateway's resource resolution: the most specific resource, then its method or ANY."""

    def __init__(self, routes):
        self.routes = list(routes)
        seen = {}
        for route in self.routes:
            if route.path == ADMIN_PREFIX or route.path.startswith(ADMIN_PREFIX + "/"):
                raise ValueError(f"route {route.path} collides with the local admin routes under {ADMIN_PREFIX}/")
            key = (route.method, _shape(route.segments))
            if key in seen:
                raise ValueError(f"{route.method} {route.path} is defined twice ({seen[key]} and {route.function})")
            seen[key] = route.function

    def match(self, method: str, path: str):
        """(route, path_parameters), or (None, None) when no resource or method matches."""
        parts = [unquote(p) for p in path.split("/") if p]
        best = None
        for route in self.routes:
            params = _match_segments(route.segments, parts)
            if params is None:
                continue
            rank = _rank(route.segments)
            if best is None or rank > best[0]:
                best = (rank, route.segments, params)
        if best is None:
            return None, None
        candidates = [r for r in self.routes if r.segments == best[1]]
        for wanted in (method, "ANY"):
            for route in candidates:
                if route.method == wanted:
                    return route, best[2]
        return None, None


def _shape(segments) -> tuple:
    return tuple("{}" if s.startswith("{") else s for s in segments)


def _rank(segments) -> tuple:
    return tuple(0 if s.endswith("+}") else 1 if s.startswith("{") else 2 for s in segments) + (3,)


def _match_segments(template, parts):
    params = {}
    for index, segment in enumerate(template):
        if segment.startswith("{") and segment.endswith("+}"):
            rest = parts[index:]
            if not rest:
                return None
            params[segment[1:-2]] = "/".join(rest)
            return params
        if index >= len(parts):
            return None
        if segment.startswith("{") and segment.endswith("}"):
            params[segment[1:-1]] = parts[index]
        elif segment != parts[index]:
            return None
    return params if len(parts) == len(template) else None


# ---------------------------------------------------------------------------------------------------
# Request -> Lambda proxy event, proxy response -> HTTP
# ---------------------------------------------------------------------------------------------------
@dataclass
class HttpRequest:
    method: str
    raw_path: str  # path and query as received
    headers: list  # [(name, value)] in arrival order
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"
    too_large: bool = False  # the body was over MAX_BODY_BYTES and was not read

    @property
    def path(self) -> str:
        path = unquote(urlsplit(self.raw_path).path) or "/"
        return path if path == "/" else "/" + path.strip("/")

    @property
    def query(self) -> list:
        return parse_qsl(urlsplit(self.raw_path).query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        found = None
        for key, value in self.headers:
            if key.lower() == name.lower():
                found = value
        return found


def _media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def _is_binary(media_type: str, binary_types) -> bool:
    if not media_type:
        return False
    for pattern in binary_types:
        if pattern in ("*/*", media_type):
            return True
        if pattern.endswith("/*") and media_type.split("/")[0] == pattern[:-2]:
            return True
    return False


def _multi(pairs) -> dict | None:
    if not pairs:
        return None
    grouped: dict = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return grouped


def build_proxy_event(
    request: HttpRequest,
    route: Route,
    path_parameters: dict,
    api: ApiDefinition,
    *,
    api_id: str,
    account_id: str,
    claims: dict | None = None,
    request_id: str | None = None,
    now: float | None = None,
) -> dict:
    """The event API Gateway gives a Lambda proxy integration of a REST API (payload format 1.0)."""
    now = time.time() if now is None else now
    multi_headers = _multi(request.headers) or {}
    headers = {k: v[-1] for k, v in multi_headers.items()}  # REST APIs keep the last value
    host = request.header("Host") or f"{HOST}"
    headers.setdefault("X-Forwarded-For", request.source_ip)
    headers.setdefault("X-Forwarded-Proto", "http")
    multi_headers.setdefault("X-Forwarded-For", [request.source_ip])
    multi_headers.setdefault("X-Forwarded-Proto", ["http"])
    multi_query = _multi(request.query)
    body = None
    is_base64 = False
    if request.body:
        if _is_binary(_media_type(request.header("Content-Type")), api.binary_media_types):
            body, is_base64 = base64.b64encode(request.body).decode("ascii"), True
        else:
            body = request.body.decode("utf-8", errors="replace")
    request_id = request_id or str(uuid.uuid4())
    context = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": host,
        "domainPrefix": host.split(".")[0].split(":")[0],
        "extendedRequestId": base64.b32encode(uuid.uuid4().bytes)[:16].decode("ascii"),
        "httpMethod": request.method,
        "identity": {
            "accessKey": None,
            "accountId": None,
            "caller": None,
            "cognitoAuthenticationProvider": None,
            "cognitoAuthenticationType": None,
            "cognitoIdentityId": None,
            "cognitoIdentityPoolId": None,
            "principalOrgId": None,
            "sourceIp": request.source_ip,
            "user": None,
            "userAgent": request.header("User-Agent"),
            "userArn": None,
        },
        "path": f"/{api.stage}{request.path}",
        "protocol": request.protocol,
        "requestId": request_id,
        "requestTime": datetime.fromtimestamp(now, tz=timezone.utc).strftime("%d/%b/%Y:%H:%M:%S +0000"),
        "requestTimeEpoch": int(now * 1000),
        "resourceId": _short_id(route.api + route.path, 6),
        "resourcePath": route.path,
        "stage": api.stage,
    }
    if claims is not None:
        context["authorizer"] = {"claims": gateway_claims(claims)}
    return {
        "resource": route.path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} if multi_query else None,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": path_parameters or None,
        "stageVariables": api.stage_variables,
        "requestContext": context,
        "body": body,
        "isBase64Encoded": is_base64,
    }


def _short_id(seed: str, length: int) -> str:
    alphabet = string.ascii_lowercase + string.digits
    number = int(uuid.uuid5(uuid.NAMESPACE_URL, seed).hex, 16)
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


@dataclass
class HttpReply:
    status: int
    headers: list  # [(name, value)]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class MalformedProxyResponse(Exception):
    """The function returned something API Gateway cannot turn into a response (→ 502)."""


def reply_from_proxy_response(payload, *, accept: str | None, binary_types) -> HttpReply:
    """The HTTP response API Gateway makes from a Lambda proxy integration's result."""
    if isinstance(payload, (bytes, bytearray)):
        try:
            payload = json.loads(payload)
        except ValueError:
            raise MalformedProxyResponse("the function's result is not JSON") from None
    if not isinstance(payload, dict):
        raise MalformedProxyResponse("the function's result is not a JSON object")
    unknown = set(payload) - {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded", "cookies"}
    if unknown:
        raise MalformedProxyResponse(f"unexpected fields in the proxy response: {sorted(unknown)}")
    status = payload.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedProxyResponse("statusCode is missing or not an HTTP status")
    headers: list = []
    single = payload.get("headers") or {}
    multi = payload.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedProxyResponse("headers / multiValueHeaders must be objects")
    names = {}
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResponse("multiValueHeaders values must be lists")
        names[name.lower()] = True
        headers.extend((name, str(v)) for v in values)
    for name, value in single.items():
        if name.lower() not in names:
            headers.append((name, str(value)))
    body = payload.get("body")
    if body is None:
        raw = b""
    elif isinstance(body, str):
        raw = body.encode("utf-8")
    else:
        raise MalformedProxyResponse("body must be a string")
    if payload.get("isBase64Encoded") and body:
        content_type = next((v for k, v in headers if k.lower() == "content-type"), None)
        first_accept = (accept or "").split(",")[0]
        if _is_binary(_media_type(content_type), binary_types) or _is_binary(_media_type(first_accept), binary_types):
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise MalformedProxyResponse("body is not valid base64") from None
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpReply(status, headers, raw)


# ---------------------------------------------------------------------------------------------------
# Gateway responses (the answers API Gateway makes itself)
# ---------------------------------------------------------------------------------------------------
_CONTEXT_VARIABLE = re.compile(r"\$(?:\{context\.([A-Za-z0-9_.]+)\}|context\.([A-Za-z0-9_.]*[A-Za-z0-9_]))")


def gateway_reply(response_type: str, api: ApiDefinition | None, context: dict, request: HttpRequest | None) -> HttpReply:
    """A gateway response: the Api's configured one for the type (else DEFAULT_4XX / DEFAULT_5XX),
    else AWS's default, rendered with `$context.*` variables."""
    status, error_type, message = GATEWAY_RESPONSE_DEFAULTS[response_type]
    configured = {}
    if api is not None:
        family = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
        lookup = "DEFAULT_5XX" if response_type in _INTEGRATION_TYPES else response_type
        configured = api.gateway_responses.get(lookup) or api.gateway_responses.get(family) or {}
    status = int(configured.get("StatusCode", status))
    variables = {
        "error.message": message,
        "error.messageString": json.dumps(message),
        "error.responseType": "DEFAULT_5XX" if response_type in _INTEGRATION_TYPES else response_type,
        **context,
    }
    templates = configured.get("ResponseTemplates") or {}
    content_type, template = "application/json", DEFAULT_RESPONSE_TEMPLATE
    if templates:
        content_type = "application/json" if "application/json" in templates else next(iter(templates))
        template = templates[content_type]
    body = _CONTEXT_VARIABLE.sub(lambda m: str(variables.get(m.group(1) or m.group(2), "")), str(template))
    headers = [("Content-Type", content_type), ("x-amzn-ErrorType", error_type)]
    for name, source in ((configured.get("ResponseParameters") or {}).get("Headers") or {}).items():
        value = _response_parameter(str(source), request)
        if value is not None:
            headers = [(k, v) for k, v in headers if k.lower() != name.lower()] + [(name, value)]
    return HttpReply(status, headers, body.encode("utf-8"))


def _response_parameter(source: str, request: HttpRequest | None) -> str | None:
    if len(source) >= 2 and source[0] == source[-1] == "'":
        return source[1:-1]
    if request is None:
        return None
    if source.startswith("method.request.header."):
        return request.header(source[len("method.request.header."):])
    if source.startswith("method.request.querystring."):
        wanted = source[len("method.request.querystring."):]
        values = [v for k, v in request.query if k == wanted]
        return values[-1] if values else None
    return None


# ---------------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------------
class LocalApi:
    """The local HTTP API on a started runtime. Use `LocalApi.start(...)` as a context manager."""

    def __init__(self, runtime, *, port: int = 0, region: str | None = None, issuer: LocalTokenIssuer | None = None):
        self.runtime = runtime
        self.region = region or getattr(runtime, "region", None) or "us-east-1"
        template = runtime.sam_template
        # The runtime's parameter values: defaults, overrides and pseudo parameters, already checked.
        self.parameters = {k: v for k, v in dict(getattr(runtime, "parameters", None) or {}).items()
                           if isinstance(v, str)}
        self.apis = load_apis(template, self.parameters)
        self.routes = RouteTable(routes_from_template(template, self.parameters, self.apis))
        self.account_id = str(getattr(runtime, "account_id", None) or DEFAULT_ACCOUNT)
        self.issuer = issuer or LocalTokenIssuer.generate(self._issuer_url(template))
        self._authorizers: dict = {}
        self._region_stopped = threading.Event()
        self._api_ids = {logical: self._physical_api_id(logical) for logical in self.apis}
        for route in self.routes.routes:
            if route.authorizer_type == "unsupported":
                LOG.warning("authorizer %s of %s %s is not a Cognito authorizer; the local API answers 500 for it",
                            route.authorizer, route.method, route.path)
        self._server = ThreadingHTTPServer((HOST, port), _RequestHandler)
        self._server.daemon_threads = True
        self._server.local_api = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None
        self._owns_runtime = False

    # -- life cycle ------------------------------------------------------------------------------
    @classmethod
    def start(cls, template, *, port: int = 0, parameter_overrides: dict | None = None,
              env_overrides: dict | None = None, region: str = "us-east-1") -> "LocalApi":
        """Start a LocalRuntime on the template and the HTTP API on 127.0.0.1:port (0: a free port)."""
        from mxflow_local.runtime import LocalRuntime  # heavy (moto): only when a server starts

        runtime = LocalRuntime(str(template), parameter_overrides=dict(parameter_overrides or {}), region=region,
                               env_overrides=dict(env_overrides or {}))
        runtime.start()
        try:
            api = cls(runtime, port=port, region=region)
        except BaseException:
            runtime.stop()
            raise
        api._owns_runtime = True
        return api.serve()

    def serve(self) -> "LocalApi":
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                            name="mxflow-local-api", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._server.server_close()
        if self._owns_runtime:
            self._owns_runtime = False
            self.runtime.stop()

    def __enter__(self) -> "LocalApi":
        return self.serve()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def issue_token(self, scopes, client_id: str = "local", *, ttl: int = 3600, token_use: str = "access") -> str:
        return self.issuer.issue_token(scopes, client_id, ttl=ttl, token_use=token_use)

    # -- the Region switch -----------------------------------------------------------------------
    @property
    def region_available(self) -> bool:
        return not self._region_stopped.is_set() and bool(getattr(self.runtime, "available", True))

    def stop_region(self) -> None:
        self._region_stopped.set()
        self._set_runtime_available(False)

    def start_region(self) -> None:
        self._region_stopped.clear()
        self._set_runtime_available(True)

    def _set_runtime_available(self, value: bool) -> None:
        setter = getattr(self.runtime, "stop_region" if not value else "start_region", None)
        if callable(setter):
            setter()
            return
        try:
            setattr(self.runtime, "available", value)
        except AttributeError:
            pass  # a runtime without a Region switch: the API's own flag still answers 503

    # -- helpers ---------------------------------------------------------------------------------
    def _physical(self, logical_id: str):
        try:
            return self.runtime.physical(logical_id)
        except Exception:  # not created in moto (e.g. the implicit API): use a stable made-up id
            return None

    def _physical_api_id(self, logical_id: str) -> str:
        physical = self._physical(logical_id)
        return str(physical) if physical else _short_id(logical_id, 10)

    def _issuer_url(self, template: dict) -> str:
        """The Cognito issuer of the first user pool an authorizer names (GetAtt Pool.Arn or an ARN)."""
        for api in self.apis.values():
            for config in api.authorizers.values():
                arns = config.get("UserPoolArn")
                for arn in arns if isinstance(arns, list) else [arns]:
                    pool_id = None
                    if isinstance(arn, dict) and "Fn::GetAtt" in arn:
                        target = arn["Fn::GetAtt"]
                        logical = target[0] if isinstance(target, list) else str(target).split(".")[0]
                        physical = self._physical(logical)
                        pool_id = str(physical).rsplit("/", 1)[-1] if physical else None
                    resolved = _resolve(arn, self.parameters)
                    if pool_id is None and isinstance(resolved, str) and ":userpool/" in resolved:
                        pool_id = resolved.rsplit("/", 1)[-1]
                    if pool_id:
                        return cognito_issuer(self.region, pool_id)
        return cognito_issuer(self.region, f"{self.region}_mxflowLocal")

    def _authorizer_for(self, route: Route) -> CognitoAuthorizer:
        authorizer = self._authorizers.get(route.identity_header)
        if authorizer is None:
            authorizer = self._authorizers[route.identity_header] = CognitoAuthorizer(self.issuer, header=route.identity_header)
        return authorizer

    # -- request handling ------------------------------------------------------------------------
    def handle(self, request: HttpRequest) -> HttpReply:
        """Answer one request (also usable without a socket)."""
        request_id = str(uuid.uuid4())
        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            return self._handle_admin(request)
        route, params = self.routes.match(request.method, request.path)
        api = self.apis[route.api] if route else self._sole_api()
        context = {"requestId": request_id, "path": request.path, "httpMethod": request.method,
                   "stage": api.stage if api else "", "resourcePath": route.path if route else ""}
        if request.too_large or len(request.body) > MAX_BODY_BYTES:
            return self._stamp(gateway_reply("REQUEST_TOO_LARGE", api, context, request), request_id)
        if route is None:
            return self._stamp(gateway_reply("MISSING_AUTHENTICATION_TOKEN", api, context, request), request_id)
        region_down = not self.region_available
        if region_down and route.path != "/health":
            return self._stamp(self._region_down_reply(route), request_id)
        claims = None
        if route.authorizer_type == "unsupported":
            return self._stamp(gateway_reply("AUTHORIZER_CONFIGURATION_ERROR", api, context, request), request_id)
        if route.authorizer_type == "cognito":
            outcome = self._authorizer_for(route).authorize(request.header(route.identity_header), route.scopes)
            if not outcome.allowed:
                kind = "UNAUTHORIZED" if outcome.status == 401 else "ACCESS_DENIED"
                context = context | {"error.message": outcome.message, "error.messageString": json.dumps(outcome.message)}
                return self._stamp(gateway_reply(kind, api, context, request), request_id)
            claims = outcome.claims
        event = build_proxy_event(request, route, params, api, api_id=self._api_ids[route.api],
                                  account_id=self.account_id, claims=claims, request_id=request_id)
        try:
            result = self.runtime.invoke(route.function, event)
        except Exception:  # the runtime itself failed: the integration failed, as a 502
            LOG.exception("invoking %s for %s %s failed", route.function, route.method, route.path)
            return self._stamp(gateway_reply("INTEGRATION_ERROR", api, context, request), request_id)
        if region_down and getattr(result, "error", None):
            # /health while the Region is stopped: its handler is unreachable, so the Region is unhealthy
            return self._stamp(self._region_down_reply(route), request_id)
        if getattr(result, "error", None):
            error = result.error if isinstance(result.error, dict) else {}
            refused = getattr(result, "status_code", 200) != 200 and not getattr(result, "function_error", None)
            LOG.warning("%s %s for %s %s", route.function,
                        f"was not invoked ({error.get('errorType')})" if refused else f"raised {error.get('errorType')}",
                        route.method, route.path)
            kind = "INVOCATION_REFUSED" if refused else "INTEGRATION_ERROR"
            return self._stamp(gateway_reply(kind, api, context, request), request_id)
        try:
            reply = reply_from_proxy_response(result.payload, accept=request.header("Accept"),
                                              binary_types=api.binary_media_types)
        except MalformedProxyResponse as exc:
            LOG.warning("malformed Lambda proxy response from %s: %s", route.function, exc)
            return self._stamp(gateway_reply("INTEGRATION_ERROR", api, context, request), request_id)
        return self._stamp(reply, request_id)

    def _region_down_reply(self, route: Route) -> HttpReply:
        if route.path == "/health":
            body = {"region": self.region, "healthy": False, "status": "unhealthy",
                    "detail": "the Region is stopped (local drill): its handlers are unreachable"}
        else:
            body = {"message": f"Service Unavailable: Region {self.region} is stopped (local drill)"}
        return HttpReply(503, [("Content-Type", "application/json"), ("Retry-After", "1")],
                         json.dumps(body).encode("utf-8"))

    def _sole_api(self) -> ApiDefinition | None:
        """The Api whose gateway responses apply to a request no route matched: the only Api that
        has routes (None when several do: AWS's defaults then)."""
        used = {route.api for route in self.routes.routes}
        return self.apis[next(iter(used))] if len(used) == 1 else None

    @staticmethod
    def _stamp(reply: HttpReply, request_id: str) -> HttpReply:
        reply.headers.append(("x-amzn-RequestId", request_id))
        return reply

    # -- /_local admin routes --------------------------------------------------------------------
    def _handle_admin(self, request: HttpRequest) -> HttpReply:
        if request.source_ip not in ("127.0.0.1", "::1"):
            return _json_reply(403, {"message": "local admin routes answer loopback clients only"})
        path, method = request.path, request.method
        if path == f"{ADMIN_PREFIX}/routes" and method == "GET":
            return _json_reply(200, {"routes": [
                {"method": r.method, "path": r.path, "function": r.function, "api": r.api,
                 "authorizer": r.authorizer, "scopes": list(r.scopes)} for r in self.routes.routes]})
        if path in (f"{ADMIN_PREFIX}/region/stop", f"{ADMIN_PREFIX}/region/start") and method == "POST":
            (self.stop_region if path.endswith("/stop") else self.start_region)()
            return _json_reply(200, {"region": self.region, "available": self.region_available})
        if path == f"{ADMIN_PREFIX}/faults" and method == "POST":
            return self._inject_fault(request)
        return _json_reply(404, {"message": f"no local admin route {method} {path}",
                                 "routes": ["GET /_local/routes", "POST /_local/faults",
                                            "POST /_local/region/stop", "POST /_local/region/start"]})

    def _inject_fault(self, request: HttpRequest) -> HttpReply:
        """POST /_local/faults {"function", "kind", "count", "errorType", "message", "afterSeconds"}:
        the runtime's `faults.inject` (kinds and defaults are the runtime's)."""
        try:
            spec = json.loads(request.body or b"null")
        except ValueError:
            return _json_reply(400, {"message": "the body must be JSON: {function, kind, count, errorType}"})
        if not isinstance(spec, dict) or not isinstance(spec.get("function"), str):
            return _json_reply(400, {"message": "'function' (a logical id or function name) is required"})
        unknown = set(spec) - {"function", "kind", "count", "errorType", "message", "afterSeconds"}
        if unknown:
            return _json_reply(400, {"message": f"unknown fields {sorted(unknown)}"})
        options = {}
        for field_name, option, kinds in (("kind", "kind", str), ("count", "count", int),
                                          ("errorType", "error_type", str), ("message", "message", str),
                                          ("afterSeconds", "after_seconds", (int, float))):
            if field_name in spec:
                value = spec[field_name]
                if not isinstance(value, kinds) or isinstance(value, bool):
                    return _json_reply(400, {"message": f"'{field_name}' has the wrong type"})
                options[option] = value
        if options.get("count", 1) < 1:
            return _json_reply(400, {"message": "'count' must be a positive integer"})
        try:
            self.runtime.faults.inject(spec["function"], **options)
        except (KeyError, ValueError, TypeError) as exc:
            return _json_reply(400, {"message": f"cannot inject the fault: {exc}"})
        return _json_reply(200, {"injected": {"function": spec["function"], **{
            name: spec[name] for name in ("kind", "count", "errorType", "message", "afterSeconds") if name in spec}}})


def _json_reply(status: int, body) -> HttpReply:
    return HttpReply(status, [("Content-Type", "application/json")], json.dumps(body).encode("utf-8"))


class _BodyTooLarge(Exception):
    def __init__(self, drained: bool = False):
        super().__init__("request body over the payload quota")
        self.drained = drained


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    server_version = "mxflow-local"
    sys_version = ""

    def _dispatch(self):
        api: LocalApi = self.server.local_api  # type: ignore[attr-defined]
        body, too_large = b"", False
        try:
            body = self._read_body()
        except _BodyTooLarge as exc:
            self.close_connection = not exc.drained  # unread bytes would be taken for the next request
            too_large = True
        except ValueError:
            self.close_connection = True
            self._send(_json_reply(400, {"message": "malformed request body framing"}))
            return
        request = HttpRequest(self.command, self.path, list(self.headers.items()), body, self.client_address[0],
                              self.request_version, too_large)
        started = time.perf_counter()
        try:
            reply = api.handle(request)
        except Exception:  # never a stack trace to the client
            LOG.exception("the local API failed on %s", self.command)
            reply = gateway_reply("INTEGRATION_ERROR", None, {}, None)
        if self.command == "HEAD":
            reply = HttpReply(reply.status, reply.headers, b"")
        self._send(reply)
        LOG.info("%s %s -> %d in %.1f ms", self.command, _route_label(api, request), reply.status,
                 (time.perf_counter() - started) * 1000)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        if not length.strip().isdigit():
            raise ValueError("bad Content-Length")
        size = int(length)
        if size > MAX_BODY_BYTES:
            if size <= DRAIN_LIMIT_BYTES:  # read and drop it, so the client gets the 413 rather than a reset
                left = size
                while left > 0:
                    piece = self.rfile.read(min(left, 1 << 16))
                    if not piece:
                        break
                    left -= len(piece)
                if left == 0:
                    raise _BodyTooLarge(True)
            raise _BodyTooLarge(False)
        return self.rfile.read(size)

    def _read_chunked(self) -> bytes:
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise ValueError("bad chunk size") from None
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyTooLarge(False)
            chunks.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _send(self, reply: HttpReply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if reply.body:
            self.wfile.write(reply.body)

    def log_message(self, format, *args):  # noqa: A002 - no request lines (paths may hold ids) on stderr
        LOG.debug(format, *args)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


def _route_label(api: LocalApi, request: HttpRequest) -> str:
    if request.path.startswith(ADMIN_PREFIX):
        return request.path
    route, _ = api.routes.match(request.method, request.path)
    return route.path if route else "(no route)"

