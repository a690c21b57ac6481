"""The PaymentStore contract (mxflow.ports), checked on the DynamoDB adapter (moto, the table built from
template.yaml) and on the in-memory fake the lifecycle tests use, so the fake keeps the real rules;
then what is DynamoDB's own: one item per payment, its indexes and what each write touches."""
from __future__ import annotations

import threading

import boto3
import pytest

from mxflow.aws.dynamodb import (CLIENT_INDEX, END_TO_END_INDEX, ENGINE_SUSPENSE_INDEX, INFLIGHT_INDEX, REFERENCE_INDEX,
                                 SUSPENDED_INDEX,
                                 DynamoDbPaymentStore, inflight_key)
from mxflow.errors import DuplicatePayment, PaymentNotFound, StatusConflict
from mxflow.ports import Fence

REGION = "eu-west-1"  # the conftest's Region: the store's owner Region
FENCE = Fence(REGION, 1)


def new_record(payment_id="P-1", status="RCVD", received_at="2026-11-24T10:00:00.000Z"):
    return {"paymentId": payment_id, "clientId": "c1", "status": status, "messageType": "pacs.008.001.08",
            "contentSha256": "ab" * 32, "receivedAt": received_at, "facts": {"amount": "10.50", "currency": "EUR"},
            "messages": {}}


@pytest.fixture
def dynamodb_store(aws):
    return DynamoDbPaymentStore(aws.table_name)


@pytest.fixture(params=["dynamodb", "fake"])
def store(request):
    if request.param == "fake":
        from fakes import FakePaymentStore

        return FakePaymentStore(region=REGION)
    return request.getfixturevalue("dynamodb_store")


def statuses(store, payment_id="P-1") -> list[str]:
    return [event["status"] for event in store.get(payment_id)["history"]]


# -- the contract, on both -------------------------------------------------------------------------

def test_create_writes_one_record_with_its_first_history_event(store):
    store.create(new_record(), event={"actor": "c1"})
    record = store.get("P-1")
    assert record["status"] == "RCVD" and record["version"] == 1
    assert (record["ownerRegion"], record["epoch"]) == (REGION, 1)
    assert record["facts"] == {"amount": "10.50", "currency": "EUR"}
    assert record["history"] == [{"status": "RCVD", "time": "2026-11-24T10:00:00.000Z", "actor": "c1"}]


def test_create_twice_raises_duplicate_with_existing_record(store):
    store.create(new_record())
    with pytest.raises(DuplicatePayment) as raised:
        store.create({**new_record(), "contentSha256": "cd" * 32})
    assert raised.value.existing["contentSha256"] == "ab" * 32
    assert len(store.get("P-1")["history"]) == 1


def test_get_unknown_raises_not_found(store):
    with pytest.raises(PaymentNotFound):
        store.get("nope")


def test_transition_is_conditional_on_status_and_version(store):
    store.create(new_record())
    assert store.transition("P-1", expected_status="RCVD", expected_version=1, new_status="ACTC") == 2
    with pytest.raises(StatusConflict) as stale_version:
        store.transition("P-1", expected_status="ACTC", expected_version=1, new_status="PDNG")
    assert stale_version.value.current_status == "ACTC" and stale_version.value.current["version"] == 2
    with pytest.raises(StatusConflict):
        store.transition("P-1", expected_status="RCVD", expected_version=2, new_status="PDNG")
    record = store.get("P-1")
    assert (record["status"], record["version"]) == ("ACTC", 2)
    assert statuses(store) == ["RCVD", "ACTC"]  # a failed write appends nothing


def test_transition_of_unknown_payment_raises_not_found(store):
    with pytest.raises(PaymentNotFound):
        store.transition("ghost", expected_status="RCVD", expected_version=1, new_status="ACTC")


def test_transition_is_fenced_by_owner_region_and_epoch(store):
    store.create(new_record())
    for fence in (Fence("us-west-2", 1), Fence(REGION, 2)):
        with pytest.raises(StatusConflict):
            store.transition("P-1", expected_status="RCVD", expected_version=1, new_status="ACTC", fence=fence)
    assert store.transition("P-1", expected_status="RCVD", expected_version=1, new_status="ACTC", fence=FENCE) == 2


