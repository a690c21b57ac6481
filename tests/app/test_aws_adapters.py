"""The AWS adapters (mxflow.aws) on moto, with the resources built from template.yaml: what each one
sends to its service, and how AWS errors become the domain's (mxflow.errors)."""
from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from mxflow.aws.clients import as_service_error
from mxflow.aws.messaging import SnsEventPublisher, SqsReleaseQueue
from mxflow.aws.s3 import S3MessageArchive
from mxflow.aws.stepfunctions import StepFunctionsWorkflow, execution_arn
from mxflow.errors import MessageNotFound, NotRedrivable, SendRefused, ServiceError, TransientError
from mxflow.service import default_lifecycle


def client_error(code: str, http: int = 400, operation: str = "SendMessage") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code},
                        "ResponseMetadata": {"HTTPStatusCode": http}}, operation)


# -- error classification --------------------------------------------------------------------------

@pytest.mark.parametrize("error, transient", [
    (client_error("ThrottlingException"), True),
    (client_error("ProvisionedThroughputExceededException"), True),
    (client_error("ReplicatedWriteConflictException"), True),   # MRSC: another Region writes the item now
    (client_error("SomethingNew", http=503), True),
    (EndpointConnectionError(endpoint_url="https://sqs.eu-west-1.amazonaws.com"), True),
    (client_error("AccessDeniedException", http=403), False),
    (client_error("ResourceNotFoundException"), False),
])
def test_aws_errors_become_transient_or_service_errors(error, transient):
    mapped = as_service_error(error)
    assert isinstance(mapped, ServiceError)
    assert isinstance(mapped, TransientError) is transient


@pytest.mark.parametrize("failure, refused", [
    (client_error("ThrottlingException"), True),       # 4xx: SQS did not take the message
    (client_error("KMS.AccessDeniedException"), True),
    (client_error("InternalError", http=500), False),  # 5xx: the message may be on the queue
    (EndpointConnectionError(endpoint_url="https://sqs.eu-west-1.amazonaws.com"), False),
])
def test_a_refused_send_is_told_from_one_whose_outcome_is_unknown(aws, monkeypatch, failure, refused):
    queue = SqsReleaseQueue(aws.queue_url)

    def fail(**kwargs):
        raise failure

    monkeypatch.setattr(queue.client, "send_message", fail)
    with pytest.raises(ServiceError) as raised:
        queue.send({"paymentId": "p-1"}, deduplication_id="p-1", group_id="BNPAFRPPXXX")
    assert isinstance(raised.value, SendRefused) is refused
    assert isinstance(raised.value, TransientError) is not refused


# -- S3 --------------------------------------------------------------------------------------------

def test_archive_uses_the_buckets_kms_key_unless_one_is_named(aws):
    s3 = boto3.client("s3")
    archive = S3MessageArchive(aws.bucket)
    archive.put("generated/P-1/pacs.002.xml", b"<Envelope/>")
    assert archive.get("generated/P-1/pacs.002.xml") == b"<Envelope/>"
    head = s3.head_object(Bucket=aws.bucket, Key="generated/P-1/pacs.002.xml")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == aws.key_arn
    named = boto3.client("kms").create_key(Description="operator key")["KeyMetadata"]["Arn"]
    S3MessageArchive(aws.bucket, kms_key_id=named).put("generated/P-1/camt.029.xml", b"<Envelope/>")
    head = s3.head_object(Bucket=aws.bucket, Key="generated/P-1/camt.029.xml")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == named
    with pytest.raises(MessageNotFound):
        archive.get("generated/P-1/none.xml")


# -- Step Functions --------------------------------------------------------------------------------

def test_start_flow_starts_the_express_payment_flow_unnamed(aws, monkeypatch):
    workflow = StepFunctionsWorkflow(aws.state_machine_arn, aws.flow_arn)
    started = []
    monkeypatch.setattr(workflow.client, "start_execution", lambda **kwargs: started.append(kwargs) or {})
    flow_input = {"paymentId": "p-1", "stage": "validate", "message": None}
    workflow.start_flow(flow_input)
    workflow.start_flow(flow_input)  # Express starts are not named: each is its own execution
    assert started == [{"stateMachineArn": aws.flow_arn, "input": json.dumps(flow_input, sort_keys=True)}] * 2
    sfn = boto3.client("stepfunctions")
    assert sfn.describe_state_machine(stateMachineArn=aws.flow_arn)["type"] == "EXPRESS"
    assert sfn.describe_state_machine(stateMachineArn=aws.state_machine_arn)["type"] == "STANDARD"


