"""The local runtime's event source pollers (mxflow_local.stream_events, mxflow_local.event_sources).

The DynamoDB-stream mapping reads moto's streams backend without a client: the records it hands to its
function must be those DynamoDB Streams' GetRecords answers through boto3 (moto's API), in Lambda's event
form, in the stream's order, in batches of at most BatchSize, without what the filter drops; what it
delivered leaves moto's shard, and the iterators it used are not kept. The SQS mapping makes no
ReceiveMessage call while its queue has nothing to receive, and still delivers what arrives.
"""
from __future__ import annotations

import base64
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mxflow_local import dynamodb
from mxflow_local.event_sources import SqsEventSource
from mxflow_local.stream_events import StreamEventSources

REGION = "us-east-1"
ACCOUNT = "123456789012"   # moto's default account


@dataclass
class _Outcome:
    payload: Any = None
    error: Any = None
    ok: bool = True


class _Function:
    """A function that records every event it is invoked with."""

    def __init__(self):
        self.events: list[dict] = []
        self.lock = threading.Lock()

    def __call__(self, name: str, event: dict) -> _Outcome:
        with self.lock:
            self.events.append(json.loads(json.dumps(event)))   # what a JSON payload carries
        return _Outcome()


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        dynamodb.install()
        yield


def _lambda_form(value: Any) -> Any:
    """An attribute value as boto3 returns it (binary as bytes) -> as Lambda's event carries it (base64)."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: _lambda_form(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_lambda_form(v) for v in value]
    return value


def _expected(record: dict, stream_arn: str) -> dict:
    """A boto3 GetRecords record as Lambda's DynamoDB event documents it (creation time in epoch seconds)."""
    change = dict(record["dynamodb"])
    change["ApproximateCreationDateTime"] = int(change["ApproximateCreationDateTime"].timestamp())
    for image in ("Keys", "NewImage", "OldImage"):
        if image in change:
            change[image] = _lambda_form(change[image])
    return {"eventID": record["eventID"], "eventName": record["eventName"], "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": REGION, "dynamodb": change, "eventSourceARN": stream_arn}


