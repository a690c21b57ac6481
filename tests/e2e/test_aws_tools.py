"""The AWS CLI and boto3 against a running `mxflow local up` (its own process, the application's template),
with the environment it publishes: list executions, read a payment's execution history, receive the
released message from the release queue and one the engine kept failing from its DLQ, send a task failure with the stored token, read and write the
payment table, get archived objects, and redrive a failed release to ACSC -- `aws stepfunctions
redrive-execution` next to `POST /payments/{id}/redrive` on the same failure, with the same outcome.

Every `aws` call is the real command (`awscli` from requirements/dev.txt) in a subprocess; boto3 runs in
its own process too (tests/e2e/boto3_script.py). Waits are bounded; everything listens on 127.0.0.1."""
from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from local_up import AWS_CLI, COMMAND_TIMEOUT_S, RunningLocalUp, local_up  # beside this file
from mxflow_local.sample_messages import credit_transfer

BOTO3_SCRIPT = Path(__file__).with_name("boto3_script.py")
SEND_ATTEMPTS = 4      # Send's first attempt and its three retries (statemachines/payment_flow.asl.json)
MAX_RECEIVE_COUNT = 5  # the release queue's RedrivePolicy (template.yaml)


class LocalUpWithTools(RunningLocalUp):
    """The running server and the helpers these tests add: boto3 in its own process, the release queue."""

    def boto3(self, *args: str):
        done = subprocess.run([sys.executable, str(BOTO3_SCRIPT), *args], capture_output=True, env=self.env,
                              timeout=COMMAND_TIMEOUT_S + 60)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
        return done.stdout if args[0] == "get-object" else json.loads(done.stdout)

    def execution_arn(self, payment_id: str) -> str:
        return self.resources["PaymentStateMachine"].replace(":stateMachine:", ":execution:") + f":{payment_id}"

    def pending_payment(self, amount: str) -> str:
        reply = self.api.submit(credit_transfer(amount=amount))
        assert reply.status == 202, reply.body
        payment_id = reply.json["paymentId"]
        assert self.api.wait_for_status(payment_id, "PDNG", "RJCT")["status"] == "PDNG"
        return payment_id

    def drain_release_queue(self, wanted: set[str], timeout: float = 30.0) -> list[dict]:
        """Receive and delete messages until every wanted payment was seen (bounded); the bodies received."""
        bodies, deadline = [], time.monotonic() + timeout
        while not wanted <= {b["paymentId"] for b in bodies} and time.monotonic() < deadline:
            received = self.sqs("receive-message", "--queue-url", self.resources["ReleaseQueue"],
                                "--max-number-of-messages", "10", "--wait-time-seconds", "1") or {}
            for message in received.get("Messages", []):
                bodies.append(json.loads(message["Body"]))
                self.sqs("delete-message", "--queue-url", self.resources["ReleaseQueue"],
                         "--receipt-handle", message["ReceiptHandle"])
        return bodies


@pytest.fixture(scope="module")
def stack(schema_dirs, tmp_path_factory):
    if not AWS_CLI.exists():
        pytest.fail(f"the AWS CLI is not installed at {AWS_CLI}: it is pinned in requirements/dev.txt (make venv)")
    state_dir, logs = tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("logs")
    with local_up(state_dir, logs, "DecisionTimeoutSeconds=600", "LogLevel=WARNING", schema_dirs=schema_dirs,
                  cls=LocalUpWithTools) as running:
        yield running


def test_local_up_prints_the_environment_it_publishes(stack):
    printed = (stack.logs / "stderr").read_text()
    assert f"export AWS_ENDPOINT_URL={stack.endpoint['endpointUrl']}" in printed
    assert "listening on 127.0.0.1 only" in printed and "export AWS_ACCESS_KEY_ID=testing" in printed
    assert stack.endpoint["endpointUrl"].startswith("http://127.0.0.1:")
    machines = stack.aws_json("stepfunctions", "list-state-machines")["stateMachines"]
    assert stack.resources["PaymentStateMachine"] in [m["stateMachineArn"] for m in machines]


