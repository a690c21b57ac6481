"""mxflow_local.dynamodb: moto's DynamoDB transactions with the local runtime's patches. A cancelled
transaction leaves every item (and the table's stream) as it was; a transaction backs up the items it
names, never a deep copy of the table; moto keeps no copy of anything once it is done."""
from __future__ import annotations

import copy
import uuid

import boto3
import pytest
from moto import mock_aws

from mxflow_local import dynamodb

TABLE = f"transactions-{uuid.uuid4().hex[:8]}"   # moto may be shared with a running local runtime


@pytest.fixture
def ddb(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        dynamodb.install()
        client = boto3.client("dynamodb", region_name="us-east-1")
        if TABLE in client.list_tables()["TableNames"]:
            client.delete_table(TableName=TABLE)
        client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST",
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                       {"AttributeName": "sk", "KeyType": "RANGE"}],
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "S"}],
                            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        for index in range(50):
            client.put_item(TableName=TABLE, Item={"pk": {"S": f"p{index}"}, "sk": {"S": "payment"},
                                                   "status": {"S": "PDNG"}, "version": {"N": "1"}})
        yield client


def _key(pk):
    return {"pk": {"S": pk}, "sk": {"S": "payment"}}


def _backend_table():
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE]


def _state(client):
    items = client.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return sorted((i["pk"]["S"], i["sk"]["S"], i.get("status", {}).get("S"), i.get("version", {}).get("N"))
                  for i in items)


def _transaction(client, condition_on_p2: str):
    client.transact_write_items(TransactItems=[
        {"Update": {"TableName": TABLE, "Key": _key("p1"), "UpdateExpression": "SET #s = :new, version = :v",
                    "ConditionExpression": "#s = :old", "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":new": {"S": "ACSP"}, ":old": {"S": "PDNG"}, ":v": {"N": "2"}}}},
        {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "p1"}, "sk": {"S": "event#2"}, "status": {"S": "ACSP"}},
                 "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Delete": {"TableName": TABLE, "Key": _key("p49")}},
        {"ConditionCheck": {"TableName": TABLE, "Key": _key("p2"), "ConditionExpression": "#s = :s",
                            "ExpressionAttributeNames": {"#s": "status"},
                            "ExpressionAttributeValues": {":s": {"S": condition_on_p2}}}},
    ])


def test_a_cancelled_transaction_leaves_items_and_stream_as_they_were(ddb):
    before, stream_before = _state(ddb), len(_backend_table().stream_shard.items)
    with pytest.raises(ddb.exceptions.TransactionCanceledException):
        _transaction(ddb, condition_on_p2="RJCT")   # the last entry fails after three writes were applied
    assert _state(ddb) == before
    assert len(_backend_table().stream_shard.items) == stream_before


def test_a_transaction_that_passes_applies_every_write(ddb):
    before = _state(ddb)
    _transaction(ddb, condition_on_p2="PDNG")
    after = _state(ddb)
    assert ("p1", "payment", "ACSP", "2") in after and ("p1", "event#2", "ACSP", None) in after
    assert ("p49", "payment", "PDNG", "1") in before and ("p49", "payment", "PDNG", "1") not in after
    assert len(after) == len(before)   # one put, one delete


def test_a_transaction_copies_no_table_and_moto_keeps_nothing(ddb, monkeypatch):
    from moto.dynamodb.models.dynamo_type import Item
    from moto.dynamodb.models.table import Table

    copied = []
    reduce_ex = Table.__reduce_ex__
    monkeypatch.setattr(Table, "__reduce_ex__", lambda self, protocol: copied.append(self) or reduce_ex(self, protocol))
    table = _backend_table()
    for condition in ("RJCT", "PDNG"):
        try:
            _transaction(ddb, condition_on_p2=condition)
        except ddb.exceptions.TransactionCanceledException:
            pass
    assert copied == []                       # no whole-table backup
    assert _backend_table() is table          # the cancelled one put back items, not another table
    assert len(Table.instances_tracked) == 0 and len(Item.instances_tracked) == 0


def test_a_table_deep_copy_outside_a_transaction_is_still_a_copy(ddb):
    table = _backend_table()
    duplicate = copy.deepcopy(table)
    assert duplicate is not table and duplicate.name == table.name
    assert len(list(duplicate.all_items())) == len(list(table.all_items())) == 50
