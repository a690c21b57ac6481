"""Issue 8's fault figure, through the local runtime (the application's template, both state machines,
the real handlers, the local HTTP API): every task function failing once, failing until its retries
run out, throttled, timing out; a conditional-write race; the release queue failing before and after
the send; the archive failing; the record write after the send failing. A failure that outlives what
the flow does on its own leaves the payment's anchor FAILED and redrivable; it is then redriven at
once and, for a second payment, after the release queue's 5-minute deduplication window (the
runtime's clock is advanced: nothing sleeps). For each: the terminal status, and the messages of the
payment on the release queue, counted in moto's backend (nothing received or deleted).

Payments up to 1000 go straight through (auto-decision); larger ones wait for a decision, which
times out after DECISION_TIMEOUT_S with AB06 (the anchor's functions' faults). The closing test prints
the table (`pytest -rA tests/e2e/test_faults.py`)."""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mxflow_local.sample_messages import credit_transfer

REPO = Path(__file__).resolve().parents[2]
REGION = "sa-east-1"  # its own Region: never shared with the other suites' runtimes
DECISION_TIMEOUT_S = 3
STP_AMOUNT, DECISION_AMOUNT = "250.00", "5000.00"
ATTEMPTS = 4  # a task's first attempt and its three retries (statemachines/*.asl.json)
RUNS = 3      # PaymentFlow's run, the anchored re-run, the anchor's Resume
DEDUP_WINDOW_S = 301  # past SQS FIFO's 300-second deduplication interval
RESULTS: list[dict] = []


@pytest.fixture(scope="module")
def stack(schema_dirs, versions):
    from mxflow_cli.local_schemas import version_parameters
    from mxflow_local.client import ALL_SCOPES, PaymentsClient
    from mxflow_local.http_api import LocalApi

    env = {"MXFLOW_SCHEMA_DIR": os.pathsep.join(schema_dirs), "MXFLOW_ADDED_SCHEMAS": "", "LOG_LEVEL": "ERROR",
           "POWERTOOLS_METRICS_DISABLED": "true"}
    overrides = {"AutoApproveMaxAmount": "1000", "DecisionTimeoutSeconds": str(DECISION_TIMEOUT_S),
                 **version_parameters(versions)}
    with LocalApi.start(REPO / "template.yaml", port=0, parameter_overrides=overrides, env_overrides=env,
                        region=REGION, scheduler=False) as api:
        api.runtime.clock.virtual_sleeps = True  # Retry backoff and injected timeouts advance the clock
        try:
            yield Stack(api, PaymentsClient(api.url, api.issue_token(ALL_SCOPES, client_id="faults")))
        finally:
            api.runtime.clock.reset()


