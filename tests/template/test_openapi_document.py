"""The OpenAPI document of the API (layers/mxflow/mxflow/openapi.json) against template.yaml, as
CloudFormation receives it (the local runtime's template reader runs the SAM transform): the same routes,
methods and scopes, so the two cannot drift; and the document itself, against the OpenAPI specification.
How the running API answers is checked against the document in tests/e2e/test_openapi_served.py."""
from __future__ import annotations

import json

import jsonschema
import pytest
from openapi_spec_validator import validate as validate_openapi

from mxflow import lifecycle
from mxflow.openapi import DECISION_REQUEST_SCHEMA_NAMES, decision_request_schemas, openapi_document

from .conftest import resources_of

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi_document()


@pytest.fixture(scope="module")
def template_api(cfn) -> dict:
    (api,) = resources_of(cfn, "AWS::ApiGateway::RestApi").values()
    return api["Properties"]["Body"]


def operations(document: dict):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def scopes_of(security: list | None, scheme: str) -> tuple | None:
    """The scopes one security requirement asks for, None for a public route."""
    scopes = tuple(sorted(s for requirement in security or [] for name, value in requirement.items()
                          if name == scheme for s in value))
    return scopes or None


def resolve(document: dict, value: dict) -> dict:
    while "$ref" in value:
        *_, kind, name = value["$ref"].split("/")
        value = document["components"][kind][name]
    return value


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1.")
    validate_openapi(document)  # raises on any violation of the specification


def test_routes_methods_and_scopes_are_those_of_the_template(document, template_api):
    documented = {(path, method): scopes_of(op.get("security"), "oauth2") for path, method, op in operations(document)}
    deployed = {(path, method): scopes_of(op.get("security"), "CognitoAuthorizer")
                for path, method, op in operations(template_api)}
    assert documented == deployed
    assert len(deployed) == 19 and ("/openapi.json", "get") in deployed and ("/regions", "get") in deployed
    assert ("/messages/{messageId}", "get") in deployed
    # Every operation states its security: the public ones say so with an empty list.
    assert all("security" in op for _, _, op in operations(document))


def test_the_oauth_scopes_are_the_user_pool_scopes(document, cfn):
    flow = document["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"]
    server = cfn["Resources"]["PaymentsResourceServer"]["Properties"]
    defined = {f"{server['Identifier']}/{s['ScopeName']}" for s in server["Scopes"]}
    clients = {name: set(cfn["Resources"][name]["Properties"]["AllowedOAuthScopes"]) for name in ("ApiClient", "EngineClient")}
    assert set(flow["scopes"]) == defined == clients["ApiClient"] | clients["EngineClient"]
    # The payment engine's client posts answers and nothing else; the banks' client cannot post them.
    assert clients["EngineClient"] == {"payments/engine"} and "payments/engine" not in clients["ApiClient"]
    used = {s for _, _, op in operations(document) for s in scopes_of(op["security"], "oauth2") or ()}
    assert used == defined


def test_the_decision_bodies_are_validated_with_the_documents_schemas(document):
    # One source: the lifecycle's schemas are read from the document, not copied.
    assert lifecycle.DECISION_REQUEST_SCHEMAS == decision_request_schemas()
    for action, name in DECISION_REQUEST_SCHEMA_NAMES.items():
        body = document["paths"][f"/payments/{{id}}/{action}"]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{name}"}
        schema = lifecycle.DECISION_REQUEST_SCHEMAS[action]
        assert "$ref" not in json.dumps(schema)  # self-contained: jsonschema validates with it directly
        assert schema["properties"]["additionalInfo"]["maxLength"] == lifecycle.MAX_ADDITIONAL_INFO
        jsonschema.Draft202012Validator.check_schema(schema)
    assert document["paths"]["/payments/{id}/approve"]["post"]["requestBody"]["required"] is False
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"reasonCode": "AM04", "extra": 1}, lifecycle.DECISION_REQUEST_SCHEMAS["reject"])


def test_every_error_answer_is_a_problem_document(document):
    for path, method, operation in operations(document):
        responses = operation["responses"]
        assert "default" in responses, (path, method)
        for status, response in responses.items():
            response = resolve(document, response)
            is_error = status == "default" or int(status) >= 400
            if is_error and (path, status) != ("/health", "503"):  # an unhealthy Region answers its Health
                assert list(response["content"]) == [PROBLEM], (path, method, status)
                assert response["content"][PROBLEM]["schema"] == {"$ref": "#/components/schemas/Problem"}
        if operation["security"]:
            assert {"401", "403"} <= set(responses), (path, method)
        if "{id}" in path:
            assert "404" in responses, (path, method)


def test_the_problem_schema_fits_what_the_gateway_and_the_function_send(document, template_api):
    schema = {"$ref": "#/components/schemas/Problem", "components": document["components"]}
    gateway = template_api["x-amazon-apigateway-gateway-responses"]
    assert gateway
    for response_type, response in gateway.items():
        body = response["responseTemplates"]["application/json"]
        problem = json.loads(body.replace("$context.error.messageString", '"m"').replace("$context.requestId", "r"))
        jsonschema.validate(problem, schema)
    # The ApiFunction's own problems (functions/api/app.py problem()), with and without an ISO code.
    for problem in ({"type": "urn:mxflow:problem:conflict", "title": "Conflict", "status": 409, "detail": "d", "code": "AM05"},
                    {"type": "urn:mxflow:problem:not-found", "title": "Not found", "status": 404, "detail": "d"}):
        jsonschema.validate(problem, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"title": "no type, status or detail"}, schema)
