"""MessageStore (mxflow.ports) on the payment table: messages with several transactions beside their
payments (docs/flow.md, "Messages with several transactions").

- the message record: `pk` = message id, `sk` = "MESSAGE"; status, version, history (appended in the same
  conditional write as each status change, as a payment's), the group's facts, the layout of its
  transaction messages, the group pacs.002. In no index: the split's failure is the split execution's
  (its alarm), not the in-flight sampler's.
- its parts: `pk` = message id, `sk` = "PART#<first index, 9 digits>"; the payment ids of one batch of
  transactions, in order, written once (a conditional put). Read back with one Query of the message's
  partition (strongly consistent).

The payments' statuses for the group's view are read with BatchGetItem (eventually consistent, 100 per
request), only the attributes the view needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from botocore.exceptions import ClientError

from mxflow.aws.clients import AwsAdapter, error_code, put_new_item, put_unless_condition_fails, service_errors
from mxflow.aws.dynamodb import BATCH_GET_LIMIT, RECORD_SK, _event, _Expression, _from_item, _to_item
from mxflow.clock import utc_now
from mxflow.errors import BulkMessageNotFound, DuplicateMessage, StatusConflict
from mxflow.ports import Clock

MESSAGE_SK = "MESSAGE"
PART_PREFIX = "PART#"


def part_sk(first: int) -> str:
    return f"{PART_PREFIX}{first:09d}"


def _message(item: Mapping[str, Any]) -> dict:
    record = _from_item(item)
    record["messageId"] = record.pop("pk")
    record.pop("sk", None)
    return record


@dataclass
class DynamoDbMessageStore(AwsAdapter):
    service: ClassVar[str] = "dynamodb"
    table_name: str
    clock: Clock = utc_now

    @service_errors
    def create_message(self, record: Mapping[str, Any], *, event: Mapping[str, Any] | None = None) -> dict:
        now = record.get("receivedAt") or self.clock()
        item = {**{k: v for k, v in record.items() if k != "messageId"}, "pk": record["messageId"], "sk": MESSAGE_SK,
                "version": 1, "receivedAt": now, "history": [_event(record["status"], now, event, None)]}
        existing = put_new_item(self.client, TableName=self.table_name, Item=_to_item(item))
        if existing is not None:
            raise DuplicateMessage(_message(existing) if existing else self.get_message(record["messageId"]))
        return _message(_to_item(item))

    @service_errors
    def get_message(self, message_id: str) -> dict:
        response = self.client.get_item(TableName=self.table_name, ConsistentRead=True,
                                        Key=_to_item({"pk": message_id, "sk": MESSAGE_SK}))
        if "Item" not in response:
            raise BulkMessageNotFound(message_id)
        return _message(response["Item"])

    @service_errors
    def update_message(self, message_id: str, *, expected_status: str, expected_version: int, new_status: str,
                       set_values: Mapping[str, Any] | None = None, messages: Mapping[str, Any] | None = None,
                       event_detail: Mapping[str, Any] | None = None) -> int:
        version = expected_version + 1
        update = _Expression()
        update.set("status", new_status)
        update.set("version", version)
        update.sets.append(f"{update.name('history')} = list_append({update.name('history')}, "
                           f"{update.value([_event(new_status, self.clock(), event_detail, None)])})")
        for name, value in (set_values or {}).items():
            update.set(name, value)
        for name, value in (messages or {}).items():
            update.set(("messages", name), value)
        update.status_in([expected_status])
        update.condition(f"{update.name('version')} = {update.value(expected_version)}")
        try:
            self.client.update_item(TableName=self.table_name, Key=_to_item({"pk": message_id, "sk": MESSAGE_SK}),
                                    ReturnValuesOnConditionCheckFailure="ALL_OLD", **update.request())
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                current = error.response.get("Item")
                raise StatusConflict(message_id, expected_status,
                                     _message(current) if current else self.get_message(message_id)) from None
            raise
        return version

    @service_errors
    def put_part(self, message_id: str, first: int, payment_ids: list[str],
                 conflicts: Mapping[str, Any] | None = None) -> None:
        item = {"pk": message_id, "sk": part_sk(first), "first": first, "paymentIds": list(payment_ids)}
        if conflicts:
            item["conflicts"] = dict(conflicts)
        # An existing part stays as it is: the split wrote it before.
        put_unless_condition_fails(self.client, TableName=self.table_name, Item=_to_item(item),
                                   ConditionExpression="attribute_not_exists(pk)")

    @service_errors
    def parts(self, message_id: str) -> list[dict]:
        kwargs = {"TableName": self.table_name, "ConsistentRead": True,
                  "KeyConditionExpression": "pk = :pk AND begins_with(sk, :part)",
                  "ExpressionAttributeValues": _to_item({":pk": message_id, ":part": PART_PREFIX})}
        found = []
        while True:
            response = self.client.query(**kwargs)
            for item in response.get("Items", []):
                part = _from_item(item)
                found.append({"first": int(part["first"]), "paymentIds": part["paymentIds"],
                              "conflicts": part.get("conflicts") or {}})
            if "LastEvaluatedKey" not in response:
                return sorted(found, key=lambda p: p["first"])
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    @service_errors
    def summaries(self, payment_ids: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        for start in range(0, len(payment_ids), BATCH_GET_LIMIT):
            keys = [_to_item({"pk": payment_id, "sk": RECORD_SK}) for payment_id in
                    dict.fromkeys(payment_ids[start:start + BATCH_GET_LIMIT])]
            request = {self.table_name: {"Keys": keys,
                                         "ProjectionExpression": "pk, #status, reason, facts, clientId, messageId",
                                         "ExpressionAttributeNames": {"#status": "status"}}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table_name, []):
                    record = _from_item(item)
                    found[record.pop("pk")] = record
                request = response.get("UnprocessedKeys") or None
        return found
