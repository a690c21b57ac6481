"""statemachines/payment.asl.json: its shape (names, inputs, outputs, Retry and Catch, as
docs/architecture.md describes the flow), and its behaviour, run by moto's Step Functions interpreter
(real ASL semantics: ResultSelector, Choice, waitForTaskToken, TimeoutSecondsPath, Retry, Catch). The
state machine and its task functions are created from template.yaml by the local runtime's template
reader (the definition as deployed, DefinitionSubstitutions applied); scripted code stands in for the
handlers (what is under test here is the flow, not the functions)."""

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

from mxflow_local.lambda_runner import FunctionSpec, LambdaRunner, install
from mxflow_local.resources import StackBuilder, create_resources

from .conftest import ACCOUNT, PLACEHOLDER, REGION, application_template

LAMBDA_SERVICE_ERRORS = ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                         "Lambda.TooManyRequestsException"]
EXPECTED_STATES = {"ValidateAndPersist": "Task", "Route": "Choice", "AwaitDecision": "Task",
                   "DecisionTimedOut": "Task", "Decide": "Choice", "UnknownDecision": "Fail",
                   "Finalise": "Task", "Release": "Task", "Rejected": "Succeed"}

# --------------------------------------------------------------------------------------------------
# shape


def test_states_and_comments(asl):
    assert asl["StartAt"] == "ValidateAndPersist"
    assert {name: s["Type"] for name, s in asl["States"].items()} == EXPECTED_STATES
    for name, state in asl["States"].items():
        assert state.get("Comment", "").strip(), f"{name} has no Comment"


def test_jsonpath_only(asl, asl_text):
    assert asl.get("QueryLanguage", "JSONPath") == "JSONPath"
    for state in asl["States"].values():
        assert state.get("QueryLanguage", "JSONPath") == "JSONPath"
        assert not {"Arguments", "Output", "Assign"} & set(state)
    assert "{%" not in asl_text


def _targets(state: dict) -> set[str]:
    found = {state[k] for k in ("Next", "Default") if k in state}
    found |= {c["Next"] for c in state.get("Choices", [])}
    found |= {c["Next"] for c in state.get("Catch", [])}
    return found


def test_every_target_exists_and_every_state_is_reachable(asl):
    states = asl["States"]
    seen, todo = set(), [asl["StartAt"]]
    while todo:
        name = todo.pop()
        assert name in states, f"transition to a missing state {name}"
        if name not in seen:
            seen.add(name)
            todo.extend(_targets(states[name]))
    assert seen == set(states)


def test_every_task_retries_lambda_service_errors_with_backoff_and_full_jitter(asl):
    tasks = {name: s for name, s in asl["States"].items() if s["Type"] == "Task"}
    assert len(tasks) == 5
    for name, task in tasks.items():
        retriers = [r for r in task["Retry"] if set(LAMBDA_SERVICE_ERRORS) <= set(r["ErrorEquals"])]
        assert retriers, f"{name} does not retry the Lambda service errors"
        retry = retriers[0]
        assert "TransientError" in retry["ErrorEquals"], name
        assert retry["IntervalSeconds"] == 1 and retry["BackoffRate"] == 2 and retry["MaxAttempts"] == 3, name
        assert retry["JitterStrategy"] == "FULL" and retry["MaxDelaySeconds"] >= retry["IntervalSeconds"], name
        # No catch-all retry: a business error must not be retried as if it were transient.
        for r in task["Retry"]:
            assert "States.ALL" not in r["ErrorEquals"] and "States.TaskFailed" not in r["ErrorEquals"], name


def test_validate_and_persist(asl):
    state = asl["States"]["ValidateAndPersist"]
    assert state["Resource"] == "${LambdaInvoke}"
    assert state["Parameters"] == {"FunctionName": "${ValidateFunctionArn}", "Payload.$": "$"}
    assert state["ResultSelector"] == {"outcome.$": "$.Payload.outcome",
                                       "decisionTimeoutSeconds.$": "$.Payload.decisionTimeoutSeconds",
                                       "status.$": "$.Payload.status"}
    assert state["ResultPath"] == "$.validation" and state["Next"] == "Route"


