"""PaymentStore (mxflow.ports) on the DynamoDB payment table (template.yaml `PaymentTable`).

Table layout:
- `pk` = paymentId, `sk` = "PAYMENT" for the payment record;
- `sk` = "EVENT#<10-digit version>" for each history event: append-only, written with
  `attribute_not_exists(pk)` in the same TransactWriteItems as the record's conditional update, so a
  status change and its history event are atomic;
- GSI `InFlightByStatus`: HASH `inflightShard` ("PDNG#07": status + shard 00-15, present only while the
  payment is in flight, removed at a terminal status: a sparse index), RANGE `statusSince` (ISO-8601 UTC).

Every status change is conditional on the expected status and version.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Iterable, Mapping

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from mxflow.aws.clients import AwsAdapter, error_code, service_errors
from mxflow.clock import utc_now
from mxflow.errors import DuplicatePayment, PaymentNotFound, StatusConflict
from mxflow.ports import IN_FLIGHT_STATUSES, Clock

RECORD_SK = "PAYMENT"
EVENT_SK_PREFIX = "EVENT#"
INFLIGHT_INDEX = "InFlightByStatus"
INFLIGHT_SHARDS = 16

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_item(values: Mapping[str, Any]) -> dict:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in values.items()}


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_from_dynamo(v) for v in value]
    return value


def _from_item(item: Mapping[str, Any]) -> dict:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def _is_conditional_failure(error: ClientError) -> bool:
    code = error_code(error)
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = error.response.get("CancellationReasons") or []
        if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
            return True
        # Some endpoints only put the reasons in the message.
        return "ConditionalCheckFailed" in str(error.response.get("Error", {}).get("Message", ""))
    return False


def _expected_list(expected_status: str | Iterable[str]) -> list[str]:
    return [expected_status] if isinstance(expected_status, str) else sorted(expected_status)


def inflight_shard(payment_id: str, status: str) -> str:
    """GSI hash key: the status plus a stable shard 00-15, so no status is one hot partition."""
    shard = int(hashlib.sha256(payment_id.encode()).hexdigest()[:8], 16) % INFLIGHT_SHARDS
    return f"{status}#{shard:02d}"


def event_sk(version: int) -> str:
    return f"{EVENT_SK_PREFIX}{version:010d}"


@dataclass
class DynamoDbPaymentStore(AwsAdapter):
    """The payment records and their history in one DynamoDB table."""

    service: ClassVar[str] = "dynamodb"
    table_name: str
    clock: Clock = utc_now

    # -- reads -------------------------------------------------------------------------------------

    @service_errors
    def get(self, payment_id: str, *, consistent: bool = True) -> dict:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=_to_item({"pk": payment_id, "sk": RECORD_SK}),
            ConsistentRead=consistent,
        )
        if "Item" not in response:
            raise PaymentNotFound(payment_id)
        return _from_item(response["Item"])

    @service_errors
    def history(self, payment_id: str) -> list[dict]:
        """The payment's history events, oldest first."""
        events: list[dict] = []
        kwargs = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": _to_item({":pk": payment_id, ":prefix": EVENT_SK_PREFIX}),
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**kwargs)
            events.extend(_from_item(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return events
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    @service_errors
    def probe(self) -> None:
        """A cheap reachability check: one GetItem of a key no payment uses (the same permission and
        KMS path as real reads); ServiceError when the table is unreachable."""
        self.client.get_item(TableName=self.table_name,
                             Key=_to_item({"pk": "health-probe", "sk": RECORD_SK}),
                             ProjectionExpression="pk")

    @service_errors
    def oldest_in_flight_since(self, status: str) -> str | None:
        """The earliest `statusSince` among payments in `status` (one Limit-1 query per shard)."""
        oldest: str | None = None
        for shard in range(INFLIGHT_SHARDS):
            response = self.client.query(
                TableName=self.table_name,
                IndexName=INFLIGHT_INDEX,
                KeyConditionExpression="inflightShard = :shard",
                ExpressionAttributeValues=_to_item({":shard": f"{status}#{shard:02d}"}),
                ScanIndexForward=True,
                Limit=1,
            )
            for item in response.get("Items", []):
                since = _from_item(item).get("statusSince")
                if since and (oldest is None or since < oldest):
                    oldest = since
        return oldest

    # -- writes ------------------------------------------------------------------------------------

    @service_errors
    def create(self, record: Mapping[str, Any], *, event: Mapping[str, Any] | None = None) -> dict:
        """Put a new payment record (version 1) and its first history event.

        Raises DuplicatePayment (carrying the existing record) when the payment id exists.
        """
        payment_id = record["paymentId"]
        now = record.get("receivedAt") or self.clock()
        status = record["status"]
        item = {
            **record,
            "pk": payment_id,
            "sk": RECORD_SK,
            "version": 1,
            "ownerRegion": record.get("ownerRegion") or self.region or self.client.meta.region_name,
            "epoch": record.get("epoch", 1),
            "updatedAt": now,
            "statusSince": now,
        }
        if status in IN_FLIGHT_STATUSES:
            item["inflightShard"] = inflight_shard(payment_id, status)
        history = {"status": status, "time": now, **(event or {})}
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self.table_name, "Item": _to_item(item),
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                    {"Put": {"TableName": self.table_name,
                             "Item": _to_item(self._event_item(payment_id, 1, history)),
                             "ConditionExpression": "attribute_not_exists(pk)"}},
                ]
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise DuplicatePayment(self.get(payment_id)) from None
            raise
        return _from_dynamo(_to_dynamo(item))

    @service_errors
    def transition(
        self,
        payment_id: str,
        *,
        expected_status: str | Iterable[str],
        expected_version: int,
        new_status: str,
        set_values: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        reason: Mapping[str, Any] | None = None,
        require_no_decision: bool = False,
        event_detail: Mapping[str, Any] | None = None,
    ) -> int:
        """Conditional status change plus its history event, in one TransactWriteItems.

        The record must be in `expected_status` (one or several) at `expected_version` (and, with
        `require_no_decision`, carry no decision yet); otherwise StatusConflict (with the current
        record) or PaymentNotFound. `set_values` sets top-level attributes, `remove` removes them.
        Returns the new version.
        """
        now = self.clock()
        version = expected_version + 1
        values: dict[str, Any] = {"status": new_status, "version": version, "updatedAt": now,
                                  "statusSince": now}
        if reason is not None:
            values["reason"] = dict(reason)
        values.update(set_values or {})
        removals = list(remove)
        if new_status in IN_FLIGHT_STATUSES:
            values["inflightShard"] = inflight_shard(payment_id, new_status)
        else:
            removals.append("inflightShard")
        expected = _expected_list(expected_status)

        names: dict[str, str] = {}
        attr_values: dict[str, Any] = {}
        sets = []
        for i, (name, value) in enumerate(values.items()):
            names[f"#s{i}"] = name
            attr_values[f":s{i}"] = value
            sets.append(f"#s{i} = :s{i}")
        update = "SET " + ", ".join(sets)
        rems = []
        for i, name in enumerate(dict.fromkeys(r for r in removals if r not in values)):
            names[f"#r{i}"] = name
            rems.append(f"#r{i}")
        if rems:
            update += " REMOVE " + ", ".join(rems)
        names["#version"] = "version"
        condition = self._status_condition(expected, names, attr_values) + " AND #version = :ev"
        attr_values[":ev"] = expected_version
        if require_no_decision:
            names["#decision"] = "decision"
            condition += " AND attribute_not_exists(#decision)"

        history = {"status": new_status, "time": now, "fromStatus": expected[0] if len(expected) == 1
                   else None, **(event_detail or {})}
        if reason is not None:
            history["reason"] = dict(reason)
        history = {k: v for k, v in history.items() if v is not None}
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {"Update": {
                        "TableName": self.table_name,
                        "Key": _to_item({"pk": payment_id, "sk": RECORD_SK}),
                        "UpdateExpression": update,
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": names,
                        "ExpressionAttributeValues": _to_item(attr_values),
                    }},
                    {"Put": {
                        "TableName": self.table_name,
                        "Item": _to_item(self._event_item(payment_id, version, history)),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }},
                ]
            )
        except ClientError as error:
            if _is_conditional_failure(error):
                raise StatusConflict(payment_id, expected_status, self.get(payment_id)) from None
            raise
        return version

    def set_attributes(self, payment_id: str, values: Mapping[str, Any], *,
                       expected_status: str | Iterable[str] | None = None) -> None:
        """Set attributes of the record without a status change (no history event): the task token,
        the release marker. Conditional on the record existing and, if given, on its status."""
        names, attr_values, sets = {"#pk": "pk"}, {}, []
        for i, (name, value) in enumerate(values.items()):
            names[f"#a{i}"] = name
            attr_values[f":a{i}"] = value
            sets.append(f"#a{i} = :a{i}")
        condition = "attribute_exists(#pk)"
        if expected_status is not None:
            condition += " AND " + self._status_condition(_expected_list(expected_status), names, attr_values)
        self._update(payment_id, "SET " + ", ".join(sets), condition, names, attr_values,
                     expected_status)

    def record_message(self, payment_id: str, name: str, key: str) -> None:
        """Add a generated message (name -> S3 key) to the record; idempotent."""
        self._update(payment_id, "SET #messages.#name = :key", "attribute_exists(#pk)",
                     {"#messages": "messages", "#name": name, "#pk": "pk"}, {":key": key}, None)

    @staticmethod
    def _status_condition(expected: list[str], names: dict, attr_values: dict) -> str:
        names["#status"] = "status"
        terms = []
        for i, status in enumerate(expected):
            attr_values[f":e{i}"] = status
            terms.append(f":e{i}")
        return f"#status IN ({', '.join(terms)})"

    @service_errors
    def _update(self, payment_id, update, condition, names, attr_values, expected_status) -> None:
        kwargs = {
            "TableName": self.table_name,
            "Key": _to_item({"pk": payment_id, "sk": RECORD_SK}),
            "UpdateExpression": update,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
        }
        if attr_values:
            kwargs["ExpressionAttributeValues"] = _to_item(attr_values)
        try:
            self.client.update_item(**kwargs)
        except ClientError as error:
            if _is_conditional_failure(error):
                current = self.get(payment_id)  # raises PaymentNotFound when absent
                raise StatusConflict(payment_id, expected_status or "any", current) from None
            raise

    @staticmethod
    def _event_item(payment_id: str, version: int, history: Mapping[str, Any]) -> dict:
        return {"pk": payment_id, "sk": event_sk(version), "paymentId": payment_id,
                "version": version, **history}