def test_one_write_appends_every_status_passed_and_adds_messages(store):
    store.create(new_record())
    store.transition("P-1", expected_status="RCVD", expected_version=1, new_status="ACSP", passed_through=("ACTC",),
                     set_values={"decision": {"action": "approve"}}, event_detail={"actor": "policy"},
                     messages={"pacs.002": {"z": b"\x78\x9c\x03\x00\x00\x00\x00\x01"}}, fence=FENCE)
    record = store.get("P-1")
    assert [(e["status"], e.get("actor")) for e in record["history"]] == [
        ("RCVD", None), ("ACTC", "policy"), ("ACSP", "policy")]
    assert record["history"][1]["time"] == record["history"][2]["time"] == record["statusSince"]
    assert record["messages"] == {"pacs.002": {"z": b"\x78\x9c\x03\x00\x00\x00\x00\x01"}}
    assert record["decision"] == {"action": "approve"} and record["version"] == 2


def test_terminal_status_takes_the_answer_the_reason_and_leaves_the_in_flight_set(store):
    store.create(new_record())
    store.transition("P-1", expected_status="RCVD", expected_version=1, new_status="PDNG",
                     set_values={"taskToken": "t"})
    assert [i["paymentId"] for i in store.in_flight(REGION, per_shard=10)] == ["P-1"]
    store.transition("P-1", expected_status=("PDNG", "ACTC"), expected_version=2, new_status="RJCT",
                     reason={"code": "AB06", "additionalInfo": "timeout"}, remove=("taskToken",),
                     messages={"pacs.002": {"z": b"report"}})
    record = store.get("P-1")
    assert "taskToken" not in record and record["messages"]["pacs.002"] == {"z": b"report"}
    assert record["reason"] == {"code": "AB06", "additionalInfo": "timeout"}
    assert record["history"][-1]["reason"]["code"] == "AB06"
    assert store.in_flight(REGION, per_shard=10) == []


def test_in_flight_lists_the_oldest_with_their_status(store):
    for n in range(6):
        store.create(new_record(f"P-{n}", received_at=f"2026-11-24T10:00:0{n}.000Z"))
    store.transition("P-2", expected_status="RCVD", expected_version=1, new_status="PDNG")
    store.transition("P-4", expected_status="RCVD", expected_version=1, new_status="ACSC")
    sampled = {i["paymentId"]: i["status"] for i in store.in_flight(REGION, per_shard=10)}
    assert sampled == {"P-0": "RCVD", "P-1": "RCVD", "P-2": "PDNG", "P-3": "RCVD", "P-5": "RCVD"}
    assert store.in_flight("us-west-2", per_shard=10) == []


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
    assert statuses(store) == ["PDNG", "RJCT"]


def test_set_attributes_keeps_status_and_history(store):
    store.create(new_record(status="PDNG"))
    store.set_attributes("P-1", {"taskToken": "t-2"}, expected_status="PDNG", require_no_decision=True, fence=FENCE)
    with pytest.raises(StatusConflict):
        store.set_attributes("P-1", {"taskToken": "t-3"}, expected_status="ACTC")
    with pytest.raises(StatusConflict):
        store.set_attributes("P-1", {"taskToken": "t-3"}, fence=Fence(REGION, 7))
    record = store.get("P-1")
    assert record["taskToken"] == "t-2" and record["version"] == 1 and statuses(store) == ["PDNG"]
    with pytest.raises(PaymentNotFound):
        store.set_attributes("ghost", {"taskToken": "x"})


def approved(store):
    store.create(new_record())
    store.transition("P-1", expected_status="RCVD", expected_version=1, new_status="ACSP",
                     set_values={"decision": {"action": "approve"}})


def test_the_release_claim_is_conditional_on_the_claim_as_read(store):
    approved(store)
    first = {"region": REGION, "epoch": 1, "attempts": 1, "windowAt": "2026-11-24T10:00:01.000Z",
             "definitiveFailures": 0}
    store.update_release("P-1", first, expected_attempts=None, fence=FENCE)
    with pytest.raises(StatusConflict):  # a second first claim
        store.update_release("P-1", first, expected_attempts=None, fence=FENCE)
    with pytest.raises(StatusConflict):  # a claim read before the first one
        store.update_release("P-1", {**first, "attempts": 2}, expected_attempts=0, fence=FENCE)
    with pytest.raises(StatusConflict):  # another Region's step
        store.update_release("P-1", {**first, "attempts": 2}, expected_attempts=1, fence=Fence("us-west-2", 1))
    store.update_release("P-1", {**first, "attempts": 2}, expected_attempts=1, fence=FENCE)
    store.update_release("P-1", {**first, "attempts": 2, "sentAt": "t", "messageId": "m"}, expected_attempts=2,
                         fence=FENCE)
    with pytest.raises(StatusConflict):  # a send is recorded: nothing claims it again
        store.update_release("P-1", {**first, "attempts": 3}, expected_attempts=2, fence=FENCE)
    record = store.get("P-1")
    assert record["release"]["messageId"] == "m" and record["version"] == 2 and statuses(store) == ["RCVD", "ACSP"]


