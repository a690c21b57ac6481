"""API Gateway REST proxy events with Cognito claims, for the ApiFunction unit tests.

A module with a unique name (not conftest) so test files import it unambiguously, whatever other
conftest modules pytest has loaded."""
from __future__ import annotations

import base64
import uuid

BINARY_MEDIA_TYPES = ("application/xml", "text/xml")  # template.yaml PaymentApi BinaryMediaTypes

ACCOUNT = "123456789012"
CLIENT_ID = "bank-a-client"


def api_event(method: str, path: str, *, body: str | bytes | None = None, content_type: str | None = None,
              client_id: str | None = CLIENT_ID, scope: str = "payments/submit payments/read "
              "payments/decide payments/operate", path_parameters: dict | None = None,
              resource: str | None = None, query: dict[str, list[str]] | None = None,
              claims: dict | None = None) -> dict:
    """An API Gateway REST proxy event with the Cognito authorizer's claims. A body of one of the API's
    binary media types arrives base64-encoded, as API Gateway sends it."""
    headers = {"Accept": "application/json"}
    binary = (content_type or "").split(";")[0].strip().lower() in BINARY_MEDIA_TYPES
    if body is not None and binary:
        body = base64.b64encode(body if isinstance(body, bytes) else body.encode("utf-8")).decode("ascii")
    elif isinstance(body, bytes):
        body = body.decode("utf-8")
    if content_type:
        headers["Content-Type"] = content_type
    claims = claims if claims is not None else None if client_id is None else {
        "sub": client_id, "client_id": client_id, "scope": scope, "token_use": "access"}
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} if query else None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": str(uuid.uuid4()),
            "accountId": ACCOUNT,
            "identity": {"sourceIp": "127.0.0.1"},
            "authorizer": {"claims": claims} if claims else {},
        },
        "body": body,
        "isBase64Encoded": bool(body) and binary,
    }