@dataclass
class Stack:
    api: object
    client: object
    sfn: object = field(init=False)

    def __post_init__(self):
        self.runtime = self.api.runtime
        self.sfn = self.runtime.client("stepfunctions")

    def submit(self, amount: str, padding_bytes: int = 0) -> str:
        message = credit_transfer(amount=amount, uetr=str(uuid.uuid4()))
        if padding_bytes:  # too large to travel in the flow: each step reads the archive
            message = message.replace(b"</Document>", b"<!--" + b"x" * padding_bytes + b"--></Document>")
        reply = self.client.submit(message)
        assert reply.status == 202, reply.body
        return reply.json["paymentId"]

    def anchor(self, payment_id: str) -> str:
        return self.runtime.physical("PaymentStateMachine").replace(":stateMachine:", ":execution:") + ":" + payment_id

    def anchor_status(self, payment_id: str) -> dict | None:
        try:
            return self.sfn.describe_execution(executionArn=self.anchor(payment_id))
        except self.sfn.exceptions.ExecutionDoesNotExist:
            return None

    def settled(self, payment_id: str, timeout: float = 60.0) -> dict:
        """The payment once it is terminal, or its anchor FAILED (bounded)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            payment = self.client.get(payment_id).json
            anchor = self.anchor_status(payment_id)
            if payment["status"] in ("ACSC", "RJCT", "CANC") and (anchor is None or anchor["status"] != "RUNNING"):
                return payment
            if anchor is not None and anchor["status"] == "FAILED":
                return payment
            time.sleep(0.05)
        raise TimeoutError(f"payment {payment_id} neither finished nor failed in {timeout:.0f}s")

    def released(self, payment_id: str) -> int:
        from moto.sqs.models import sqs_backends

        url = self.runtime.physical("ReleaseQueue")
        queue = sqs_backends[self.runtime.account_id][self.runtime.region].get_queue(url.rsplit("/", 1)[-1])
        return sum(1 for m in queue._messages if m.deduplication_id == payment_id)

    def redrive(self, payment_id: str) -> int:
        return self.client.redrive(payment_id).status


def record(fault: str, path: str, redrive: str, payment: dict, stack: Stack, payment_id: str, **extra) -> dict:
    anchor = stack.anchor_status(payment_id)
    row = {"fault": fault, "path": path, "redrive": redrive, "status": payment["status"],
           "anchor": anchor["status"] if anchor else "none", "released": stack.released(payment_id),
           "suspended": bool(payment.get("suspense")), **extra}
    RESULTS.append(row)
    return row


def run_to_end(stack: Stack, payment_id: str, fault: str, path: str, *, when: str) -> dict:
    """Follow a payment to its end: when its anchor is FAILED, redrive it (at once, or after the
    deduplication window) and follow it again."""
    payment = stack.settled(payment_id)
    anchor = stack.anchor_status(payment_id)
    if anchor is None or anchor["status"] != "FAILED":
        return record(fault, path, "none needed", payment, stack, payment_id)
    assert anchor["redriveStatus"] == "REDRIVABLE", anchor
    failed_at = _failed_state(stack, payment_id)
    stack.runtime.faults.clear()  # the cause is fixed
    if when == "after the window":
        stack.runtime.clock.advance(DEDUP_WINDOW_S)
    assert stack.redrive(payment_id) == 202
    payment = stack.settled(payment_id)
    return record(fault, path, when, payment, stack, payment_id, failedAt=failed_at)


def _failed_state(stack: Stack, payment_id: str) -> str:
    """The state a FAILED anchor failed in (the last one entered)."""
    history = stack.sfn.get_execution_history(executionArn=stack.anchor(payment_id), maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e][-1]


def expect_released(row: dict) -> None:
    assert (row["status"], row["released"], row["anchor"] in ("none", "SUCCEEDED")) == ("ACSC", 1, True), row


def expect_timed_out(row: dict, client, payment_id) -> None:
    assert row["status"] == "RJCT" and row["released"] == 0, row
    assert client.get(payment_id).json["reason"]["code"] == "AB06"


# -- every task function: once, until its retries run out, throttled, timing out -------------------------

FLOW_FUNCTIONS = ["ValidateFunction", "SendFunction", "SettleFunction"]
ANCHOR_FUNCTIONS = ["ParkFunction", "DecisionTimeoutFunction"]
KINDS = {"fails once": dict(kind="raise", count=1, error_type="TransientError"),
         "throttled": dict(kind="throttle", count=1),
         "times out": dict(kind="timeout", count=1, after_seconds=5)}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("function", FLOW_FUNCTIONS + ANCHOR_FUNCTIONS)
def test_a_task_function_failing_once_throttled_or_timing_out_is_retried(stack, function, kind):
    stack.runtime.faults.inject(function, **KINDS[kind])
    amount = DECISION_AMOUNT if function in ANCHOR_FUNCTIONS else STP_AMOUNT
    payment_id = stack.submit(amount)
    row = run_to_end(stack, payment_id, f"{function} {kind}", "decision" if amount == DECISION_AMOUNT else "STP",
                     when="at once")
    assert row["redrive"] == "none needed", row  # the flow's own retries suffice
    if function in ANCHOR_FUNCTIONS:
        expect_timed_out(row, stack.client, payment_id)
    else:
        expect_released(row)
    assert stack.runtime.faults.pending(function) == 0


@pytest.mark.parametrize("function", FLOW_FUNCTIONS)
def test_a_flow_function_failing_until_its_retries_run_out_is_handed_to_the_anchor(stack, function):
    stack.runtime.faults.inject(function, kind="raise", count=ATTEMPTS, error_type="TransientError")
    payment_id = stack.submit(STP_AMOUNT)
    row = run_to_end(stack, payment_id, f"{function} fails {ATTEMPTS}x (retries run out)", "STP", when="at once")
    assert row["redrive"] == "none needed" and row["anchor"] == "SUCCEEDED", row  # the anchor's re-run did it
    expect_released(row)


@pytest.mark.parametrize("when", ["at once", "after the window"])
@pytest.mark.parametrize("function", FLOW_FUNCTIONS)
def test_a_flow_function_failing_in_every_run_leaves_the_anchor_failed_for_a_redrive(stack, function, when):
    stack.runtime.faults.inject(function, kind="raise", count=ATTEMPTS * RUNS, error_type="TransientError")
    payment_id = stack.submit(STP_AMOUNT)
    row = run_to_end(stack, payment_id, f"{function} fails in every run", "STP", when=when)
    assert row["redrive"] == when and row["failedAt"] == "Resume", row
    expect_released(row)


@pytest.mark.parametrize("when", ["at once", "after the window"])
@pytest.mark.parametrize("function", ANCHOR_FUNCTIONS)
def test_an_anchor_function_failing_until_its_retries_run_out_leaves_the_anchor_failed(stack, function, when):
    stack.runtime.faults.inject(function, kind="raise", count=ATTEMPTS, error_type="TransientError")
    payment_id = stack.submit(DECISION_AMOUNT)
    row = run_to_end(stack, payment_id, f"{function} fails {ATTEMPTS}x (retries run out)", "decision", when=when)
    assert row["redrive"] == when, row
    assert row["failedAt"] == {"ParkFunction": "AwaitOutcome", "DecisionTimeoutFunction": "DecisionTimedOut"}[function]
    expect_timed_out(row, stack.client, payment_id)


# -- a conditional-write race ------------------------------------------------------------------------------

def test_a_duplicated_flow_races_on_every_conditional_write_and_releases_once(stack):
    """Express starts are at least once: a second PaymentFlow run of the same payment, at once."""
    import base64
    import json

    payment_id = stack.submit(STP_AMOUNT)
    message = stack.client.message(payment_id, "received").body
    stack.sfn.start_execution(stateMachineArn=stack.runtime.physical("PaymentFlow"), input=json.dumps({
        "paymentId": payment_id, "stage": "validate", "decisionTimeoutSeconds": DECISION_TIMEOUT_S,
        "message": base64.b64encode(message).decode()}))
    row = run_to_end(stack, payment_id, "conditional-write race (duplicated flow)", "STP", when="at once")
    expect_released(row)
    payment = stack.client.get(payment_id).json
    assert [h["status"] for h in payment["history"]] == ["RCVD", "ACTC", "ACSP", "ACSC"]  # each write once


def test_a_competing_write_between_the_claims_read_and_its_write_is_retried(stack):
    """A concurrent Send claims the release between this Send's read and its conditional write."""

    def competing_claim():
        stack.runtime.faults.clear()
        table = stack.runtime.physical("PaymentTable")
        stack.runtime.client("dynamodb").update_item(
            TableName=table, Key={"pk": {"S": race["id"]}, "sk": {"S": "PAYMENT"}},
            UpdateExpression="SET #r = :r", ConditionExpression="attribute_not_exists(#r)",
            ExpressionAttributeNames={"#r": "release"},
            ExpressionAttributeValues={":r": {"M": {"region": {"S": REGION}, "epoch": {"N": "1"},
                                                    "attempts": {"N": "1"}, "definitiveFailures": {"N": "0"},
                                                    "windowAt": {"S": _now()}}}})

    race = {}
    stack.runtime.faults.inject_call("dynamodb", "UpdateItem", function="SendFunction", race=competing_claim)
    race["id"] = payment_id = stack.submit(STP_AMOUNT)
    row = run_to_end(stack, payment_id, "conditional-write race (release claim)", "STP", when="at once")
    expect_released(row)
    assert stack.client.get(payment_id).json  # readable
    release = _item(stack, payment_id)["release"]["M"]
    assert int(release["attempts"]["N"]) == 2  # the competing claim, then this Send's after its retry


