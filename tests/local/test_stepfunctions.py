"""The fixture's state machine on the local runtime: callbacks, timeouts, Retry/Catch, faults, redrive,
unnamed executions, JSONata -- with the error names and history AWS gives."""
from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

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


def test_execution_names_idempotent_without_walking_every_execution(runtime):
    """StartExecution by name: the same name and input while RUNNING is the same execution, another input
    (or a finished one) ExecutionAlreadyExists; and a start does not read the names of the executions it
    has already indexed (patch_execution_names: a walk of every parked anchor before)."""
    sfn = runtime.client("stepfunctions")
    machine = _machine(runtime, {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}})
    first = sfn.start_execution(stateMachineArn=machine, name="p-1", input='{"a": 1}')
    again = sfn.start_execution(stateMachineArn=machine, name="p-1", input='{"a": 1}')
    assert again["executionArn"] == first["executionArn"]
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=machine, name="p-1", input='{"a": 2}')
    for number in range(2, 6):
        sfn.start_execution(stateMachineArn=machine, name=f"p-{number}", input="{}")
    sfn.start_execution(stateMachineArn=machine, name="p-6", input="{}")   # indexes p-2 .. p-5 (p-6 on the next)
    state_machine = next(sm for sm in _backends(runtime) if sm.arn == machine)
    reads: list[str] = []
    for execution in state_machine.executions:   # each name read from now on is recorded
        execution.__class__ = type("Watched", (type(execution),), {"name": property(
            lambda self, __name=execution.name: reads.append(__name) or __name)})
    assert sfn.start_execution(stateMachineArn=machine, name="p-3", input="{}")["executionArn"].endswith(":p-3")
    assert reads == ["p-6"], reads   # only the execution added since the last start
    sfn.start_execution(stateMachineArn=machine, name="p-7", input="{}")
    assert reads == ["p-6"], reads
    for execution in list(state_machine.executions):
        sfn.stop_execution(executionArn=execution.exec_arn)
        runtime.wait_execution(execution.exec_arn)   # the stop ends the execution on its own thread
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=machine, name="p-2", input="{}")   # finished: not again


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


