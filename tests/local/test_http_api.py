"""The local HTTP API (mxflow_local.http_api and mxflow_local.gateway): API Gateway REST semantics on
the embedded runtime.

The first part checks the pieces on small SAM templates, translated by the runtime's template reader,
with a recording runtime double (routing, the proxy event, gateway responses, the admin routes); the
second part runs the real LocalRuntime on the fixture template (tests/local/fixture) and checks what a
client sees over HTTP.
"""
from __future__ import annotations

import base64
import copy
import json
import socket
import time
from types import SimpleNamespace

import pytest

from mxflow_local.faults import RegionSwitch
from mxflow_local.gateway.proxy import HttpRequest, MalformedProxyResponse, build_proxy_event, reply_from_proxy_response
from mxflow_local.gateway.responses import gateway_reply
from mxflow_local.gateway.routes import RouteTable, read_apis
from mxflow_local.http_api import LocalApi
from mxflow_local.template import Resolver, load_template

ACCOUNT = "123456789012"
POOL_ID = "us-east-1_AbCdEf"


# ---------------------------------------------------------------------------------------------------
# Routes, events and responses on small templates
# ---------------------------------------------------------------------------------------------------
def _function(events: dict) -> dict:
    return {"Type": "AWS::Serverless::Function", "Properties": {"Handler": "app.handler", "Events": events}}


def _api_event(path, method, api=None, **auth):
    props = {"Path": path, "Method": method}
    if api:
        props["RestApiId"] = {"Ref": api}
    if auth:
        props["Auth"] = auth
    return {"Type": "Api", "Properties": props}


TEMPLATE = {
    "Parameters": {"StageName": {"Type": "String", "Default": "live"}},
    "Globals": {"Api": {"BinaryMediaTypes": ["application~1octet-stream"]}},
    "Resources": {
        "Pool": {"Type": "AWS::Cognito::UserPool", "Properties": {}},
        "Api": {
            "Type": "AWS::Serverless::Api",
            "Properties": {
                "StageName": {"Ref": "StageName"},
                "Variables": {"color": "blue"},
                "Auth": {
                    "DefaultAuthorizer": "Users",
                    "Authorizers": {"Users": {"UserPoolArn": {"Fn::GetAtt": ["Pool", "Arn"]},
                                              "AuthorizationScopes": ["things/default"]},
                                    "Other": {"FunctionArn": "arn:aws:lambda:us-east-1:1:function:x"}},
                },
                "GatewayResponses": {
                    "UNAUTHORIZED": {
                        "StatusCode": 401,
                        "ResponseParameters": {"Headers": {"WWW-Authenticate": "'Bearer'",
                                                           "X-Echo": "method.request.header.X-Trace"}},
                        "ResponseTemplates": {"application/json":
                                              '{"type":"about:blank","title":$context.error.messageString,'
                                              '"status":401,"requestId":"$context.requestId"}'},
                    },
                    "DEFAULT_4XX": {"ResponseTemplates": {"application/problem+json":
                                                          '{"title":"$context.error.message","kind":"$context.error.responseType"}'}},
                },
            },
        },
        "Things": _function({
            "Get": _api_event("/things/{id}", "get", "Api", Authorizer="Users", AuthorizationScopes=["things/read"]),
            "Default": _api_event("/things", "post", "Api"),
            "Open": _api_event("/things/open", "get", "Api", Authorizer="NONE"),
            "Lambda": _api_event("/things/lambda", "get", "Api", Authorizer="Other"),
            "Files": _api_event("/files/{proxy+}", "any", "Api", Authorizer="NONE"),
            "FileRoot": _api_event("/files/special", "get", "Api", Authorizer="NONE"),
        }),
        "Implicit": _function({"Ping": _api_event("/ping", "get")}),
    },
}


