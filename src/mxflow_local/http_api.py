"""The local HTTP API: API Gateway REST API (v1) semantics in front of the embedded runtime.

The routes, authorizers with their scopes, gateway responses, binary media types and stages are
those of the template as SAM translates it (mxflow_local.gateway.routes). A request is matched the
way API Gateway resolves resources, authorized as the COGNITO_USER_POOLS authorizer does
(mxflow_local.auth), turned into the Lambda proxy event API Gateway builds (mxflow_local.gateway.proxy),
given to `LocalRuntime.invoke`, and the proxy response is sent back. A method or path no route
declares is answered as API Gateway answers it: 403 MISSING_AUTHENTICATION_TOKEN, through the API's
gateway responses (mxflow_local.gateway.responses). While the runtime's Region is stopped
(mxflow_local.faults.RegionSwitch) every route answers 503.

Local-only admin routes live under `/_local/` (mxflow_local.gateway.admin), the operations console
under `/console/` (mxflow_local.gateway.console). The server
(mxflow_local.gateway.server) binds 127.0.0.1 only.

    with LocalApi.start("template.yaml", port=0) as api:
        token = api.issue_token(["payments/submit"], client_id="local")
        ... api.url ...
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid

from mxflow_local.auth import CognitoAuthorizer, LocalTokenIssuer, cognito_issuer
from mxflow_local.gateway.admin import AdminRoutes, is_admin_path
from mxflow_local.gateway.console import ConsoleSite, is_console_path
from mxflow_local.gateway.proxy import (
    HOST,
    HttpReply,
    HttpRequest,
    MalformedProxyResponse,
    build_proxy_event,
    reply_from_proxy_response,
    short_id,
)
from mxflow_local.gateway.routes import ApiDefinition, Route, RouteTable, read_apis
from mxflow_local.gateway.responses import gateway_reply
from mxflow_local.gateway.server import MAX_BODY_BYTES, http_server

LOG = logging.getLogger("mxflow_local.http_api")

DEFAULT_ACCOUNT = "123456789012"


class LocalApi:
    """The local HTTP API on a started runtime. Use `LocalApi.start(...)` as a context manager."""

    def __init__(self, runtime, *, port: int = 0, region: str | None = None, issuer: LocalTokenIssuer | None = None):
        self.runtime = runtime
        self.region = region or getattr(runtime, "region", None) or "us-east-1"
        self.region_switch = runtime.region_switch
        self.apis, routes = read_apis(runtime.template, runtime.resolver.resolve)
        self.routes = RouteTable(routes)
        self.admin = AdminRoutes(runtime, self.routes.routes)
        self.account_id = str(getattr(runtime, "account_id", None) or DEFAULT_ACCOUNT)
        self.issuer = issuer or LocalTokenIssuer.generate(self._issuer_url())
        self._authorizers: dict = {}
        self._api_ids = {logical: self._physical_api_id(logical) for logical in self.apis}
        for route in self.routes.routes:
            if route.authorizer_type == "unsupported":
                LOG.warning("authorizer %s of %s %s is not a Cognito authorizer; the local API answers 500 for it",
                            route.authorizer, route.method, route.path)
        # The operations console (console/ beside the template) at /console/, when the project has one.
        self.console = ConsoleSite.beside(runtime.template_path, self.issue_token) \
            if getattr(runtime, "template_path", None) else None
        self._server = http_server(self.handle, port)
        self._thread: threading.Thread | None = None
        self._owns_runtime = False

    # -- life cycle ------------------------------------------------------------------------------
    @classmethod
    def start(cls, template, *, port: int = 0, parameter_overrides: dict | None = None,
              env_overrides: dict | None = None, region: str = "us-east-1", scheduler: bool = True) -> "LocalApi":
        """Start a LocalRuntime on the template and the HTTP API on 127.0.0.1:port (0: a free port)."""
        from mxflow_local.runtime import LocalRuntime  # heavy (moto): only when a server starts

        runtime = LocalRuntime(str(template), parameter_overrides=dict(parameter_overrides or {}), region=region,
                               env_overrides=dict(env_overrides or {}), scheduler=scheduler)
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

    # -- helpers ---------------------------------------------------------------------------------
    def _physical_api_id(self, logical_id: str) -> str:
        try:
            return str(self.runtime.physical(logical_id))
        except KeyError:  # not created locally: a stable made-up id
            return short_id(logical_id, 10)

    def _issuer_url(self) -> str:
        """The Cognito issuer of the first user pool an authorizer names."""
        for api in self.apis.values():
            for authorizer in api.authorizers.values():
                for arn in authorizer.provider_arns:
                    if ":userpool/" in arn:
                        return cognito_issuer(self.region, arn.rsplit("/", 1)[-1])
        return cognito_issuer(self.region, f"{self.region}_mxflowLocal")

    def _authorizer_for(self, route: Route) -> CognitoAuthorizer:
        authorizer = self._authorizers.get(route.identity_header)
        if authorizer is None:
            authorizer = self._authorizers[route.identity_header] = CognitoAuthorizer(self.issuer, header=route.identity_header)
        return authorizer

    # -- request handling ------------------------------------------------------------------------
    def handle(self, request: HttpRequest) -> HttpReply:
        """Answer one request (also usable without a socket)."""
        started = time.perf_counter()
        if is_admin_path(request.path):
            return self.admin.handle(request)
        if self.console is not None and is_console_path(request.path):
            return self.console.handle(request)
        route, params = self.routes.match(request.method, request.path)
        request_id = str(uuid.uuid4())
        reply = self._gateway(request, route, params, request_id)
        reply.headers.append(("x-amzn-RequestId", request_id))
        LOG.info("%s %s -> %d in %.1f ms", request.method, route.path if route else "(no route)", reply.status,
                 (time.perf_counter() - started) * 1000)
        return reply

    def _gateway(self, request: HttpRequest, route: Route | None, params, request_id: str) -> HttpReply:
        api = self.apis[route.api] if route else self._sole_api()
        context = {"requestId": request_id, "path": request.path, "httpMethod": request.method,
                   "stage": api.stage if api else "", "resourcePath": route.path if route else ""}
        if request.too_large or len(request.body) > MAX_BODY_BYTES:
            return gateway_reply("REQUEST_TOO_LARGE", api, context, request)
        if route is None:
            return gateway_reply("MISSING_AUTHENTICATION_TOKEN", api, context, request)
        if not self.region_switch.available:
            return self._region_down_reply()
        claims = None
        if route.authorizer_type == "unsupported":
            return gateway_reply("AUTHORIZER_CONFIGURATION_ERROR", api, context, request)
        if route.authorizer_type == "cognito":
            outcome = self._authorizer_for(route).authorize(request.header(route.identity_header), route.scopes)
            if not outcome.allowed:
                kind = "UNAUTHORIZED" if outcome.status == 401 else "ACCESS_DENIED"
                context = context | {"error.message": outcome.message, "error.messageString": json.dumps(outcome.message)}
                return gateway_reply(kind, api, context, request)
            claims = outcome.claims
        event = build_proxy_event(request, route, params, api, api_id=self._api_ids[route.api],
                                  account_id=self.account_id, claims=claims, request_id=request_id)
        try:
            result = self.runtime.invoke(route.function, event)
        except Exception:  # the runtime itself failed: the integration failed, as a 502
            LOG.exception("invoking %s for %s %s failed", route.function, route.method, route.path)
            return gateway_reply("INTEGRATION_ERROR", api, context, request)
        if getattr(result, "error", None):
            error = result.error if isinstance(result.error, dict) else {}
            refused = getattr(result, "status_code", 200) != 200 and not getattr(result, "function_error", None)
            LOG.warning("%s %s for %s %s", route.function,
                        f"was not invoked ({error.get('errorType')})" if refused else f"raised {error.get('errorType')}",
                        route.method, route.path)
            return gateway_reply("INVOCATION_REFUSED" if refused else "INTEGRATION_ERROR", api, context, request)
        try:
            return reply_from_proxy_response(result.payload, accept=request.header("Accept"),
                                             binary_types=api.binary_media_types)
        except MalformedProxyResponse as exc:
            LOG.warning("malformed Lambda proxy response from %s: %s", route.function, exc)
            return gateway_reply("INTEGRATION_ERROR", api, context, request)

    def _region_down_reply(self) -> HttpReply:
        """Every route of a stopped Region (a local drill): 503, and the Region says it is unhealthy."""
        body = {"message": f"Service Unavailable: Region {self.region} is stopped (local drill)",
                "region": self.region, "healthy": False, "status": "unhealthy"}
        return HttpReply(503, [("Content-Type", "application/json"), ("Retry-After", "1")],
                         json.dumps(body).encode("utf-8"))

    def _sole_api(self) -> ApiDefinition | None:
        """The Api whose gateway responses apply to a request no route matched: the only Api that
        has routes (None when several do: AWS's defaults then)."""
        used = {route.api for route in self.routes.routes}
        return self.apis[next(iter(used))] if len(used) == 1 else None
