"""The two state machines (docs/flow.md): statemachines/payment_flow.asl.json (PaymentFlow, EXPRESS)
and statemachines/payment.asl.json (the anchor, STANDARD). Their shape (states, Retry, Catch, what
each task sends), then their behaviour, run by moto's Step Functions interpreter (real ASL semantics:
ResultSelector, Choice, .waitForTaskToken, TimeoutSecondsPath, Retry, Catch, startExecution.sync:2,
aws-sdk:sfn, intrinsic functions). Both machines and their task functions are created from
template.yaml by the local runtime's template reader (the definitions as deployed, substitutions
applied); scripted code stands in for the handlers (what is under test here is the flow, not the
functions)."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import threading
import time
import uuid
from collections import deque

import boto3
import pytest
from moto import mock_aws

from mxflow_local.clock import CLOCK
from mxflow_local.lambda_runner import FunctionSpec, LambdaRunner, install
from mxflow_local.resources import StackBuilder, create_resources

from .conftest import ACCOUNT, PLACEHOLDER, REGION, application_template

RETRIED = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
           "Lambda.TooManyRequestsException", "Sandbox.Timedout", "TransientError"]

# --------------------------------------------------------------------------------------------------
# shape


def _targets(state: dict) -> set[str]:
    found = {state[k] for k in ("Next", "Default") if k in state}
    found |= {c["Next"] for c in state.get("Choices", [])}
    found |= {c["Next"] for c in state.get("Catch", [])}
    return found


@pytest.fixture(params=["flow", "anchor"])
def machine(request, asl, flow_asl):
    return {"flow": flow_asl, "anchor": asl}[request.param]


def test_every_state_has_a_comment_and_jsonpath(machine):
    assert machine.get("QueryLanguage", "JSONPath") == "JSONPath"
    for name, state in machine["States"].items():
        assert state.get("Comment", "").strip(), f"{name} has no Comment"
        assert state.get("QueryLanguage", "JSONPath") == "JSONPath"
        assert not {"Arguments", "Output", "Assign"} & set(state)


def test_every_target_exists_and_every_state_is_reachable(machine):
    states = machine["States"]
    seen, todo = set(), [machine["StartAt"]]
    while todo:
        name = todo.pop()
        assert name in states, f"transition to a missing state {name}"
        if name not in seen:
            seen.add(name)
            todo.extend(_targets(states[name]))
    assert seen == set(states)


def test_every_task_retries_named_errors_with_backoff_and_full_jitter(machine):
    for name, task in ((n, s) for n, s in machine["States"].items() if s["Type"] == "Task"):
        assert task["Retry"], f"{name} has no Retry"
        for retry in task["Retry"]:
            assert "States.ALL" not in retry["ErrorEquals"] and "States.TaskFailed" not in retry["ErrorEquals"], name
            assert retry["JitterStrategy"] == "FULL" and retry["BackoffRate"] == 2, name
            assert retry["IntervalSeconds"] >= 1 and retry["MaxDelaySeconds"] >= retry["IntervalSeconds"], name
            assert retry.get("Comment"), name
        if task["Resource"] in ("${LambdaInvoke}", "${LambdaInvokeWaitForTaskToken}"):
            assert task["Retry"][0]["ErrorEquals"] == RETRIED and task["Retry"][0]["MaxAttempts"] == 3, name
            # the Region gate's refusal (mxflow.errors.RegionUnavailable) is retried by its own name: a
            # Lambda error is matched by its class name only, never by a base class (TransientError)
            assert ["RegionUnavailable"] in [retry["ErrorEquals"] for retry in task["Retry"]], name
        for catch in task.get("Catch", []):
            assert catch.get("Comment") or catch["ErrorEquals"] != ["States.ALL"], name


def test_the_express_flow_uses_no_callback_or_sync_pattern(flow_asl_text):
    """Express workflows support neither .waitForTaskToken nor .sync (AWS refuses the definition)."""
    assert ".waitForTaskToken" not in flow_asl_text and "Sync" not in flow_asl_text


def test_the_flow_starts_at_its_stage_and_hands_every_failure_over(flow_asl):
    states = flow_asl["States"]
    begin = states["Begin"]
    assert begin["Choices"][0] == {"Variable": "$.resume", "IsPresent": True, "Next": "Unpack"}
    assert {c["StringEquals"]: c["Next"] for c in begin["Choices"][1:]} == {
        "validate": "Validate", "send": "Send", "settle": "FromCarried", "recall": "Recall"}
    assert states["FromCarried"]["Parameters"] == {"messageId.$": "$.carried.messageId", "outbound": None}
    for task, failed in (("Validate", "ValidateFailed"), ("ParkAnchor", "ValidateFailed"), ("Send", "SendFailed"),
                         ("Settle", "SettleFailed"), ("Recall", "RecallFailed")):
        assert states[task]["Catch"][-1]["ErrorEquals"] == ["States.ALL"] and states[task]["Catch"][-1]["Next"] == failed
        assert states[failed]["Next"] == "HandOver"
    assert states["SettleFailed"]["Parameters"] == {"stage": "settle", "carried": {"messageId.$": "$.release.messageId"},
                                                   "error.$": "$.failure.Error"}  # the error named in the cause
    # a recall carries nothing: its writes are idempotent, the anchor's Resume applies it again
    assert states["RecallFailed"]["Parameters"] == {"stage": "recall", "carried": {}, "error.$": "$.failure.Error"}
    hand_over = states["HandOver"]
    assert [c["Next"] for c in hand_over["Choices"]] == ["DescribeFailure", "FailAnchor"]
    assert hand_over["Default"] == "StartRepair"
    assert states["StageFailed"] == {**states["StageFailed"], "Type": "Fail", "Error": "StageFailed",
                                     "CausePath": "$.failureCause.cause"}


def test_what_the_flow_tasks_send(flow_asl):
    states = flow_asl["States"]
    assert states["Validate"]["Parameters"] == {"FunctionName": "${ValidateFunctionArn}",
                                                "Payload": {"paymentId.$": "$.paymentId", "message.$": "$.message"}}
    assert states["Send"]["Parameters"]["Payload"] == {"paymentId.$": "$.paymentId", "message.$": "$.message"}
    assert states["Send"]["ResultSelector"] == {"messageId.$": "$.Payload.messageId",
                                                "outbound.$": "$.Payload.outbound"}
    assert states["Settle"]["Parameters"]["Payload"] == {"paymentId.$": "$.paymentId",
                                                         "messageId.$": "$.release.messageId",
                                                         "message.$": "$.message", "outbound.$": "$.release.outbound"}
    start_anchor = states["StartAnchor"]
    assert start_anchor["Resource"] == "${StatesStartExecution}"
    assert start_anchor["Parameters"]["StateMachineArn"] == "${PaymentStateMachineArn}"
    assert start_anchor["Parameters"]["Name.$"] == "$.paymentId"
    assert start_anchor["Catch"][0]["ErrorEquals"] == ["StepFunctions.ExecutionAlreadyExistsException"]
    assert states["StartRepair"]["Parameters"]["Input"]["resume.$"] == "$.handover"
    assert states["AnswerAnchor"]["Resource"] == "${SfnSendTaskSuccess}"
    assert states["FailAnchor"]["Parameters"] == {"TaskToken.$": "$.taskToken", "Error": "StageFailed",
                                                  "Cause.$": "States.JsonToString($.handover)"}


def test_the_anchor_passes_one_state_on_the_happy_path(asl):
    states = asl["States"]
    assert asl["StartAt"] == "AwaitOutcome"
    wait = states["AwaitOutcome"]
    assert wait["Resource"] == "${LambdaInvokeWaitForTaskToken}" and wait["End"] is True
    assert wait["Parameters"] == {"FunctionName": "${ParkFunctionArn}", "Payload": {
        "paymentId.$": "$.paymentId", "taskToken.$": "$$.Task.Token", "resume.$": "$.resume",
        "anchor.$": "$$.Execution.Name"}}   # the anchor's name: an anchor the payment has left does nothing
    assert wait["TimeoutSecondsPath"] == "$.decisionTimeoutSeconds" and "TimeoutSeconds" not in wait
    assert [(c["ErrorEquals"], c["Next"]) for c in wait["Catch"]] == [
        (["States.Timeout"], "DecisionTimedOut"), (["StageFailed"], "Resume")]
    assert states["DecisionTimedOut"]["Next"] == "AfterTimeout"
    resume = states["Resume"]
    assert resume["Resource"] == "${StatesStartExecutionSync}" and resume["End"] is True
    assert "Catch" not in resume  # a Resume that fails leaves the execution FAILED, to be redriven
    assert resume["Parameters"]["Input"]["resume.$"] == "States.StringToJson($.failure.Cause)"
    assert resume["Parameters"]["StateMachineArn"] == "${PaymentFlowArn}"


def test_placeholders_are_the_agreed_ones(asl_text, flow_asl_text):
    assert set(PLACEHOLDER.findall(asl_text)) == {
        "LambdaInvoke", "LambdaInvokeWaitForTaskToken", "StatesStartExecutionSync", "ParkFunctionArn",
        "DecisionTimeoutFunctionArn", "PaymentFlowArn"}
    assert set(PLACEHOLDER.findall(flow_asl_text)) == {
        "LambdaInvoke", "StatesStartExecution", "SfnSendTaskSuccess", "SfnSendTaskFailure", "ValidateFunctionArn",
        "ParkFunctionArn", "SendFunctionArn", "SettleFunctionArn", "PaymentStateMachineArn", "RecallFunctionArn"}


# --------------------------------------------------------------------------------------------------
# behaviour in moto's interpreter

FUNCTIONS = ("Validate", "Park", "DecisionTimeout", "Send", "Settle")
SCRIPT_MODULE = "mxflow_template_tests_lambda_script"
FAKE_HANDLER = f"""
import os
import sys