def translated(sam: dict, directory, **overrides):
    """A small SAM template as the runtime reads it (written out, then SAM-translated)."""
    sam = copy.deepcopy(sam)
    sam["Transform"] = "AWS::Serverless-2016-10-31"
    for resource in sam["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"].update(CodeUri=".", Runtime="python3.13")
    path = directory / "template.json"
    path.write_text(json.dumps(sam))
    return load_template(path, region="us-east-1", account_id=ACCOUNT, stack_name="small",
                         parameter_overrides=overrides)


def fake_resolver(template) -> Resolver:
    """Ref / GetAtt answered as the runtime would, without creating anything."""
    def ref(logical_id):
        return POOL_ID if logical_id == "Pool" else logical_id

    def attr(logical_id, name):
        if logical_id == "Pool":
            return f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/{POOL_ID}"
        return f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{logical_id}"

    return Resolver(template.cfn, template.parameters, ref, attr)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """TEMPLATE translated with StageName=live, and its resolver."""
    template = translated(TEMPLATE, tmp_path_factory.mktemp("small"), StageName="live")
    return template, fake_resolver(template)


def apis_and_routes(sam: dict, directory):
    template = translated(sam, directory)
    return read_apis(template, fake_resolver(template).resolve)


class RecordingRuntime:
    """Runtime double: the translated template, and `invoke` answering through a Python function."""

    def __init__(self, template, resolver, answer):
        self.template = template
        self.resolver = resolver
        self.region = "us-east-1"
        self.region_switch = RegionSwitch(self.region)
        self.answer = answer
        self.events = []
        self.injected = []
        self.faults = SimpleNamespace(inject=lambda *a, **k: self.injected.append((a, k)))

    def physical(self, logical_id):
        raise KeyError(logical_id)  # nothing is created: the API ids are made up

    def invoke(self, function, event):
        self.events.append((function, event))
        try:
            return SimpleNamespace(payload=self.answer(event), error=None)
        except Exception as exc:  # the shape a Lambda error has
            return SimpleNamespace(payload=None, error={"errorType": type(exc).__name__, "errorMessage": str(exc)})


def _echo(event):
    if event["path"].endswith("/boom"):
        raise RuntimeError("boom")
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": json.dumps({"ok": True})}


def test_routes_carry_api_authorizer_and_scopes(small):
    template, resolver = small
    apis, found = read_apis(template, resolver.resolve)
    routes = {(r.method, r.path): r for r in found}
    assert set(routes) == {("GET", "/things/{id}"), ("POST", "/things"), ("GET", "/things/open"),
                           ("GET", "/things/lambda"), ("ANY", "/files/{proxy+}"), ("GET", "/files/special"),
                           ("GET", "/ping")}
    get = routes[("GET", "/things/{id}")]
    assert (get.function, get.api, get.authorizer, get.authorizer_type, get.scopes) == (
        "Things", "Api", "Users", "cognito", ("things/read",))
    assert routes[("POST", "/things")].scopes == ("things/default",)  # the authorizer's default scopes
    assert routes[("GET", "/things/open")].authorizer is None
    assert routes[("GET", "/things/lambda")].authorizer_type == "unsupported"
    ping = routes[("GET", "/ping")]
    assert (ping.api, ping.authorizer) == ("ServerlessRestApi", None)
    assert apis["Api"].stage == "live" and apis["ServerlessRestApi"].stage == "Prod"
    assert apis["Api"].binary_media_types == ("application/octet-stream",)
    assert apis["Api"].authorizers["Users"].provider_arns == (f"arn:aws:cognito-idp:us-east-1:{ACCOUNT}:userpool/{POOL_ID}",)


def test_resource_resolution_prefers_literal_then_parameter_then_greedy(small):
    template, resolver = small
    table = RouteTable(read_apis(template, resolver.resolve)[1])
    route, params = table.match("GET", "/files/special")
    assert (route.path, params) == ("/files/special", {})
    route, params = table.match("DELETE", "/files/a/b%20c")
    assert (route.path, params) == ("/files/{proxy+}", {"proxy": "a/b c"})
    route, params = table.match("GET", "/things/open")
    assert route.path == "/things/open"
    route, params = table.match("GET", "/things/7")
    assert (route.path, params) == ("/things/{id}", {"id": "7"})
    assert table.match("DELETE", "/things/7") == (None, None)  # resource without that method
    assert table.match("GET", "/files") == (None, None)  # {proxy+} needs at least one segment
    assert table.match("GET", "/nowhere") == (None, None)


