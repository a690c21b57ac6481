"""mxflow_local.two_regions.Replicator: the two replicas of the payment table, replicated with a lag, resolve
a conflict as DynamoDB global tables (MREC) do: the last writer (by the time of the write in its Region)
wins, an older image that arrives late is dropped, and both replicas end with the same item."""
from __future__ import annotations

import datetime
import time
import uuid

import boto3
import pytest
from moto import mock_aws

from mxflow_local import dynamodb
from mxflow_local.two_regions import Replicator

TABLE = f"replicas-{uuid.uuid4().hex[:8]}"   # moto may be shared with a running local runtime
A, B = "us-east-1", "us-west-2"
LAG_MS = 300


class _Region:
    """What the replicator needs of a LocalRuntime: a client of its Region."""

    def __init__(self, region: str):
        self.region = region
        self._clients: dict = {}

    def client(self, service: str):
        if service not in self._clients:
            self._clients[service] = boto3.client(service, region_name=self.region)
        return self._clients[service]


@pytest.fixture
def regions(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        dynamodb.install()
        runtimes = {A: _Region(A), B: _Region(B)}
        for runtime in runtimes.values():
            runtime.client("dynamodb").create_table(
                TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                      {"AttributeName": "sk", "AttributeType": "S"}],
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
        yield runtimes
        for runtime in runtimes.values():
            runtime.client("dynamodb").delete_table(TableName=TABLE)


def _put(runtimes, region: str, owner: str, epoch: int) -> None:
    runtimes[region].client("dynamodb").put_item(TableName=TABLE, Item={
        "pk": {"S": "p1"}, "sk": {"S": "PAYMENT"}, "ownerRegion": {"S": owner}, "epoch": {"N": str(epoch)}})


def _held(runtimes, region: str) -> dict:
    item = runtimes[region].client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "p1"}, "sk": {"S": "PAYMENT"}},
                                                        ConsistentRead=True)["Item"]
    return {"ownerRegion": item["ownerRegion"]["S"], "epoch": int(item["epoch"]["N"])}


def _drain(replicator: Replicator) -> None:
    """Rounds until nothing written before now is pending (bounded)."""
    mark = time.time()
    for _ in range(100):
        replicator.round()
        if replicator.pending(written_before=mark) == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"replication did not drain: {replicator.pending()} pending")


def test_an_older_image_arriving_late_does_not_overwrite_a_newer_write(regions):
    replicator = Replicator(regions, TABLE, lag_ms=LAG_MS)   # driven round by round (no thread)
    replicator.start_reading()
    _put(regions, A, A, 1)            # the failed Region's last write (older)
    replicator.round()                # read: due one lag later
    time.sleep(0.01)
    _put(regions, B, B, 2)            # the takeover in the other replica (newer), before A's image arrives
    replicator.round()
    assert replicator.pending() == 2
    time.sleep(LAG_MS / 1000 + 0.05)
    _drain(replicator)
    # Last writer wins in both replicas: A's late image did not undo the takeover in B; B's reached A.
    assert _held(regions, A) == _held(regions, B) == {"ownerRegion": B, "epoch": 2}
    assert replicator.superseded == 1 and replicator.replicated == 1
    assert replicator.differing() == []


def test_the_replicas_converge_under_crossing_writes(regions):
    replicator = Replicator(regions, TABLE, lag_ms=LAG_MS)
    replicator.start_reading()
    for epoch in range(1, 7):         # both Regions write the item in turn, each before the other's image lands
        _put(regions, A if epoch % 2 else B, A if epoch % 2 else B, epoch)
        replicator.round()
        time.sleep(0.02)
    time.sleep(LAG_MS / 1000 + 0.05)
    _drain(replicator)
    assert _held(regions, A) == _held(regions, B) == {"ownerRegion": B, "epoch": 6}
    assert replicator.differing() == []


def test_a_newer_image_is_applied_and_not_sent_back(regions):
    replicator = Replicator(regions, TABLE, lag_ms=0)
    replicator.start_reading()
    _put(regions, A, A, 1)
    _drain(replicator)
    _drain(replicator)                # B's stream now holds the replicator's write: it is not sent back
    assert _held(regions, B) == {"ownerRegion": A, "epoch": 1}
    assert replicator.replicated == 1 and replicator.superseded == 0 and replicator.pending() == 0


def test_equal_write_times_are_decided_by_the_region_then_the_stream_order(regions):
    replicator = Replicator(regions, TABLE, lag_ms=0)
    at = datetime.datetime(2026, 12, 2, 7, 0, 0, 123456, tzinfo=datetime.timezone.utc)

    def stamp(region, sequence):
        return replicator._stamp(region, {"dynamodb": {"ApproximateCreationDateTime": at, "SequenceNumber": str(sequence)}})

    assert stamp(A, 5) > stamp(B, 9) and stamp(A, 5) < stamp(A, 6)   # one order, the same in both replicas
    later = replicator._stamp(B, {"dynamodb": {"ApproximateCreationDateTime": at + datetime.timedelta(microseconds=1),
                                               "SequenceNumber": "1"}})
    assert later > stamp(A, 5)


def test_a_later_write_of_the_target_made_before_the_image_is_due_is_not_overwritten(regions):
    """A write the target's functions made after the image was read, before it is due: each round reads the
    streams again under the lock before it applies, so the older image is dropped, not put over it."""
    replicator = Replicator(regions, TABLE, lag_ms=LAG_MS)
    replicator.start_reading()
    _put(regions, A, A, 1)
    replicator.round()                # A's write read: due one lag later
    time.sleep(0.01)
    _put(regions, B, B, 2)            # B's later write, not read by the replicator yet
    time.sleep(LAG_MS / 1000 + 0.05)
    replicator.round()                # A's image is due now
    assert _held(regions, B) == {"ownerRegion": B, "epoch": 2} and replicator.superseded == 1
    time.sleep(LAG_MS / 1000 + 0.05)
    _drain(replicator)
    assert _held(regions, A) == _held(regions, B) == {"ownerRegion": B, "epoch": 2}
    assert replicator.differing() == []