def lambda_handler(event, context):
    return sys.modules[{SCRIPT_MODULE!r}].handle(os.environ["SCRIPTED_FUNCTION"], event)
"""


@functools.cache
def translated_template():
    return application_template()


@functools.cache
def aws_client(service: str):
    """One client per service for the module (moto answers whichever mock is running)."""
    return boto3.client(service, region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


class TransientError(Exception):
    """The functions' retryable error (the state machines retry it by this class name)."""


class RegionUnavailable(Exception):
    """The Region gate's refusal of a step (mxflow.errors.RegionUnavailable, a TransientError in Python; the
    state machines know it by this class name)."""


class ReleaseOutcomeUnknown(Exception):
    """The Send step's refusal past the release window (not retried)."""


class LambdaScript:
    """What each scripted function answers, in order (a value, an exception to raise, or a callable of
    the event), and every call it received."""

    def __init__(self):
        self.answers: dict[str, deque] = {name: deque() for name in FUNCTIONS}
        self.calls: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def handle(self, function_name: str, event: dict):
        with self.lock:
            self.calls.append((function_name, event))
            answer = self.answers[function_name].popleft() if self.answers[function_name] else {}
        if isinstance(answer, Exception):
            raise answer
        return answer(event) if callable(answer) else answer

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def events(self, name: str) -> list[dict]:
        return [event for called, event in self.calls if called == name]