def _now() -> str:
    from mxflow.clock import utc_now

    return utc_now()


def _item(stack: Stack, payment_id: str) -> dict:
    return stack.runtime.client("dynamodb").get_item(TableName=stack.runtime.physical("PaymentTable"),
                                                     Key={"pk": {"S": payment_id}, "sk": {"S": "PAYMENT"}})["Item"]


# -- the release queue failing before and after the send ---------------------------------------------------

@pytest.mark.parametrize("when", ["at once", "after the window"])
def test_the_queue_refusing_every_send_then_redriven_sends_once(stack, when):
    stack.runtime.faults.inject_call("sqs", "SendMessage", function="SendFunction", count=ATTEMPTS * RUNS,
                                     error_code="KMS.AccessDeniedException", status=400)
    payment_id = stack.submit(STP_AMOUNT)
    row = run_to_end(stack, payment_id, "release queue fails before the send (refused, 4xx)", "STP", when=when)
    assert row["redrive"] == when, row
    expect_released(row)  # every earlier attempt failed definitively: a new window, one send


@pytest.mark.parametrize("when", ["at once", "after the window"])
def test_the_queue_failing_after_the_send_never_sends_twice(stack, when):
    stack.runtime.faults.inject_call("sqs", "SendMessage", function="SendFunction", count=ATTEMPTS * RUNS,
                                     when="after", error_code="InternalError", status=500)
    payment_id = stack.submit(STP_AMOUNT)
    row = run_to_end(stack, payment_id, "release queue fails after the send (outcome unknown, 5xx)", "STP", when=when)
    if when == "at once":  # within the window a resend is deduplicated by the queue
        expect_released(row)
        return
    # past the window an unknown outcome is not sent again: suspended, visible, the anchor FAILED again
    assert (row["status"], row["released"], row["suspended"], row["anchor"]) == ("ACSP", 1, True, "FAILED"), row
    sample = stack.runtime.invoke("SamplerFunction", {}).payload
    assert sample["suspendedPayments"] >= 1  # the alarm's metric
    assert stack.client.confirm_release(payment_id, True, "engine-ref-1").status == 200
    assert stack.redrive(payment_id) == 202
    final = record("release queue fails after the send, past the window: operator confirms sent", "STP",
                   "after the confirmation", stack.settled(payment_id), stack, payment_id)
    expect_released(final)


