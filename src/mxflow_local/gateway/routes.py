"""The REST APIs of a translated template, and API Gateway's resource resolution.

Everything comes from the template as SAM translates it (mxflow_local.template): each
`AWS::ApiGateway::RestApi` carries its OpenAPI definition (`Body`, or a local `BodyS3Location` for a
DefinitionUri) with the routes (`paths`), their Lambda proxy integrations, the authorizers
(`securityDefinitions` / `components.securitySchemes`) and each method's `security` with its scopes,
the gateway responses (`x-amazon-apigateway-gateway-responses`) and the binary media types; its
`AWS::ApiGateway::Stage` gives the stage name and variables. Values are resolved with the runtime's
resolver, as CloudFormation would.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote

from mxflow_local.template import LoadedTemplate, load_document, references_of

LOG = logging.getLogger("mxflow_local.gateway")

ADMIN_PREFIX = "/_local"  # the local admin routes (mxflow_local.gateway.admin); no application route there
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ANY_METHOD = "x-amazon-apigateway-any-method"
NO_AUTHORIZER = "NONE"  # SAM's `Authorizer: NONE`, written as the security requirement {"NONE": []}


@dataclass(frozen=True)
class GatewayResponse:
    """One entry of x-amazon-apigateway-gateway-responses."""

    status: int | None = None
    headers: dict = field(default_factory=dict)  # header name -> source ('literal', method.request.header.X)
    templates: dict = field(default_factory=dict)  # content type -> template with $context variables


@dataclass(frozen=True)
class Authorizer:
    kind: str  # "cognito", or "unsupported" (Lambda / IAM / API key)
    header: str = "Authorization"
    provider_arns: tuple = ()  # the Cognito user pools' ARNs


@dataclass(frozen=True)
class ApiDefinition:
    """What the local API needs of one REST API."""

    logical_id: str
    stage: str
    authorizers: dict = field(default_factory=dict)  # name -> Authorizer
    gateway_responses: dict = field(default_factory=dict)  # response type -> GatewayResponse
    binary_media_types: tuple = ()
    stage_variables: dict | None = None


@dataclass(frozen=True)
class Route:
    function: str  # logical id of the AWS::Lambda::Function
    method: str  # upper case, or ANY
    path: str  # the resource path, e.g. /items/{id}
    api: str  # logical id of the REST API
    authorizer: str | None = None  # authorizer name, None for no authorization
    authorizer_type: str | None = None  # "cognito", or "unsupported"
    identity_header: str = "Authorization"
    scopes: tuple = ()

    @property
    def segments(self) -> tuple:
        return tuple(s for s in self.path.split("/") if s)


def read_apis(template: LoadedTemplate, resolve: Callable[[Any], Any]) -> tuple[dict, list]:
    """(ApiDefinition per REST API logical id, every route) of a translated template."""
    resources = template.cfn.get("Resources") or {}
    functions = {lid for lid, r in resources.items() if r.get("Type") == "AWS::Lambda::Function"}
    stages = {r["Properties"]["RestApiId"]["Ref"]: r["Properties"] for r in resources.values()
              if r.get("Type") == "AWS::ApiGateway::Stage"
              and isinstance((r.get("Properties") or {}).get("RestApiId"), dict)
              and "Ref" in r["Properties"]["RestApiId"]}
    apis, routes = {}, []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::ApiGateway::RestApi":
            continue
        props = resource.get("Properties") or {}
        body = _openapi_body(template, logical_id, props)
        stage = stages.get(logical_id) or {}
        variables = resolve(stage.get("Variables")) if stage.get("Variables") else None
        schemes = (body.get("components") or {}).get("securitySchemes") or body.get("securityDefinitions") or {}
        apis[logical_id] = ApiDefinition(
            logical_id=logical_id,
            stage=str(resolve(stage.get("StageName", "Prod"))),
            authorizers={name: _authorizer(scheme, resolve) for name, scheme in schemes.items()},
            gateway_responses={kind: _gateway_response(resolve(spec)) for kind, spec in
                               (body.get("x-amazon-apigateway-gateway-responses") or {}).items()},
            binary_media_types=_binary_types(resolve(body.get("x-amazon-apigateway-binary-media-types")
                                                     or props.get("BinaryMediaTypes") or [])),
            stage_variables={k: str(v) for k, v in variables.items()} if variables else None,
        )
        routes.extend(_routes(apis[logical_id], body, functions))
    return apis, routes


def _openapi_body(template: LoadedTemplate, logical_id: str, props: dict) -> dict:
    if "Body" in props:
        return props["Body"]
    path = template.local_path_of(props.get("BodyS3Location"))
    if path is None:
        raise ValueError(f"{logical_id}: the REST API has no OpenAPI Body the local API can read")
    return load_document(path, "OpenAPI definition")


def _authorizer(scheme: dict, resolve) -> Authorizer:
    config = scheme.get("x-amazon-apigateway-authorizer") or {}
    if config.get("type") == "cognito_user_pools":
        arns = resolve(config.get("providerARNs") or [])
        return Authorizer("cognito", scheme.get("name") or "Authorization", tuple(map(str, arns)))
    return Authorizer("unsupported", scheme.get("name") or "Authorization")


def _gateway_response(spec: dict) -> GatewayResponse:
    prefix = "gatewayresponse.header."
    headers = {name[len(prefix):]: str(source) for name, source in (spec.get("responseParameters") or {}).items()
               if name.startswith(prefix)}
    status = spec.get("statusCode")
    return GatewayResponse(int(status) if status is not None else None, headers,
                           dict(spec.get("responseTemplates") or {}))


def _binary_types(types) -> tuple:
    # The RestApi's BinaryMediaTypes property writes "/" as "~1" (image~1png); the OpenAPI extension does not.
    return tuple(str(t).replace("~1", "/").lower() for t in types or ())


def _routes(api: ApiDefinition, body: dict, functions: set) -> list:
    routes = []
    default_security = body.get("security")
    for path, item in (body.get("paths") or {}).items():
        for key, operation in item.items():
            method = "ANY" if key == ANY_METHOD else key.upper()
            if method != "ANY" and method not in HTTP_METHODS:
                continue  # OpenAPI path-item fields (parameters, summary, ...)
            integration = operation.get("x-amazon-apigateway-integration") or {}
            targets = references_of(integration.get("uri")) & functions
            if integration.get("type") != "aws_proxy" or len(targets) != 1:
                LOG.warning("%s %s of %s is not a Lambda proxy integration of a function of this template: "
                            "not served locally", method, path, api.logical_id)
                continue
            routes.append(_route(api, targets.pop(), method, "/" + path.strip("/"),
                                 operation.get("security", default_security)))
    return routes


def _route(api: ApiDefinition, function: str, method: str, path: str, security) -> Route:
    requirement = (security or [{}])[0] or {}
    name, scopes = next(iter(requirement.items()), (None, ()))
    if name in (None, NO_AUTHORIZER):
        return Route(function, method, path, api.logical_id)
    authorizer = api.authorizers.get(name) or Authorizer("unsupported")
    return Route(function, method, path, api.logical_id, name, authorizer.kind, authorizer.header, tuple(scopes))


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