class Flow:
    def __init__(self, sfn, anchor_arn: str, flow_arn: str, script: LambdaScript):
        self.sfn, self.anchor_arn, self.flow_arn, self.script = sfn, anchor_arn, flow_arn, script

    def start_flow(self, payment_id: str, stage: str = "validate", **extra) -> str:
        flow_input = {"paymentId": payment_id, "stage": stage, "message": None, **extra}
        if stage == "validate":
            flow_input.setdefault("decisionTimeoutSeconds", 60)
        return self.sfn.start_execution(stateMachineArn=self.flow_arn, input=json.dumps(flow_input))["executionArn"]

    def anchor(self, payment_id: str) -> str:
        return self.anchor_arn.replace(":stateMachine:", ":execution:") + f":{payment_id}"

    def finished(self, execution_arn: str, within: float = 20.0) -> dict:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                described = self.sfn.describe_execution(executionArn=execution_arn)
            except self.sfn.exceptions.ExecutionDoesNotExist:
                described = {"status": "RUNNING"}  # not started yet
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.02)
        raise AssertionError(f"{execution_arn} still running after {within} s")

    def parked_token(self, within: float = 10.0) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if self.script.events("Park"):
                return self.script.events("Park")[-1]["taskToken"]
            time.sleep(0.02)
        raise AssertionError("the anchor never parked")

    def states_entered(self, execution_arn: str) -> list[str]:
        events = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]

    def resumes(self, event: dict) -> dict:
        """Park's dispatch of a handed-over stage: PaymentFlow at that stage, with the wait's token."""
        self.start_flow(event["paymentId"], event["resume"]["stage"], taskToken=event["taskToken"], mode="anchored",
                        carried=event["resume"].get("carried") or {})
        return {"action": "resumed"}