def test_the_release_claim_needs_acsp(store):
    store.create(new_record(status="PDNG"))
    with pytest.raises(StatusConflict):
        store.update_release("P-1", {"attempts": 1}, expected_attempts=None, fence=FENCE)


def test_suspense_is_listed_until_cleared(store):
    approved(store)
    claim = {"region": REGION, "epoch": 1, "attempts": 1, "windowAt": "w", "definitiveFailures": 0}
    store.update_release("P-1", claim, expected_attempts=None, fence=FENCE)
    assert store.suspended(REGION) == []
    store.update_release("P-1", claim, expected_attempts=1, fence=FENCE,
                         suspense={"reason": "release outcome unknown", "since": "2026-11-24T10:05:00.000Z"})
    assert store.suspended(REGION) == ["P-1"] and store.suspended("us-west-2") == []
    assert store.get("P-1")["suspense"]["reason"] == "release outcome unknown"
    store.update_release("P-1", {**claim, "definitiveFailures": 1}, expected_attempts=1, fence=FENCE,
                         clear_suspense=True)
    assert store.suspended(REGION) == [] and "suspense" not in store.get("P-1")


# -- DynamoDB's own --------------------------------------------------------------------------------

def test_table_and_indexes_come_from_the_template_design(aws):
    table = boto3.client("dynamodb").describe_table(TableName=aws.table_name)["Table"]
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    indexes = {i["IndexName"]: i for i in table["GlobalSecondaryIndexes"]}
    keys = {name: {k["AttributeName"]: k["KeyType"] for k in index["KeySchema"]} for name, index in indexes.items()}
    assert keys == {INFLIGHT_INDEX: {"inflight": "HASH", "receivedAt": "RANGE"},
                    CLIENT_INDEX: {"clientId": "HASH", "receivedAt": "RANGE"},
                    SUSPENDED_INDEX: {"suspendedIn": "HASH", "suspendedAt": "RANGE"},
                    END_TO_END_INDEX: {"endToEndKey": "HASH", "receivedAt": "RANGE"},
                    # the return leg (issue 12): a payment found by its references; the engine's answers in suspense
                    REFERENCE_INDEX: {"matchKey": "HASH", "receivedAt": "RANGE"},
                    ENGINE_SUSPENSE_INDEX: {"suspenseListIn": "HASH", "receivedAt": "RANGE"}}
    # every index KEYS_ONLY, but the suspense list's: it carries what GET /engine/suspense lists (no read per entry)
    suspense = indexes.pop(ENGINE_SUSPENSE_INDEX)["Projection"]
    assert {i["Projection"]["ProjectionType"] for i in indexes.values()} == {"KEYS_ONLY"}
    assert suspense["ProjectionType"] == "INCLUDE" and set(suspense["NonKeyAttributes"]) == {
        "suspenseId", "messageType", "reason", "code", "paymentId"}
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_IMAGE"


def test_one_item_per_payment_and_the_index_keys_written_once(dynamodb_store, aws):
    dynamodb_store.create(new_record())
    dynamodb_store.transition("P-1", expected_status="RCVD", expected_version=1, new_status="ACTC")
    items = boto3.client("dynamodb").scan(TableName=aws.table_name)["Items"]
    assert len(items) == 1 and items[0]["sk"] == {"S": "PAYMENT"}
    assert "paymentId" not in items[0] and "updatedAt" not in items[0]  # the key; the last status time
    assert dynamodb_store.get("P-1")["paymentId"] == "P-1"
    record = dynamodb_store.get("P-1")
    assert record["inflight"] == inflight_key("P-1", REGION) and record["clientId"] == "c1"
    dynamodb_store.transition("P-1", expected_status="ACTC", expected_version=2, new_status="RJCT",
                              reason={"code": "AB06", "additionalInfo": None})
    record = dynamodb_store.get("P-1")
    assert "inflight" not in record and record["reason"] == {"code": "AB06"}  # no null is stored


