"""Workflow (mxflow.ports) on the two state machines (docs/flow.md): PaymentFlow (EXPRESS, template.yaml
`PaymentFlow`), started for the automated steps, and the anchor PaymentStateMachine (STANDARD), whose
execution is named by the payment id and is what a redrive resumes."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar, Mapping

from botocore.exceptions import ClientError

from mxflow.aws.clients import AwsAdapter, error_code, service_errors
from mxflow.errors import NotRedrivable

# What Step Functions answers for a token whose task is no longer waiting.
TASK_GONE_CODES = ("TaskTimedOut", "InvalidToken", "TaskDoesNotExist")
NOT_REDRIVABLE_CODES = ("ExecutionNotRedrivable", "ExecutionDoesNotExist")
# An anchor's history is a handful of events (one state on the happy path); a page holds 1,000.
MAX_HISTORY_PAGES = 5
MAX_CAUSE_CHARS = 2000


def _time(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return None if value is None else str(value)


def history_event(event: Mapping[str, Any]) -> dict:
    """A Step Functions history event as the Workflow port gives it: its type, time, the state it
    enters or leaves, and the error and cause of a failure (whatever kind of details carries them)."""
    shaped = {"type": event.get("type"), "time": _time(event.get("timestamp"))}
    for key, details in event.items():
        if not key.endswith("EventDetails") or not isinstance(details, Mapping):
            continue
        if details.get("name") and key in ("stateEnteredEventDetails", "stateExitedEventDetails"):
            shaped["state"] = details["name"]
        if details.get("error"):
            shaped["error"] = str(details["error"])
        if details.get("cause"):
            shaped["cause"] = str(details["cause"])[:MAX_CAUSE_CHARS]
    return shaped


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:...:stateMachine:Name -> arn:...:execution:Name:<name> (the ARN Step Functions gives)."""
    head, sep, machine = state_machine_arn.rpartition(":stateMachine:")
    if not sep:
        raise ValueError("not a state machine ARN")
    return f"{head}:execution:{machine}:{name}"


@dataclass
class StepFunctionsWorkflow(AwsAdapter):
    service: ClassVar[str] = "stepfunctions"
    state_machine_arn: str | None        # the anchor (STANDARD)
    flow_arn: str | None = None          # PaymentFlow (EXPRESS)
    split_arn: str | None = None         # BulkSplitStateMachine (STANDARD): messages with several transactions

    @service_errors
    def start_flow(self, flow_input: Mapping[str, Any]) -> None:
        self.client.start_execution(stateMachineArn=self.flow_arn, input=json.dumps(flow_input, sort_keys=True))

    @service_errors
    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> bool:
        try:
            self.client.send_task_success(taskToken=task_token, output=json.dumps(output))
            return True
        except ClientError as error:
            if error_code(error) in TASK_GONE_CODES:
                return False
            raise

    @service_errors
    def send_task_failure(self, task_token: str, error: str, cause: str) -> bool:
        try:
            self.client.send_task_failure(taskToken=task_token, error=error, cause=cause)
            return True
        except ClientError as failure:
            if error_code(failure) in TASK_GONE_CODES:
                return False
            raise

    @service_errors
    def redrive(self, name: str) -> str | None:
        try:
            response = self.client.redrive_execution(executionArn=execution_arn(self.state_machine_arn, name))
        except ClientError as error:
            if error_code(error) in NOT_REDRIVABLE_CODES:
                raise NotRedrivable(name, error_code(error)) from None
            raise
        redriven_at = response.get("redriveDate")
        if isinstance(redriven_at, datetime):
            redriven_at = redriven_at.astimezone(timezone.utc).isoformat()
        return redriven_at

    @service_errors
    def start_split(self, message_id: str) -> None:
        """Start the split of a message, named by its id: ExecutionAlreadyExists (the split runs or ran)
        is no error."""
        try:
            self.client.start_execution(stateMachineArn=self.split_arn, name=message_id,
                                        input=json.dumps({"messageId": message_id, "next": 0}))
        except ClientError as error:
            if error_code(error) != "ExecutionAlreadyExists":
                raise

    @service_errors
    def anchor_execution(self, name: str) -> dict | None:
        """DescribeExecution and GetExecutionHistory (without execution data) of the anchor `name`."""
        arn = execution_arn(self.state_machine_arn, name)
        try:
            described = self.client.describe_execution(executionArn=arn)
        except ClientError as error:
            if error_code(error) == "ExecutionDoesNotExist":
                return None
            raise
        events: list[dict] = []
        page: dict = {}
        for _ in range(MAX_HISTORY_PAGES):
            response = self.client.get_execution_history(executionArn=arn, maxResults=1000,
                                                         includeExecutionData=False, **page)
            events.extend(history_event(event) for event in response.get("events", []))
            if not response.get("nextToken"):
                break
            page = {"nextToken": response["nextToken"]}
        execution = {"executionArn": arn, "status": described["status"],
                     "redrivable": described.get("redriveStatus") == "REDRIVABLE",
                     "redriveCount": int(described.get("redriveCount") or 0),
                     "startedAt": _time(described.get("startDate")), "stoppedAt": _time(described.get("stopDate")),
                     "error": described.get("error"), "cause": (described.get("cause") or "")[:MAX_CAUSE_CHARS] or None,
                     "events": events}
        return {k: v for k, v in execution.items() if v is not None}
