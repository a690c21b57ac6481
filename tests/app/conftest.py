"""Fixtures of the payment-lifecycle unit tests: moto AWS built from template.yaml, the lifecycle, the
handlers, Lambda contexts and realistic messages.

The table, queue, topic and bucket are created from the resource properties in template.yaml
(KeySchema, AttributeDefinitions, GlobalSecondaryIndexes, FifoQueue, ...), so tests and template
cannot drift. Until template.yaml exists, FALLBACK_RESOURCES (the shared design) stands in.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import threading
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
from api_gateway_event import ACCOUNT, CLIENT_ID, api_event  # noqa: E402,F401  (beside this file)

# The shared design's resources (C-shared.md), used only while template.yaml does not exist yet.
FALLBACK_RESOURCES = {
    "PaymentTable": {"Type": "AWS::DynamoDB::Table", "Properties": {
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "inflightShard", "AttributeType": "S"},
            {"AttributeName": "statusSince", "AttributeType": "S"},
        ],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                      {"AttributeName": "sk", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [{
            "IndexName": "InFlightByStatus",
            "KeySchema": [{"AttributeName": "inflightShard", "KeyType": "HASH"},
                          {"AttributeName": "statusSince", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "INCLUDE",
                           "NonKeyAttributes": ["status", "version", "ownerRegion"]},
        }],
        "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
    }},
    "ReleaseQueue": {"Type": "AWS::SQS::Queue", "Properties": {
        "FifoQueue": True, "ContentBasedDeduplication": False}},
    "PaymentEventsTopic": {"Type": "AWS::SNS::Topic", "Properties": {}},
    "ArchiveBucket": {"Type": "AWS::S3::Bucket", "Properties": {"BucketEncryption": {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms"}, "BucketKeyEnabled": True}]}}},
}


@functools.cache
def template_resources() -> dict:
    """Resources of template.yaml (parsed once; _literal copies what it returns)."""
    if not TEMPLATE.exists():
        return FALLBACK_RESOURCES
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(TEMPLATE.read_text())["Resources"]


def _literal(value):
    """A property value usable by moto: intrinsic functions (Ref, Sub, If...) are dropped."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith(("Fn::", "Ref")):
            return None
        return {k: v for k, v in ((k, _literal(v)) for k, v in value.items()) if v is not None}
    if isinstance(value, list):
        return [v for v in (_literal(v) for v in value) if v is not None]
    return value


def _resource(resources: dict, type_name: str, preferred: str) -> dict:
    if preferred in resources and resources[preferred]["Type"] == type_name:
        return _literal(resources[preferred].get("Properties", {}))
    matches = [r for r in resources.values() if r["Type"] == type_name]
    assert matches, f"template.yaml has no {type_name}"
    return _literal(matches[0].get("Properties", {}))


@dataclass
class Aws:
    table_name: str
    bucket: str
    queue_url: str
    topic_arn: str
    state_machine_arn: str
    table_properties: dict
    queue_attributes: dict
    key_arn: str


