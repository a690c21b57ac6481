"""Fixtures for the embedded local runtime's tests."""
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


# --- local HTTP API fixtures (mxflow_local.http_api, mxflow local up) -------------------------------
import urllib.error as _urllib_error
import urllib.request as _urllib_request


def _http_call(base_url, method, path, *, token=None, body=None, raw=None, headers=None, timeout=30):
    """One HTTP request with a bounded wait: (status, headers dict, JSON body or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = _urllib_request.Request(base_url + path, data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with _urllib_request.urlopen(request, timeout=timeout) as response:
            status, reply_headers, payload = response.status, dict(response.headers), response.read()
    except _urllib_error.HTTPError as error:
        status, reply_headers, payload = error.code, dict(error.headers), error.read()
    try:
        return status, reply_headers, json.loads(payload)
    except ValueError:
        return status, reply_headers, payload.decode("utf-8", "replace")


@pytest.fixture(scope="session")
def http():
    """`http(url, method, path, token=, body=, raw=, headers=)` -> (status, headers, body)."""
    return _http_call


@pytest.fixture(scope="module")
def _fixture_api_server(local_runtime):
    from mxflow_local.http_api import LocalApi

    with LocalApi(local_runtime, port=0) as api:
        yield api


@pytest.fixture
def fixture_api(_fixture_api_server):
    """The local HTTP API (127.0.0.1, a free port) on the shared fixture runtime; faults cleared and the
    Region started again after each test."""
    yield _fixture_api_server
    _fixture_api_server.runtime.faults.clear()
    _fixture_api_server.runtime.start_region()
