"""The runtime's AWS endpoint (mxflow_local.aws_endpoint) with boto3 over HTTP: the same state and the same
patched behaviour as in-process calls (redrive, heartbeat name, JSONata, SendTaskFailure's cause, real
handlers, faults, the Region switch), the Region of the request, and the guard rails.

Every client here is a boto3 client with `endpoint_url` set to the endpoint, and each test checks that its
calls did arrive over HTTP (the endpoint counts them): in this process moto also intercepts botocore, so a
client without an endpoint would reach the same backends without the server."""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import pytest

from mxflow_local.aws_endpoint import (
    ACCESS_KEY_ID,
    AwsEndpoint,
    aws_cli_command,
    aws_environment,
    endpoint_path,
    load_published_endpoint,
    publish_endpoint,
    shell_exports,
    withdraw_endpoint,
)

WEST = "us-west-2"   # the second Region's runtime (no other suite runs one there)


@pytest.fixture(scope="module")
def endpoint(local_runtime):
    with AwsEndpoint.start(local_runtime, port=0) as running:
        yield running


@pytest.fixture
def aws(endpoint):
    """aws(service, region=...) -> a boto3 client that talks to the endpoint over HTTP (no retries)."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key="testing")
    before = endpoint.requests

    def make(service: str, region: str = "us-east-1"):
        return session.client(service, region_name=region, endpoint_url=endpoint.url,
                              config=Config(retries={"max_attempts": 1, "mode": "standard"}))

    yield make
    assert endpoint.requests > before, "no call reached the endpoint over HTTP"


def _wait(sfn, execution_arn: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        described = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING" or time.monotonic() > deadline:
            return described
        time.sleep(0.05)


def _start(sfn, runtime, **fields) -> tuple[str, str]:
    payment_id = f"ep-{time.monotonic_ns()}"
    started = sfn.start_execution(stateMachineArn=runtime.physical("FlowStateMachine"), name=payment_id,
                                  input=json.dumps({"id": payment_id, "items": [], **fields}))
    return payment_id, started["executionArn"]


def _token(ddb, runtime, payment_id: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = ddb.get_item(TableName=runtime.physical("Table"), ConsistentRead=True,
                            Key={"pk": {"S": payment_id}, "sk": {"S": "token"}}).get("Item")
        if item:
            return item["token"]["S"]
        time.sleep(0.05)
    raise TimeoutError(f"no task token stored for {payment_id}")


def test_the_endpoint_serves_the_runtime_stack_on_loopback(endpoint, runtime, aws):
    assert endpoint.url == f"http://127.0.0.1:{endpoint.port}" and endpoint.port > 0
    assert endpoint._server.socket.getsockname()[0] == "127.0.0.1"
    machines = [m["stateMachineArn"] for m in aws("stepfunctions").list_state_machines()["stateMachines"]]
    assert runtime.physical("FlowStateMachine") in machines
    assert runtime.physical("Table") in aws("dynamodb").list_tables()["TableNames"]
    assert endpoint.environment() == {"AWS_ENDPOINT_URL": endpoint.url, "AWS_ACCESS_KEY_ID": "testing",
                                      "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                                      "AWS_REGION": "us-east-1"}
    assert endpoint.stacks()["us-east-1"]["resources"]["FlowStateMachine"] == runtime.physical("FlowStateMachine")


def test_redrive_through_the_endpoint_is_the_runtime_redrive(runtime, aws):
    sfn, ddb = aws("stepfunctions"), aws("dynamodb")
    runtime.faults.inject("FinishFunction", kind="raise", count=1, error_type="DownstreamUnavailable")
    payment_id, arn = _start(sfn, runtime, items=[5])
    failed = _wait(sfn, arn)
    assert (failed["status"], failed["error"]) == ("FAILED", "DownstreamUnavailable")
    assert (failed["redriveStatus"], failed["redriveCount"]) == ("REDRIVABLE", 0)

    assert "redriveDate" in sfn.redrive_execution(executionArn=arn)
    result = _wait(sfn, arn)
    assert (result["status"], result["redriveCount"], result["redriveStatus"]) == ("SUCCEEDED", 1, "NOT_REDRIVABLE")
    events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    assert (entered.count("Record"), entered.count("Work"), entered.count("Finish")) == (1, 1, 2)
    types = [e["type"] for e in events]
    assert types.index("ExecutionFailed") < types.index("ExecutionRedriven") < types.index("ExecutionSucceeded")
    counter = ddb.get_item(TableName=runtime.physical("Table"), Key={"pk": {"S": payment_id}, "sk": {"S": "counter"}})
    assert counter["Item"]["runs"]["N"] == "1"            # the earlier states did not run again
    # the same execution, seen in-process
    assert runtime.client("stepfunctions").describe_execution(executionArn=arn)["redriveCount"] == 1
    with pytest.raises(sfn.exceptions.ExecutionNotRedrivable):
        sfn.redrive_execution(executionArn=arn)


def test_task_failure_with_a_stored_token_keeps_its_cause(runtime, aws):
    sfn, ddb = aws("stepfunctions"), aws("dynamodb")
    payment_id, arn = _start(sfn, runtime, callback={"timeoutSeconds": 30, "heartbeatSeconds": 30})
    token = _token(ddb, runtime, payment_id)
    sfn.send_task_failure(taskToken=token, error="Rejected", cause="operator said no")
    result = _wait(sfn, arn)
    assert (result["status"], result["error"], result["cause"]) == ("FAILED", "Rejected", "operator said no")
    with pytest.raises(sfn.exceptions.ClientError) as reused:
        sfn.send_task_success(taskToken=token, output="{}")
    assert reused.value.response["Error"]["Code"] in ("InvalidToken", "TaskTimedOut", "TaskDoesNotExist")


def test_task_success_and_heartbeats_through_the_endpoint(runtime, aws):
    sfn, ddb = aws("stepfunctions"), aws("dynamodb")
    payment_id, arn = _start(sfn, runtime, callback={"timeoutSeconds": 30, "heartbeatSeconds": 1})
    token = _token(ddb, runtime, payment_id)
    for _ in range(3):          # 1.8 s in total, longer than one heartbeat period
        time.sleep(0.6)
        sfn.send_task_heartbeat(taskToken=token)
    sfn.send_task_success(taskToken=token, output=json.dumps({"action": "approve"}))
    result = _wait(sfn, arn)
    assert result["status"] == "SUCCEEDED" and json.loads(result["output"])["decision"] == {"action": "approve"}


def test_missed_heartbeat_is_named_as_in_aws(runtime, aws):
    sfn = aws("stepfunctions")
    payment_id, arn = _start(sfn, runtime, callback={"timeoutSeconds": 30, "heartbeatSeconds": 1})
    _token(aws("dynamodb"), runtime, payment_id)
    result = _wait(sfn, arn)
    assert (result["status"], result["error"]) == ("FAILED", "States.HeartbeatTimeout")


def test_jsonata_and_unnamed_executions(runtime, aws):
    sfn = aws("stepfunctions")
    machine = runtime.physical("JsonataStateMachine")
    first = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"amounts": [10, 20.5, 4], "currency": "CHF"}))
    second = sfn.start_execution(stateMachineArn=machine, input=json.dumps({"amounts": [1], "currency": "EUR"}))
    assert first["executionArn"] != second["executionArn"] and not first["executionArn"].endswith(":None")
    result = _wait(sfn, first["executionArn"])
    assert result["status"] == "SUCCEEDED", result
    assert json.loads(result["output"]) == {"total": 34.5, "label": "CHF 34.5", "count": 3}


def test_lambda_invoke_runs_the_handler_with_the_runtime_faults_and_region_switch(runtime, aws):
    lam = aws("lambda")
    name = runtime.physical("WorkerFunction")
    answer = lam.invoke(FunctionName=name, Payload=json.dumps({"action": "item", "value": 21}))
    assert "FunctionError" not in answer and json.loads(answer["Payload"].read()) == {"item": 21, "doubled": 42}

    runtime.faults.inject("WorkerFunction", kind="raise", count=1, error_type="TransientError")
    failed = lam.invoke(FunctionName=name, Payload=json.dumps({"action": "item", "value": 1}))
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "TransientError"

    runtime.stop_region()
    with pytest.raises(lam.exceptions.ClientError) as down:
        lam.invoke(FunctionName=name, Payload=json.dumps({"action": "item", "value": 1}))
    assert down.value.response["Error"]["Code"] == "ServiceException"
    runtime.start_region()
    assert "FunctionError" not in lam.invoke(FunctionName=name, Payload=json.dumps({"action": "item", "value": 2}))


def test_writes_either_way_are_read_the_other_way(runtime, aws):
    table, bucket, queue = runtime.physical("Table"), runtime.physical("ArchiveBucket"), runtime.physical("OutboundQueue")
    key = f"either-way-{time.monotonic_ns()}"
    aws("dynamodb").put_item(TableName=table, Item={"pk": {"S": key}, "sk": {"S": "http"}, "v": {"S": "over HTTP"}})
    assert runtime.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": key}, "sk": {"S": "http"}})["Item"]["v"]["S"] == "over HTTP"
    runtime.client("s3").put_object(Bucket=bucket, Key=f"{key}.xml", Body=b"<Document/>")
    assert aws("s3").get_object(Bucket=bucket, Key=f"{key}.xml")["Body"].read() == b"<Document/>"
    attributes = runtime.client("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["FifoQueue"])["Attributes"]
    extra = {"MessageGroupId": "g", "MessageDeduplicationId": key} if attributes.get("FifoQueue") == "true" else {}
    runtime.client("sqs").send_message(QueueUrl=queue, MessageBody=key, **extra)
    sqs = aws("sqs")
    received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert key in [m["Body"] for m in received]
    for message in received:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])


def test_the_region_of_the_request_selects_the_backends(fixture_template, local_runtime):
    from mxflow_local.runtime import LocalRuntime

    with LocalRuntime(fixture_template, region=WEST, scheduler=False) as west, \
            AwsEndpoint.start(local_runtime, west, port=0) as both:
        assert both.regions == ["us-east-1", WEST] and both.environment(WEST)["AWS_DEFAULT_REGION"] == WEST
        import boto3

        def client(service, region):
            return boto3.client(service, region_name=region, endpoint_url=both.url, aws_access_key_id="k",
                                aws_secret_access_key="s")

        east_machines = [m["stateMachineArn"] for m in client("stepfunctions", "us-east-1").list_state_machines()["stateMachines"]]
        west_machines = [m["stateMachineArn"] for m in client("stepfunctions", WEST).list_state_machines()["stateMachines"]]
        assert west.physical("FlowStateMachine") in west_machines and west.physical("FlowStateMachine") not in east_machines
        assert local_runtime.physical("FlowStateMachine") in east_machines
        assert all(arn.split(":")[3] == WEST for arn in west_machines)
        # a fault of the west runtime meets the west Region's invocations only
        west.faults.inject("WorkerFunction", kind="raise", count=1, error_type="RegionalFault")
        event = json.dumps({"action": "item", "value": 3})
        east_answer = client("lambda", "us-east-1").invoke(FunctionName=local_runtime.physical("WorkerFunction"), Payload=event)
        west_answer = client("lambda", WEST).invoke(FunctionName=west.physical("WorkerFunction"), Payload=event)
        assert "FunctionError" not in east_answer
        assert json.loads(west_answer["Payload"].read())["errorType"] == "RegionalFault"
        assert both.requests >= 4


def _raw(endpoint, path: str, headers: dict, body: bytes = b"") -> tuple[int, bytes]:
    request = urllib.request.Request(endpoint.url + path, data=body or None, method="POST" if body else "GET",
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_guard_rails(endpoint, runtime, aws):
    list_machines = {"X-Amz-Target": "AWSStepFunctions.ListStateMachines",
                     "Content-Type": "application/x-amz-json-1.0",
                     "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/states/aws4_request, "
                                      "SignedHeaders=host, Signature=0"}
    status, body = _raw(endpoint, "/moto-api/reset", {}, b"{}")
    assert status == 403 and b"moto-api" in body
    assert runtime.physical("FlowStateMachine") in [
        m["stateMachineArn"] for m in aws("stepfunctions").list_state_machines()["stateMachines"]]   # not reset
    assert _raw(endpoint, "/", list_machines, b"{}")[0] == 200
    status, body = _raw(endpoint, "/", {**list_machines, "Origin": "http://web.example"}, b"{}")
    assert status == 403 and json.loads(body)["__type"] == "AccessDenied"
    status, body = _raw(endpoint, "/", {**list_machines, "Host": "rebound.example"}, b"{}")
    assert status == 403 and b"rebound.example" in body
    # an operation moto does not implement: an AWS-shaped 501, no traceback
    sfn = aws("stepfunctions")
    with pytest.raises(sfn.exceptions.ClientError) as missing:
        sfn.validate_state_machine_definition(definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Succeed"}}}))
    assert missing.value.response["Error"]["Code"] == "NotImplemented"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501


def test_published_endpoint_is_found_and_withdrawn(endpoint, tmp_path):
    path = publish_endpoint(endpoint, directory=tmp_path)
    assert path == endpoint_path(tmp_path) and oct(path.stat().st_mode & 0o777) == "0o600"
    state = load_published_endpoint(tmp_path)
    assert state["endpointUrl"] == endpoint.url and state["environment"] == endpoint.environment()
    assert state["pid"] == os.getpid() and state["regions"] == ["us-east-1"]
    withdraw_endpoint(endpoint, directory=tmp_path)
    assert not path.exists()
    from mxflow_local.auth import NoRunningServer

    with pytest.raises(NoRunningServer, match="no running 'mxflow local up'"):
        load_published_endpoint(tmp_path)
    path.write_text(json.dumps({**state, "pid": 2 ** 22 + 1}))   # beyond Linux's pid range: a gone process
    with pytest.raises(NoRunningServer, match="no longer running"):
        load_published_endpoint(tmp_path)


def test_a_busy_port_is_an_os_error_not_an_exit(endpoint, local_runtime):
    import errno

    with pytest.raises(OSError) as busy:        # werkzeug's own bind would print and sys.exit(1)
        AwsEndpoint([local_runtime], port=endpoint.port)
    assert busy.value.errno == errno.EADDRINUSE


def test_an_endpoint_needs_a_started_runtime(fixture_template):
    from mxflow_local.runtime import LocalRuntime

    with pytest.raises(ValueError, match="start the runtime"):
        AwsEndpoint([LocalRuntime(fixture_template, scheduler=False)])
    with pytest.raises(ValueError, match="at least one"):
        AwsEndpoint([])


def test_environment_as_shell_exports_and_cli_lines():
    env = aws_environment("http://127.0.0.1:3001", "us-west-2")
    assert shell_exports(env).splitlines() == [
        "export AWS_ENDPOINT_URL=http://127.0.0.1:3001", "export AWS_ACCESS_KEY_ID=testing",
        "export AWS_SECRET_ACCESS_KEY=testing", "export AWS_DEFAULT_REGION=us-west-2", "export AWS_REGION=us-west-2"]
    line = aws_cli_command("http://127.0.0.1:3001", "us-east-1", "stepfunctions", "redrive-execution",
                           "--execution-arn", "arn:aws:states:us-east-1:123456789012:execution:m:p 1")
    assert line == ("AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing aws stepfunctions redrive-execution "
                    "--execution-arn 'arn:aws:states:us-east-1:123456789012:execution:m:p 1' "
                    "--endpoint-url http://127.0.0.1:3001 --region us-east-1")
