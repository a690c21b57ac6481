"""The PaymentStore contract (mxflow.ports), checked on the DynamoDB adapter (moto, the table built from
template.yaml) and on the in-memory fake the lifecycle tests use, so the fake keeps the real rules;
then what is DynamoDB's own: the item layout and the sparse in-flight index."""
from __future__ import annotations

import threading

import boto3
import pytest

from mxflow.aws.dynamodb import INFLIGHT_INDEX, DynamoDbPaymentStore, inflight_shard
from mxflow.errors import DuplicatePayment, PaymentNotFound, StatusConflict


def new_record(payment_id="P-1", status="RCVD"):
    return {"paymentId": payment_id, "clientId": "c1", "status": status, "messageType": "pacs.008.001.08",
            "contentHash": "ab" * 32, "archiveKey": f"received/{payment_id}/x.xml",
            "receivedAt": "2026-11-24T10:00:00.000Z", "facts": {"amount": "10.50", "currency": "EUR"},
            "messages": {"received": f"received/{payment_id}/x.xml"}}


@pytest.fixture
def dynamodb_store(aws):
    return DynamoDbPaymentStore(aws.table_name)


@pytest.fixture(params=["dynamodb", "fake"])
def store(request):
    if request.param == "fake":
        from fakes import FakePaymentStore

        return FakePaymentStore()
    return request.getfixturevalue("dynamodb_store")


# -- the contract, on both -------------------------------------------------------------------------

def test_create_writes_record_and_first_history_event(store):
    store.create(new_record())
    record = store.get("P-1")
    assert record["status"] == "RCVD" and record["version"] == 1
    assert record["facts"] == {"amount": "10.50", "currency": "EUR"}
    history = store.history("P-1")
    assert [(e["status"], e["version"]) for e in history] == [("RCVD", 1)]


def test_create_twice_raises_duplicate_with_existing_record(store):
    store.create(new_record())
    with pytest.raises(DuplicatePayment) as raised:
        store.create({**new_record(), "contentHash": "cd" * 32})
    assert raised.value.existing["contentHash"] == "ab" * 32
    assert len(store.history("P-1")) == 1


def test_get_unknown_raises_not_found(store):
    with pytest.raises(PaymentNotFound):
        store.get("nope")


def test_transition_is_conditional_on_status_and_version(store):
    store.create(new_record())
    assert store.transition("P-1", expected_status="RCVD", expected_version=1, new_status="ACTC") == 2
    with pytest.raises(StatusConflict) as stale_version:
        store.transition("P-1", expected_status="ACTC", expected_version=1, new_status="PDNG")
    assert stale_version.value.current_status == "ACTC"
    with pytest.raises(StatusConflict):
        store.transition("P-1", expected_status="RCVD", expected_version=2, new_status="PDNG")
    record = store.get("P-1")
    assert (record["status"], record["version"]) == ("ACTC", 2)
    assert [e["status"] for e in store.history("P-1")] == ["RCVD", "ACTC"]


def test_failed_transition_writes_no_history_event(store):
    store.create(new_record())
    with pytest.raises(StatusConflict):
        store.transition("P-1", expected_status="PDNG", expected_version=1, new_status="ACSP")
    assert [e["status"] for e in store.history("P-1")] == ["RCVD"]


def test_transition_of_unknown_payment_raises_not_found(store):
    with pytest.raises(PaymentNotFound):
        store.transition("ghost", expected_status="RCVD", expected_version=1, new_status="ACTC")


def test_terminal_status_leaves_the_in_flight_set(store):
    store.create(new_record())
    store.transition("P-1", expected_status="RCVD", expected_version=1, new_status="ACTC")
    store.transition("P-1", expected_status="ACTC", expected_version=2, new_status="PDNG",
                     set_values={"taskToken": "t"})
    assert store.oldest_in_flight_since("PDNG") == store.get("P-1")["statusSince"]
    store.transition("P-1", expected_status="PDNG", expected_version=3, new_status="RJCT",
                     reason={"code": "AB06", "additionalInfo": "timeout"}, remove=("taskToken",))
    record = store.get("P-1")
    assert "taskToken" not in record
    assert record["reason"] == {"code": "AB06", "additionalInfo": "timeout"}
    assert store.oldest_in_flight_since("PDNG") is None
    assert store.history("P-1")[-1]["reason"]["code"] == "AB06"
    assert store.history("P-1")[-1]["fromStatus"] == "PDNG"