@pytest.fixture()
def flow(tmp_path):
    """Both state machines running in moto, created from template.yaml with their task functions;
    each function's code is the script. Retry backoff runs on the local clock without sleeping."""
    (tmp_path / "app.py").write_text(FAKE_HANDLER)
    script = LambdaScript()
    sys.modules[SCRIPT_MODULE] = script
    install()
    # A stack name of its own: another suite's local runtime may keep moto's state alive in this process.
    stack = f"payment-{uuid.uuid4().hex[:8]}"
    template = translated_template()
    template = dataclasses.replace(template, parameters={**template.parameters, "AWS::StackName": stack})
    CLOCK.virtual_sleeps = True
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        from mxflow_local import stepfunctions

        stepfunctions.install()
        builder = StackBuilder(template, region=REGION, account_id=ACCOUNT, stack_name=stack, client=aws_client)
        resolver = create_resources(builder, only=["PaymentStateMachine"])
        runner = LambdaRunner(ACCOUNT, REGION)
        for name in FUNCTIONS:
            created = builder.record.functions[f"{name}Function"]
            runner.add(FunctionSpec(logical_id=f"{name}Function", name=created["FunctionName"], arn=created["Arn"],
                                    code_dir=tmp_path, handler="app.lambda_handler", layer_dirs=[],
                                    environment={"SCRIPTED_FUNCTION": name}, timeout_s=10))
        try:
            yield Flow(aws_client("stepfunctions"), resolver.ref("PaymentStateMachine"), resolver.ref("PaymentFlow"),
                       script)
        finally:
            CLOCK.reset()
            runner.close()
            sys.modules.pop(SCRIPT_MODULE, None)


def outcome(name: str) -> dict:
    return {"outcome": name, "status": {"invalid": "RJCT", "await": "ACTC", "auto-approve": "ACSP"}[name],
            "decisionTimeoutSeconds": 60}


def test_the_machines_are_the_templates_express_and_standard(flow):
    flow_definition = flow.sfn.describe_state_machine(stateMachineArn=flow.flow_arn)
    anchor_definition = flow.sfn.describe_state_machine(stateMachineArn=flow.anchor_arn)
    assert (flow_definition["type"], anchor_definition["type"]) == ("EXPRESS", "STANDARD")
    assert flow.anchor_arn.endswith("-payment") and flow.flow_arn.endswith("-payment-flow")
    for described in (flow_definition, anchor_definition):
        assert not PLACEHOLDER.findall(described["definition"])
    anchor = json.loads(anchor_definition["definition"])
    assert anchor["States"]["Resume"]["Resource"] == "arn:aws:states:::states:startExecution.sync:2"
    assert anchor["States"]["Resume"]["Parameters"]["StateMachineArn"] == flow.flow_arn


def test_a_straight_through_payment_is_validated_sent_and_settled_with_no_anchor(flow):
    flow.script.answers["Validate"].append(outcome("auto-approve"))
    flow.script.answers["Send"].append({"messageId": "m-1", "outbound": "PEVudmVsb3BlLz4="})
    flow.script.answers["Settle"].append({"paymentId": "pay-stp", "status": "ACSC"})
    described = flow.finished(flow.start_flow("pay-stp", message="PE1zZy8+"))
    assert described["status"] == "SUCCEEDED"
    assert flow.script.names() == ["Validate", "Send", "Settle"]
    assert flow.script.events("Validate") == [{"paymentId": "pay-stp", "message": "PE1zZy8+"}]
    assert flow.script.events("Settle") == [{"paymentId": "pay-stp", "messageId": "m-1", "message": "PE1zZy8+",
                                             "outbound": "PEVudmVsb3BlLz4="}]  # the message as sent
    assert flow.sfn.list_executions(stateMachineArn=flow.anchor_arn)["executions"] == []  # 0 transitions billed


