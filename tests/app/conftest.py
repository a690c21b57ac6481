"""Fixtures of the layer and handler tests.

- `ports` / `lifecycle`: the payment lifecycle on in-memory fakes of its ports (tests/app/fakes.py): no
  AWS, no moto, fast.
- `aws`: moto with the resources the adapters and handlers use, created from template.yaml by the
  local runtime's template reader (mxflow_local.template, mxflow_local.resources): the real table,
  queues, topic, bucket, key and payment state machine (its definition as deployed, with
  `.waitForTaskToken`), and the functions' environment as the template sets it. Tests and template
  cannot drift.
- `functions`, `call_api`, `context`: the handlers and Lambda contexts, inside `aws`.
"""
from __future__ import annotations

import base64
import functools
import importlib.util
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MXFLOW_SHARED", REPO.parent / "shared"))
# ../shared's official XSDs when they are there; else the built-in set alone (a bare clone)
SCHEMA_DIRS = [str(SHARED / "iso20022" / "xsd")] if (SHARED / "iso20022" / "xsd").is_dir() else []
TEMPLATE = REPO / "template.yaml"
REGION = "eu-west-1"
STACK = "mxflow"
DECISION_TIMEOUT_SECONDS = 3600
from api_gateway_event import ACCOUNT, CLIENT_ID, api_event  # noqa: E402,F401  (beside this file)

# What the adapters and handlers use; their dependencies (key, DLQ, layer, task functions) come along.
RESOURCES = ("PaymentTable", "ArchiveBucket", "ReleaseQueue", "PaymentEventsTopic", "PaymentStateMachine",
             "PaymentFlow", "BulkSplitStateMachine", "ApiFunction", "EngineInboundQueue")


@functools.cache
def application_template():
    """template.yaml as SAM translates it (read once per session)."""
    from mxflow_local.template import load_template

    return load_template(TEMPLATE, region=REGION, account_id=ACCOUNT, stack_name=STACK,
                         parameter_overrides={"DecisionTimeoutSeconds": str(DECISION_TIMEOUT_SECONDS)})


@dataclass
class Aws:
    table_name: str
    bucket: str
    queue_url: str
    topic_arn: str
    state_machine_arn: str   # the anchor (STANDARD)
    flow_arn: str            # PaymentFlow (EXPRESS)
    key_arn: str
    environment: dict  # the ApiFunction's environment variables as the template resolves them


@functools.cache
def _client(service: str):
    """One boto3 client per service for the session (moto answers whichever mock is running)."""
    return boto3.client(service, region_name=REGION)


def _create_resources() -> Aws:
    from mxflow_local.resources import StackBuilder, create_resources

    builder = StackBuilder(application_template(), region=REGION, account_id=ACCOUNT, stack_name=STACK,
                           client=_client)
    resolver = create_resources(builder, only=RESOURCES)
    environment = builder.record.functions["ApiFunction"]["Environment"]["Variables"]
    return Aws(resolver.ref("PaymentTable"), resolver.ref("ArchiveBucket"), resolver.ref("ReleaseQueue"),
               resolver.ref("PaymentEventsTopic"), resolver.ref("PaymentStateMachine"), resolver.ref("PaymentFlow"),
               resolver.resolve({"Fn::GetAtt": ["PaymentKey", "Arn"]}), {k: str(v) for k, v in environment.items()})


def installed_versions():
    """The message versions to generate: CBPR+'s, or the newest installed where one has no schema (as the
    demo chooses): camt.029.001.14 on the built-in set alone."""
    from mxflow.iso20022 import CBPR_PLUS_VERSIONS

    return CBPR_PLUS_VERSIONS.installed(schema_registry())[0]


