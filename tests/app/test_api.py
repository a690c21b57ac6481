"""ApiFunction: the HTTP contract (README.md, "Run the API locally") through the handler, with moto behind it."""
from __future__ import annotations

import hashlib
import json

import pytest

from api_gateway_event import api_event  # noqa: E402  (beside this file, on sys.path under pytest)


def submit(call_api, data: bytes, **kwargs):
    kwargs.setdefault("content_type", "application/xml")
    return call_api(api_event("POST", "/payments", body=data, **kwargs))


def payment_route(call_api, method, payment_id, suffix="", body=None, **kwargs):
    path = f"/payments/{payment_id}{suffix}"
    params = {"id": payment_id}
    return call_api(api_event(method, path, body=None if body is None else json.dumps(body),
                              content_type="application/json" if body is not None else None,
                              path_parameters=params, resource="/payments/{id}" + suffix,
                              **kwargs))


def test_submit_then_identical_resubmission_returns_same_body(call_api, message):
    data = message()
    status, first, headers = submit(call_api, data)
    assert status == 202 and headers["content-type"] == "application/json"
    assert first["paymentId"].startswith("p-") and first["status"] == "RCVD"
    assert first["links"]["self"] == f"/payments/{first['paymentId']}"
    status, second, _ = submit(call_api, data, content_type="text/xml; charset=utf-8")
    assert status == 200 and second == first


def test_same_identity_different_bytes_is_409_am05(call_api, message):
    ids = {"msg_id": "MSGAPIDUP0001", "end_to_end_id": "E2EAPIDUP1",
           "uetr": "0f6d1c3a-2b4e-4c5d-8e9f-a1b2c3d4e5f6"}
    assert submit(call_api, message(**ids))[0] == 202
    status, body, headers = submit(call_api, message(amount="10.00", **ids))
    assert status == 409 and headers["content-type"] == "application/problem+json"
    assert body["code"] == "AM05" and body["status"] == 409


def test_too_large_is_413(call_api, message, monkeypatch):
    data = message()
    monkeypatch.setenv("MAX_MESSAGE_BYTES", str(len(data) - 1))
    status, body, _ = submit(call_api, data)
    assert status == 413 and body["title"] == "Message too large"


def test_unsupported_message_type_is_400(call_api, shared):
    report = (shared / "iso20022/samples/phoughton-cbpr-ur/y2026/pacs.002.min.xml").read_bytes()
    status, body, _ = submit(call_api, report)
    assert status == 400 and body["code"] == "FF01"


def test_empty_body_is_400_and_json_is_415(call_api):
    assert call_api(api_event("POST", "/payments", body="", content_type="application/xml"))[0] == 400
    assert call_api(api_event("POST", "/payments", body="{}", content_type="application/json"))[0] == 415
    assert call_api(api_event("POST", "/payments", body="<a/>"))[0] == 415  # no content type


def test_no_claims_is_401_and_missing_scope_403(call_api, message):
    status, body, _ = submit(call_api, message(), client_id=None)
    assert status == 401 and body["status"] == 401
    status, _, _ = submit(call_api, message(), scope="payments/read")
    assert status == 403


def test_read_model_and_messages(call_api, message, client_id):
    data = message(amount="310.25", currency="EUR")
    payment_id = submit(call_api, data)[1]["paymentId"]
    status, view, _ = payment_route(call_api, "GET", payment_id)
    assert status == 200
    assert {k: view[k] for k in ("paymentId", "status", "messageType", "amount", "currency")} == {
        "paymentId": payment_id, "status": "RCVD", "messageType": "pacs.008.001.08",
        "amount": "310.25", "currency": "EUR"}
    assert len(view["uetr"]) == 36 and view["messages"] == ["received"]
    assert [h["status"] for h in view["history"]] == ["RCVD"] and view["history"][0]["time"]
    assert view["contentSha256"] == hashlib.sha256(data).hexdigest()
    status, xml, headers = call_api(api_event(
        "GET", f"/payments/{payment_id}/messages/received",
        path_parameters={"id": payment_id, "name": "received"}))
    assert status == 200 and headers["content-type"] == "application/xml"
    assert xml == data  # base64 in the proxy answer: byte for byte
    status, body, _ = call_api(api_event(
        "GET", f"/payments/{payment_id}/messages/pacs.002",
        path_parameters={"id": payment_id, "name": "pacs.002"}))
    assert status == 404