def test_an_invalid_payment_ends_without_an_anchor(flow):
    flow.script.answers["Validate"].append(outcome("invalid"))
    assert flow.finished(flow.start_flow("pay-invalid"))["status"] == "SUCCEEDED"
    assert flow.script.names() == ["Validate"]
    assert flow.sfn.list_executions(stateMachineArn=flow.anchor_arn)["executions"] == []


def test_the_decision_path_passes_exactly_one_anchor_state(flow):
    flow.script.answers["Validate"].extend([outcome("await"), outcome("await")])
    assert flow.finished(flow.start_flow("pay-decide"))["status"] == "SUCCEEDED"
    token = flow.parked_token()
    assert flow.script.events("Park") == [{"paymentId": "pay-decide", "taskToken": token, "resume": None,
                                           "anchor": "pay-decide"}]   # the anchor is named by its payment id
    anchor = flow.anchor("pay-decide")
    assert flow.sfn.describe_execution(executionArn=anchor)["status"] == "RUNNING"
    # a duplicate run (Express starts are at least once) finds the anchor there: no error
    assert flow.finished(flow.start_flow("pay-decide"))["status"] == "SUCCEEDED"
    # the consumer approves: the API starts the flow at send with the anchor's token
    flow.script.answers["Send"].append({"messageId": "m-2", "outbound": "PEVudmVsb3BlLz4="})
    flow.script.answers["Settle"].append({"status": "ACSC"})
    assert flow.finished(flow.start_flow("pay-decide", "send", taskToken=token, mode="anchored"))["status"] == "SUCCEEDED"
    assert flow.finished(anchor)["status"] == "SUCCEEDED"
    assert flow.states_entered(anchor) == ["AwaitOutcome"]  # one Standard transition
    assert flow.script.names() == ["Validate", "Park", "Validate", "Send", "Settle"]


def test_a_step_the_region_gate_refused_is_tried_again_and_the_payment_waits(flow):
    """RegionUnavailable (the lease the step saw ended before its write, on a slow host) is retried: the
    anchor's wait parks the payment on a later attempt, it does not fail the anchor (a payment left in ACTC)."""
    flow.script.answers["Validate"].extend([RegionUnavailable("lease")] * 2 + [outcome("await")])
    flow.script.answers["Park"].extend([RegionUnavailable("lease")] * 2 + [{"action": "parked"}])
    assert flow.finished(flow.start_flow("pay-gate"))["status"] == "SUCCEEDED"
    anchor = flow.anchor("pay-gate")
    deadline = time.monotonic() + 10   # the wait's third attempt parks it (the first two were refused)
    while flow.script.names().count("Park") < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    token = flow.parked_token()
    assert flow.script.names() == ["Validate"] * 3 + ["Park"] * 3
    assert flow.sfn.describe_execution(executionArn=anchor)["status"] == "RUNNING"   # waiting for the decision
    flow.sfn.send_task_success(taskToken=token, output=json.dumps({"paymentId": "pay-gate", "status": "RJCT"}))
    assert flow.finished(anchor)["status"] == "SUCCEEDED"
    assert flow.states_entered(anchor) == ["AwaitOutcome"]


def test_a_reject_answers_the_wait_and_the_anchor_ends(flow):
    flow.script.answers["Validate"].append(outcome("await"))
    flow.start_flow("pay-reject")
    token = flow.parked_token()
    flow.sfn.send_task_success(taskToken=token, output=json.dumps({"paymentId": "pay-reject", "status": "RJCT"}))
    anchor = flow.anchor("pay-reject")
    assert flow.finished(anchor)["status"] == "SUCCEEDED"
    assert flow.states_entered(anchor) == ["AwaitOutcome"]