def test_admin_prefix_and_duplicate_routes_are_refused(tmp_path):
    clash = {"Resources": {"F": _function({"A": _api_event("/_local/x", "get")})}}
    with pytest.raises(ValueError, match="admin"):
        RouteTable(apis_and_routes(clash, tmp_path)[1])
    twice = {"Resources": {"F": _function({"A": _api_event("/a/{x}", "get"), "B": _api_event("/a/{y}", "get")})}}
    with pytest.raises(ValueError, match="defined twice"):
        RouteTable(apis_and_routes(twice, tmp_path)[1])


def test_proxy_event_has_the_rest_api_v1_shape(small):
    template, resolver = small
    apis, routes = read_apis(template, resolver.resolve)
    table = RouteTable(routes)
    request = HttpRequest("GET", "/things/42?a=1&a=2&b=&c=x%20y",
                          [("Host", "127.0.0.1:3000"), ("X-Multi", "one"), ("X-Multi", "two"),
                           ("User-Agent", "pytest")], b"", "127.0.0.1")
    route, params = table.match("GET", request.path)
    event = build_proxy_event(request, route, params, apis["Api"], api_id="abc123defg", account_id="123456789012",
                              claims={"sub": "c", "exp": 1513495692, "scope": "things/read"}, request_id="r-1",
                              now=1700000000.5)
    assert event["resource"] == "/things/{id}" and event["path"] == "/things/42" and event["httpMethod"] == "GET"
    assert event["headers"]["X-Multi"] == "two" and event["multiValueHeaders"]["X-Multi"] == ["one", "two"]
    assert event["queryStringParameters"] == {"a": "2", "b": "", "c": "x y"}
    assert event["multiValueQueryStringParameters"] == {"a": ["1", "2"], "b": [""], "c": ["x y"]}
    assert event["pathParameters"] == {"id": "42"}
    assert event["stageVariables"] == {"color": "blue"}
    assert event["body"] is None and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["resourcePath"] == "/things/{id}" and ctx["httpMethod"] == "GET" and ctx["path"] == "/live/things/42"
    assert ctx["stage"] == "live" and ctx["requestId"] == "r-1" and ctx["apiId"] == "abc123defg"
    assert ctx["requestTimeEpoch"] == 1700000000500 and ctx["requestTime"] == "14/Nov/2023:22:13:20 +0000"
    assert ctx["identity"]["sourceIp"] == "127.0.0.1" and ctx["identity"]["userAgent"] == "pytest"
    assert ctx["authorizer"]["claims"] == {"sub": "c", "exp": "Sun Dec 17 07:28:12 UTC 2017", "scope": "things/read"}

    no_query = HttpRequest("POST", "/files/x", [("Content-Type", "application/octet-stream")], b"\x00\xff", "::1")
    route, params = table.match("POST", no_query.path)
    event = build_proxy_event(no_query, route, params, apis["Api"], api_id="a", account_id="1")
    assert event["queryStringParameters"] is None and event["multiValueQueryStringParameters"] is None
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\x00\xff"
    assert "authorizer" not in event["requestContext"]