def test_oldest_pending_is_the_earliest_status_since(store):
    ids = [f"P-{n}" for n in range(12)]
    for i in ids:
        store.create(new_record(i))
        store.transition(i, expected_status="RCVD", expected_version=1, new_status="PDNG")
    first = store.get(ids[0])["statusSince"]
    assert store.oldest_in_flight_since("PDNG") == first


def test_require_no_decision_blocks_a_second_claim(store):
    store.create(new_record(status="PDNG"))
    store.transition("P-1", expected_status="PDNG", expected_version=1, new_status="ACSP",
                     set_values={"decision": {"action": "approve"}}, require_no_decision=True)
    with pytest.raises(StatusConflict):
        store.transition("P-1", expected_status=("PDNG", "ACSP"), expected_version=2, new_status="RJCT",
                         set_values={"decision": {"action": "timeout"}}, require_no_decision=True)
    assert store.get("P-1")["decision"] == {"action": "approve"}


def test_concurrent_transitions_exactly_one_wins(store, serialised_dynamodb):
    store.create(new_record(status="PDNG"))
    barrier = threading.Barrier(8)
    outcomes = []

    def claim(n):
        barrier.wait()
        try:
            store.transition("P-1", expected_status="PDNG", expected_version=1, new_status="RJCT",
                             set_values={"decision": {"action": "reject", "by": n}}, require_no_decision=True)
            outcomes.append(("won", n))
        except StatusConflict:
            outcomes.append(("lost", n))

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    winners = [n for result, n in outcomes if result == "won"]
    assert len(outcomes) == 8 and len(winners) == 1
    assert store.get("P-1")["decision"]["by"] == winners[0]
    assert [e["status"] for e in store.history("P-1")] == ["PDNG", "RJCT"]


def test_record_message_and_set_attributes(store):
    store.create(new_record())
    store.record_message("P-1", "pacs.002", "generated/P-1/pacs.002.xml")
    store.record_message("P-1", "pacs.002", "generated/P-1/pacs.002.xml")  # idempotent
    store.set_attributes("P-1", {"releaseMessageId": "m-1"}, expected_status="RCVD")
    with pytest.raises(StatusConflict):
        store.set_attributes("P-1", {"releaseMessageId": "m-2"}, expected_status="ACSP")
    record = store.get("P-1")
    assert record["messages"] == {"received": "received/P-1/x.xml", "pacs.002": "generated/P-1/pacs.002.xml"}
    assert record["releaseMessageId"] == "m-1" and record["version"] == 1
    with pytest.raises(PaymentNotFound):
        store.record_message("ghost", "x", "y")


# -- DynamoDB's own --------------------------------------------------------------------------------

def test_table_comes_from_the_template_design(aws):
    table = boto3.client("dynamodb").describe_table(TableName=aws.table_name)["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    index = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}[INFLIGHT_INDEX]
    assert {k["AttributeName"]: k["KeyType"] for k in index["KeySchema"]} == {
        "inflightShard": "HASH", "statusSince": "RANGE"}


def test_item_layout_owner_region_epoch_and_sparse_index_key(dynamodb_store):
    dynamodb_store.create(new_record())
    record = dynamodb_store.get("P-1")
    assert record["ownerRegion"] == "eu-west-1" and record["epoch"] == 1
    assert record["inflightShard"] == inflight_shard("P-1", "RCVD")
    dynamodb_store.transition("P-1", expected_status="RCVD", expected_version=1, new_status="RJCT",
                              reason={"code": "AB06", "additionalInfo": "timeout"})
    assert "inflightShard" not in dynamodb_store.get("P-1")  # terminal: out of the sparse index


def test_oldest_pending_is_found_across_shards(dynamodb_store):
    ids = [f"P-{n}" for n in range(12)]
    assert len({inflight_shard(i, "PDNG") for i in ids}) > 1
    for i in ids:
        dynamodb_store.create(new_record(i))
        dynamodb_store.transition(i, expected_status="RCVD", expected_version=1, new_status="PDNG")
    assert dynamodb_store.oldest_in_flight_since("PDNG") == dynamodb_store.get(ids[0])["statusSince"]