def _stream_table(client) -> tuple[str, str]:
    """A new table with a NEW_AND_OLD_IMAGES stream: (its name, its stream's ARN)."""
    table = f"stream-{uuid.uuid4().hex[:8]}"
    arn = client.create_table(
        TableName=table, BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    return table, arn


def test_stream_mapping_delivers_what_get_records_answers_in_lambdas_form(aws):
    client = boto3.client("dynamodb", region_name=REGION)
    table, arn = _stream_table(client)
    nested = {"M": {"b": {"B": b"\x00\xff"}, "bs": {"BS": [b"\x01", b"\x02"]},
                    "l": {"L": [{"S": "RCVD"}, {"M": {"x": {"B": b"\x03"}}}, {"N": "1.50"}]}}}
    client.put_item(TableName=table, Item={"pk": {"S": "p1"}, "m": nested, "flag": {"BOOL": True}})
    client.update_item(TableName=table, Key={"pk": {"S": "p1"}}, UpdateExpression="SET n = :n, h = :h",
                       ExpressionAttributeValues={":n": {"N": "4"}, ":h": {"L": [{"NULL": True}]}})
    client.delete_item(TableName=table, Key={"pk": {"S": "p1"}})
    for index in range(4):
        client.put_item(TableName=table, Item={"pk": {"S": f"q{index}"}, "b": {"B": bytes([index])}})

    streams = boto3.client("dynamodbstreams", region_name=REGION)
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    answered = streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    assert [r["eventName"] for r in answered] == ["INSERT", "MODIFY", "REMOVE"] + ["INSERT"] * 4

    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    iterators = dynamodbstreams_backends[ACCOUNT][REGION].shard_iterators
    kept_before = len(iterators)
    function = _Function()
    sources = StreamEventSources(
        [{"LogicalId": "Journal", "EventSourceArn": arn, "FunctionName": "journal", "BatchSize": 3,
          "StartingPosition": "TRIM_HORIZON",
          "FilterCriteria": {"Filters": [{"Pattern": '{"eventName": ["INSERT", "MODIFY"]}'}]}}],
        invoke=function, client=lambda service: boto3.client(service, region_name=REGION), region=REGION,
        account_id=ACCOUNT, window_cap=0.0).start()
    try:
        assert sources.flush(timeout=20), "the mapping did not deliver the stream in 20 s"
    finally:
        sources.stop()

    delivered = [record for event in function.events for record in event["Records"]]
    assert delivered == [_expected(r, arn) for r in answered if r["eventName"] != "REMOVE"]
    assert delivered[0]["dynamodb"]["NewImage"]["m"]["M"]["l"]["L"][1]["M"]["x"]["B"] == "Aw=="
    assert all(0 < len(event["Records"]) <= 3 for event in function.events)
    assert sources.delivered == 6
    assert dynamodb_backends[ACCOUNT][REGION].get_table(table).stream_shard.items == []   # trimmed
    assert len(iterators) == kept_before + 1   # of those the mapping used, only its next one is kept


def test_sqs_mapping_makes_no_call_while_the_queue_has_nothing_to_receive(aws):
    sqs = boto3.client("sqs", region_name=REGION)
    name = f"inbound-{uuid.uuid4().hex[:8]}"
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    receives = []
    sqs.meta.events.register("before-call.sqs.ReceiveMessage", lambda **kwargs: receives.append(1))
    function = _Function()
    poller = SqsEventSource.from_mapping(
        {"EventSourceArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}", "FunctionName": "answers", "BatchSize": 10},
        sqs=sqs, invoke=function, available=lambda: True, region=REGION)

    assert [poller.poll_once() for _ in range(5)] == [0] * 5
    assert receives == [] and function.events == []

    sqs.send_message(QueueUrl=url, MessageBody="pacs.002")
    assert poller.poll_once() == 1
    assert [r["body"] for r in function.events[0]["Records"]] == ["pacs.002"]
    assert len(receives) == 1
    assert poller.poll_once() == 0 and len(receives) == 1   # deleted: nothing left to receive, no call
    assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"] == "0"


def test_sqs_mapping_receives_when_the_queue_cannot_be_looked_at(aws):
    """A queue moto does not know: the look cannot tell, so ReceiveMessage is made and answers for itself."""
    sqs = boto3.client("sqs", region_name=REGION)
    poller = SqsEventSource.from_mapping(
        {"EventSourceArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:missing-{uuid.uuid4().hex[:8]}",
         "FunctionName": "answers"}, sqs=sqs, invoke=_Function(), available=lambda: True, region=REGION)
    with pytest.raises(Exception) as raised:
        poller.poll_once()
    assert "NonExistentQueue" in str(raised.value) or "QueueDoesNotExist" in str(raised.value)


def test_stream_mapping_reads_again_from_its_position_after_a_failed_round(aws):
    """A round that fails (here the invoke itself raises) leaves the mapping without an iterator: the next
    one starts at the position delivered so far (AT_SEQUENCE_NUMBER), so nothing is lost and what was not
    delivered comes again, at least once, as Lambda's mappings deliver."""
    client = boto3.client("dynamodb", region_name=REGION)
    table, arn = _stream_table(client)
    function = _Function()
    calls = []

    def invoke(name: str, event: dict) -> _Outcome:
        calls.append(len(event["Records"]))
        if len(calls) == 2:
            raise RuntimeError("the invoke failed")   # the poller's round fails after its first batch
        return function(name, event)

    sources = StreamEventSources(
        [{"LogicalId": "Journal", "EventSourceArn": arn, "FunctionName": "journal", "BatchSize": 2,
          "StartingPosition": "TRIM_HORIZON"}],
        invoke=invoke, client=lambda service: boto3.client(service, region_name=REGION), region=REGION,
        account_id=ACCOUNT, window_cap=0.0).start()
    try:
        for index in range(5):
            client.put_item(TableName=table, Item={"pk": {"S": f"p{index}"}})
        assert sources.flush(timeout=20), "the mapping did not deliver the stream in 20 s"
    finally:
        sources.stop()
    keys = [r["dynamodb"]["Keys"]["pk"]["S"] for event in function.events for r in event["Records"]]
    assert sorted(set(keys)) == [f"p{index}" for index in range(5)] and len(calls) >= 4