def test_another_clients_payment_is_404(call_api, message):
    payment_id = submit(call_api, message())[1]["paymentId"]
    assert payment_route(call_api, "GET", payment_id, client_id="other-client")[0] == 404
    assert payment_route(call_api, "POST", payment_id, "/approve", {}, client_id="other-client")[0] == 404
    assert payment_route(call_api, "GET", "p-00000000000000000000000000000000")[0] == 404


def test_decision_before_pending_is_409_and_bad_bodies_400_or_422(call_api, message):
    payment_id = submit(call_api, message())[1]["paymentId"]
    assert payment_route(call_api, "POST", payment_id, "/approve", {})[0] == 409
    assert payment_route(call_api, "POST", payment_id, "/reject", {"reasonCode": "NOPE"})[0] == 422
    assert payment_route(call_api, "POST", payment_id, "/reject", {})[0] == 400
    status, body, _ = call_api(api_event("POST", f"/payments/{payment_id}/cancel", body="{not json",
                                         content_type="application/json",
                                         path_parameters={"id": payment_id}))
    assert status == 400 and "JSON" in body["detail"]


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"a":' * 50_000 + "1" + "}" * 50_000])
def test_deeply_nested_json_is_400_not_500(call_api, message, body):
    """json.loads raises RecursionError, not JSONDecodeError, past Python's recursion limit: that was a 500."""
    payment_id = submit(call_api, message())[1]["paymentId"]
    status, answer, _ = call_api(api_event("POST", f"/payments/{payment_id}/reject", body=body,
                                           content_type="application/json", path_parameters={"id": payment_id}))
    assert status == 400 and "JSON" in answer["detail"], answer


def test_full_decision_over_http(call_api, message, functions, context):
    payment_id = submit(call_api, message())[1]["paymentId"]
    assert functions["validate"].lambda_handler({"paymentId": payment_id}, context)["outcome"] == "await"
    functions["park"].lambda_handler({"paymentId": payment_id, "taskToken": "tok"}, context)
    status, body, _ = payment_route(call_api, "POST", payment_id, "/reject",
                                    {"reasonCode": "AM04", "additionalInfo": "no cover"})
    assert status == 200 and body["status"] == "RJCT"
    assert payment_route(call_api, "POST", payment_id, "/approve", {})[0] == 409
    view = payment_route(call_api, "GET", payment_id)[1]
    assert view["reason"] == {"code": "AM04", "additionalInfo": "no cover"}
    assert [h["status"] for h in view["history"]] == ["RCVD", "ACTC", "PDNG", "RJCT"]


def test_unknown_route_is_problem_404(call_api):
    status, body, headers = call_api(api_event("GET", "/nothing-here"))
    assert status == 404 and headers["content-type"] == "application/problem+json"


def test_health_needs_no_token_and_says_only_status_region_and_schema_sources(call_api):
    from mxflow.iso20022 import default_registry

    status, body, _ = call_api(api_event("GET", "/health", client_id=None))
    assert status == 200 and body == {"status": "ok", "region": "eu-west-1", "schemas": default_registry().sources()}
    # which source serves each message id, and nothing else (no payment data)
    assert body["schemas"]["pacs.008.001.08"].split(" ")[0] in ("dir", "added", "builtin")
    assert all(kind in ("dir", "added", "builtin") for kind in (v.split(" ")[0] for v in body["schemas"].values()))


def test_logs_carry_no_payment_data(call_api, message, functions, context):
    import io
    import logging

    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(functions["api"].logger.registered_formatter)  # Powertools JSON, with extras
    service_logger = logging.getLogger("mxflow")
    service_logger.addHandler(capture)
    try:
        data = message(debtor_name="Zyxwvut Debtor", debtor_iban="DE89370400440532013000", amount="777.77")
        payment_id = submit(call_api, data)[1]["paymentId"]
        functions["validate"].lambda_handler({"paymentId": payment_id}, context)
        functions["park"].lambda_handler({"paymentId": payment_id, "taskToken": "tok"}, context)
        payment_route(call_api, "GET", payment_id)
        payment_route(call_api, "POST", payment_id, "/approve", {})
    finally:
        service_logger.removeHandler(capture)
    logs = stream.getvalue()
    assert logs.count(payment_id) >= 4  # the handlers do log, by payment id
    for secret in ("Zyxwvut", "DE89370400440532013000", "777.77", "BNPAFRPP"):
        assert secret not in logs


