"""Issue 12, the return leg, through the local runtime (the application's template, PaymentFlow's Recall
step, the engine's inbound FIFO queue polled into EngineAnswersFunction, the local HTTP API), with
ReleaseConfirmation both ways: recalls before and after the release, the payment engine's answers
(mxflow_local.engine_simulator, stepped by the test: it answers what is on the release queue now),
returns, idempotency of every inbound message, the suspense list, and a consumer's decision racing a
recall on one payment.

Every generated message read back is checked against its installed official schema."""
from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from mxflow_local.sample_messages import credit_transfer, recall

REPO = Path(__file__).resolve().parents[2]
REGIONS = {"queue": "ap-south-1", "engine": "ap-northeast-2"}  # their own Regions: never shared
STP_AMOUNT, DECISION_AMOUNT, ABOVE_ENGINE_LIMIT = "250.00", "5000.00", "750.00"
WAIT_S = 60.0


@pytest.fixture(scope="module", params=["queue", "engine"])
def leg(request, schema_dirs, versions, registry):
    from mxflow_cli.local_schemas import version_parameters
    from mxflow_local.client import ALL_SCOPES, ENGINE_SCOPE, PaymentsClient
    from mxflow_local.engine_simulator import EnginePolicy, for_runtime
    from mxflow_local.http_api import LocalApi

    mode = request.param
    env = {"MXFLOW_SCHEMA_DIR": os.pathsep.join(schema_dirs), "MXFLOW_ADDED_SCHEMAS": "", "LOG_LEVEL": "ERROR",
           "POWERTOOLS_METRICS_DISABLED": "true"}
    overrides = {"AutoApproveMaxAmount": "1000", "DecisionTimeoutSeconds": "600", "ReleaseConfirmation": mode,
                 **version_parameters(versions)}
    with LocalApi.start(REPO / "template.yaml", port=0, parameter_overrides=overrides, env_overrides=env,
                        region=REGIONS[mode]) as api:
        engine = for_runtime(api.runtime, EnginePolicy(), registry=registry, versions=versions)
        yield Leg(mode, api, PaymentsClient(api.url, api.issue_token(ALL_SCOPES, client_id="return-leg")),
                  PaymentsClient(api.url, api.issue_token([ENGINE_SCOPE], client_id="engine")), engine, registry,
                  versions)


@dataclass
class Leg:
    mode: str
    api: object
    client: object
    engine_client: object
    engine: object
    registry: object
    versions: object

    def recall(self, original: bytes, **options) -> bytes:
        """A camt.056 of the configured version (on the built-in schemas alone, the newest installed one)."""
        return recall(original, version=self.versions.cancellation_request, **options)

    def submit(self, amount: str) -> tuple[str, bytes]:
        message = credit_transfer(amount=amount, uetr=str(uuid.uuid4()))
        reply = self.client.submit(message)
        assert reply.status == 202, reply.body
        return reply.json["paymentId"], message

    def until(self, payment_id: str, predicate, *, engine: bool = True) -> dict:
        """GET /payments/{id} until predicate holds, the engine answering what it was sent meanwhile (bounded)."""
        deadline = time.monotonic() + WAIT_S
        last = None
        while time.monotonic() < deadline:
            if engine:
                self.engine.step()
            last = self.client.get(payment_id).json
            if predicate(last):
                return last
            time.sleep(0.1)
        raise TimeoutError(f"{payment_id}: last seen {last}")

    def released(self, payment_id: str) -> dict:
        """The payment once released and, under ReleaseConfirmation=engine, confirmed by the engine."""
        return self.until(payment_id, lambda p: p["status"] == "ACSC" or p["status"] == "RJCT")

    def message(self, payment_id: str, name: str) -> bytes:
        """A message of the payment, checked against its installed official schema."""
        from mxflow.iso20022 import check_generated

        reply = self.client.message(payment_id, name)
        assert reply.status == 200, (payment_id, name, reply.body)
        check_generated(reply.body, self.registry)
        return reply.body

    def on_queue(self, payment_id: str) -> int:
        """Messages of the payment ever accepted by the release queue (moto's backend, deduplicated)."""
        from moto.sqs.models import sqs_backends

        runtime = self.api.runtime
        url = runtime.physical("ReleaseQueue")
        queue = sqs_backends[runtime.account_id][runtime.region].get_queue(url.rsplit("/", 1)[-1])
        waiting = sum(1 for m in queue._messages if m.deduplication_id == payment_id)
        # and those the engine took off the queue: one answer each (a repeat is answered "(again)")
        return waiting + sum(1 for a in self.engine.answered
                             if a.payment_id == payment_id and a.kind.startswith("pacs.002"))


