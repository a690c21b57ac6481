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