def test_a_released_payment_seen_through_the_aws_cli_and_boto3(stack):
    payment_id = stack.pending_payment("1250.00")
    assert stack.api.approve(payment_id).status == 200
    assert stack.api.wait_for_status(payment_id, "ACSC", "RJCT", "CANC")["status"] == "ACSC"
    arn = stack.execution_arn(payment_id)

    listed = stack.aws_json("stepfunctions", "list-executions", "--state-machine-arn",
                            stack.resources["PaymentStateMachine"])["executions"]
    assert {"executionArn": arn, "status": "SUCCEEDED"}.items() <= next(e for e in listed if e["executionArn"] == arn).items()
    events = stack.aws_json("stepfunctions", "get-execution-history", "--execution-arn", arn)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    assert entered == ["AwaitOutcome"]  # the anchor's one state: PaymentFlow (EXPRESS) did the rest
    assert events[-1]["type"] == "ExecutionSucceeded"
    assert stack.boto3("history", arn)[-1]["type"] == "ExecutionSucceeded"     # boto3 sees the same history

    released = stack.drain_release_queue({payment_id})
    assert [b["paymentId"] for b in released].count(payment_id) == 1
    body = next(b for b in released if b["paymentId"] == payment_id)
    assert "pacs.008.001.08" in body["message"] and "<BizMsgIdr>" in body["message"] and body["uetr"]

    table = stack.resources["PaymentTable"]
    record = stack.aws_json("dynamodb", "get-item", "--table-name", table, "--consistent-read",
                            "--key", json.dumps({"pk": {"S": payment_id}, "sk": {"S": "PAYMENT"}}))["Item"]
    assert record["status"] == {"S": "ACSC"}
    assert [e["M"]["status"]["S"] for e in record["history"]["L"]] == ["RCVD", "ACTC", "PDNG", "ACSP", "ACSC"]
    report = zlib.decompress(base64.b64decode(record["messages"]["M"]["pacs.002"]["M"]["z"]["B"])).decode()
    assert "<TxSts>ACSC</TxSts>" in report  # kept with the payment, compressed
    outbound = zlib.decompress(base64.b64decode(record["messages"]["M"]["outbound"]["M"]["z"]["B"])).decode()
    assert outbound == body["message"]  # what was sent
    received_key = f"received/{payment_id}/{record['contentSha256']['S']}.xml"
    raw = stack.boto3("get-object", stack.resources["ArchiveBucket"], received_key)
    assert hashlib.sha256(raw).hexdigest() == record["contentSha256"]["S"]

    # a write through the CLI is read back by boto3 (the same table)
    note = {"pk": {"S": payment_id}, "sk": {"S": "NOTE#aws-cli"}, "text": {"S": "checked from the AWS CLI"}}
    stack.aws("dynamodb", "put-item", "--table-name", table, "--item", json.dumps(note))
    assert stack.boto3("get-item", table, payment_id, "NOTE#aws-cli")["text"] == "checked from the AWS CLI"


def test_send_task_failure_with_the_stored_token(stack):
    payment_id = stack.pending_payment("410.00")
    item = stack.aws_json("dynamodb", "get-item", "--table-name", stack.resources["PaymentTable"],
                          "--consistent-read", "--projection-expression", "taskToken",
                          "--key", json.dumps({"pk": {"S": payment_id}, "sk": {"S": "PAYMENT"}}))["Item"]
    stack.aws("stepfunctions", "send-task-failure", "--task-token", item["taskToken"]["S"],
              "--error", "OperatorAbort", "--cause", "stopped from the AWS CLI")
    [described] = stack.boto3("wait", "--timeout", "30", stack.execution_arn(payment_id))
    assert (described["status"], described["error"], described["cause"]) == ("FAILED", "OperatorAbort",
                                                                             "stopped from the AWS CLI")
    again = stack.aws("stepfunctions", "send-task-success", "--task-token", item["taskToken"]["S"],
                      "--task-output", "{}", check=False)
    assert again.returncode != 0 and ("InvalidToken" in again.stderr or "TaskTimedOut" in again.stderr)


def _trace(events: list[dict]) -> list[tuple]:
    """An execution history without its ids and times: event type, state, error."""
    return [(e["type"], e["state"], e["error"]) for e in events]