def test_a_callback_while_another_execution_is_starting(runtime, monkeypatch):
    """The race behind a 500 under concurrent decisions, made deterministic: StartExecution registers the
    execution with its state machine before `Execution.start` gives it a status and a worker (and the
    worker's own thread its environment). A SendTaskSuccess or a ListExecutions in that moment neither
    fails nor finds a callback in it, and the execution reads RUNNING, as StartExecution is atomic in AWS."""
    from moto.stepfunctions.parser.backend.execution import Execution
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    sfn = runtime.client("stepfunctions")
    arn = sfn.create_state_machine(name=f"t-start-{uuid.uuid4().hex[:8]}", definition=json.dumps(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "Comment": "echo", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/local-test")["stateMachineArn"]
    registered, go = threading.Event(), threading.Event()
    original_start = Execution.start

    def held_start(self):   # registered with the state machine, not started yet
        registered.set()
        assert go.wait(30)
        original_start(self)

    monkeypatch.setattr(Execution, "start", held_start)
    with ThreadPoolExecutor(1) as pool:
        started = pool.submit(sfn.start_execution, stateMachineArn=arn)
        try:
            assert registered.wait(30)
            [starting] = [e for sm in _backends(runtime) if sm.arn == arn for e in sm.executions]
            for unstarted in (None, type("WorkerWithoutEnvironmentYet", (), {"env": None})()):
                starting.exec_worker = unstarted
                with pytest.raises(sfn.exceptions.InvalidToken):
                    sfn.send_task_success(taskToken="no-such-token", output="{}")
                running = sfn.list_executions(stateMachineArn=arn, statusFilter="RUNNING")["executions"]
                assert [e["executionArn"] for e in running] == [starting.exec_arn]
                assert all(e.exec_worker is not None and e.exec_worker.env is not None
                           for backend in _parser_backends()
                           for e in StepFunctionsParserBackend._get_executions(backend))
            starting.exec_worker = None
        finally:
            go.set()
        execution_arn = started.result(timeout=30)["executionArn"]
    deadline = time.monotonic() + 30
    while sfn.describe_execution(executionArn=execution_arn)["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sfn.describe_execution(executionArn=execution_arn)["status"] == "SUCCEEDED"


def _parser_backends():
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    return [backend for _, _, backend in stepfunctions_parser_backends.iter_backends()]


def _backends(runtime):
    return [sm for backend in _parser_backends() for sm in backend.state_machines]


# -- EXPRESS state machines, Step Functions integrations, the runtime's clock --------------------------

ROLE = "arn:aws:iam::123456789012:role/local-test"


def _machine(runtime, definition: dict, machine_type: str = "STANDARD") -> str:
    sfn = runtime.client("stepfunctions")
    name = f"t-{machine_type.lower()}-{uuid.uuid4().hex[:8]}"
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE,
                                    type=machine_type)["stateMachineArn"]


PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Comment": "echo", "End": True}}}


def test_express_executions_are_express(runtime):
    from mxflow_local import stepfunctions

    sfn = runtime.client("stepfunctions")
    machine = _machine(runtime, PASS, "EXPRESS")
    ended = []
    stepfunctions.add_express_listener(ended.append)
    try:
        arns = [sfn.start_execution(stateMachineArn=machine, name="same-name", input="{}")["executionArn"]
                for _ in range(2)]  # an Express name may repeat: two executions
        assert arns[0] != arns[1]
        for arn in arns:
            assert runtime.wait_execution(arn)["status"] == "SUCCEEDED"
        with pytest.raises(sfn.exceptions.ExecutionNotRedrivable):
            sfn.redrive_execution(executionArn=arns[0])
        assert sfn.describe_execution(executionArn=arns[0])["redriveStatus"] == "NOT_REDRIVABLE"
    finally:
        stepfunctions.remove_express_listener(ended.append)
    mine = [r for r in ended if r["stateMachineArn"] == machine]
    assert [r["status"] for r in mine] == ["SUCCEEDED", "SUCCEEDED"] and all(r["stopDate"] >= r["startDate"] for r in mine)
    # two concurrent executions may end in either order
    assert sorted(r["executionArn"] for r in runtime.express_executions if r["stateMachineArn"] == machine) == sorted(arns)


def test_finished_express_executions_are_dropped_after_their_retention(runtime, monkeypatch):
    from mxflow_local import stepfunctions

    monkeypatch.setattr(stepfunctions, "EXPRESS_RETENTION_SECONDS", 0.0)
    sfn = runtime.client("stepfunctions")
    machine = _machine(runtime, PASS, "EXPRESS")
    first = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    runtime.wait_execution(first)
    time.sleep(1.1)  # purges run at most once a second, when the next execution starts
    second = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    runtime.wait_execution(second)
    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.describe_execution(executionArn=first)
    assert [e["executionArn"] for e in sfn.list_executions(stateMachineArn=machine)["executions"]] == [second]


def test_express_definitions_refuse_callbacks_and_sync(runtime):
    sfn = runtime.client("stepfunctions")
    waiting = {"StartAt": "W", "States": {"W": {"Type": "Task", "End": True,
                                                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                                                "Parameters": {"FunctionName": "f", "Payload": {"t.$": "$$.Task.Token"}}}}}
    with pytest.raises(sfn.exceptions.InvalidDefinition, match="waitForTaskToken"):
        _machine(runtime, waiting, "EXPRESS")
    assert _machine(runtime, waiting, "STANDARD")  # fine for STANDARD


def test_start_execution_sync2_of_an_express_child_and_the_sdk_error_names(runtime):
    child = _machine(runtime, {"StartAt": "F", "States": {
        "F": {"Type": "Choice", "Choices": [{"Variable": "$.x.fail", "BooleanEquals": True, "Next": "Bad"}],
              "Default": "Ok"},
        "Bad": {"Type": "Fail", "Error": "StageFailed", "CausePath": "$.x.why"},
        "Ok": {"Type": "Pass", "Parameters": {"got.$": "$.x"}, "End": True}}}, "EXPRESS")
    parent = _machine(runtime, {"StartAt": "R", "States": {
        "R": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
              "Parameters": {"StateMachineArn": child, "Input": {"x.$": "States.StringToJson($.cause)"}},
              "ResultSelector": {"output.$": "$.Output", "status.$": "$.Status"}, "End": True}}})
    sfn = runtime.client("stepfunctions")
    ok = sfn.start_execution(stateMachineArn=parent, name=f"ok-{uuid.uuid4().hex[:6]}",
                             input=json.dumps({"cause": json.dumps({"fail": False, "why": "-"})}))["executionArn"]
    result = runtime.wait_execution(ok)
    assert result["status"] == "SUCCEEDED", result
    assert json.loads(result["output"]) == {"output": {"got": {"fail": False, "why": "-"}}, "status": "SUCCEEDED"}
    bad = sfn.start_execution(stateMachineArn=parent, name=f"bad-{uuid.uuid4().hex[:6]}",
                              input=json.dumps({"cause": json.dumps({"fail": True, "why": "no cover"})}))["executionArn"]
    result = runtime.wait_execution(bad)
    assert (result["status"], result["error"]) == ("FAILED", "States.TaskFailed")
    assert json.loads(result["cause"])["Cause"] == "no cover"
    # the request-response integrations, with the error names AWS gives
    caller = _machine(runtime, {"StartAt": "Start", "States": {
        "Start": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution",
                  "Parameters": {"StateMachineArn": parent, "Name.$": "$.name", "Input": {}},
                  "Catch": [{"ErrorEquals": ["StepFunctions.ExecutionAlreadyExistsException"],
                             "ResultPath": "$.exists", "Next": "Answer"}], "ResultPath": None, "Next": "Answer"},
        "Answer": {"Type": "Task", "Resource": "arn:aws:states:::aws-sdk:sfn:sendTaskSuccess",
                   "Parameters": {"TaskToken": "not-a-token", "Output": "{}"},
                   "Catch": [{"ErrorEquals": ["Sfn.InvalidTokenException"], "ResultPath": "$.gone", "Next": "Done"}],
                   "End": True},
        "Done": {"Type": "Pass", "End": True}}}, "EXPRESS")
    done = sfn.start_execution(stateMachineArn=caller, input=json.dumps({"name": ok.rsplit(":", 1)[-1]}))
    output = json.loads(runtime.wait_execution(done["executionArn"])["output"])
    assert output["exists"]["Error"] == "StepFunctions.ExecutionAlreadyExistsException"
    assert output["gone"]["Error"] == "Sfn.InvalidTokenException"


