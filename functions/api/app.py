"""ApiFunction: every HTTP route of the payment API (README.md, "Run the API locally").

Thin: the client id and scopes come from the Cognito authorizer's claims, the work is
mxflow.lifecycle.PaymentLifecycle's, and its errors become application/problem+json through one
table (PROBLEMS). XML arrives and leaves as bytes (the API's binary media types: base64 in the proxy
event), so a message is archived exactly as sent. Logs carry payment ids and statuses only.
"""
from __future__ import annotations

import base64
import json
import os
from http import HTTPStatus

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from mxflow.errors import (
    BulkMessageNotFound,
    AnswerSuspended,
    Conflict,
    InvalidRequest,
    MessageNotFound,
    MessageTooLarge,
    PaymentError,
    PaymentNotFound,
    RegionUnavailable,
    UnknownReasonCode,
    UnknownRegion,
    UnsupportedMessage,
)
from mxflow.lifecycle import RECEIVED_MESSAGE
from mxflow.openapi import openapi_text
from mxflow.people import ACTING_CLIENT_CLAIM  # a person's token: the API client they work for (people_client)
from mxflow.service import default_lifecycle, default_queries, default_region_service

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()

XML_MEDIA_TYPES = ("application/xml", "text/xml")
PROBLEM = "application/problem+json"


class Unauthorized(PaymentError):
    """No authenticated client (API Gateway's authorizer lets none through; a direct invocation might)."""


class Forbidden(PaymentError):
    """The token lacks the route's scope."""


class UnsupportedMediaType(PaymentError):
    """The body is not sent as XML."""


# Error -> (HTTP status, problem title): the one place where the API says what each error means in
# HTTP. An error is looked up by its class, then its base classes; one not here is a 500.
PROBLEMS: dict[type[PaymentError], tuple[int, str]] = {
    UnsupportedMessage: (400, "Malformed or unsupported message"),
    InvalidRequest: (400, "Invalid request body"),
    Unauthorized: (401, "Unauthorized"),
    Forbidden: (403, "Forbidden"),
    PaymentNotFound: (404, "Not found"),
    BulkMessageNotFound: (404, "Not found"),
    MessageNotFound: (404, "Not found"),
    Conflict: (409, "Conflict"),
    MessageTooLarge: (413, "Message too large"),
    UnsupportedMediaType: (415, "Unsupported media type"),
    UnknownReasonCode: (422, "Unknown reason code"),
    UnknownRegion: (404, "Not found"),
    # Two Regions (docs/regions.md): this Region does not hold its lease, or the payment's owner Region is
    # being failed over or cannot be reached; retried, the request succeeds after the takeover.
    RegionUnavailable: (503, "Region unavailable"),
    AnswerSuspended: (422, "Answer kept in suspense"),
}


def problem_of(error: PaymentError) -> tuple[int, str] | None:
    """(status, title) of a domain error, or None when the API has no answer for it but 500."""
    return next((PROBLEMS[kind] for kind in type(error).__mro__ if kind in PROBLEMS), None)


def problem(status: int, title: str, detail: str, code: str | None = None, extensions: dict | None = None) -> Response:
    body = {"type": f"urn:mxflow:problem:{title.lower().replace(' ', '-')}", "title": title,
            "status": status, "detail": detail}
    if code:
        body["code"] = code
    body.update(extensions or {})
    headers = {"Retry-After": "1"} if status == 503 else None
    return Response(status_code=status, content_type=PROBLEM, body=json.dumps(body), headers=headers)


def json_response(status: int, body: dict) -> Response:
    return Response(status_code=status, content_type="application/json", body=json.dumps(body))


def receipt_links(payment_id: str) -> dict:
    """Where a consumer goes next with a submitted payment (the routes of template.yaml)."""
    base = f"/payments/{payment_id}"
    return {"self": base, "messages": f"{base}/messages/{RECEIVED_MESSAGE}", "approve": f"{base}/approve",
            "reject": f"{base}/reject", "cancel": f"{base}/cancel"}


def message_links(message_id: str) -> dict:
    """Where a consumer follows a message with several transactions (GET /messages/{messageId})."""
    base = f"/messages/{message_id}"
    return {"self": base, "messages": f"{base}/messages/{RECEIVED_MESSAGE}"}


def client_with(scope: str) -> str:
    """The calling client's id, once its token carries `scope` (API Gateway checks this first). A person
    signed in to the operations console acts for the API client its token names (people_client)."""
    claims = app.current_event.request_context.authorizer.claims or {}
    client_id = claims.get("client_id")
    if not client_id:
        raise Unauthorized("no authenticated client")
    if scope not in str(claims.get("scope") or "").split():
        raise Forbidden(f"the token lacks the scope {scope}")
    return people_client(claims) or client_id