@pytest.fixture
def aws(monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    from mxflow import service
    from mxflow.aws import clients

    with mock_aws():
        clients.reset_clients()
        service.default_lifecycle.cache_clear()
        resources = _create_resources()
        for key, value in resources.environment.items():
            monkeypatch.setenv(key, value)
        # The template points the functions at /opt/schemas (the schema layer); here: the shared XSDs when
        # they are there (else the built-in set alone), no added schemas, and versions they have.
        monkeypatch.setenv("MXFLOW_SCHEMA_DIR", os.pathsep.join(SCHEMA_DIRS))
        monkeypatch.setenv("MXFLOW_ADDED_SCHEMAS", "")
        versions = installed_versions()
        for name, variable, _parameter, _supported in versions.SETTINGS:
            monkeypatch.setenv(variable, getattr(versions, name))
        yield resources
        clients.reset_clients()
        service.default_lifecycle.cache_clear()


@pytest.fixture
def serialised_dynamodb():
    """DynamoDB serialises writes to one item; moto's in-process backend does not (see
    mxflow_local.dynamodb, the local runtime's fix, applied here too); the conditions still decide."""
    from mxflow_local import dynamodb

    return dynamodb.install()


@functools.cache
def schema_registry():
    from mxflow.iso20022 import SchemaRegistry

    return SchemaRegistry(schema_dirs=SCHEMA_DIRS)


@pytest.fixture
def settings():
    """The functions' settings as the template configures them (decision timeout 3600 s here)."""
    from mxflow.settings import Settings

    return Settings(decision_timeout_seconds=DECISION_TIMEOUT_SECONDS, region=REGION,
                    message_versions=installed_versions())


@pytest.fixture
def ports():
    from fakes import Ports

    return Ports.new()


@pytest.fixture
def lifecycle_with(ports):
    """lifecycle_with(settings): a lifecycle with other settings on the same fakes."""
    return lambda settings: ports.lifecycle(settings, registry=schema_registry())


@pytest.fixture
def lifecycle(lifecycle_with, settings):
    """The lifecycle on in-memory fakes of its ports."""
    return lifecycle_with(settings)


@pytest.fixture
def message():
    """A new, valid pacs.008.001.08 (fresh identifiers) each call; keyword arguments as in
    mxflow_local.sample_messages.credit_transfer."""
    from mxflow_local.sample_messages import credit_transfer

    return credit_transfer


@dataclass
class LambdaContext:
    function_name: str = "mxflow-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mxflow-test"
    aws_request_id: str = ""

    def __post_init__(self):
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 30000


@pytest.fixture
def context():
    return LambdaContext()


def load_function(directory: str):
    """functions/<directory>/app.py as its own module (every handler file is called app.py)."""
    path = REPO / "functions" / directory / "app.py"
    spec = importlib.util.spec_from_file_location(f"mxflow_function_{directory}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def functions(aws):
    """The handlers, loaded fresh inside the mocked AWS."""
    return {name: load_function(name)
            for name in ("api", "validate", "park", "decision_timeout", "send", "settle", "sampler", "recall",
                         "engine_answers", "split", "journal")}


@pytest.fixture(scope="session")
def load_handler():
    """load_function, for tests that load a handler outside the mocked AWS (one that calls none)."""
    return load_function


@pytest.fixture(scope="session")
def api_problems():
    """The ApiFunction's error -> (status, title) lookup (functions/api/app.py `problem_of`)."""
    return load_function("api").problem_of


def invoke_api(functions, context, event) -> tuple[int, dict | str, dict]:
    """(status, body parsed when JSON, lower-cased headers) of the ApiFunction's answer."""
    response = functions["api"].lambda_handler(event, context)
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(key.lower(), values[0])
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body)  # what API Gateway sends for a binary media type: the bytes
    elif headers.get("content-type", "").endswith("json") and body:
        body = json.loads(body)
    return response["statusCode"], body, headers


@pytest.fixture
def call_api(functions, context):
    return lambda event: invoke_api(functions, context, event)


@pytest.fixture
def client_id():
    return CLIENT_ID


@pytest.fixture
def shared():
    if not (SHARED / "iso20022" / "samples").is_dir():
        pytest.skip(f"needs ../shared's third-party sample messages (not found at {SHARED})")
    return SHARED