def test_routes(asl):
    route = asl["States"]["Route"]
    assert {(c["Variable"], c["StringEquals"], c["Next"]) for c in route["Choices"]} == {
        ("$.validation.outcome", "invalid", "Rejected"), ("$.validation.outcome", "auto-approve", "Release")}
    assert route["Default"] == "AwaitDecision"
    decide = asl["States"]["Decide"]
    routes = {}
    for choice in decide["Choices"]:
        for rule in choice.get("Or", [choice]):
            assert rule["Variable"] == "$.decision.action"
            routes[rule["StringEquals"]] = choice["Next"]
    assert routes == {"approve": "Release", "reject": "Finalise", "cancel": "Finalise", "timeout": "Finalise"}
    assert decide["Default"] == "UnknownDecision"


def test_await_decision_is_a_callback_with_a_timeout_from_the_input(asl):
    state = asl["States"]["AwaitDecision"]
    assert state["Resource"] == "${LambdaInvokeWaitForTaskToken}"
    assert state["Parameters"] == {"FunctionName": "${ParkFunctionArn}",
                                   "Payload": {"paymentId.$": "$.paymentId", "taskToken.$": "$$.Task.Token"}}
    assert state["TimeoutSecondsPath"] == "$.validation.decisionTimeoutSeconds"
    assert "TimeoutSeconds" not in state
    assert state["ResultPath"] == "$.decision" and state["Next"] == "Decide"
    assert state["Catch"] == [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "DecisionTimedOut"}]


def test_decision_timed_out_returns_a_decision(asl):
    state = asl["States"]["DecisionTimedOut"]
    assert state["Parameters"] == {"FunctionName": "${DecisionTimeoutFunctionArn}", "Payload": {"paymentId.$": "$.paymentId"}}
    assert state["ResultSelector"]["action.$"] == "$.Payload.action"
    assert state["ResultSelector"]["reasonCode.$"] == "$.Payload.reasonCode"
    assert state["ResultPath"] == "$.decision" and state["Next"] == "Decide"


def test_finalise_and_release(asl):
    finalise = asl["States"]["Finalise"]
    assert finalise["Parameters"] == {"FunctionName": "${FinaliseFunctionArn}",
                                      "Payload": {"paymentId.$": "$.paymentId", "decision.$": "$.decision"}}
    assert finalise["End"] is True
    release = asl["States"]["Release"]
    assert release["Parameters"] == {"FunctionName": "${ReleaseFunctionArn}", "Payload": {"paymentId.$": "$.paymentId"}}
    assert release["End"] is True
    # A technical failure that outlives the retries must FAIL the execution (redrive from Release).
    assert "Catch" not in release


def test_placeholders_are_the_agreed_ones(asl_text):
    assert set(PLACEHOLDER.findall(asl_text)) == {
        "LambdaInvoke", "LambdaInvokeWaitForTaskToken", "ValidateFunctionArn", "ParkFunctionArn",
        "DecisionTimeoutFunctionArn", "FinaliseFunctionArn", "ReleaseFunctionArn"}


# --------------------------------------------------------------------------------------------------
# behaviour in moto's interpreter

FUNCTIONS = ("Validate", "Park", "DecisionTimeout", "Finalise", "Release")
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
    """The functions' retryable error (the state machine retries it by this class name)."""


class ReleaseFailed(Exception):
    """A technical failure the state machine does not retry."""


class LambdaScript:
    """What each scripted function answers, in order, and every call it received."""

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
        return answer

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