def test_a_client_finds_its_payment_by_uetr_or_end_to_end_id_through_the_indexes(store):
    uetr = "8a562c67-ca16-48ba-b074-65581be6f011"
    # the UETR's key as the lifecycle writes it (the return leg's ByReference: iso20022.reference_key)
    mine = {**new_record("P-1"), "facts": {"amount": "1.00", "currency": "EUR", "uetr": uetr, "endToEndId": "E2E-7"},
            "matchKey": "u:" + uetr}
    store.create(mine)
    store.create({**new_record("P-2", received_at="2026-11-24T10:00:01.000Z"),
                  "facts": {"amount": "2.00", "currency": "EUR", "endToEndId": "E2E-7"}})   # no UETR
    store.create({**mine, "paymentId": "P-other", "clientId": "c2"})                    # another client's
    assert [r["paymentId"] for r in store.client_search("c1", uetr)] == ["P-1"]
    assert sorted(r["paymentId"] for r in store.client_search("c1", "E2E-7")) == ["P-1", "P-2"]
    assert store.client_search("c1", "E2E-8") == [] and store.client_search("c3", uetr) == []
    (found,) = store.client_search("c2", uetr)
    assert found["paymentId"] == "P-other" and found["facts"]["uetr"] == uetr and found["statusSince"]


def test_the_search_keys_are_written_once_at_creation(dynamodb_store, aws):
    dynamodb_store.create({**new_record(), "facts": {"uetr": "u-1", "endToEndId": "e-1"}})
    dynamodb_store.create(new_record("P-2"))  # no end-to-end id: not in the index (sparse)
    items = {i["pk"]["S"]: i for i in boto3.client("dynamodb").scan(TableName=aws.table_name)["Items"]}
    assert items["P-1"]["endToEndKey"] == {"S": "c1#e-1"} and "endToEndKey" not in items["P-2"]


def test_the_in_flight_sample_reads_every_shard(dynamodb_store):
    ids = [f"P-{n}" for n in range(20)]
    assert len({inflight_key(i, REGION) for i in ids}) > 1
    for n, payment_id in enumerate(ids):
        dynamodb_store.create(new_record(payment_id, received_at=f"2026-11-24T10:00:{n:02d}.000Z"))
    assert {i["paymentId"] for i in dynamodb_store.in_flight(REGION, per_shard=100)} == set(ids)
    assert len(dynamodb_store.in_flight(REGION, per_shard=1)) == len({inflight_key(i, REGION) for i in ids})


# -- the console's reads (mxflow.queries): a client's pages and the sampler's summary ---------------

def test_client_page_is_the_clients_newest_first_within_the_bounds_and_after_the_start(store):
    for index in range(5):
        store.create({**new_record(f"P-{index}", received_at=f"2026-11-24T10:00:0{index}.000Z")})
    store.create({**new_record("P-other", received_at="2026-11-24T10:00:09.000Z"), "clientId": "c2"})
    page, more = store.client_page("c1", received_after=None, received_before=None, start=None, limit=2)
    assert [r["paymentId"] for r in page] == ["P-4", "P-3"] and more
    assert page[0]["facts"]["currency"] == "EUR" and page[0]["statusSince"] == "2026-11-24T10:00:04.000Z"
    page, more = store.client_page("c1", received_after=None, received_before=None,
                                   start=("2026-11-24T10:00:03.000Z", "P-3"), limit=10)
    assert [r["paymentId"] for r in page] == ["P-2", "P-1", "P-0"] and not more
    page, _ = store.client_page("c1", received_after="2026-11-24T10:00:01.000Z",
                                received_before="2026-11-24T10:00:03.000Z", start=None, limit=10)
    assert [r["paymentId"] for r in page] == ["P-3", "P-2", "P-1"]
    assert store.client_page("c3", received_after=None, received_before=None, start=None, limit=10) == ([], False)
    # a page that ends exactly at the last payment says there is no more (no cursor to an empty page)
    page, more = store.client_page("c1", received_after=None, received_before=None,
                                   start=("2026-11-24T10:00:02.000Z", "P-2"), limit=2)
    assert [r["paymentId"] for r in page] == ["P-1", "P-0"] and not more


def test_the_summary_is_one_item_per_region_in_no_index(store):
    assert store.get_summary(REGION) is None
    summary = {"sampledAt": "2026-11-24T10:00:00.000Z", "complete": True,
               "byClient": {"c1": {"counts": {"PDNG": 2}, "suspended": 0, "oldestPendingSince": "2026-11-24T09:00:00.000Z"}}}
    store.put_summary(REGION, summary)
    store.put_summary(REGION, {**summary, "complete": False})
    assert store.get_summary(REGION) == {**summary, "complete": False}
    assert store.get_summary("us-west-2") is None
    assert store.client_page("c1", received_after=None, received_before=None, start=None, limit=10) == ([], False)
    assert store.in_flight(REGION, per_shard=10) == []