def test_a_failed_send_of_a_straight_through_payment_starts_the_anchor_which_resumes_it(flow):
    flow.script.answers["Validate"].append(outcome("auto-approve"))
    flow.script.answers["Send"].extend([TransientError("throttled")] * 4 + [{"messageId": "m-3", "outbound": "PEVudmVsb3BlLz4="}])
    flow.script.answers["Park"].append(flow.resumes)
    flow.script.answers["Settle"].append({"status": "ACSC"})
    assert flow.finished(flow.start_flow("pay-repair"))["status"] == "SUCCEEDED"  # handed over: done here
    anchor = flow.anchor("pay-repair")
    assert flow.finished(anchor)["status"] == "SUCCEEDED"
    assert flow.script.events("Park")[0]["resume"] == {"stage": "send", "carried": {}, "error": "TransientError"}
    assert flow.script.names() == ["Validate"] + ["Send"] * 4 + ["Park", "Send", "Settle"]
    assert flow.states_entered(anchor) == ["AwaitOutcome"]
    anchor_input = json.loads(flow.sfn.describe_execution(executionArn=anchor)["input"])
    assert anchor_input == {"paymentId": "pay-repair", "decisionTimeoutSeconds": 60,
                            "resume": {"stage": "send", "carried": {}, "error": "TransientError"}}


def test_a_failed_validation_is_handed_over_too(flow):
    flow.script.answers["Validate"].extend([TransientError("store down")] * 4 + [outcome("invalid")])
    flow.script.answers["Park"].append(flow.resumes)
    flow.start_flow("pay-validate")
    anchor = flow.anchor("pay-validate")
    assert flow.finished(anchor)["status"] == "SUCCEEDED"
    assert flow.script.events("Park")[0]["resume"] == {"stage": "validate", "carried": {}, "error": "TransientError"}
    assert flow.script.names() == ["Validate"] * 4 + ["Park", "Validate"]


def test_a_settle_that_fails_after_the_send_resumes_at_settle_with_the_message_id(flow):
    """The anchor's Resume runs PaymentFlow at settle carrying the sent message's id: never a second send."""
    flow.script.answers["Validate"].append(outcome("await"))
    flow.start_flow("pay-settle")
    token = flow.parked_token()
    flow.script.answers["Send"].append({"messageId": "m-4", "outbound": "PEVudmVsb3BlLz4="})
    flow.script.answers["Settle"].extend([TransientError("table down")] * 4 + [{"status": "ACSC"}])
    flow.start_flow("pay-settle", "send", taskToken=token, mode="anchored")
    anchor = flow.anchor("pay-settle")
    assert flow.finished(anchor)["status"] == "SUCCEEDED"
    assert flow.states_entered(anchor) == ["AwaitOutcome", "Resume"]
    assert flow.script.names().count("Send") == 1
    # resumed at settle: the message id carried, the outbound message built again from the received one
    assert flow.script.events("Settle")[-1] == {"paymentId": "pay-settle", "messageId": "m-4", "message": None,
                                                "outbound": None}


def test_a_resume_that_fails_leaves_the_anchor_failed_and_a_redrive_completes_it(flow):
    flow.script.answers["Validate"].append(outcome("await"))
    flow.start_flow("pay-redrive")
    token = flow.parked_token()
    flow.script.answers["Send"].append({"messageId": "m-5", "outbound": "PEVudmVsb3BlLz4="})
    flow.script.answers["Settle"].extend([TransientError("table down")] * 8)
    flow.start_flow("pay-redrive", "send", taskToken=token, mode="anchored")
    anchor = flow.anchor("pay-redrive")
    failed = flow.finished(anchor)
    assert failed["status"] == "FAILED" and failed["error"] == "States.TaskFailed"
    assert json.loads(json.loads(failed["cause"])["Cause"]) == {"stage": "settle", "carried": {"messageId": "m-5"},
                                                          "error": "TransientError"}
    assert flow.states_entered(anchor) == ["AwaitOutcome", "Resume"]
    assert flow.sfn.describe_execution(executionArn=anchor)["redriveStatus"] == "REDRIVABLE"
    flow.script.answers["Settle"].append({"status": "ACSC"})
    flow.sfn.redrive_execution(executionArn=anchor)
    assert flow.finished(anchor)["status"] == "SUCCEEDED"
    assert flow.states_entered(anchor) == ["AwaitOutcome", "Resume", "Resume"]  # the same input again
    assert flow.script.names().count("Send") == 1
    assert flow.script.events("Settle")[-1]["messageId"] == "m-5"