def statuses(data: bytes, name: str) -> list[str]:
    from mxflow.iso20022 import parse_message

    return [str(s) for s in parse_message(data).document.xpath(f"//*[local-name()='{name}']/text()")]


def with_policy(leg: Leg, **values):
    from mxflow_local.engine_simulator import EnginePolicy

    leg.engine.policy = EnginePolicy.from_values(**values)


# -- recalls -------------------------------------------------------------------------------------------------

def needs_a_return_schema(leg) -> None:
    """The engine's return (pacs.004) is sent only when a pacs.004 schema is installed: no package on PyPI
    carries one, so on the built-in schemas alone (a bare clone) the return cannot be checked."""
    if leg.engine.return_version is None:
        pytest.skip("no pacs.004 schema installed (none on PyPI): needs ../shared's official XSDs")


def test_recalled_before_release_is_cancelled_and_the_same_recall_twice_is_one(leg):
    with_policy(leg)
    payment_id, original = leg.submit(DECISION_AMOUNT)
    leg.client.wait_for_status(payment_id, "PDNG")
    camt056 = leg.recall(original, reason="DUPL")
    reply = leg.client.submit(camt056)
    assert reply.status == 202 and reply.json["originalPaymentId"] == payment_id, reply.body
    recall_id = reply.json["paymentId"]
    done = leg.until(recall_id, lambda p: p["status"] in ("CNCL", "RJCR", "PDCR"))
    assert done["status"] == "CNCL" and done["originalPaymentId"] == payment_id
    payment = leg.client.get(payment_id).json
    assert payment["status"] == "CANC" and "camt.029" in payment["messages"]
    answer = leg.message(recall_id, "camt.029")
    assert answer == leg.message(payment_id, "camt.029")
    assert (statuses(answer, "Conf"), statuses(answer, "TxCxlSts")) == (["CNCL"], ["ACCR"])
    # the same camt.056 again: one request (200, same body); the same identity with other content: 409
    again = leg.client.submit(camt056)
    assert again.status == 200 and again.json == reply.json
    conflicting = leg.client.submit(camt056.replace(b"<Cd>DUPL</Cd>", b"<Cd>CUST</Cd>"))
    assert conflicting.status == 409 and conflicting.json["code"] == "AM05"  # the duplicate's ISO reason, as for payments
    # the consumer's decision comes too late: the recall took it
    assert leg.client.approve(payment_id).status == 409
    assert leg.on_queue(payment_id) == 0


def test_recalled_after_release_is_forwarded_then_returned(leg):
    needs_a_return_schema(leg)
    with_policy(leg, return_after=0)
    payment_id, original = leg.submit(STP_AMOUNT)
    released = leg.released(payment_id)
    assert released["status"] == "ACSC", released
    recall_id = leg.client.submit(leg.recall(original, reason="FRAD")).json["paymentId"]
    pending = leg.until(recall_id, lambda p: p["status"] in ("CNCL", "RJCR", "PDCR"), engine=False)
    assert pending["status"] == "PDCR"
    pending_answer = leg.message(recall_id, "camt.029.pending")
    assert (statuses(pending_answer, "Conf"), statuses(pending_answer, "TxCxlSts")) == (["PDCR"], ["PDCR"])
    returned = leg.until(payment_id, lambda p: "returned" in p)
    assert returned["status"] == "ACSC"
    assert returned["returned"]["amount"] == STP_AMOUNT and returned["returned"]["reason"]["code"] == "FOCR"
    assert {"camt.056", "engine.camt.029", "engine.pacs.004", "camt.029"} <= set(returned["messages"])
    forwarded = leg.message(payment_id, "camt.056")
    assert statuses(forwarded, "OrgnlUETR") == [released["uetr"]] and statuses(forwarded, "Cd") == ["FRAD"]
    done = leg.until(recall_id, lambda p: p["status"] in ("CNCL", "RJCR"))
    assert done["status"] == "CNCL"
    assert statuses(leg.message(recall_id, "camt.029"), "Conf") == ["CNCL"]
    assert any(e.get("message") == "engine.pacs.004" for e in returned["history"])