@pytest.fixture()
def flow(tmp_path):
    """A running payment state machine in moto, created from template.yaml with its five task
    functions; each function's code is the script."""
    (tmp_path / "app.py").write_text(FAKE_HANDLER)
    script = LambdaScript()
    sys.modules[SCRIPT_MODULE] = script
    install()
    # A stack name of its own: another suite's local runtime may keep moto's state alive in this process.
    stack = f"payment-{uuid.uuid4().hex[:8]}"
    template = translated_template()
    template = dataclasses.replace(template, parameters={**template.parameters, "AWS::StackName": stack})
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}):
        builder = StackBuilder(template, region=REGION, account_id=ACCOUNT, stack_name=stack,
                               client=aws_client)
        machine_arn = create_resources(builder, only=["PaymentStateMachine"]).ref("PaymentStateMachine")
        runner = LambdaRunner(ACCOUNT, REGION)
        for name in FUNCTIONS:
            created = builder.record.functions[f"{name}Function"]
            runner.add(FunctionSpec(logical_id=f"{name}Function", name=created["FunctionName"], arn=created["Arn"],
                                    code_dir=tmp_path, handler="app.lambda_handler", layer_dirs=[],
                                    environment={"SCRIPTED_FUNCTION": name}, timeout_s=10))
        try:
            yield Flow(aws_client("stepfunctions"), machine_arn, script)
        finally:
            runner.close()
            sys.modules.pop(SCRIPT_MODULE, None)


def test_the_state_machine_is_the_template_s_with_the_callback_task(flow):
    """The definition moto runs is payment.asl.json with the template's substitutions: the callback
    task stays `.waitForTaskToken` and every task names its function's ARN."""
    definition = json.loads(flow.sfn.describe_state_machine(stateMachineArn=flow.machine_arn)["definition"])
    assert definition["States"]["AwaitDecision"]["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert definition["States"]["ValidateAndPersist"]["Resource"] == "arn:aws:states:::lambda:invoke"
    assert not PLACEHOLDER.findall(json.dumps(definition))
    assert flow.machine_arn.endswith("-payment")


class Flow:
    def __init__(self, sfn, machine_arn: str, script: LambdaScript):
        self.sfn, self.machine_arn, self.script = sfn, machine_arn, script

    def start(self, payment_id: str) -> str:
        execution_input = {"paymentId": payment_id, "archiveKey": f"inbound/{payment_id}.xml",
                           "receivedAt": "2026-11-24T10:00:00Z"}
        return self.sfn.start_execution(stateMachineArn=self.machine_arn, name=payment_id,
                                        input=json.dumps(execution_input))["executionArn"]

    def finished(self, execution_arn: str, within: float = 10.0) -> dict:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.02)
        raise AssertionError(f"{execution_arn} still running after {within} s")

    def parked_token(self, within: float = 10.0) -> str:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            parked = [event for name, event in self.script.calls if name == "Park"]
            if parked:
                return parked[-1]["taskToken"]
            time.sleep(0.02)
        raise AssertionError("the execution never parked")


def awaiting(timeout_s: int = 60) -> dict:
    return {"outcome": "await", "status": "ACTC", "decisionTimeoutSeconds": timeout_s}


def test_invalid_payment_ends_rejected_without_waiting(flow):
    flow.script.answers["Validate"].append({"outcome": "invalid", "status": "RJCT", "decisionTimeoutSeconds": 60})
    described = flow.finished(flow.start("pay-invalid"))
    assert described["status"] == "SUCCEEDED"
    assert flow.script.names() == ["Validate"]
    assert flow.script.calls[0][1]["paymentId"] == "pay-invalid"  # the whole execution input goes in


def test_auto_approved_payment_is_released_without_waiting(flow):
    flow.script.answers["Validate"].append({"outcome": "auto-approve", "status": "ACSP", "decisionTimeoutSeconds": 60})
    flow.script.answers["Release"].append({"status": "ACSC"})
    described = flow.finished(flow.start("pay-auto"))
    assert described["status"] == "SUCCEEDED"
    assert flow.script.names() == ["Validate", "Release"]
    assert flow.script.calls[1][1] == {"paymentId": "pay-auto"}


def test_approve_through_the_task_token_releases(flow):
    flow.script.answers["Validate"].append(awaiting())
    flow.script.answers["Release"].append({"status": "ACSC"})
    execution = flow.start("pay-approve")
    token = flow.parked_token()
    assert flow.script.calls[-1][1]["paymentId"] == "pay-approve"
    assert flow.sfn.describe_execution(executionArn=execution)["status"] == "RUNNING"
    decision = {"action": "approve", "reasonCode": None, "additionalInfo": None, "decidedBy": "client-1"}
    flow.sfn.send_task_success(taskToken=token, output=json.dumps(decision))
    described = flow.finished(execution)
    assert described["status"] == "SUCCEEDED"
    assert flow.script.names() == ["Validate", "Park", "Release"]
    output = json.loads(described["output"])
    assert output["decision"] == decision and output["validation"] == awaiting()


