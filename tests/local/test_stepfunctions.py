"""The fixture's state machine on the local runtime: callbacks, timeouts, Retry/Catch, faults, redrive,
unnamed executions, JSONata -- with the error names and history AWS gives."""
from __future__ import annotations

import json

import pytest


def _failed_attempts(flow, execution_arn: str) -> list[str]:
    return [e["lambdaFunctionFailedEventDetails"]["error"] for e in flow.history(execution_arn)
            if e["type"] == "LambdaFunctionFailed"]


def test_callback_completed_by_send_task_success(flow):
    payment_id, arn = flow.start(callback={"timeoutSeconds": 30, "heartbeatSeconds": 30})
    token = flow.token(payment_id)
    assert flow.sfn.describe_execution(executionArn=arn)["status"] == "RUNNING"
    flow.sfn.send_task_success(taskToken=token, output=json.dumps({"action": "approve"}))
    result = flow.wait(arn)
    assert result["status"] == "SUCCEEDED"
    assert json.loads(result["output"])["decision"] == {"action": "approve"}
    assert flow.item(payment_id, "result")["status"]["S"] == "SUCCEEDED"


def test_callback_failed_by_send_task_failure(flow):
    payment_id, arn = flow.start(callback={"timeoutSeconds": 30, "heartbeatSeconds": 30})
    flow.sfn.send_task_failure(taskToken=flow.token(payment_id), error="Rejected", cause="consumer said no")
    result = flow.wait(arn)
    assert (result["status"], result["error"], result["cause"]) == ("FAILED", "Rejected", "consumer said no")
    with pytest.raises(flow.sfn.exceptions.ClientError) as reused:
        flow.sfn.send_task_success(taskToken=flow.token(payment_id), output="{}")
    assert reused.value.response["Error"]["Code"] in ("InvalidToken", "TaskTimedOut", "TaskDoesNotExist")


def test_callback_timeout_is_states_timeout(flow):
    _, arn = flow.start(callback={"timeoutSeconds": 1, "heartbeatSeconds": 30})
    result = flow.wait(arn)
    assert (result["status"], result["error"]) == ("FAILED", "States.Timeout")


def test_missed_heartbeat_is_states_heartbeat_timeout(flow):
    payment_id, arn = flow.start(callback={"timeoutSeconds": 30, "heartbeatSeconds": 1})
    flow.token(payment_id)
    result = flow.wait(arn)
    assert (result["status"], result["error"]) == ("FAILED", "States.HeartbeatTimeout")
    timed_out = [e for e in flow.history(arn) if e["type"] == "TaskTimedOut"]
    assert timed_out and timed_out[0]["taskTimedOutEventDetails"]["error"] == "States.HeartbeatTimeout"


def test_heartbeats_keep_the_task_alive(flow):
    payment_id, arn = flow.start(callback={"timeoutSeconds": 30, "heartbeatSeconds": 1})
    token = flow.token(payment_id)
    import time
    for _ in range(3):          # 1.8 s in total, longer than one heartbeat period
        time.sleep(0.6)
        flow.sfn.send_task_heartbeat(taskToken=token)
    flow.sfn.send_task_success(taskToken=token, output="{}")
    assert flow.wait(arn)["status"] == "SUCCEEDED"


def test_transient_handler_error_retried_then_caught(flow):
    payment_id, arn = flow.start(failWith="TransientError")
    result = flow.wait(arn)
    assert (result["status"], result["error"]) == ("FAILED", "WorkFailed")
    # first attempt + MaxAttempts 2 retries, each failing with the exception's class name
    assert _failed_attempts(flow, arn) == ["TransientError"] * 3
    assert flow.item(payment_id, "result") == {"pk": {"S": payment_id}, "sk": {"S": "result"},
                                               "status": {"S": "FAILED"}, "error": {"S": "TransientError"}}


def test_permanent_error_is_caught_without_retry(flow):
    payment_id, arn = flow.start(failWith="PermanentError")
    assert flow.wait(arn)["error"] == "WorkFailed"
    assert _failed_attempts(flow, arn) == ["PermanentError"]
    assert flow.item(payment_id, "result")["error"]["S"] == "PermanentError"


def test_injected_fault_within_retries_still_succeeds(flow, runtime):
    runtime.faults.inject("WorkerFunction", kind="raise", count=2, error_type="TransientError")
    _, arn = flow.start(items=[1, 2])
    result = flow.wait(arn)
    assert result["status"] == "SUCCEEDED"
    assert _failed_attempts(flow, arn) == ["TransientError", "TransientError"]
    assert json.loads(result["output"])["itemResults"] == [{"item": 1, "doubled": 2}, {"item": 2, "doubled": 4}]