def test_recall_refused_by_the_engine_is_answered_rjcr(leg):
    with_policy(leg, recalls="refuse", refuse_reason="LEGL")
    payment_id, original = leg.submit(STP_AMOUNT)
    assert leg.released(payment_id)["status"] == "ACSC"
    recall_id = leg.client.submit(leg.recall(original)).json["paymentId"]
    done = leg.until(recall_id, lambda p: p["status"] in ("CNCL", "RJCR"))
    assert done["status"] == "RJCR" and done["reason"]["code"] == "LEGL", done
    payment = leg.client.get(payment_id).json
    assert payment["status"] == "ACSC" and "returned" not in payment and payment["recall"]["status"] == "RJCR"
    refusal = leg.message(recall_id, "camt.029")
    assert (statuses(refusal, "Conf"), statuses(refusal, "Cd")) == (["RJCR"], ["LEGL"])


def test_a_recall_of_an_unknown_payment_is_refused_noor(leg):
    never_sent = credit_transfer(amount=STP_AMOUNT, uetr=str(uuid.uuid4()))
    reply = leg.client.submit(leg.recall(never_sent))
    assert reply.status == 202 and reply.json["originalPaymentId"] is None
    done = leg.until(reply.json["paymentId"], lambda p: p["status"] in ("CNCL", "RJCR", "PDCR"), engine=False)
    assert done["status"] == "RJCR" and done["reason"]["code"] == "NOOR"
    assert statuses(leg.message(done["paymentId"], "camt.029"), "Cd") == ["NOOR"]


def test_a_second_recall_of_a_cancelled_payment_is_refused(leg):
    payment_id, original = leg.submit(DECISION_AMOUNT)
    leg.client.wait_for_status(payment_id, "PDNG")
    assert leg.client.cancel(payment_id, "DUPL").status == 200
    reply = leg.client.submit(leg.recall(original))
    done = leg.until(reply.json["paymentId"], lambda p: p["status"] in ("CNCL", "RJCR", "PDCR"), engine=False)
    assert done["status"] == "RJCR" and done["originalPaymentId"] == payment_id
    assert leg.client.get(payment_id).json["status"] == "CANC"


# -- the engine's answers ------------------------------------------------------------------------------------

def test_the_engine_rejecting_after_the_release_rejects_the_payment(leg):
    with_policy(leg, reject_above="500", reject_reason="AM04")
    payment_id, _ = leg.submit(ABOVE_ENGINE_LIMIT)
    payment = leg.until(payment_id, lambda p: p["status"] == "RJCT")
    assert payment["reason"]["code"] == "AM04"
    assert statuses(leg.message(payment_id, "pacs.002"), "TxSts") == ["RJCT"]
    assert statuses(leg.message(payment_id, "engine.pacs.002"), "TxSts") == ["RJCT"]
    if leg.mode == "queue":  # it was ACSC when sent: that answer is kept
        assert statuses(leg.message(payment_id, "pacs.002.ACSC"), "TxSts") == ["ACSC"]
    else:
        assert [e["status"] for e in payment["history"] if "status" in e][-2:] == ["ACSP", "RJCT"]


def test_release_confirmation_decides_when_a_released_payment_is_acsc(leg):
    with_policy(leg)
    payment_id, _ = leg.submit(STP_AMOUNT)
    # without the engine: the release is sent; ACSC at once (queue) or ACSP until the engine says so (engine)
    sent = leg.until(payment_id, lambda p: leg.on_queue(payment_id) == 1 and
                     "outbound" in p["messages"],
                     engine=False)
    assert sent["status"] == ("ACSC" if leg.mode == "queue" else "ACSP"), sent
    settled = leg.released(payment_id)
    assert settled["status"] == "ACSC" and "engine.pacs.002" in leg.until(
        payment_id, lambda p: "engine.pacs.002" in p["messages"])["messages"]