@pytest.mark.parametrize("action", ["reject", "cancel"])
def test_reject_and_cancel_finalise_with_the_consumers_decision(flow, action):
    flow.script.answers["Validate"].append(awaiting())
    execution = flow.start(f"pay-{action}")
    decision = {"action": action, "reasonCode": "CUST", "additionalInfo": "by request", "decidedBy": "client-1"}
    flow.sfn.send_task_success(taskToken=flow.parked_token(), output=json.dumps(decision))
    assert flow.finished(execution)["status"] == "SUCCEEDED"
    assert flow.script.names() == ["Validate", "Park", "Finalise"]
    assert flow.script.calls[-1][1] == {"paymentId": f"pay-{action}", "decision": decision}


def test_decision_timeout_claims_the_timeout_and_finalises(flow):
    flow.script.answers["Validate"].append(awaiting(timeout_s=1))
    timeout = {"action": "timeout", "reasonCode": "AB06", "additionalInfo": None, "decidedBy": None}
    flow.script.answers["DecisionTimeout"].append(timeout)
    execution = flow.start("pay-timeout")
    token = flow.parked_token()
    described = flow.finished(execution)
    assert described["status"] == "SUCCEEDED"
    assert flow.script.names() == ["Validate", "Park", "DecisionTimeout", "Finalise"]
    assert flow.script.calls[2][1] == {"paymentId": "pay-timeout"}
    assert flow.script.calls[3][1] == {"paymentId": "pay-timeout", "decision": timeout}
    # A decision that arrives after the timeout cannot resume the execution.
    with pytest.raises(flow.sfn.exceptions.ClientError) as late:
        flow.sfn.send_task_success(taskToken=token, output=json.dumps({"action": "approve"}))
    assert late.value.response["Error"]["Code"] in ("TaskTimedOut", "InvalidToken")


def test_a_decision_claimed_before_the_timeout_is_honoured(flow):
    flow.script.answers["Validate"].append(awaiting(timeout_s=1))
    claimed = {"action": "approve", "reasonCode": None, "additionalInfo": None, "decidedBy": "client-1"}
    flow.script.answers["DecisionTimeout"].append(claimed)
    execution = flow.start("pay-claimed")
    assert flow.finished(execution)["status"] == "SUCCEEDED"
    assert flow.script.names() == ["Validate", "Park", "DecisionTimeout", "Release"]


def test_unknown_decision_fails_loudly(flow):
    flow.script.answers["Validate"].append(awaiting())
    execution = flow.start("pay-unknown")
    flow.sfn.send_task_success(taskToken=flow.parked_token(), output=json.dumps({"action": "maybe"}))
    described = flow.finished(execution)
    assert described["status"] == "FAILED" and described["error"] == "UnknownDecision"
    assert flow.script.names() == ["Validate", "Park"]


def test_release_retries_a_transient_error(flow):
    flow.script.answers["Validate"].append({"outcome": "auto-approve", "status": "ACSP", "decisionTimeoutSeconds": 60})
    flow.script.answers["Release"].extend([TransientError("throttled"), {"status": "ACSC"}])
    described = flow.finished(flow.start("pay-retry"))
    assert described["status"] == "SUCCEEDED"
    assert flow.script.names() == ["Validate", "Release", "Release"]


def test_a_technical_release_failure_fails_the_execution_for_redrive(flow):
    flow.script.answers["Validate"].append({"outcome": "auto-approve", "status": "ACSP", "decisionTimeoutSeconds": 60})
    flow.script.answers["Release"].append(ReleaseFailed("downstream unavailable"))
    described = flow.finished(flow.start("pay-fail"))
    assert described["status"] == "FAILED" and described["error"] == "ReleaseFailed"
    assert flow.script.names() == ["Validate", "Release"]  # not retried, nothing finalised
