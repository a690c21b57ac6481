"""Fixtures for the embedded local runtime's tests (B2 may append fixtures below; append only)."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

FIXTURE_DIR = Path(__file__).parent / "fixture"
FIXTURE_TEMPLATE = FIXTURE_DIR / "template.yaml"


@pytest.fixture(scope="session")
def fixture_template() -> Path:
    return FIXTURE_TEMPLATE


@pytest.fixture(scope="session")
def local_runtime():
    """The fixture application running in moto (us-east-1), shared by the session; scheduler off."""
    from mxflow_local.runtime import LocalRuntime

    runtime = LocalRuntime(FIXTURE_TEMPLATE, scheduler=False).start()
    yield runtime
    runtime.stop()


@pytest.fixture
def runtime(local_runtime):
    """The shared runtime, with no fault left pending and the Region up after each test."""
    yield local_runtime
    local_runtime.faults.clear()
    local_runtime.start_region()


class FlowDriver:
    """Starts the fixture's FlowStateMachine and reads what it left behind."""

    def __init__(self, runtime):
        self.rt = runtime
        self.sfn = runtime.client("stepfunctions")
        self.table = runtime.client("dynamodb")
        self.arn = runtime.physical("FlowStateMachine")

    def start(self, **fields) -> tuple[str, str]:
        payment_id = fields.pop("id", None) or f"p-{uuid.uuid4().hex[:12]}"
        document = {"id": payment_id, "items": [], **fields}
        started = self.sfn.start_execution(stateMachineArn=self.arn, name=payment_id, input=json.dumps(document))
        return payment_id, started["executionArn"]

    def wait(self, execution_arn: str, timeout: float = 20.0) -> dict:
        return self.rt.wait_execution(execution_arn, timeout=timeout)

    def history(self, execution_arn: str) -> list[dict]:
        return self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]

    def entered(self, execution_arn: str, state: str) -> int:
        return sum(1 for e in self.history(execution_arn)
                   if e["type"].endswith("StateEntered") and e["stateEnteredEventDetails"]["name"] == state)

    def item(self, payment_id: str, sort_key: str) -> dict | None:
        table = self.rt.physical("Table")
        return self.table.get_item(TableName=table, Key={"pk": {"S": payment_id}, "sk": {"S": sort_key}},
                                   ConsistentRead=True).get("Item")

    def token(self, payment_id: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            item = self.item(payment_id, "token")
            if item:
                return item["token"]["S"]
            time.sleep(0.02)
        raise TimeoutError(f"no task token stored for {payment_id}")


@pytest.fixture
def flow(runtime) -> FlowDriver:
    return FlowDriver(runtime)