def _create_resources() -> Aws:
    resources = template_resources()
    table = _resource(resources, "AWS::DynamoDB::Table", "PaymentTable")
    ddb = boto3.client("dynamodb")
    table_name = "mxflow-payments"
    create = {k: table[k] for k in ("AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")
              if k in table}
    if table.get("StreamSpecification"):  # CloudFormation infers StreamEnabled; the API needs it
        create["StreamSpecification"] = {"StreamEnabled": True, **table["StreamSpecification"]}
    create["BillingMode"] = table.get("BillingMode", "PAY_PER_REQUEST")
    ddb.create_table(TableName=table_name, **create)

    queue = _resource(resources, "AWS::SQS::Queue", "ReleaseQueue")
    attributes = {"FifoQueue": "true"} if queue.get("FifoQueue") else {}
    if "ContentBasedDeduplication" in queue:
        attributes["ContentBasedDeduplication"] = str(queue["ContentBasedDeduplication"]).lower()
    name = "mxflow-release" + (".fifo" if queue.get("FifoQueue") else "")
    queue_url = boto3.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]

    topic_arn = boto3.client("sns").create_topic(Name="mxflow-payment-events")["TopicArn"]
    bucket = "mxflow-archive"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    # The template's default encryption, with a moto KMS key standing in for !GetAtt PaymentKey.Arn.
    key_arn = boto3.client("kms").create_key(Description="mxflow payment key")["KeyMetadata"]["Arn"]
    rules = _resource(resources, "AWS::S3::Bucket", "ArchiveBucket").get("BucketEncryption", {}).get(
        "ServerSideEncryptionConfiguration", [])
    api_rules = []  # CloudFormation's ServerSideEncryptionByDefault is the API's Apply... element
    for rule in rules:
        default = dict(rule.get("ServerSideEncryptionByDefault", {}))
        if default.get("SSEAlgorithm") == "aws:kms":
            default["KMSMasterKeyID"] = key_arn
        api_rules.append({"ApplyServerSideEncryptionByDefault": default,
                          **({"BucketKeyEnabled": rule["BucketKeyEnabled"]} if "BucketKeyEnabled" in rule else {})})
    if api_rules:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": api_rules})

    definition = (REPO / "statemachines" / "payment.asl.json").read_text()
    for placeholder in ("LambdaInvoke", "LambdaInvokeWaitForTaskToken"):
        definition = definition.replace("${%s}" % placeholder, "arn:aws:states:::lambda:invoke")
    for function in ("Validate", "Park", "DecisionTimeout", "Finalise", "Release"):
        definition = definition.replace(
            "${%sFunctionArn}" % function,
            f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:mxflow-{function}")
    state_machine_arn = boto3.client("stepfunctions").create_state_machine(
        name="mxflow-payment", definition=definition,
        roleArn=f"arn:aws:iam::{ACCOUNT}:role/mxflow-payment-sfn")["stateMachineArn"]
    return Aws(table_name, bucket, queue_url, topic_arn, state_machine_arn, table, attributes, key_arn)


def _installed_versions() -> dict[str, str]:
    """The message-version settings: CBPR+'s, or the newest installed where one has no schema (as the
    demo chooses): camt.029.001.14 on the built-in set alone."""
    from mxflow.iso20022 import CBPR_PLUS_VERSIONS, MessageVersions, SchemaRegistry

    versions, _changes = CBPR_PLUS_VERSIONS.installed(SchemaRegistry(SCHEMA_DIRS))
    return {variable: getattr(versions, name) for name, variable, _p, _s in MessageVersions.SETTINGS}


@pytest.fixture
def aws(monkeypatch):
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    from mxflow import payments, store

    with mock_aws():
        store.reset_clients()
        payments.default_lifecycle.cache_clear()
        resources = _create_resources()
        env = {
            "PAYMENT_TABLE": resources.table_name,
            "ARCHIVE_BUCKET": resources.bucket,
            "RELEASE_QUEUE_URL": resources.queue_url,
            "EVENTS_TOPIC_ARN": resources.topic_arn,
            "STATE_MACHINE_ARN": resources.state_machine_arn,
            "OPERATOR_BIC": "MXFLGB2LXXX",
            "VALIDATION_PROFILE": "iso",
            "DECISION_TIMEOUT_SECONDS": "3600",
            "AUTO_APPROVE_MAX_AMOUNT": "",
            "MAX_MESSAGE_BYTES": "1048576",
            "MXFLOW_SCHEMA_DIR": os.pathsep.join(SCHEMA_DIRS),
            "MXFLOW_ADDED_SCHEMAS": "",
            **_installed_versions(),
            "POWERTOOLS_SERVICE_NAME": "mxflow",
            "POWERTOOLS_METRICS_NAMESPACE": "mxflow",
            "LOG_LEVEL": "INFO",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield resources
        store.reset_clients()
        payments.default_lifecycle.cache_clear()


@pytest.fixture
def serialised_dynamodb():
    """DynamoDB serialises writes to one item; moto's in-process backend does not (see
    mxflow_local.dynamodb, the local runtime's fix, applied here too); the conditions still decide."""
    from mxflow_local import dynamodb

    return dynamodb.install()


@pytest.fixture
def lifecycle(aws):
    from mxflow.payments import PaymentLifecycle

    return PaymentLifecycle()


class SfnCalls:
    """Records the Step Functions calls a client makes (a botocore event hook on the real client)."""

    def __init__(self, client):
        self.calls: list[tuple[str, dict]] = []
        client.meta.events.register("provide-client-params.sfn", self._record)

    def _record(self, params, model, **_):
        self.calls.append((model.name, dict(params)))

    def named(self, operation: str) -> list[dict]:
        return [params for name, params in self.calls if name == operation]


@pytest.fixture
def sfn_calls(lifecycle):
    return SfnCalls(lifecycle.stepfunctions)


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
    """The six handlers, loaded fresh inside the mocked AWS."""
    return {name: load_function(name)
            for name in ("api", "validate", "park", "decision_timeout", "finalise", "release")}




def invoke_api(functions, context, event) -> tuple[int, dict | str, dict]:
    """(status, body parsed when JSON, lower-cased headers) of the ApiFunction's answer."""
    response = functions["api"].lambda_handler(event, context)
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for key, values in (response.get("multiValueHeaders") or {}).items():
        headers.setdefault(key.lower(), values[0])
    body = response.get("body") or ""
    if headers.get("content-type", "").endswith("json") and body:
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