def people_client(claims: dict) -> str | None:
    """For a person's token (a user of the pool, signed in through a people's app client: its access
    token has a `username`, which client-credentials tokens never have), the API client the person
    works for: the claim ACTING_CLIENT_CLAIM when the token carries it (written by the user pool's
    pre-token-generation trigger from a `client-<id>` group, mxflow/people.py), else the stack's own API
    client (CONSOLE_DEFAULT_CLIENT_ID, template.yaml). None for an API
    client's token, which always acts as itself."""
    if not claims.get("username"):
        return None
    return claims.get(ACTING_CLIENT_CLAIM) or os.environ.get("CONSOLE_DEFAULT_CLIENT_ID") or None


def actor() -> str | None:
    """Who takes a decision, when a person does (`user:<username>`, kept in the history and the
    decision); None for an API client, which decides as itself."""
    claims = app.current_event.request_context.authorizer.claims or {}
    return f"user:{claims['username']}" if people_client(claims) else None


def body_bytes() -> bytes:
    """The request body as sent: API Gateway base64-encodes the binary media types (XML here); any
    other body arrives as text."""
    body = app.current_event.body or ""
    return base64.b64decode(body) if app.current_event.is_base64_encoded else body.encode("utf-8")


def json_body() -> dict | None:
    raw = body_bytes()
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8", errors="replace"))
    except (json.JSONDecodeError, RecursionError):  # RecursionError: nested deeper than Python's limit
        raise InvalidRequest("the body is not JSON") from None


def xml_body() -> bytes:
    """The request's XML body as sent; UnsupportedMediaType / UnsupportedMessage (FF01) otherwise."""
    media_type = (app.current_event.headers.get("content-type") or "").split(";")[0].strip().lower()
    if media_type not in XML_MEDIA_TYPES:
        raise UnsupportedMediaType(f"send the message as {' or '.join(XML_MEDIA_TYPES)}")
    data = body_bytes()
    if not data:
        raise UnsupportedMessage("the body is empty", code="FF01")
    return data


@app.post("/payments")
def submit():
    client_id = client_with("payments/submit")
    data = xml_body()
    created, receipt = default_lifecycle().receive(client_id, data)
    if "messageId" in receipt:  # a message with several transactions: one payment each (mxflow.bulk)
        logger.info("message received", extra={"messageId": receipt["messageId"], "newMessage": created,
                                                "payments": len(receipt["payments"]), "status": receipt["status"]})
        metrics.add_metric(name="PaymentsReceived" if created else "PaymentsResubmitted", unit=MetricUnit.Count,
                           value=len(receipt["payments"]))
        links = message_links(receipt["messageId"])
    else:
        logger.info("payment received", extra={"paymentId": receipt["paymentId"], "newPayment": created})
        metrics.add_metric(name="PaymentsReceived" if created else "PaymentsResubmitted",
                           unit=MetricUnit.Count, value=1)
        links = receipt_links(receipt["paymentId"])
    return json_response(HTTPStatus.ACCEPTED if created else HTTPStatus.OK, {**receipt, "links": links})


@app.get("/payments")
def list_payments():
    """The caller's payments, newest first, filtered, with a cursor; its counters (mxflow.queries)."""
    query = app.current_event.multi_value_query_string_parameters or {}
    return json_response(200, default_queries().list_payments(client_with("payments/read"), query))


@app.get("/payments/<payment_id>/execution")
def get_execution(payment_id: str):
    """The states the payment entered in PaymentFlow (from its history) and its anchor (Step Functions)."""
    return json_response(200, default_queries().execution(client_with("payments/read"), payment_id))


@app.get("/reason-codes")
def reason_codes():
    """The ISO code sets a reject or cancel takes its reason from, read from the installed code sets."""
    client_with("payments/read")
    response = json_response(200, default_queries().reason_codes())
    response.headers["Cache-Control"] = "private, max-age=3600"  # one edition per deployment
    return response


@app.get("/payments/<payment_id>")
def get_payment(payment_id: str):
    return json_response(200, default_lifecycle().get_payment(client_with("payments/read"), payment_id))


@app.get("/payments/<payment_id>/messages/<name>")
def get_message(payment_id: str, name: str):
    data = default_lifecycle().get_message(client_with("payments/read"), payment_id, name)
    # bytes: base64 with isBase64Encoded, which API Gateway turns back into the exact bytes
    return Response(status_code=200, content_type="application/xml", body=data)