def test_every_engine_answer_applies_once_and_the_unmatched_ones_are_kept_in_suspense(leg):
    from mxflow.iso20022 import build_status_report, extract_facts, parse_message

    with_policy(leg)
    payment_id, _ = leg.submit(STP_AMOUNT)
    leg.until(payment_id, lambda p: "engine.pacs.002" in p["messages"])
    before = leg.client.get(payment_id).json
    answer = leg.client.message(payment_id, "engine.pacs.002").body
    for _ in range(2):  # posted twice more (it came through the queue first): nothing changes
        reply = leg.engine_client.engine_message(answer)
        assert reply.status == 200 and reply.json["outcome"] == "unchanged", reply.body
    assert leg.client.get(payment_id).json["history"] == before["history"]
    # the bank's own client may not post answers
    assert leg.client.engine_message(answer).status == 403
    # an answer about a payment never received: 422 with its ISO reason, kept in suspense
    stranger = extract_facts(parse_message(credit_transfer(amount="1.00", uetr=str(uuid.uuid4()))))
    unknown = build_status_report(stranger, "ACSC", operator_bic="ENGNGB2LXXX", versions=leg.engine.versions)
    refused = leg.engine_client.engine_message(unknown)
    assert refused.status == 422 and refused.content_type.startswith("application/problem+json")
    assert refused.json["code"] == "AG09"
    # malformed: FF01, kept too
    garbage = leg.engine_client.engine_message(b"<Document>not an answer</Document>")
    assert garbage.status == 422 and garbage.json["code"]
    entries = leg.client.suspense(limit=100).json["entries"]
    assert {"AG09"} <= {e["code"] for e in entries} and all(e["reason"] and e["suspenseId"] for e in entries)
    # an answer contradicting the payment's state (a rejection after the engine's own ACSC): kept, nothing changes
    facts = extract_facts(parse_message(leg.client.message(payment_id, "received").body))
    contradiction = build_status_report(facts, "RJCT", reason_code="AM04", operator_bic="ENGNGB2LXXX",
                                        versions=leg.engine.versions)
    contradicted = leg.engine_client.engine_message(contradiction)
    assert contradicted.status == 422, contradicted.body
    assert leg.client.get(payment_id).json["status"] == "ACSC"
    listed = leg.client.suspense(limit=100).json["entries"]
    assert any(e.get("paymentId") == payment_id for e in listed)


# -- races ---------------------------------------------------------------------------------------------------

def test_a_decision_racing_a_recall_and_the_engines_answers_gives_one_outcome(leg):
    needs_a_return_schema(leg)
    with_policy(leg)
    leg.engine.start()  # the engine answers on its own thread too: its answers race the recall's steps
    try:
        race(leg)
    finally:
        leg.engine.stop()


def race(leg):
    outcomes = []
    for _ in range(3):
        payment_id, original = leg.submit(DECISION_AMOUNT)
        leg.client.wait_for_status(payment_id, "PDNG")
        replies = {}
        go = threading.Barrier(2, timeout=30)

        def approve():
            go.wait()
            replies["approve"] = leg.client.approve(payment_id)

        def recall_it():
            go.wait()
            replies["recall"] = leg.client.submit(leg.recall(original))

        threads = [threading.Thread(target=approve), threading.Thread(target=recall_it)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=WAIT_S)
        recall_id = replies["recall"].json["paymentId"]
        done = leg.until(recall_id, lambda p: p["status"] in ("CNCL", "RJCR"))
        payment = leg.until(payment_id, lambda p: p["status"] in ("CANC", "RJCT") or "returned" in p)
        if replies["approve"].status == 200:  # approved first: released, then recalled and returned
            assert done["status"] == "CNCL" and payment["status"] == "ACSC" and "returned" in payment
            assert leg.on_queue(payment_id) == 1
        else:                                 # recalled first: cancelled, nothing released
            assert replies["approve"].status == 409
            assert done["status"] == "CNCL" and payment["status"] == "CANC" and leg.on_queue(payment_id) == 0
        outcomes.append(replies["approve"].status)
    assert set(outcomes) <= {200, 409}