def test_injected_fault_beyond_max_attempts_is_caught(flow, runtime):
    runtime.faults.inject("WorkerFunction", kind="raise", count=3, error_type="TransientError")
    payment_id, arn = flow.start()
    result = flow.wait(arn)
    assert (result["status"], result["error"]) == ("FAILED", "WorkFailed")
    assert _failed_attempts(flow, arn) == ["TransientError"] * 3
    assert flow.item(payment_id, "result")["error"]["S"] == "TransientError"
    assert runtime.faults.pending("WorkerFunction") == 0


def test_throttled_lambda_is_lambda_too_many_requests(flow, runtime):
    runtime.faults.inject("WorkerFunction", kind="throttle", count=1)
    payment_id, arn = flow.start()
    result = flow.wait(arn)
    assert result["error"] == "WorkFailed"
    assert flow.item(payment_id, "result")["error"]["S"] == "Lambda.TooManyRequestsException"


def test_failed_execution_redriven_from_the_failed_state(flow, runtime):
    runtime.faults.inject("FinishFunction", kind="raise", count=1, error_type="DownstreamUnavailable")
    payment_id, arn = flow.start(items=[5])
    failed = flow.wait(arn)
    assert (failed["status"], failed["error"]) == ("FAILED", "DownstreamUnavailable")
    assert failed["redriveStatus"] == "REDRIVABLE" and failed["redriveCount"] == 0
    assert flow.item(payment_id, "result") is None

    flow.sfn.redrive_execution(executionArn=arn)
    result = flow.wait(arn)
    assert result["executionArn"] == arn
    assert result["status"] == "SUCCEEDED"
    assert result["redriveCount"] == 1 and "redriveDate" in result
    assert result["redriveStatus"] == "NOT_REDRIVABLE"
    # earlier states ran once: the DynamoDB counter and the history say so
    assert flow.item(payment_id, "counter")["runs"]["N"] == "1"
    assert flow.entered(arn, "Record") == 1 and flow.entered(arn, "Work") == 1
    assert flow.entered(arn, "Finish") == 2
    types = [e["type"] for e in flow.history(arn)]
    assert types.index("ExecutionFailed") < types.index("ExecutionRedriven") < types.index("ExecutionSucceeded")
    output = json.loads(result["output"])
    assert output["itemResults"] == [{"item": 5, "doubled": 10}] and output["finish"]["finished"] is True


def test_redrive_of_succeeded_execution_is_refused(flow):
    _, arn = flow.start()
    assert flow.wait(arn)["status"] == "SUCCEEDED"
    with pytest.raises(flow.sfn.exceptions.ExecutionNotRedrivable):
        flow.sfn.redrive_execution(executionArn=arn)


def test_unnamed_executions_get_distinct_arns(runtime):
    sfn = runtime.client("stepfunctions")
    machine = runtime.physical("JsonataStateMachine")
    first = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"amounts": [1], "currency": "EUR"}))
    second = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"amounts": [2], "currency": "EUR"}))
    assert first["executionArn"] != second["executionArn"]
    assert not first["executionArn"].endswith(":None")
    for started in (first, second):
        assert runtime.wait_execution(started["executionArn"])["status"] == "SUCCEEDED"


def test_jsonata_with_assigned_variables(runtime):
    sfn = runtime.client("stepfunctions")
    started = sfn.start_execution(stateMachineArn=runtime.physical("JsonataStateMachine"),
                                  input=json.dumps({"amounts": [10, 20.5, 4], "currency": "O'Brien \"CHF\""}))
    result = runtime.wait_execution(started["executionArn"])
    assert result["status"] == "SUCCEEDED", result
    assert json.loads(result["output"]) == {"total": 34.5, "label": "O'Brien \"CHF\" 34.5", "count": 3}


def test_outcome_sent_before_the_heartbeat_wait_is_not_lost(runtime):
    """The race behind SendTaskSuccess right after the token's Lambda returned, made deterministic."""
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, CallbackOutcomeSuccess

    endpoint = CallbackEndpoint(callback_id="token")
    endpoint.notify(CallbackOutcomeSuccess(callback_id="token", output="{}"))
    heartbeat = endpoint.setup_heartbeat_endpoint(heartbeat_seconds=30)
    assert heartbeat.clear_and_wait() is True          # wakes at once instead of after 30 s
    assert isinstance(endpoint.get_outcome(), CallbackOutcomeSuccess)
