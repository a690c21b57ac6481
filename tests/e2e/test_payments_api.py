"""Every route, every terminal path, idempotency, races, redrive and auth, through the local HTTP API on
the application's own template, state machine and handlers. Every generated message is checked against
the official XSD and against the payment's own data."""
from __future__ import annotations

import threading
import uuid

import pytest
from lxml import etree

from mxflow.iso20022 import parse_message, validate_schema
from mxflow_local.sample_messages import credit_transfer


def _submit_pending(client, **fields) -> tuple[str, bytes, str]:
    uetr = str(uuid.uuid4())
    message = credit_transfer(uetr=uetr, **fields)
    reply = client.submit(message)
    assert reply.status == 202, reply.body
    payment_id = reply.json["paymentId"]
    payment = client.wait_for_status(payment_id, "PDNG", "RJCT")
    assert payment["status"] == "PDNG", payment
    return payment_id, message, uetr


def _message(client, registry, payment_id: str, name: str):
    reply = client.message(payment_id, name)
    assert reply.status == 200, reply.body
    assert reply.content_type.startswith("application/xml")
    parsed = parse_message(reply.body)
    assert validate_schema(parsed, registry) == [], f"{name} is not valid against its official XSD"
    return parsed


def _texts(parsed, name: str) -> list[str]:
    """Texts of every element with that local name, in a parsed message or below an element."""
    element = getattr(parsed, "root", parsed)
    return element.xpath(f".//*[local-name()='{name}']/text()")


def _problem(reply, status: int) -> dict:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.content_type.startswith("application/problem+json"), reply.content_type
    body = reply.json
    for key in ("type", "title", "status", "detail"):
        assert key in body, body
    assert body["status"] == status
    return body


def _statuses(payment: dict) -> list[str]:
    return [entry["status"] for entry in payment["history"]]


# --- health and auth -------------------------------------------------------------------------------------------
def test_health_needs_no_token_and_reveals_only_region_health_and_schema_sources(client, api, registry):
    reply = client.health()
    assert reply.status == 200
    assert set(reply.json) == {"status", "region", "schemas"} and reply.json["status"] == "ok"
    assert reply.json["region"] == api.region
    # the functions' registry is the one the e2e run configured: each message id and its source only
    assert reply.json["schemas"] == registry.sources()


def test_no_token_is_401_and_a_wrong_scope_is_403(client, client_for):
    _problem(client.request("POST", "/payments", body=credit_transfer(), content_type="application/xml", token=None), 401)
    _problem(client.request("GET", "/payments/p-0", token="not-a-token"), 401)
    reader = client_for(["payments/read"])
    _problem(reader.submit(credit_transfer()), 403)
    _problem(reader.approve("p-00000000000000000000000000000000"), 403)
    _problem(client_for(["payments/decide"]).redrive("p-00000000000000000000000000000000"), 403)


@pytest.mark.parametrize("method, path", [
    ("TRACE", "/payments"), ("GET", "/nowhere"), ("PUT", "/payments"), ("DELETE", "/payments/p-0"),
    ("PATCH", "/health"), ("OPTIONS", "/payments"),
])
def test_undeclared_paths_and_methods_are_api_gateways_403(client, method, path):
    """What API Gateway answers for a method or path no route declares (MISSING_AUTHENTICATION_TOKEN),
    in the template's problem document that keeps API Gateway's own "message"."""
    reply = client.request(method, path)
    body = _problem(reply, 403)
    assert reply.headers.get("x-amzn-errortype") == "MissingAuthenticationTokenException"
    assert body["title"] == "Forbidden" and body["message"] == "Missing Authentication Token"
    assert body["type"] == "about:blank" and body["requestId"] == reply.headers.get("x-amzn-requestid")


def test_another_clients_payment_is_404(client, client_for):
    payment_id, _, _ = _submit_pending(client)
    stranger = client_for(["payments/read", "payments/decide", "payments/operate"], client_id="someone-else")
    _problem(stranger.get(payment_id), 404)
    _problem(stranger.message(payment_id, "received"), 404)
    _problem(stranger.approve(payment_id), 404)
    assert client.get(payment_id).json["status"] == "PDNG"
    assert client.cancel(payment_id, "CUST").status == 200