@app.post("/payments/<payment_id>/<action>")
def decide_or_redrive(payment_id: str, action: str):
    """approve, reject and cancel (scope payments/decide); redrive (scope payments/operate)."""
    if action == "redrive":
        result = default_lifecycle().redrive(client_with("payments/operate"), payment_id)
        logger.info("execution redriven", extra={"paymentId": payment_id})
        return json_response(202, result)
    if action not in ("approve", "reject", "cancel"):
        return not_found(None)
    result = default_lifecycle().decide(client_with("payments/decide"), payment_id, action, json_body(), actor=actor())
    logger.info("decision claimed", extra={"paymentId": payment_id, "action": action, "status": result["status"]})
    metrics.add_metric(name="Decisions", unit=MetricUnit.Count, value=1)
    return json_response(200, result)


@app.post("/payments/<payment_id>/release/confirm")
def confirm_release(payment_id: str):
    """An operator's answer for a suspended payment: was the earlier release sent (scope payments/operate)."""
    result = default_lifecycle().confirm_release(client_with("payments/operate"), payment_id, json_body(),
                                                 actor=actor())
    logger.info("release confirmed", extra={"paymentId": payment_id, "sent": result["sent"]})
    return json_response(200, result)


@app.get("/messages/<message_id>")
def get_bulk_message(message_id: str):
    """A message with several transactions: its payments, counts by status, group status and pacs.002."""
    return json_response(200, default_lifecycle().bulk.view(client_with("payments/read"), message_id))


@app.get("/messages/<message_id>/messages/<name>")
def get_bulk_message_file(message_id: str, name: str):
    data = default_lifecycle().bulk.message_file(client_with("payments/read"), message_id, name)
    return Response(status_code=200, content_type="application/xml", body=data)


@app.get("/regions")
def regions():
    """The Regions, their health, the traffic owner and the epoch (scope payments/operate)."""
    client_with("payments/operate")
    return json_response(200, default_region_service().view())


@app.post("/regions/<region>/recover")
def recover_region(region: str):
    """A manual failover or failback to `region` (scope payments/operate); 409 while it is unhealthy."""
    client_id = client_with("payments/operate")
    result = default_region_service().recover(region)
    logger.info("region recovery", extra={"region": region, "epoch": result["epoch"], "clientId": client_id})
    return json_response(202, result)
@app.post("/engine/messages")
def engine_message():
    """The payment engine's pacs.002, camt.029 or pacs.004 (scope payments/engine): applied to its payment
    (200), or kept in the suspense list (422 with the ISO reason and the suspense id)."""
    client_with("payments/engine")
    try:
        result = default_lifecycle().engine.receive(xml_body(), source="api")
    except AnswerSuspended as suspended:
        logger.warning("engine answer kept in suspense", extra={"suspenseId": suspended.suspense_id,
                                                                "code": suspended.code})
        metrics.add_metric(name="EngineAnswersSuspended", unit=MetricUnit.Count, value=1)
        raise
    logger.info("engine answer applied", extra={"paymentId": result["paymentId"], "status": result["status"],
                                                "messageType": result["messageType"], "outcome": result["outcome"]})
    metrics.add_metric(name="EngineAnswersApplied", unit=MetricUnit.Count, value=1)
    return json_response(200, result)


@app.get("/engine/suspense")
def engine_suspense():
    """The engine answers kept in suspense, newest first (scope payments/operate)."""
    client_with("payments/operate")
    query = app.current_event.query_string_parameters or {}
    return json_response(200, default_lifecycle().engine.suspense(query.get("limit"), query.get("cursor")))


@app.get("/health")
def health():
    result = default_lifecycle().health()
    return json_response(200 if result["status"] == "ok" else 503, result)


@app.get("/openapi.json")
def openapi_document():
    return Response(status_code=200, content_type="application/json", body=openapi_text())


@app.exception_handler(PaymentError)
def payment_error(error: PaymentError):
    answer = problem_of(error)
    if answer is None:
        return unexpected(error)
    return problem(*answer, error.detail, error.code, error.extensions)


@app.not_found
def not_found(_error):
    return problem(404, "Not found", "no such resource")


@app.exception_handler(Exception)
def unexpected(error: Exception):
    logger.exception("unexpected error", extra={"errorType": type(error).__name__})
    return problem(500, "Internal error", "the request could not be completed; retry later")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event, context):
    return app.resolve(event, context)