def test_a_retried_callback_task_waits_again_with_a_new_token(runtime):
    """Each attempt of a retried `.waitForTaskToken` task is a new task with its own token (AWS); in
    moto the retry kept the first attempt's token, whose wait was over, and timed out at once."""
    sqs = runtime.client("sqs")
    queue = sqs.create_queue(QueueName=f"tokens-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    machine = _machine(runtime, {"StartAt": "Wait", "States": {"Wait": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"QueueUrl": queue, "MessageBody": {"token.$": "$$.Task.Token"}},
        "Retry": [{"ErrorEquals": ["TryAgain"], "IntervalSeconds": 1, "MaxAttempts": 1}], "End": True}}})
    sfn = runtime.client("stepfunctions")
    arn = sfn.start_execution(stateMachineArn=machine, name=f"t-{uuid.uuid4().hex[:6]}", input="{}")["executionArn"]

    def next_token() -> str:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for m in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []):
                sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
                return json.loads(m["Body"])["token"]
        raise TimeoutError("no task token on the queue")

    first = next_token()
    sfn.send_task_failure(taskToken=first, error="TryAgain", cause="once")
    second = next_token()
    assert second != first
    sfn.send_task_success(taskToken=second, output=json.dumps({"done": True}))
    result = runtime.wait_execution(arn, timeout=15)
    assert result["status"] == "SUCCEEDED" and json.loads(result["output"]) == {"done": True}