def test_unknown_payment_and_unknown_message_name_are_404(client):
    _problem(client.get("p-" + "0" * 32), 404)
    payment_id, _, _ = _submit_pending(client)
    _problem(client.message(payment_id, "nonexistent"), 404)
    client.cancel(payment_id, "CUST")


# --- receive ---------------------------------------------------------------------------------------------------
def test_submit_answers_202_then_200_for_the_same_message_and_409_for_other_bytes(client):
    message = credit_transfer()
    first = client.submit(message)
    assert first.status == 202
    body = first.json
    assert body["paymentId"].startswith("p-") and body["status"] and body["links"]
    again = client.submit(message)
    assert again.status == 200 and again.json == body
    other = message.replace(b"Invoice 2026-1147", b"Invoice 2026-9999")
    problem = _problem(client.submit(other), 409)
    assert problem["code"] == "AM05"
    client.wait_for_status(body["paymentId"], "PDNG")
    client.cancel(body["paymentId"], "DUPL")


def test_receive_refuses_bad_input_with_problem_json(client):
    _problem(client.submit(b'{"not": "xml"}', content_type="application/json"), 415)
    assert _problem(client.submit(b"<Document><unclosed></Document>"), 400)["code"] == "FF01"
    hostile = b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><d>&x;</d>'
    assert "etc/passwd" not in _problem(client.submit(hostile), 400)["detail"]
    _problem(client.submit(b"<a>" + b"x" * (1024 * 1024 + 16) + b"</a>"), 413)


# --- terminal paths ---------------------------------------------------------------------------------------------
def test_approved_payment_is_released_with_pacs002_acsc_from_its_own_data(client, registry):
    payment_id, message, uetr = _submit_pending(client, amount="1250.00", currency="EUR")
    reply = client.approve(payment_id)
    assert reply.status == 200 and reply.json["status"] == "ACSP"
    payment = client.wait_for_status(payment_id, "ACSC")
    assert _statuses(payment) == ["RCVD", "ACTC", "PDNG", "ACSP", "ACSC"]
    assert payment["uetr"] == uetr and payment["currency"] == "EUR" and payment["amount"] in ("1250.00", "1250")
    assert payment["messageType"] == "pacs.008.001.08"
    report = _message(client, registry, payment_id, "pacs.002")
    assert _texts(report, "TxSts") == ["ACSC"]
    assert _texts(report, "OrgnlUETR") == [uetr]
    original = parse_message(message)
    assert _texts(report, "OrgnlMsgId") == _texts(original, "MsgId")
    assert _texts(report, "OrgnlEndToEndId") == _texts(original, "EndToEndId")
    outbound = _message(client, registry, payment_id, "outbound")
    assert outbound.message_id == "pacs.008.001.08"
    assert _texts(outbound.app_header, "BICFI")[0] == "MXFLGB2LXXX"  # the operator is the sender
    assert _texts(outbound, "UETR") == [uetr]
    _problem(client.approve(payment_id), 409)  # a decision on a finished payment


def test_rejected_payment_gets_pacs002_rjct_with_the_consumers_reason(client, registry):
    payment_id, _, uetr = _submit_pending(client)
    _problem(client.reject(payment_id, "ZZ99"), 422)  # not an ExternalStatusReason1Code
    reply = client.reject(payment_id, "AM04", "Insufficient cover")
    assert reply.status == 200 and reply.json["status"] == "RJCT"
    payment = client.wait_for(payment_id, lambda p: "pacs.002" in p["messages"])
    assert payment["status"] == "RJCT" and payment["reason"]["code"] == "AM04"
    report = _message(client, registry, payment_id, "pacs.002")
    assert _texts(report, "TxSts") == ["RJCT"] and _texts(report, "Cd") == ["AM04"]
    assert _texts(report, "AddtlInf") == ["Insufficient cover"] and _texts(report, "OrgnlUETR") == [uetr]
    _problem(client.cancel(payment_id, "DUPL"), 409)


