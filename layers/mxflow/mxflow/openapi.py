"""The OpenAPI 3 document of mxflow's HTTP API (openapi.json beside this module, shipped in the layer).

It is the contract: the ApiFunction serves it at GET /openapi.json, and the JSON Schemas of the decision
request bodies that the lifecycle validates (`decision_request_schemas`) are read from it, so the
published schemas and the enforced ones are the same objects. tests/app/test_openapi.py checks it
against template.yaml (routes, methods, scopes) and against the OpenAPI 3.1 specification.
"""
from __future__ import annotations

import copy
import functools
import json
from importlib import resources

DOCUMENT_NAME = "openapi.json"
# Decision action (POST /payments/{id}/<action>) -> its request body schema in components.schemas.
DECISION_REQUEST_SCHEMA_NAMES = {"approve": "ApproveRequest", "reject": "RejectRequest", "cancel": "CancelRequest"}


@functools.cache
def openapi_text() -> str:
    """The document as shipped (UTF-8 JSON text)."""
    return resources.files("mxflow").joinpath(DOCUMENT_NAME).read_text(encoding="utf-8")


@functools.cache
def _document() -> dict:
    return json.loads(openapi_text())


def openapi_document() -> dict:
    """The document as a dict (a copy: callers may change it freely)."""
    return copy.deepcopy(_document())


def decision_request_schemas() -> dict[str, dict]:
    """{action: JSON Schema of its request body}, from components.schemas. These schemas are
    self-contained (no $ref), so a body is checked against one directly (mxflow/json_schema.py)."""
    schemas = _document()["components"]["schemas"]
    return {action: copy.deepcopy(schemas[name]) for action, name in DECISION_REQUEST_SCHEMA_NAMES.items()}


def confirm_release_schema() -> dict:
    """The JSON Schema of POST /payments/{id}/release/confirm's body, from components.schemas."""
    return copy.deepcopy(_document()["components"]["schemas"]["ConfirmReleaseRequest"])