def test_a_send_lost_before_the_queue_past_the_window_is_suspended_with_nothing_sent(stack):
    stack.runtime.faults.inject_call("sqs", "SendMessage", function="SendFunction", count=ATTEMPTS * RUNS,
                                     error_code="ReadTimeout")
    payment_id = stack.submit(STP_AMOUNT)
    row = run_to_end(stack, payment_id, "release queue times out before the send (outcome unknown)", "STP",
                     when="after the window")
    assert (row["status"], row["released"], row["suspended"]) == ("ACSP", 0, True), row
    assert stack.client.get(payment_id).json["suspense"]["reason"] == "release outcome unknown"
    assert stack.client.confirm_release(payment_id, False).status == 200  # the engine never got it
    assert stack.redrive(payment_id) == 202
    final = record("release queue times out before the send, past the window: operator confirms not sent",
                   "STP", "after the confirmation", stack.settled(payment_id), stack, payment_id)
    expect_released(final)


# -- the archive failing -----------------------------------------------------------------------------------

def test_the_archive_failing_at_receipt_keeps_nothing_and_a_resubmission_goes_through(stack):
    message = credit_transfer(amount=STP_AMOUNT, uetr=str(uuid.uuid4()))
    stack.runtime.faults.inject_call("s3", "PutObject", function="ApiFunction", count=1)
    failed = stack.client.submit(message)
    assert failed.status == 500 and failed.content_type.startswith("application/problem+json")
    retried = stack.client.submit(message)
    assert retried.status == 202  # nothing was kept of the first attempt: a new payment
    payment_id = retried.json["paymentId"]
    expect_released(run_to_end(stack, payment_id, "archive write fails at receipt (client retries)", "STP",
                               when="at once"))


@pytest.mark.parametrize("when", ["at once", "after the window"])
def test_the_archive_failing_for_the_flow_then_redriven(stack, when):
    """A message too large to travel in the flow is read from the archive by each step."""
    stack.runtime.faults.inject_call("s3", "GetObject", function="ValidateFunction", count=ATTEMPTS * RUNS)
    payment_id = stack.submit(STP_AMOUNT, padding_bytes=70_000)
    row = run_to_end(stack, payment_id, "archive read fails in the flow (large message)", "STP", when=when)
    assert row["redrive"] == when, row
    expect_released(row)


# -- the record write after the send failing ---------------------------------------------------------------

@pytest.mark.parametrize("when", ["at once", "after the window"])
def test_the_record_write_after_the_send_failing_is_settled_without_a_second_send(stack, when):
    stack.runtime.faults.inject_call("dynamodb", "UpdateItem", function="SettleFunction", count=ATTEMPTS * RUNS)
    payment_id = stack.submit(STP_AMOUNT)
    row = run_to_end(stack, payment_id, "record write after the send fails", "STP", when=when)
    assert row["redrive"] == when and row["failedAt"] == "Resume", row
    expect_released(row)
    assert int(_item(stack, payment_id)["release"]["M"]["attempts"]["N"]) == 1  # sent once, never re-claimed


# -- the figure ----------------------------------------------------------------------------------------------

def test_the_closing_table(stack, capsys):
    assert len(RESULTS) >= 30
    lines = ["| fault | path | redrive | status | anchor | messages released | suspended |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['fault']} | {r['path']} | {r['redrive']} | {r['status']} | {r['anchor']} | {r['released']} | "
              f"{'yes' if r['suspended'] else 'no'} |" for r in RESULTS]
    twice = [r for r in RESULTS if r["released"] > 1]
    lost = [r for r in RESULTS if r["status"] not in ("ACSC", "RJCT", "CANC") and not r["suspended"]]
    lines.append(f"\nscenarios {len(RESULTS)}, released twice {len(twice)}, lost {len(lost)}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    out = os.environ.get("MXFLOW_FAULT_TABLE")
    if out:
        Path(out).write_text("\n".join(lines) + "\n")
    assert not twice and not lost