def test_proxy_response_to_http():
    reply = reply_from_proxy_response(
        {"statusCode": 201, "headers": {"X-One": "1", "Set-Cookie": "ignored"},
         "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]}, "body": "{}"}, accept=None, binary_types=())
    assert reply.status == 201 and reply.body == b"{}"
    assert [v for k, v in reply.headers if k == "Set-Cookie"] == ["a=1", "b=2"]
    assert reply.header("Content-Type") == "application/json"  # API Gateway's default
    encoded = base64.b64encode(b"\x89PNG").decode()
    binary = reply_from_proxy_response({"statusCode": 200, "headers": {"Content-Type": "image/png"},
                                        "body": encoded, "isBase64Encoded": True},
                                       accept=None, binary_types=("image/png",))
    assert binary.body == b"\x89PNG"
    text = reply_from_proxy_response({"statusCode": 200, "headers": {"Content-Type": "image/png"},
                                      "body": encoded, "isBase64Encoded": True}, accept=None, binary_types=())
    assert text.body == encoded.encode()  # not a binary media type: API Gateway passes the text through
    for bad in ({"body": "x"}, {"statusCode": 200, "body": {"not": "text"}}, {"statusCode": 200, "extra": 1},
                "just a string", {"statusCode": 200, "multiValueHeaders": {"A": "b"}}):
        with pytest.raises(MalformedProxyResponse):
            reply_from_proxy_response(bad, accept=None, binary_types=())


def test_gateway_responses_from_the_template_and_aws_defaults(small):
    template, resolver = small
    apis = read_apis(template, resolver.resolve)[0]
    request = HttpRequest("GET", "/things/1", [("X-Trace", "t-9")], b"", "127.0.0.1")
    reply = gateway_reply("UNAUTHORIZED", apis["Api"], {"requestId": "r-2"}, request)
    assert reply.status == 401
    assert json.loads(reply.body) == {"type": "about:blank", "title": "Unauthorized", "status": 401, "requestId": "r-2"}
    assert reply.header("WWW-Authenticate") == "Bearer" and reply.header("X-Echo") == "t-9"
    denied = gateway_reply("ACCESS_DENIED", apis["Api"], {}, request)  # falls back to DEFAULT_4XX
    assert denied.status == 403 and denied.header("Content-Type") == "application/problem+json"
    assert json.loads(denied.body) == {"title": "User is not authorized to access this resource", "kind": "ACCESS_DENIED"}
    plain = gateway_reply("MISSING_AUTHENTICATION_TOKEN", apis["ServerlessRestApi"], {}, request)
    assert plain.status == 403 and json.loads(plain.body) == {"message": "Missing Authentication Token"}
    assert plain.header("x-amzn-ErrorType") == "MissingAuthenticationTokenException"
    failed = gateway_reply("INTEGRATION_ERROR", None, {}, None)
    assert failed.status == 502 and json.loads(failed.body) == {"message": "Internal server error"}


@pytest.fixture()
def small_api(small):
    runtime = RecordingRuntime(*small, _echo)
    with LocalApi(runtime, port=0) as api:
        yield api, runtime


def test_server_on_a_runtime_double(small_api, http):
    api, runtime = small_api
    assert api.issuer.issuer == f"https://cognito-idp.us-east-1.amazonaws.com/{POOL_ID}"
    token = api.issue_token(["things/read"], client_id="c1")
    status, _, body = http(api.url, "GET", "/things/9?q=1", token=token)
    assert (status, body) == (200, {"ok": True})
    function, event = runtime.events[-1]
    assert function == "Things" and event["pathParameters"] == {"id": "9"}
    assert event["requestContext"]["authorizer"]["claims"]["client_id"] == "c1"
    assert http(api.url, "GET", "/things/lambda", token=token)[0] == 500  # not a Cognito authorizer
    assert http(api.url, "GET", "/files/boom")[:3:2] == (502, {"message": "Internal server error"})
    status, headers, body = http(api.url, "GET", "/things/1", headers={"X-Trace": "abc"})
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer" and body["title"] == "Unauthorized"


def test_admin_routes_inject_faults_and_switch_the_region(small_api, http):
    api, runtime = small_api
    status, _, body = http(api.url, "POST", "/_local/faults",
                           body={"function": "Things", "kind": "error", "count": 2, "errorType": "TransientError"})
    assert status == 200
    assert runtime.injected == [(("Things",), {"kind": "error", "count": 2, "error_type": "TransientError"})]
    assert http(api.url, "POST", "/_local/faults", body={"function": "Things"})[0] == 200
    assert runtime.injected[-1] == (("Things",), {})  # the runtime's defaults apply
    for bad in ({"function": "Things", "count": 0}, {"function": "Things", "count": "2"}, {"kind": "raise"},
                {"function": "Things", "colour": "red"}):
        assert http(api.url, "POST", "/_local/faults", body=bad)[0] == 400
    assert http(api.url, "POST", "/_local/faults", raw=b"{not json")[0] == 400
    assert http(api.url, "POST", "/_local/region/stop")[2] == {"region": "us-east-1", "available": False}
    calls_before = len(runtime.events)
    assert http(api.url, "GET", "/files/x")[0] == 503
    assert len(runtime.events) == calls_before  # nothing reached the stopped Region
    assert http(api.url, "POST", "/_local/region/start")[2]["available"] is True
    assert http(api.url, "GET", "/files/x")[0] == 200
    assert http(api.url, "GET", "/_local/nothing")[0] == 404


def test_server_binds_loopback_only(small_api):
    api, _ = small_api
    assert api._server.server_address[0] == "127.0.0.1"


# ---------------------------------------------------------------------------------------------------
# The fixture application on the real runtime
# ---------------------------------------------------------------------------------------------------
def test_health_needs_no_token(fixture_api, http):
    status, _, body = http(fixture_api.url, "GET", "/health")
    assert status == 200 and body == {"status": "ok", "region": "us-east-1"}


def test_no_token_is_401(fixture_api, http):
    status, headers, body = http(fixture_api.url, "GET", "/items/1")
    assert (status, body) == (401, {"message": "Unauthorized"})
    assert headers["x-amzn-ErrorType"] == "UnauthorizedException"


def test_bad_signature_and_expired_tokens_are_401(fixture_api, http):
    from mxflow_local.auth import LocalTokenIssuer

    forged = LocalTokenIssuer.generate(fixture_api.issuer.issuer)
    forged.kid = fixture_api.issuer.kid
    status, _, body = http(fixture_api.url, "GET", "/items/1", token=forged.issue_token(["items/read"]))
    assert (status, body) == (401, {"message": "Unauthorized"})
    expired = fixture_api.issuer.issue_token(["items/read"], ttl=60, now=time.time() - 600)
    status, _, body = http(fixture_api.url, "GET", "/items/1", token=expired)
    assert (status, body) == (401, {"message": "The incoming token has expired"})
    assert http(fixture_api.url, "GET", "/items/1", token="garbage")[0] == 401


def test_wrong_scope_is_403(fixture_api, http):
    token = fixture_api.issue_token(["items/write"], client_id="writer")
    status, _, body = http(fixture_api.url, "GET", "/items/1", token=token)
    assert (status, body) == (403, {"message": "User is not authorized to access this resource"})


def test_right_scope_reaches_the_handler_with_claims_path_and_query(fixture_api, http):
    token = fixture_api.issue_token(["items/read"], client_id="reader-7")
    status, _, body = http(fixture_api.url, "GET", "/items/abc-1?view=full&tag=a&tag=b", token=token)
    assert status == 200
    assert body["resource"] == "/items/{id}" and body["path"] == "/items/abc-1" and body["method"] == "GET"
    assert body["pathParameters"] == {"id": "abc-1"}
    claims = body["claims"]
    assert claims["client_id"] == claims["sub"] == "reader-7"
    assert claims["scope"] == "items/read" and claims["token_use"] == "access"
    assert claims["iss"] == fixture_api.issuer.issuer and claims["exp"].endswith(time.strftime("%Y", time.gmtime()))
    token = fixture_api.issue_token(["items/write"], client_id="writer")
    status, _, body = http(fixture_api.url, "POST", "/items", token=token, body={"name": "widget"})
    assert status == 200 and body["received"] == {"name": "widget"}


def test_query_string_reaches_the_event(fixture_api, monkeypatch, http):
    seen = []
    invoke = fixture_api.runtime.invoke
    monkeypatch.setattr(fixture_api.runtime, "invoke", lambda f, e: (seen.append(e), invoke(f, e))[1])
    token = fixture_api.issue_token(["items/read"])
    assert http(fixture_api.url, "GET", "/items/9?view=full&tag=a&tag=b", token=token)[0] == 200
    assert seen[-1]["queryStringParameters"] == {"view": "full", "tag": "b"}
    assert seen[-1]["multiValueQueryStringParameters"] == {"view": ["full"], "tag": ["a", "b"]}
    assert seen[-1]["requestContext"]["stage"] == "v1" and seen[-1]["requestContext"]["path"] == "/v1/items/9"


def test_handler_exception_is_502(fixture_api, http):
    token = fixture_api.issue_token(["items/write"])
    status, headers, body = http(fixture_api.url, "POST", "/items", token=token, raw=b"{not json")
    assert (status, body) == (502, {"message": "Internal server error"})
    assert headers["x-amzn-ErrorType"] == "InternalServerErrorException"


def test_unknown_route_is_403_missing_authentication_token(fixture_api, http):
    for method, path in (("GET", "/nothing/here"), ("DELETE", "/items/1")):
        status, _, body = http(fixture_api.url, method, path)
        assert (status, body) == (403, {"message": "Missing Authentication Token"})


def test_body_over_10_mb_is_413(fixture_api, http):
    token = fixture_api.issue_token(["items/write"])
    status, _, body = http(fixture_api.url, "POST", "/items", token=token, raw=b"x" * (10 * 1024 * 1024 + 1))
    assert (status, body) == (413, {"message": "Request Too Long"})
    assert http(fixture_api.url, "GET", "/health")[0] == 200  # the server is still fine


def test_stopped_region_answers_503_and_unhealthy(fixture_api, http):
    token = fixture_api.issue_token(["items/read"])
    try:
        assert http(fixture_api.url, "POST", "/_local/region/stop")[0] == 200
        assert http(fixture_api.url, "GET", "/items/1", token=token)[0] == 503
        status, _, body = http(fixture_api.url, "GET", "/health")
        assert status == 503 and body["healthy"] is False and body["region"] == "us-east-1"
    finally:
        http(fixture_api.url, "POST", "/_local/region/start")
    assert http(fixture_api.url, "GET", "/items/1", token=token)[0] == 200


def test_port_in_use_is_a_clear_error(fixture_api):
    with pytest.raises(OSError):
        LocalApi(fixture_api.runtime, port=fixture_api.port)
    with socket.create_connection(("127.0.0.1", fixture_api.port), timeout=5):
        pass  # the first server is still there


def test_injected_fault_makes_the_next_call_502_then_recovers(fixture_api, http):
    token = fixture_api.issue_token(["items/read"])
    status, _, body = http(fixture_api.url, "POST", "/_local/faults",
                           body={"function": "ApiFunction", "kind": "raise", "count": 1, "errorType": "Boom"})
    assert status == 200 and body["injected"]["errorType"] == "Boom"
    assert http(fixture_api.url, "GET", "/items/1", token=token)[:3:2] == (502, {"message": "Internal server error"})
    assert http(fixture_api.url, "GET", "/items/1", token=token)[0] == 200
    assert http(fixture_api.url, "POST", "/_local/faults", body={"function": "NoSuchFunction"})[0] == 400
    assert http(fixture_api.url, "POST", "/_local/faults", body={"function": "ApiFunction", "kind": "melt"})[0] == 400


def test_throttled_invocation_is_500(fixture_api, http):
    """The Lambda service refusing the call (not a function error): API Gateway answers 500."""
    token = fixture_api.issue_token(["items/read"])
    assert http(fixture_api.url, "POST", "/_local/faults", body={"function": "ApiFunction", "kind": "throttle"})[0] == 200
    status, headers, body = http(fixture_api.url, "GET", "/items/1", token=token)
    assert (status, body) == (500, {"message": "Internal server error"})
    assert http(fixture_api.url, "GET", "/items/1", token=token)[0] == 200


def _raw_exchange(port: int, request: bytes) -> tuple[int, dict, bytes]:
    """Send bytes as they are and read the whole answer (until the server closes the connection:
    well-formed requests here say `Connection: close`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def test_undeclared_methods_are_403_missing_authentication_token(fixture_api, http):
    for method, path in (("TRACE", "/items"), ("PUT", "/items"), ("PATCH", "/health"), ("OPTIONS", "/items/1"),
                         ("GET", "/nowhere")):
        status, headers, body = http(fixture_api.url, method, path)
        assert (status, body) == (403, {"message": "Missing Authentication Token"}), (method, path)
        assert headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_a_malformed_request_is_answered_in_json_not_html(fixture_api):
    for request in (b"GARBAGE\r\n\r\n", b"GET /health HTTP/9.9\r\n\r\n", b"GET /\x00 HTTP/1.1 extra\r\n\r\n",
                    b"GET /health HTTP/1.1\r\n" + b"X-Long: " + b"x" * 70000 + b"\r\n\r\n"):
        status, headers, body = _raw_exchange(fixture_api.port, request)
        assert 400 <= status < 600 and headers["Content-Type"] == "application/json", request
        assert isinstance(json.loads(body)["message"], str)


def test_chunked_bodies_reach_the_handler_and_bad_framing_is_400(fixture_api):
    token = fixture_api.issue_token(["items/write"])
    chunked = (b"POST /items HTTP/1.1\r\nHost: local\r\nConnection: close\r\nAuthorization: Bearer " + token.encode() +
               b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"7\r\n{\"name\"\r\n9\r\n: \"bolt\"}\r\n0\r\n\r\n")
    status, _, body = _raw_exchange(fixture_api.port, chunked)
    assert status == 200 and json.loads(body)["received"] == {"name": "bolt"}
    broken = chunked.replace(b"7\r\n{", b"zz\r\n{")
    status, headers, body = _raw_exchange(fixture_api.port, broken)
    assert status == 400 and json.loads(body) == {"message": "malformed request body framing"}
    bad_length = b"POST /items HTTP/1.1\r\nHost: local\r\nContent-Length: ten\r\n\r\n"
    assert _raw_exchange(fixture_api.port, bad_length)[0] == 400


def test_head_answers_without_a_body(fixture_api):
    status, headers, body = _raw_exchange(fixture_api.port, b"HEAD /health HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
    assert status == 403 and body == b"" and headers["Content-Length"] == "0"  # HEAD is not declared


def test_a_connection_serves_several_requests(fixture_api):
    """HTTP/1.1 keep-alive: the answers come back on the connection that asked."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", fixture_api.port, timeout=10)
    try:
        statuses = []
        for _ in range(3):
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            statuses.append(response.status)
            if len(statuses) == 1:
                first_socket = connection.sock
        assert statuses == [200, 200, 200] and connection.sock is first_socket
    finally:
        connection.close()


def test_a_burst_of_concurrent_clients_is_answered_without_a_reset():
    """Many clients at once, each kept waiting by a slow handler: every one gets its answer. With
    socketserver's listen backlog of 5 the kernel reset some of these connections (about one in
    twenty here), which a client sees as "connection reset by peer" and API Gateway never does."""
    import threading
    import urllib.request
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor

    from mxflow_local.gateway.proxy import HttpReply
    from mxflow_local.gateway.server import http_server

    def slow_gateway(request):
        time.sleep(0.3)
        return HttpReply(200, [("Content-Type", "text/plain")], b"ok")

    server = http_server(slow_gateway, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/x"

    def post(_):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, data=b"x" * 2000, method="POST"),
                                        timeout=30) as reply:
                return reply.status
        except OSError as exc:
            return type(exc).__name__

    try:
        with ThreadPoolExecutor(64) as pool:
            outcomes = Counter(pool.map(post, range(256)))
    finally:
        server.shutdown()
        server.server_close()
    assert outcomes == Counter({200: 256}), outcomes
