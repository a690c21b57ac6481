"""Restore from the archive (issue 13) on the running local stack: payments through the terminal paths
(approved and settled, rejected by decision, rejected by validation, cancelled) and a message with
several transactions; the journal delivered (the stream's mapping flushed), the table emptied, the
restore run (mxflow.restore on the adapters `mxflow restore --from-archive` uses): every
GET /payments/{id} and GET /messages/{id} answers what it answered before, history and generated
messages included; a second restore writes nothing."""
from __future__ import annotations

from mxflow_local.sample_messages import bulk_credit_transfer, credit_transfer

BAD_IBAN = "FR1420041010050500013M02607"


def _empty_table(dynamodb, table: str) -> int:
    deleted = 0
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="pk, sk"):
        for key in page["Items"]:
            dynamodb.delete_item(TableName=table, Key=key)
            deleted += 1
    return deleted


def _restore(runtime):
    from mxflow.aws.restore_table import DynamoDbRestoreTable
    from mxflow.aws.s3 import S3MessageArchive
    from mxflow.restore import Restore

    archive = S3MessageArchive(runtime.physical("ArchiveBucket"), boto_client=runtime.client("s3"))
    table = DynamoDbRestoreTable(runtime.physical("PaymentTable"), boto_client=runtime.client("dynamodb"))
    return Restore(archive, table).run().to_dict()


def test_every_answer_is_the_same_after_the_table_is_lost_and_restored(api, client):
    ids = {}
    for path in ("approve", "reject", "cancel"):
        ids[path] = client.submit(credit_transfer()).json["paymentId"]
        client.wait_for_status(ids[path], "PDNG")
    assert client.approve(ids["approve"]).status == 200
    assert client.reject(ids["reject"], "AM04").status == 200
    assert client.cancel(ids["cancel"], "CUST").status == 200
    bulk = client.submit(bulk_credit_transfer(["12.00", "13.00"], creditor_ibans={1: BAD_IBAN})).json
    first, invalid = (p["paymentId"] for p in bulk["payments"])
    client.wait_for_status(invalid, "RJCT")
    client.wait_for_status(first, "PDNG")
    assert client.approve(first).status == 200
    for payment_id in (ids["approve"], first):
        client.wait_for_status(payment_id, "ACSC")
    payment_ids = [*ids.values(), first, invalid]
    message_path = f"/messages/{bulk['messageId']}"
    client.request("GET", message_path)  # every payment terminal: the group pacs.002 is built and kept

    def answers() -> dict:
        seen = {pid: client.get(pid) for pid in payment_ids}
        seen[message_path] = client.request("GET", message_path)
        for pid in payment_ids:
            for name in seen[pid].json.get("messages", []):
                seen[(pid, name)] = client.message(pid, name)
        # JSON answers compared as JSON (a map's key order is not kept by DynamoDB), messages byte for byte
        return {key: (reply.status, reply.json if isinstance(key, str) else reply.body)
                for key, reply in seen.items()}

    before = answers()
    assert all(status == 200 for status, _ in before.values())
    assert len(before) > len(payment_ids) + 1  # generated messages compared too
    runtime = api.runtime
    assert runtime.stream_events.flush(timeout=60), "the journal did not deliver the stream in 60 s"

    deleted = _empty_table(runtime.client("dynamodb"), runtime.physical("PaymentTable"))
    assert deleted >= len(payment_ids) + 2
    assert client.get(ids["approve"]).status == 404  # really lost

    report = _restore(runtime)
    assert report["couldNotRestore"] == [], report
    assert report["restored"]["payments"] >= len(payment_ids) and report["restored"]["messages"] >= 1
    assert answers() == before

    again = _restore(runtime)
    assert again["restored"] == {} and again["couldNotRestore"] == [], again
    assert again["skipped"]["payments"] >= len(payment_ids)
