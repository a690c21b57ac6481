"""ApiFunction: GET /openapi.json serves the document the layer ships, to anyone (no token)."""
from __future__ import annotations

import json

from api_gateway_event import api_event  # noqa: E402  (beside this file, on sys.path under pytest)

from mxflow.openapi import openapi_document, openapi_text


def test_the_openapi_document_is_served_without_a_token(call_api):
    status, body, headers = call_api(api_event("GET", "/openapi.json", client_id=None))
    assert status == 200 and headers["content-type"] == "application/json"
    assert body == openapi_document() == json.loads(openapi_text())
    assert "/payments" in body["paths"] and body["openapi"].startswith("3.1.")