def test_retry_backoff_follows_the_runtime_clock(runtime):
    wait = _machine(runtime, {"StartAt": "W", "States": {"W": {
        "Type": "Fail", "Error": "Boom"}}})
    retried = _machine(runtime, {"StartAt": "Go", "States": {
        "Go": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
               "Parameters": {"StateMachineArn": wait, "Input": {}},
               "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 100, "MaxAttempts": 2,
                          "BackoffRate": 1}], "End": True}}})
    runtime.clock.virtual_sleeps = True
    before = runtime.clock.offset_seconds
    try:
        arn = runtime.client("stepfunctions").start_execution(stateMachineArn=retried, name=f"r-{uuid.uuid4().hex[:6]}",
                                                              input="{}")["executionArn"]
        result = runtime.wait_execution(arn, timeout=15)  # 200 s of backoff, not waited for
    finally:
        advanced = runtime.clock.offset_seconds - before
        runtime.clock.reset()
    # round: the offset is a float sum, and `after - before` of a non-zero `before` can come out at
    # 199.99999999999997 (seen in a full run, where earlier tests had advanced the clock)
    assert result["status"] == "FAILED" and round(advanced, 6) >= 200


def test_the_layer_and_the_queue_read_the_runtime_clock(runtime):
    """The FIFO queue's 5-minute deduplication window ends when the clock is advanced past it."""
    from mxflow.clock import parse_utc, utc_now

    sqs = runtime.client("sqs")
    url = runtime.physical("ReleaseQueue") if "ReleaseQueue" in runtime.record.resources else \
        sqs.create_queue(QueueName=f"dedup-{uuid.uuid4().hex[:6]}.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    try:
        sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g", MessageDeduplicationId="p-1")
        sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g", MessageDeduplicationId="p-1")
        before = parse_utc(utc_now())
        runtime.clock.advance(301)
        assert (parse_utc(utc_now()) - before).total_seconds() >= 301
        sqs.send_message(QueueUrl=url, MessageBody="a", MessageGroupId="g", MessageDeduplicationId="p-1")
        depth = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        assert depth["Attributes"]["ApproximateNumberOfMessages"] == "2"  # deduplicated within, not after
    finally:
        runtime.clock.reset()


def test_aws_call_faults_before_and_after_the_call(runtime):
    sqs = runtime.client("sqs")
    url = sqs.create_queue(QueueName=f"faults-{uuid.uuid4().hex[:6]}")["QueueUrl"]
    refused = runtime.faults.inject_call("sqs", "SendMessage", error_code="KMS.AccessDeniedException", status=400)
    with pytest.raises(sqs.exceptions.ClientError) as raised:
        sqs.send_message(QueueUrl=url, MessageBody="x")
    assert raised.value.response["Error"]["Code"] == "KMS.AccessDeniedException" and refused.fired == 1
    runtime.faults.inject_call("sqs", "SendMessage", when="after", error_code="ReadTimeout")
    from botocore.exceptions import ReadTimeoutError

    with pytest.raises(ReadTimeoutError):
        sqs.send_message(QueueUrl=url, MessageBody="y")
    sqs.send_message(QueueUrl=url, MessageBody="z")  # the faults are used up
    bodies = sorted(m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"])
    assert bodies == ["y", "z"]  # "after": the message went in although the caller saw an error


def test_an_execution_runs_on_one_thread_and_its_timeout_still_ends_it(runtime):
    """patch_program_thread: a running execution without an execution-level TimeoutSeconds has no thread
    that only waits for its states (moto's Program.eval thread); one with it is still TIMED_OUT."""
    sfn = runtime.client("stepfunctions")
    waits = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Comment": "a running execution", "Seconds": 2,
                                              "End": True}}}
    plain = sfn.start_execution(stateMachineArn=_machine(runtime, waits), input="{}")["executionArn"]
    timed = sfn.start_execution(stateMachineArn=_machine(runtime, {**waits, "TimeoutSeconds": 1}),
                                input="{}")["executionArn"]
    time.sleep(0.5)
    program_threads = [t for t in threading.enumerate() if t.name.endswith("(eval)")]
    assert len(program_threads) == 1        # the timed one's: its join is what times it out
    assert runtime.wait_execution(plain)["status"] == "SUCCEEDED"
    assert runtime.wait_execution(timed)["status"] == "TIMED_OUT"