def test_cancelled_payment_gets_camt029_and_canc(client, registry, versions):
    payment_id, _, _ = _submit_pending(client)
    _problem(client.cancel(payment_id, "NOPE"), 422)
    reply = client.cancel(payment_id, "DUPL")
    assert reply.status == 200 and reply.json["status"] == "CANC"
    payment = client.wait_for(payment_id, lambda p: "camt.029" in p["messages"])
    assert payment["status"] == "CANC" and _statuses(payment)[-1] == "CANC"
    answer = _message(client, registry, payment_id, "camt.029")
    assert answer.message_id == versions.cancellation_answer  # camt.029.001.09 where its schema is installed
    assert _texts(answer, "Conf") == ["CNCL"]


@pytest.mark.parametrize("mutation, reason", [
    ((b"<SttlmMtd>INDA</SttlmMtd>", b"<SttlmMtd>XXXX</SttlmMtd>"), "FF01"),  # XSD
    ((b">1250.00<", b">1250.555<"), "CH20"),                                  # EUR has two decimals
])
def test_invalid_messages_are_rejected_with_pacs002_and_the_iso_reason(client, registry, mutation, reason):
    message = credit_transfer(amount="1250.00").replace(*mutation)
    reply = client.submit(message)
    assert reply.status == 202
    payment_id = reply.json["paymentId"]
    payment = client.wait_for(payment_id, lambda p: "pacs.002" in p["messages"])
    assert payment["status"] == "RJCT" and payment["reason"]["code"] == reason
    report = _message(client, registry, payment_id, "pacs.002")
    assert _texts(report, "TxSts") == ["RJCT"] and _texts(report, "Cd") == [reason]


def test_a_payment_with_no_decision_times_out_with_ab06(client, registry, decision_timeout):
    payment_id, _, _ = _submit_pending(client)
    payment = client.wait_for(payment_id, lambda p: "pacs.002" in p["messages"], timeout=decision_timeout + 60)
    assert payment["status"] == "RJCT" and payment["reason"]["code"] == "AB06"
    assert _texts(_message(client, registry, payment_id, "pacs.002"), "Cd") == ["AB06"]
    _problem(client.approve(payment_id), 409)


