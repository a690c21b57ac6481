"""The local API's admin routes under /_local/ (never part of the application; loopback clients only):

- `GET /_local/routes`: the routes served, with their functions, authorizers and scopes;
- `POST /_local/faults` `{"function", "kind", "count", "errorType", "message", "afterSeconds"}`: the
  runtime's `faults.inject` (kinds and defaults are the runtime's, mxflow_local.faults);
- `POST /_local/region/stop`, `POST /_local/region/start`: the runtime's Region switch.
"""
from __future__ import annotations

import json

from mxflow_local.gateway.proxy import HttpReply, HttpRequest
from mxflow_local.gateway.routes import ADMIN_PREFIX

LOOPBACK = ("127.0.0.1", "::1")
FAULT_FIELDS = (("kind", "kind", str), ("count", "count", int), ("errorType", "error_type", str),
                ("message", "message", str), ("afterSeconds", "after_seconds", (int, float)))


def is_admin_path(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def json_reply(status: int, body) -> HttpReply:
    return HttpReply(status, [("Content-Type", "application/json")], json.dumps(body).encode("utf-8"))


class AdminRoutes:
    def __init__(self, runtime, routes):
        self.runtime = runtime
        self.routes = routes
        self.region_switch = runtime.region_switch

    def handle(self, request: HttpRequest) -> HttpReply:
        if request.source_ip not in LOOPBACK:
            return json_reply(403, {"message": "local admin routes answer loopback clients only"})
        path, method = request.path, request.method
        if path == f"{ADMIN_PREFIX}/routes" and method == "GET":
            return json_reply(200, {"routes": [
                {"method": r.method, "path": r.path, "function": r.function, "api": r.api,
                 "authorizer": r.authorizer, "scopes": list(r.scopes)} for r in self.routes]})
        if path in (f"{ADMIN_PREFIX}/region/stop", f"{ADMIN_PREFIX}/region/start") and method == "POST":
            (self.region_switch.stop if path.endswith("/stop") else self.region_switch.start)()
            return json_reply(200, {"region": self.region_switch.region, "available": self.region_switch.available})
        if path == f"{ADMIN_PREFIX}/faults" and method == "POST":
            return self._inject_fault(request)
        return json_reply(404, {"message": f"no local admin route {method} {path}",
                                "routes": ["GET /_local/routes", "POST /_local/faults",
                                           "POST /_local/region/stop", "POST /_local/region/start"]})

    def _inject_fault(self, request: HttpRequest) -> HttpReply:
        try:
            spec = json.loads(request.body or b"null")
        except ValueError:
            return json_reply(400, {"message": "the body must be JSON: {function, kind, count, errorType}"})
        if not isinstance(spec, dict) or not isinstance(spec.get("function"), str):
            return json_reply(400, {"message": "'function' (a logical id or function name) is required"})
        unknown = set(spec) - {"function"} - {name for name, _, _ in FAULT_FIELDS}
        if unknown:
            return json_reply(400, {"message": f"unknown fields {sorted(unknown)}"})
        options = {}
        for name, option, kinds in FAULT_FIELDS:
            if name in spec:
                value = spec[name]
                if not isinstance(value, kinds) or isinstance(value, bool):
                    return json_reply(400, {"message": f"'{name}' has the wrong type"})
                options[option] = value
        if options.get("count", 1) < 1:
            return json_reply(400, {"message": "'count' must be a positive integer"})
        try:
            self.runtime.faults.inject(spec["function"], **options)
        except (KeyError, ValueError, TypeError) as exc:
            return json_reply(400, {"message": f"cannot inject the fault: {exc}"})
        return json_reply(200, {"injected": {"function": spec["function"],
                                             **{name: spec[name] for name, _, _ in FAULT_FIELDS if name in spec}}})
