"""API Gateway's Lambda proxy integration of a REST API (payload format 1.0): the HTTP request as the
event the function gets (`build_proxy_event`), and the function's result as the HTTP reply
(`reply_from_proxy_response`)."""
from __future__ import annotations

import base64
import binascii
import json
import string
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import parse_qsl, unquote, urlsplit

from mxflow_local.auth import gateway_claims
from mxflow_local.gateway.routes import ApiDefinition, Route

HOST = "127.0.0.1"


@dataclass
class HttpRequest:
    method: str
    raw_path: str  # path and query as received
    headers: list  # [(name, value)] in arrival order
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"
    too_large: bool = False  # the body was over API Gateway's payload quota and was not read

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


def media_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def is_binary(kind: str, binary_types) -> bool:
    """Whether the media type `kind` is one of the API's binary media types (wildcards included)."""
    if not kind:
        return False
    for pattern in binary_types:
        if pattern in ("*/*", kind):
            return True
        if pattern.endswith("/*") and kind.split("/")[0] == pattern[:-2]:
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
        if is_binary(media_type(request.header("Content-Type")), api.binary_media_types):
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
        "resourceId": short_id(route.api + route.path, 6),
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


def short_id(seed: str, length: int) -> str:
    """A stable made-up id (lower case and digits) for what the local runtime does not create."""
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
        if is_binary(media_type(content_type), binary_types) or is_binary(media_type(first_accept), binary_types):
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                raise MalformedProxyResponse("body is not valid base64") from None
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpReply(status, headers, raw)