def test_a_token_whose_task_is_gone_is_not_an_error(aws, monkeypatch):
    workflow = StepFunctionsWorkflow(aws.state_machine_arn)
    sent = []

    def send_task_success(**kwargs):
        sent.append(kwargs)
        if kwargs["taskToken"] == "gone":
            raise client_error("TaskTimedOut", operation="SendTaskSuccess")
        return {}

    monkeypatch.setattr(workflow.client, "send_task_success", send_task_success)
    assert workflow.send_task_success("live", {"action": "approve"}) is True
    assert workflow.send_task_success("gone", {"action": "approve"}) is False
    assert json.loads(sent[0]["output"]) == {"action": "approve"}


def test_redrive_names_the_execution_and_refusals_are_not_redrivable(aws, monkeypatch):
    workflow = StepFunctionsWorkflow(aws.state_machine_arn)

    def not_redrivable(**kwargs):
        assert kwargs == {"executionArn": execution_arn(aws.state_machine_arn, "p-1")}
        raise client_error("ExecutionNotRedrivable", operation="RedriveExecution")

    monkeypatch.setattr(workflow.client, "redrive_execution", not_redrivable)
    with pytest.raises(NotRedrivable) as refused:
        workflow.redrive("p-1")
    assert refused.value.reason == "ExecutionNotRedrivable"


# -- SQS and SNS -----------------------------------------------------------------------------------

def test_release_queue_sends_with_deduplication_id_and_group(aws):
    queue = SqsReleaseQueue(aws.queue_url)
    for _ in range(2):  # the second send is deduplicated by the FIFO queue
        assert queue.send({"paymentId": "p-1"}, deduplication_id="p-1", group_id="BNPAFRPPXXX")
    sent = boto3.client("sqs").receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10,
                                               AttributeNames=["All"])["Messages"]
    assert len(sent) == 1 and json.loads(sent[0]["Body"]) == {"paymentId": "p-1"}
    assert sent[0]["Attributes"]["MessageDeduplicationId"] == "p-1"
    assert sent[0]["Attributes"]["MessageGroupId"] == "BNPAFRPPXXX"


def test_events_reach_subscribers_with_their_attributes(aws):
    sqs = boto3.client("sqs")
    inbox = sqs.create_queue(QueueName="subscriber")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    boto3.client("sns").subscribe(TopicArn=aws.topic_arn, Protocol="sqs", Endpoint=inbox_arn)
    event = {"type": "payment.pending", "paymentId": "p-1", "status": "PDNG"}
    SnsEventPublisher(aws.topic_arn).publish(event, attributes={"eventType": "payment.pending", "status": "PDNG"})
    notification = json.loads(sqs.receive_message(QueueUrl=inbox)["Messages"][0]["Body"])
    assert json.loads(notification["Message"]) == event
    assert notification["MessageAttributes"]["eventType"] == {"Type": "String", "Value": "payment.pending"}
    assert notification["MessageAttributes"]["status"] == {"Type": "String", "Value": "PDNG"}


# -- composed: the lifecycle on the adapters -------------------------------------------------------

def test_health_reports_region_table_reachability_and_schema_sources(aws):
    lifecycle = default_lifecycle()
    sources = lifecycle.registry.sources()  # the function's registry: the environment's schema sources
    assert lifecycle.health() == {"status": "ok", "region": "eu-west-1", "schemas": sources}
    boto3.client("dynamodb").delete_table(TableName=aws.table_name)
    assert lifecycle.health() == {"status": "unhealthy", "region": "eu-west-1", "schemas": sources}


def test_the_sample_reads_the_in_flight_and_suspended_indexes(aws):
    sample = default_lifecycle().sample()
    assert sample["oldestPendingAgeSeconds"] == 0.0 and sample["suspendedPayments"] == 0 and sample["sampled"] == 0