def test_redrive_with_the_aws_cli_is_the_api_redrive(stack):
    by_cli, by_api = stack.pending_payment("15000.00"), stack.pending_payment("15000.01")
    # the same failure for both: every attempt of their releases fails with TransientError
    # ... in the flow each approval starts, then in the anchor's Resume: two runs each
    fault = {"function": "SendFunction", "kind": "raise", "count": 2 * 2 * SEND_ATTEMPTS, "errorType": "TransientError"}
    reply = stack.api.request("POST", "/_local/faults", body=json.dumps(fault).encode(), content_type="application/json")
    assert reply.status == 200, reply.body
    for payment_id in (by_cli, by_api):
        assert stack.api.approve(payment_id).status == 200
    arns = [stack.execution_arn(by_cli), stack.execution_arn(by_api)]
    failed = stack.boto3("wait", "--timeout", "90", *arns)
    for described in failed:
        assert (described["status"], described["error"], described["redriveStatus"]) == (
            "FAILED", "States.TaskFailed", "REDRIVABLE")  # at Resume: PaymentFlow failed again
    stuck = [stack.api.get(p).json for p in (by_cli, by_api)]
    assert [p["status"] for p in stuck] == ["ACSP", "ACSP"]       # approved, not released
    listed = stack.aws_json("stepfunctions", "list-executions", "--state-machine-arn",
                            stack.resources["PaymentStateMachine"], "--status-filter", "FAILED")["executions"]
    assert set(arns) <= {e["executionArn"] for e in listed}

    redriven = stack.aws_json("stepfunctions", "redrive-execution", "--execution-arn", arns[0])
    assert "redriveDate" in redriven
    assert stack.api.redrive(by_api).status == 202
    done = stack.boto3("wait", "--timeout", "60", *arns)
    assert [(d["status"], d["redriveCount"]) for d in done] == [("SUCCEEDED", 1), ("SUCCEEDED", 1)]

    payments = [stack.api.wait_for_status(p, "ACSC", timeout=30) for p in (by_cli, by_api)]
    assert [[h["status"] for h in p["history"]] for p in payments] == [["RCVD", "ACTC", "PDNG", "ACSP", "ACSC"]] * 2
    assert sorted(payments[0]["messages"]) == sorted(payments[1]["messages"])
    assert {"pacs.002", "outbound"} <= set(payments[0]["messages"])
    traces = [_trace(stack.boto3("history", arn)) for arn in arns]
    assert traces[0] == traces[1]                                  # the very same steps, event for event
    entered = [state for kind, state, _ in traces[0] if kind.endswith("StateEntered")]
    assert entered == ["AwaitOutcome", "Resume", "Resume"]   # the wait is not run again; Resume is
    assert [k for k, _, _ in traces[0]].count("ExecutionRedriven") == 1
    assert [e for k, _, e in traces[0] if k == "TaskFailed"] == ["StageFailed", "States.TaskFailed"]
    assert [k for k, _, _ in traces[0]][-3:] == ["TaskSucceeded", "TaskStateExited", "ExecutionSucceeded"]

    released = stack.drain_release_queue({by_cli, by_api})
    assert sorted(b["paymentId"] for b in released if b["paymentId"] in (by_cli, by_api)) == sorted([by_cli, by_api])
    dead = stack.sqs("receive-message", "--queue-url", stack.resources["ReleaseDeadLetterQueue"],
                     "--wait-time-seconds", "1") or {}
    assert not dead.get("Messages")

    again = stack.aws("stepfunctions", "redrive-execution", "--execution-arn", arns[0], check=False)
    assert again.returncode != 0 and "ExecutionNotRedrivable" in again.stderr
    assert stack.api.redrive(by_api).status == 409


def test_a_release_the_engine_keeps_failing_is_taken_from_the_dlq(stack):
    """Last in this module: it leaves the release queue empty of its payment, the DLQ empty."""
    payment_id = stack.pending_payment("77.70")
    assert stack.api.approve(payment_id).status == 200
    assert stack.api.wait_for_status(payment_id, "ACSC", "RJCT", "CANC")["status"] == "ACSC"
    queue, dlq = stack.resources["ReleaseQueue"], stack.resources["ReleaseDeadLetterQueue"]
    assert stack.boto3("nack", "--times", str(MAX_RECEIVE_COUNT), queue).count(payment_id) == MAX_RECEIVE_COUNT
    assert not (stack.sqs("receive-message", "--queue-url", queue, "--wait-time-seconds", "1") or {}).get("Messages")
    dead = stack.sqs("receive-message", "--queue-url", dlq, "--wait-time-seconds", "1")["Messages"]
    assert [json.loads(m["Body"])["paymentId"] for m in dead] == [payment_id]
    stack.sqs("delete-message", "--queue-url", dlq, "--receipt-handle", dead[0]["ReceiptHandle"])
    assert not (stack.sqs("receive-message", "--queue-url", dlq) or {}).get("Messages")