def test_an_unknown_release_outcome_is_not_retried_and_ends_failed_for_an_operator(flow):
    flow.script.answers["Validate"].append(outcome("auto-approve"))
    flow.script.answers["Send"].extend([ReleaseOutcomeUnknown("suspended")] * 3)
    flow.script.answers["Park"].append(flow.resumes)
    flow.start_flow("pay-unknown")
    anchor = flow.anchor("pay-unknown")
    failed = flow.finished(anchor)
    assert failed["status"] == "FAILED"
    assert flow.script.names() == ["Validate", "Send", "Park", "Send", "Send"]  # once per run, no Retry
    assert flow.states_entered(anchor) == ["AwaitOutcome", "Resume"]


def test_the_decision_timeout_rejects_or_resumes(flow):
    flow.script.answers["Validate"].extend([{**outcome("await"), "decisionTimeoutSeconds": 1}] * 2)
    answers = {"pay-timeout": {"action": "done", "resume": None, "status": "RJCT"},
               "pay-approved-late": {"action": "resume", "resume": {"stage": "send", "carried": {}}, "status": "ACSP"}}
    flow.script.answers["DecisionTimeout"].extend([lambda event: answers[event["paymentId"]]] * 2)
    flow.script.answers["Send"].append({"messageId": "m-6", "outbound": "PEVudmVsb3BlLz4="})
    flow.script.answers["Settle"].append({"status": "ACSC"})
    for payment_id in ("pay-timeout", "pay-approved-late"):
        flow.script.answers["Park"].append(lambda event: {"action": "parked"})
        flow.start_flow(payment_id)
    rejected, resumed = flow.anchor("pay-timeout"), flow.anchor("pay-approved-late")
    assert flow.finished(rejected)["status"] == "SUCCEEDED"
    assert flow.states_entered(rejected) == ["AwaitOutcome", "DecisionTimedOut", "AfterTimeout", "Finished"]
    assert flow.finished(resumed)["status"] == "SUCCEEDED"
    assert flow.states_entered(resumed) == ["AwaitOutcome", "DecisionTimedOut", "AfterTimeout", "Resume"]
    assert sorted(e["paymentId"] for e in flow.script.events("DecisionTimeout")) == ["pay-approved-late", "pay-timeout"]


def test_an_answer_to_a_gone_wait_is_no_failure(flow):
    flow.script.answers["Send"].append({"messageId": "m-7", "outbound": "PEVudmVsb3BlLz4="})
    flow.script.answers["Settle"].append({"status": "ACSC"})
    described = flow.finished(flow.start_flow("pay-gone", "send", taskToken="no-such-token", mode="anchored"))
    assert described["status"] == "SUCCEEDED"


def test_an_unknown_stage_fails_loudly(flow):
    described = flow.finished(flow.start_flow("pay-odd", "maybe"))
    assert described["status"] == "FAILED" and described["error"] == "UnknownStage"
    assert flow.script.names() == []


def test_a_run_the_anchor_started_at_validate_parks_a_waiting_payment_with_the_anchors_token(flow):
    flow.script.answers["Validate"].append(outcome("await"))
    flow.script.answers["Park"].append({"paymentId": "pay-parked", "status": "PDNG", "action": "parked"})
    described = flow.finished(flow.start_flow("pay-parked", "validate", taskToken="anchor-token", mode="anchored"))
    assert described["status"] == "SUCCEEDED"
    assert flow.script.names() == ["Validate", "Park"]
    assert flow.script.events("Park") == [{"paymentId": "pay-parked", "taskToken": "anchor-token"}]
    assert flow.sfn.list_executions(stateMachineArn=flow.anchor_arn)["executions"] == []  # no second anchor