def test_the_first_use_of_the_schemas_logs_each_message_ids_source(call_api, functions, monkeypatch):
    """The cold-start line: the function's registry, when first used, logs which source serves each
    message id, through the function's Powertools logger (JSON, key schemaSources)."""
    import io
    import logging

    from mxflow.iso20022 import schemas

    monkeypatch.setattr(schemas, "_defaults", {})  # a fresh process: no registry built yet
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(functions["api"].logger.registered_formatter)
    service_logger = logging.getLogger("mxflow")
    service_logger.addHandler(capture)
    try:
        status, body, _ = call_api(api_event("GET", "/health", client_id=None))
    finally:
        service_logger.removeHandler(capture)
    assert status == 200
    [line] = [json.loads(entry) for entry in stream.getvalue().splitlines() if "schema sources" in entry]
    assert line["level"] == "INFO" and line["message"].startswith("ISO 20022 schema sources: ")
    assert line["schemaSources"] == body["schemas"]
    assert line["schemaSources"]["head.001.001.02"].split(" ")[0] in ("dir", "builtin")


def test_every_domain_error_has_its_http_status_in_one_table(api_problems):
    from mxflow.errors import (
        Conflict,
        DuplicateIdentity,
        InvalidRequest,
        InvalidState,
        MessageNotFound,
        MessageTooLarge,
        PaymentNotFound,
        TransientError,
        UnknownReasonCode,
        UnsupportedMessage,
    )

    expected = {UnsupportedMessage("x"): 400, InvalidRequest("x"): 400, PaymentNotFound("p-1"): 404,
                MessageNotFound("x"): 404, Conflict("x"): 409, DuplicateIdentity("x", code="AM05"): 409,
                MessageTooLarge("x"): 413, UnknownReasonCode("x"): 422}
    assert {type(e).__name__: api_problems(e)[0] for e in expected} == {
        type(e).__name__: status for e, status in expected.items()}
    for defect in (InvalidState("x"), TransientError("x")):  # not the consumer's doing: a 500
        assert api_problems(defect) is None


def test_the_bytes_sent_are_the_bytes_kept_utf16_included(call_api, message):
    text = message(debtor_name="Zoë Müller").decode("utf-8").replace("encoding='UTF-8'", "encoding='UTF-16'")
    data = text.encode("utf-16")
    status, receipt, _ = submit(call_api, data)
    assert status == 202, receipt
    payment_id = receipt["paymentId"]
    view = payment_route(call_api, "GET", payment_id)[1]
    assert view["contentSha256"] == hashlib.sha256(data).hexdigest()
    status, kept, _ = call_api(api_event("GET", f"/payments/{payment_id}/messages/received",
                                         path_parameters={"id": payment_id, "name": "received"}))
    assert status == 200 and kept == data


def test_a_wrongly_declared_encoding_is_400_ff01(call_api, message):
    data = message(debtor_name="Zoë Müller").replace("Zoë Müller".encode(), "Zoë Müller".encode("latin-1"))
    status, body, headers = submit(call_api, data)
    assert status == 400 and headers["content-type"] == "application/problem+json"
    assert body["code"] == "FF01"


def test_confirming_a_release_needs_the_operate_scope_and_a_suspended_payment(call_api, message):
    payment_id = submit(call_api, message())[1]["paymentId"]
    route = "/release/confirm"
    status, body, _ = payment_route(call_api, "POST", payment_id, route, {"sent": True})
    assert status == 409 and "not suspended" in body["detail"]
    assert payment_route(call_api, "POST", payment_id, route, {"sent": True}, scope="payments/decide")[0] == 403
    assert payment_route(call_api, "POST", payment_id, route, {"sent": "maybe"})[0] == 400