# --- races and redrive -------------------------------------------------------------------------------------------
def test_concurrent_approve_and_reject_exactly_one_wins(client):
    payment_id, _, _ = _submit_pending(client)
    barrier = threading.Barrier(2)
    replies = {}

    def decide(name, call):
        barrier.wait()
        replies[name] = call()

    threads = [threading.Thread(target=decide, args=("approve", lambda: client.approve(payment_id))),
               threading.Thread(target=decide, args=("reject", lambda: client.reject(payment_id, "AM04")))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = sorted(reply.status for reply in replies.values())
    assert statuses == [200, 409], {k: (v.status, v.body) for k, v in replies.items()}
    winner = next(name for name, reply in replies.items() if reply.status == 200)
    final = client.wait_for_status(payment_id, "ACSC" if winner == "approve" else "RJCT")
    assert _statuses(final).count("PDNG") == 1 and len([s for s in _statuses(final) if s in ("ACSP", "RJCT")]) == 1


def _anchor(api, payment_id: str) -> str:
    return api.runtime.physical("PaymentStateMachine").replace(":stateMachine:", ":execution:") + ":" + payment_id


def _released(api, payment_id: str) -> int:
    """How many messages of this payment are on the release queue (moto's backend, nothing received)."""
    from moto.sqs.models import sqs_backends

    url = api.runtime.physical("ReleaseQueue")
    queue = sqs_backends[api.runtime.account_id][api.region].get_queue(url.rsplit("/", 1)[-1])
    return sum(1 for m in queue._messages if m.deduplication_id == payment_id)


def test_failed_send_leaves_the_anchor_failed_and_redrive_finishes_it(api, client, registry):
    payment_id, _, _ = _submit_pending(client)
    _problem(client.redrive(payment_id), 409)  # a waiting anchor is not redrivable
    # The Send step fails in the flow the approval starts (its first attempt and three retries), then
    # again in the anchor's Resume: the anchor is FAILED at Resume.
    api.runtime.faults.inject("SendFunction", kind="raise", count=8, error_type="TransientError")
    api.runtime.clock.virtual_sleeps = True  # the retries' backoff without waiting
    try:
        assert client.approve(payment_id).status == 200
        sfn = api.runtime.client("stepfunctions")
        anchor = _anchor(api, payment_id)
        description = api.runtime.wait_execution(anchor, timeout=60)
        assert description["status"] == "FAILED" and description["redriveStatus"] == "REDRIVABLE"
        assert client.get(payment_id).json["status"] == "ACSP" and _released(api, payment_id) == 0
        reply = client.redrive(payment_id)
        assert reply.status == 202, reply.body
        payment = client.wait_for_status(payment_id, "ACSC", timeout=60)
    finally:
        api.runtime.clock.virtual_sleeps = False
    assert _statuses(payment) == ["RCVD", "ACTC", "PDNG", "ACSP", "ACSC"]
    assert sfn.describe_execution(executionArn=anchor)["redriveCount"] == 1
    history = sfn.get_execution_history(executionArn=anchor, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
    assert entered == ["AwaitOutcome", "Resume", "Resume"]
    assert _texts(_message(client, registry, payment_id, "pacs.002"), "TxSts") == ["ACSC"]
    assert _released(api, payment_id) == 1
    _problem(client.redrive(payment_id), 409)


def test_the_decision_path_spends_one_anchor_state(api, client):
    payment_id, _, _ = _submit_pending(client)
    assert client.approve(payment_id).status == 200
    client.wait_for_status(payment_id, "ACSC")
    anchor = api.runtime.wait_execution(_anchor(api, payment_id), timeout=30)
    assert anchor["status"] == "SUCCEEDED"
    history = api.runtime.client("stepfunctions").get_execution_history(executionArn=anchor["executionArn"])["events"]
    assert [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e] == ["AwaitOutcome"]
    assert _released(api, payment_id) == 1


# --- the bytes as sent ------------------------------------------------------------------------------------------
def test_the_archive_keeps_the_bytes_as_sent_utf16_included(api, client):
    import hashlib

    text = credit_transfer(debtor_name="Zoë Müller").decode().replace("encoding='UTF-8'", "encoding='UTF-16'")
    data = text.encode("utf-16")
    reply = client.submit(data)
    assert reply.status == 202, reply.body
    payment_id = reply.json["paymentId"]
    payment = client.wait_for_status(payment_id, "PDNG", "RJCT")
    assert payment["status"] == "PDNG" and payment["contentSha256"] == hashlib.sha256(data).hexdigest()
    assert client.message(payment_id, "received").body == data
    s3 = api.runtime.client("s3")
    objects = s3.list_objects_v2(Bucket=api.runtime.physical("ArchiveBucket"), Prefix=f"received/{payment_id}/")
    (key,) = [o["Key"] for o in objects["Contents"]]
    assert s3.get_object(Bucket=api.runtime.physical("ArchiveBucket"), Key=key)["Body"].read() == data
    client.reject(payment_id, "AM04")


def test_a_wrongly_declared_encoding_is_refused_ff01_as_mxflow_validate_refuses_it(client, tmp_path):
    import json
    import subprocess
    import sys

    data = credit_transfer(debtor_name="Zoë Müller").replace("Zoë Müller".encode(), "Zoë Müller".encode("latin-1"))
    assert _problem(client.submit(data), 400)["code"] == "FF01"
    (tmp_path / "latin1.xml").write_bytes(data)
    done = subprocess.run([sys.executable, "-m", "mxflow_cli.main", "validate", str(tmp_path / "latin1.xml"), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and json.loads(done.stdout.splitlines()[0])["errors"][0]["code"] == "FF01"


# --- the scheduled sampler --------------------------------------------------------------------------------------
def test_the_scheduled_sampler_publishes_the_pending_age(api, client):
    payment_id, _, _ = _submit_pending(client)
    (sample,) = api.runtime.scheduler.fire("SamplerFunctionEveryMinute")
    assert sample.ok, sample.error
    assert sample.payload["oldestPendingAgeSeconds"] >= 0 and sample.payload["sampled"] >= 1
    # PDCR: a recall forwarded to the payment engine, waiting for its answer (the return leg)
    assert set(sample.payload["oldestAgeSecondsByStatus"]) == {"RCVD", "ACTC", "PDNG", "ACSP", "PDCR"}
    assert sample.payload["suspendedPayments"] == 0
    client.reject(payment_id, "AM04")
