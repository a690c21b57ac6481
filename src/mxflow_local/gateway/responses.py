"""Gateway responses: the answers API Gateway makes itself (no route, 401, 403, 413, 502, ...).

An API's configured response for the type (else its DEFAULT_4XX / DEFAULT_5XX) applies, else AWS's
default; templates are rendered with `$context.*` variables and response headers taken from literals
or the request, as API Gateway does.
"""
from __future__ import annotations

import json
import re

from mxflow_local.gateway.proxy import HttpReply, HttpRequest
from mxflow_local.gateway.routes import ApiDefinition, GatewayResponse

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
_CONTEXT_VARIABLE = re.compile(r"\$(?:\{context\.([A-Za-z0-9_.]+)\}|context\.([A-Za-z0-9_.]*[A-Za-z0-9_]))")


def gateway_reply(response_type: str, api: ApiDefinition | None, context: dict,
                  request: HttpRequest | None) -> HttpReply:
    """The gateway response of `response_type` on `api` (None: AWS's defaults)."""
    status, error_type, message = GATEWAY_RESPONSE_DEFAULTS[response_type]
    configured = GatewayResponse()
    if api is not None:
        family = "DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX"
        lookup = "DEFAULT_5XX" if response_type in _INTEGRATION_TYPES else response_type
        configured = api.gateway_responses.get(lookup) or api.gateway_responses.get(family) or configured
    status = configured.status or status
    variables = {
        "error.message": message,
        "error.messageString": json.dumps(message),
        "error.responseType": "DEFAULT_5XX" if response_type in _INTEGRATION_TYPES else response_type,
        **context,
    }
    content_type, template = "application/json", DEFAULT_RESPONSE_TEMPLATE
    if configured.templates:
        content_type = "application/json" if "application/json" in configured.templates else next(iter(configured.templates))
        template = configured.templates[content_type]
    body = _CONTEXT_VARIABLE.sub(lambda m: str(variables.get(m.group(1) or m.group(2), "")), str(template))
    headers = [("Content-Type", content_type), ("x-amzn-ErrorType", error_type)]
    for name, source in configured.headers.items():
        value = _response_parameter(source, request)
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
