"""PaymentStore (mxflow.ports) on the DynamoDB payment table (template.yaml `PaymentTable`).

One item per payment (docs/flow.md): `pk` = paymentId, `sk` = "PAYMENT" (the composite key leaves
room for other item kinds); the record's paymentId is the key, not a second attribute. Its history is a list inside the item, appended with `list_append` by the
same conditional UpdateItem that changes the status: no TransactWriteItems, no history rows (a
strongly consistent global table supports neither need). Generated messages sit in `messages` as
compressed bytes (or an archive key for large ones). A write is billed per KB of the whole item, so
the item carries no nulls and no copy of what the archive holds.

Secondary indexes, all KEYS_ONLY, written only when their keys appear or vanish:
- `InFlight`: HASH `inflight` ("<ownerRegion>#<shard 00-15>", present from creation until the
  terminal status), RANGE `receivedAt`; the sampler walks it for the oldest in-flight payments.
- `ByClient`: HASH `clientId`, RANGE `receivedAt` (the `GET /payments` list, mxflow.queries).
- `ByEndToEndId`: HASH `endToEndKey` ("<clientId>#<EndToEndId>", written at creation when the message has
  one), RANGE `receivedAt`: the list's search by end-to-end id (by UETR it reads `ByReference`).

Besides the payments, one summary item per Region (`pk` = "summary#<region>", `sk` = "SUMMARY"): the
sampler's counters per client and status that the list shows (mxflow.queries).
- `Suspended`: HASH `suspendedIn` (the Region), RANGE `suspendedAt`, present only while a release's
  outcome is unknown (sparse).
- `ByReference`: HASH `matchKey` (iso20022.reference_key: the UETR, else message, end-to-end and
  instruction ids), RANGE `receivedAt`, written once when a payment is created: how a recall or an engine
  answer finds the payment it is about (the return leg, mxflow/recalls.py and mxflow/engine.py).
- `EngineSuspense`: HASH `suspenseListIn` (the Region), RANGE `receivedAt`: the engine answers kept in
  suspense, items of their own (`pk` = suspense id, `sk` = "SUSPENSE"); INCLUDE projection of what the
  list shows.

Every status change is conditional on the expected status and version and, for workflow steps, on
`ownerRegion` and `epoch` (the fence). A failed condition returns the item as it is
(ReturnValuesOnConditionCheckFailure), so a StatusConflict carries the current record without
another read.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Iterable, Mapping

from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from mxflow.aws.clients import AwsAdapter, error_code, put_new_item, put_unless_condition_fails, service_errors
from mxflow.clock import utc_now
from mxflow.errors import DuplicatePayment, InvalidRequest, PaymentNotFound, StatusConflict
from mxflow.iso20022.facts import reference_key
from mxflow.ports import IN_FLIGHT_STATUSES, INFLIGHT_SHARDS, Clock, Fence, inflight_key

RECORD_SK = "PAYMENT"
SUSPENSE_SK = "SUSPENSE"
INFLIGHT_INDEX = "InFlight"
CLIENT_INDEX = "ByClient"
END_TO_END_INDEX = "ByEndToEndId"
SEARCH_LIMIT = 100  # matches read per search index: the same reference 100 times in one client is enough
SUSPENDED_INDEX = "Suspended"
REFERENCE_INDEX = "ByReference"
ENGINE_SUSPENSE_INDEX = "EngineSuspense"
SUSPENSE_LIST_FIELDS = ("suspenseId", "receivedAt", "messageType", "reason", "code", "paymentId")
BATCH_GET_LIMIT = 100  # DynamoDB's BatchGetItem maximum
# What the GET /payments list reads of each record (mxflow.queries.list_entry; history for statusSince).
LIST_PROJECTION = "pk, #status, clientId, messageType, facts, receivedAt, history, ownerRegion, suspense, messageId"
SUMMARY_SK = "SUMMARY"


def summary_key(region: str) -> dict:
    """The key of a Region's summary item (the sampler's counters, mxflow.queries): in no index (it has
    neither clientId nor inflight nor suspendedIn), and the only key the sampler may write
    (template.yaml, dynamodb:LeadingKeys)."""
    return {"pk": f"summary#{region}", "sk": SUMMARY_SK}

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_item(values: Mapping[str, Any]) -> dict:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in values.items()}


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else str(value)
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_from_dynamo(v) for v in value]
    return value


def _from_item(item: Mapping[str, Any]) -> dict:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def _record(item: Mapping[str, Any]) -> dict:
    """The payment record of an item. Not stored twice: its paymentId is the key, and statusSince is the
    time of the last history event."""
    record = _from_item(item)
    record["paymentId"] = record["pk"]
    if record.get("history"):
        record["statusSince"] = record["history"][-1]["time"]
    return record


def _expected_list(expected_status: str | Iterable[str]) -> list[str]:
    return [expected_status] if isinstance(expected_status, str) else sorted(expected_status)


def search_keys(record: Mapping[str, Any]) -> dict:
    """The console's search key of a new record (ByEndToEndId), when its facts have an end-to-end id."""
    facts = record.get("facts") or {}
    keys = {}
    if facts.get("endToEndId") and record.get("clientId"):
        keys["endToEndKey"] = f"{record['clientId']}#{facts['endToEndId']}"
    return keys


def _event(status: str, now: str, detail: Mapping[str, Any] | None, reason: Mapping[str, Any] | None) -> dict:
    event = {"status": status, "time": now, **(detail or {})}
    if reason is not None:
        event["reason"] = {k: v for k, v in reason.items() if v is not None}
    return {k: v for k, v in event.items() if v is not None}


class _Expression:
    """An UpdateItem's expression with its placeholder names and values."""

    def __init__(self):
        self.names: dict[str, str] = {}
        self.values: dict[str, Any] = {}
        self.sets: list[str] = []
        self.removes: list[str] = []
        self.conditions: list[str] = []

    def name(self, *path: str) -> str:
        parts = []
        for part in path:
            key = f"#n{len(self.names)}"
            existing = next((k for k, v in self.names.items() if v == part), None)
            if existing is None:
                self.names[key] = part
                existing = key
            parts.append(existing)
        return ".".join(parts)

    def value(self, value: Any) -> str:
        key = f":v{len(self.values)}"
        self.values[key] = value
        return key

    def set(self, path: tuple[str, ...] | str, value: Any) -> None:
        path = (path,) if isinstance(path, str) else path
        self.sets.append(f"{self.name(*path)} = {self.value(value)}")

    def remove(self, *path: str) -> None:
        self.removes.append(self.name(*path))

    def condition(self, text: str) -> None:
        self.conditions.append(text)

    def fence(self, fence: Fence | None) -> None:
        if fence is not None:
            self.condition(f"{self.name('ownerRegion')} = {self.value(fence.region)} AND "
                           f"{self.name('epoch')} = {self.value(fence.epoch)}")

    def status_in(self, expected: list[str]) -> None:
        self.condition(f"{self.name('status')} IN ({', '.join(self.value(s) for s in expected)})")

    def request(self) -> dict:
        update = []
        if self.sets:
            update.append("SET " + ", ".join(self.sets))
        if self.removes:
            update.append("REMOVE " + ", ".join(self.removes))
        request = {"UpdateExpression": " ".join(update), "ExpressionAttributeNames": self.names}
        if self.conditions:
            request["ConditionExpression"] = " AND ".join(f"({c})" for c in self.conditions)
        if self.values:
            request["ExpressionAttributeValues"] = _to_item(self.values)
        return request


@dataclass
class DynamoDbPaymentStore(AwsAdapter):
    """The payment records in one DynamoDB table."""

    service: ClassVar[str] = "dynamodb"
    table_name: str
    clock: Clock = utc_now

    @property
    def owner_region(self) -> str:
        return self.region or self.client.meta.region_name

    # -- reads -------------------------------------------------------------------------------------

    @service_errors
    def get(self, payment_id: str, *, consistent: bool = True) -> dict:
        response = self.client.get_item(TableName=self.table_name, ConsistentRead=consistent,
                                        Key=_to_item({"pk": payment_id, "sk": RECORD_SK}))
        if "Item" not in response:
            raise PaymentNotFound(payment_id)
        return _record(response["Item"])

    @service_errors
    def probe(self) -> None:
        """A cheap reachability check: one GetItem of a key no payment uses (the same permission and
        KMS path as real reads); ServiceError when the table is unreachable."""
        self.client.get_item(TableName=self.table_name, ProjectionExpression="pk",
                             Key=_to_item({"pk": "health-probe", "sk": RECORD_SK}))

    @service_errors
    def in_flight(self, region: str, *, per_shard: int) -> list[dict]:
        """The oldest in-flight payments of `region`: a Limit query of each InFlight shard (keys only),
        then their status by BatchGetItem (eventually consistent: a sample, not a lock)."""
        keys: list[dict] = []
        for shard in range(INFLIGHT_SHARDS):
            response = self.client.query(
                TableName=self.table_name, IndexName=INFLIGHT_INDEX, ScanIndexForward=True, Limit=per_shard,
                KeyConditionExpression="inflight = :key",
                ExpressionAttributeValues=_to_item({":key": f"{region}#{shard:02d}"}))
            keys.extend({"pk": item["pk"], "sk": item["sk"]} for item in response.get("Items", []))
        found = self._batch_get(keys, "pk, #status, history, receivedAt, clientId, suspendedIn, #release.sentAt")
        return [{**{k: item.get(k) for k in ("paymentId", "status", "statusSince", "receivedAt", "clientId")},
                 "suspended": bool(item.get("suspendedIn")), "sentAt": (item.get("release") or {}).get("sentAt")}
                for item in found if item.get("status") in IN_FLIGHT_STATUSES]

    def _batch_get(self, keys: list[dict], projection: str) -> list[dict]:
        """The records of `keys` (BatchGetItem in chunks, unprocessed keys retried), in no order."""
        found: list[dict] = []
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            request = {self.table_name: {
                "Keys": keys[start:start + BATCH_GET_LIMIT], "ProjectionExpression": projection,
                "ExpressionAttributeNames": {name: value for name, value in (("#status", "status"), ("#release", "release"))
                                             if name in projection}}}
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                found.extend(_record(item) for item in response.get("Responses", {}).get(self.table_name, []))
                request = response.get("UnprocessedKeys") or None
        return found

    @service_errors
    def client_page(self, client_id: str, *, received_after: str | None, received_before: str | None,
                    start: tuple[str, str] | None, limit: int) -> tuple[list[dict], bool]:
        """A Query of the ByClient index (keys only, newest first, the received-time bounds as its key
        condition), then the page's records by BatchGetItem, in the index's order. The index is asked
        for one key more than the page (keys only: a few bytes), so "more" is exact and the records read
        are the page's alone."""
        condition, values = "clientId = :client", {":client": client_id}
        if received_after and received_before:
            condition += " AND receivedAt BETWEEN :after AND :before"
            values.update({":after": received_after, ":before": received_before})
        elif received_after:
            condition += " AND receivedAt >= :after"
            values[":after"] = received_after
        elif received_before:
            condition += " AND receivedAt <= :before"
            values[":before"] = received_before
        kwargs = {"TableName": self.table_name, "IndexName": CLIENT_INDEX, "ScanIndexForward": False,
                  "Limit": limit + 1, "KeyConditionExpression": condition,
                  "ExpressionAttributeValues": _to_item(values)}
        if start is not None:
            kwargs["ExclusiveStartKey"] = _to_item({"clientId": client_id, "receivedAt": start[0],
                                                    "pk": start[1], "sk": RECORD_SK})
        response = self.client.query(**kwargs)
        keys = [item["pk"]["S"] for item in response.get("Items", [])]
        order = keys[:limit]
        records = {record["paymentId"]: record for record in self._batch_get(
            [{"pk": {"S": pk}, "sk": {"S": RECORD_SK}} for pk in order], LIST_PROJECTION)}
        return [records[pk] for pk in order if pk in records], len(keys) > limit or "LastEvaluatedKey" in response

    @service_errors
    def client_search(self, client_id: str, reference: str) -> list[dict]:
        """The client's payments whose UETR or end-to-end id is `reference`: ByReference by its UETR key
        (the return leg's index, across clients: the records are then kept if they are the client's) and
        ByEndToEndId by "<clientId>#<reference>" (keys only, at most SEARCH_LIMIT each), then their records
        by BatchGetItem."""
        keys = dict.fromkeys(self.find_by_reference(reference_key(uetr=reference, msg_id=None, end_to_end_id=None,
                                                                  instr_id=None))[-SEARCH_LIMIT:])
        response = self.client.query(
            TableName=self.table_name, IndexName=END_TO_END_INDEX, ScanIndexForward=False, Limit=SEARCH_LIMIT,
            KeyConditionExpression="endToEndKey = :key",
            ExpressionAttributeValues=_to_item({":key": f"{client_id}#{reference}"}))
        keys.update((item["pk"]["S"], None) for item in response.get("Items", []))
        return [record for record in self._batch_get([{"pk": {"S": pk}, "sk": {"S": RECORD_SK}} for pk in keys],
                                                     LIST_PROJECTION) if record.get("clientId") == client_id]

    @service_errors
    def get_summary(self, region: str) -> dict | None:
        response = self.client.get_item(TableName=self.table_name, Key=_to_item(summary_key(region)))
        if "Item" not in response:
            return None
        item = _from_item(response["Item"])
        return {k: v for k, v in item.items() if k not in ("pk", "sk")}

    @service_errors
    def put_summary(self, region: str, summary: Mapping[str, Any]) -> None:
        self.client.put_item(TableName=self.table_name, Item=_to_item({**summary, **summary_key(region)}))

    @service_errors
    def suspended(self, region: str) -> list[str]:
        ids: list[str] = []
        kwargs = {"TableName": self.table_name, "IndexName": SUSPENDED_INDEX,
                  "KeyConditionExpression": "suspendedIn = :region",
                  "ExpressionAttributeValues": _to_item({":region": region})}
        while True:
            response = self.client.query(**kwargs)
            ids.extend(item["pk"]["S"] for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return ids
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    @service_errors
    def in_flight_page(self, region: str, shard: str, *, cursor: Any = None, limit: int = 25) -> tuple[list[str], Any]:
        """One page of an InFlight shard (`<region>#<shard>`), oldest first: the ids and the next cursor
        (DynamoDB's LastEvaluatedKey, JSON as it is) or None."""
        kwargs = {"TableName": self.table_name, "IndexName": INFLIGHT_INDEX, "ScanIndexForward": True,
                  "Limit": limit, "KeyConditionExpression": "inflight = :key",
                  "ExpressionAttributeValues": _to_item({":key": f"{region}#{shard}"})}
        if cursor:
            kwargs["ExclusiveStartKey"] = cursor
        response = self.client.query(**kwargs)
        return [item["pk"]["S"] for item in response.get("Items", [])], response.get("LastEvaluatedKey")

    @service_errors
    def find_by_reference(self, reference_key: str) -> list[str]:
        """The ByReference index (eventually consistent, like every secondary index), oldest first."""
        ids: list[str] = []
        kwargs = {"TableName": self.table_name, "IndexName": REFERENCE_INDEX, "ScanIndexForward": True,
                  "KeyConditionExpression": "matchKey = :key", "ExpressionAttributeValues": _to_item({":key": reference_key})}
        while True:
            response = self.client.query(**kwargs)
            ids.extend(item["pk"]["S"] for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response or len(ids) >= 100:  # the same references 100 times: enough
                return ids
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    @service_errors
    def add_suspense_entry(self, entry: Mapping[str, Any]) -> bool:
        """A suspense item (pk = its id, sk = SUSPENSE), listed by the EngineSuspense index; put once."""
        item = {**{k: v for k, v in entry.items() if k not in ("suspenseId", "region")},
                "pk": entry["suspenseId"], "sk": SUSPENSE_SK, "suspenseId": entry["suspenseId"],
                "suspenseListIn": entry["region"]}
        return put_unless_condition_fails(self.client, TableName=self.table_name, Item=_to_item(item),
                                          ConditionExpression="attribute_not_exists(pk)")

    @service_errors
    def suspense_entries(self, region: str, *, limit: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
        kwargs = {"TableName": self.table_name, "IndexName": ENGINE_SUSPENSE_INDEX, "ScanIndexForward": False,
                  "Limit": limit, "KeyConditionExpression": "suspenseListIn = :region",
                  "ExpressionAttributeValues": _to_item({":region": region})}
        if cursor:
            kwargs["ExclusiveStartKey"] = _decode_cursor(cursor, region)
        response = self.client.query(**kwargs)
        entries = []
        for item in response.get("Items", []):
            record = _from_item(item)
            entries.append({k: record[k] for k in SUSPENSE_LIST_FIELDS if record.get(k) is not None})
        last = response.get("LastEvaluatedKey")
        return entries, _encode_cursor(last) if last else None

    # -- writes ------------------------------------------------------------------------------------

    @service_errors
    def create(self, record: Mapping[str, Any], *, event: Mapping[str, Any] | None = None) -> dict:
        """Put a new payment record (version 1, this Region's at epoch 1, in flight) with its first
        history event. Raises DuplicatePayment (carrying the existing record) when the id exists."""
        payment_id = record["paymentId"]
        now = record.get("receivedAt") or self.clock()
        region = record.get("ownerRegion") or self.owner_region
        item = {**{k: v for k, v in record.items() if k != "paymentId"}, "pk": payment_id, "sk": RECORD_SK,
                "version": 1, "ownerRegion": region, "epoch": record.get("epoch", 1), "receivedAt": now,
                "history": [_event(record["status"], now, event, None)]}
        if record["status"] in IN_FLIGHT_STATUSES:
            item["inflight"] = inflight_key(payment_id, region)
        item.update(search_keys(record))
        existing = put_new_item(self.client, TableName=self.table_name, Item=_to_item(item))
        if existing is not None:
            raise DuplicatePayment(_record(existing) if existing else self.get(payment_id))
        return {**_from_dynamo(_to_dynamo(item)), "paymentId": payment_id, "statusSince": now}

    @service_errors
    def transition(self, payment_id: str, *, expected_status: str | Iterable[str], expected_version: int,
                   new_status: str, set_values: Mapping[str, Any] | None = None, remove: Iterable[str] = (),
                   messages: Mapping[str, Any] | None = None, reason: Mapping[str, Any] | None = None,
                   require_no_decision: bool = False, passed_through: Iterable[str] = (),
                   event_detail: Mapping[str, Any] | None = None, fence: Fence | None = None) -> int:
        """One conditional UpdateItem: the status, version, times, the history events appended, the
        values set and removed, the messages added; out of the in-flight index at a terminal status."""
        now = self.clock()
        version = expected_version + 1
        expected = _expected_list(expected_status)
        events = [_event(status, now, event_detail, None) for status in passed_through]
        events.append(_event(new_status, now, event_detail, reason))
        update = _Expression()
        update.set("status", new_status)
        update.set("version", version)
        update.sets.append(f"{update.name('history')} = list_append({update.name('history')}, "
                           f"{update.value(events)})")
        if reason is not None:
            update.set("reason", {k: v for k, v in reason.items() if v is not None})
        for name, value in (set_values or {}).items():
            update.set(name, value)
        for name, value in (messages or {}).items():
            update.set(("messages", name), value)
        for name in dict.fromkeys(remove):
            if name not in (set_values or {}):
                update.remove(name)
        if new_status not in IN_FLIGHT_STATUSES:
            update.remove("inflight")
        update.status_in(expected)
        update.condition(f"{update.name('version')} = {update.value(expected_version)}")
        if require_no_decision:
            update.condition(f"attribute_not_exists({update.name('decision')})")
        update.fence(fence)
        self._in_time(fence)
        self._update(payment_id, update, expected_status)
        return version

    @service_errors
    def set_attributes(self, payment_id: str, values: Mapping[str, Any], *,
                       expected_status: str | Iterable[str] | None = None,
                       require_no_decision: bool = False, fence: Fence | None = None) -> None:
        update = _Expression()
        for name, value in values.items():
            update.set(name, value)
        update.condition(f"attribute_exists({update.name('pk')})")
        if expected_status is not None:
            update.status_in(_expected_list(expected_status))
        if require_no_decision:
            update.condition(f"attribute_not_exists({update.name('decision')})")
        update.fence(fence)
        self._in_time(fence)
        self._update(payment_id, update, expected_status or "any")

    @service_errors
    def update_release(self, payment_id: str, release: Mapping[str, Any], *, expected_attempts: int | None,
                       fence: Fence, suspense: Mapping[str, Any] | None = None,
                       clear_suspense: bool = False) -> None:
        update = _Expression()
        update.set("release", dict(release))
        if suspense is not None:
            update.set("suspense", dict(suspense))
            update.set("suspendedIn", fence.region)
            update.set("suspendedAt", suspense["since"])
        elif clear_suspense:
            for name in ("suspense", "suspendedIn", "suspendedAt"):
                update.remove(name)
        update.status_in(["ACSP"])
        update.condition(f"attribute_not_exists({update.name('release', 'sentAt')})")
        update.fence(fence)
        if expected_attempts is None:
            update.condition(f"attribute_not_exists({update.name('release')})")
        else:
            update.condition(f"{update.name('release', 'attempts')} = {update.value(expected_attempts)}")
        self._in_time(fence)
        self._update(payment_id, update, "ACSP")

    @service_errors
    def take_over(self, payment_id: str, *, expected_status: str, expected_version: int, owner: Fence,
                  new_owner: Fence, anchor: str, event_detail: Mapping[str, Any], suspended: bool = False) -> None:
        """The takeover's one conditional UpdateItem (docs/regions.md): owner Region and epoch as read,
        status and version; the in-flight key re-keyed to the new owner (one index write), the old anchor's
        token removed, the new anchor named, a history event appended."""
        update = _Expression()
        update.set("ownerRegion", new_owner.region)
        update.set("epoch", new_owner.epoch)
        update.set("version", expected_version + 1)
        update.set("inflight", inflight_key(payment_id, new_owner.region))
        update.set("anchorName", anchor)
        if suspended:
            update.set("suspendedIn", new_owner.region)
        update.sets.append(f"{update.name('history')} = list_append({update.name('history')}, "
                           f"{update.value([_event(expected_status, self.clock(), event_detail, None)])})")
        update.remove("taskToken")
        update.remove("tokenRegion")
        update.status_in([expected_status])
        update.condition(f"{update.name('version')} = {update.value(expected_version)}")
        update.fence(owner)
        self._update(payment_id, update, expected_status)

    def _in_time(self, fence: Fence | None) -> None:
        """RegionUnavailable when a fenced write would be sent after its lease allows (ports.Fence)."""
        if fence is not None:
            fence.check_in_time(self.clock())

    def _update(self, payment_id: str, update: _Expression, expected_status) -> None:
        try:
            self.client.update_item(TableName=self.table_name, Key=_to_item({"pk": payment_id, "sk": RECORD_SK}),
                                    ReturnValuesOnConditionCheckFailure="ALL_OLD", **update.request())
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                raise StatusConflict(payment_id, expected_status, self._current(payment_id, error)) from None
            raise

    def _current(self, payment_id: str, error: ClientError) -> dict:
        """The item a failed condition found (returned with the error), else read; PaymentNotFound when
        there is none."""
        item = error.response.get("Item")
        if item:
            return _record(item)
        return self.get(payment_id)


_CURSOR_KEYS = ("pk", "sk", "suspenseListIn", "receivedAt")


def _encode_cursor(last_key: Mapping[str, Any]) -> str:
    """An opaque cursor: the page's last key, base64url of its JSON (the four string key attributes)."""
    plain = {k: last_key[k]["S"] for k in _CURSOR_KEYS}
    return base64.urlsafe_b64encode(json.dumps(plain, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, region: str) -> dict:
    """The ExclusiveStartKey of a cursor _encode_cursor made for this Region; InvalidRequest otherwise."""
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if (not isinstance(plain, dict) or sorted(plain) != sorted(_CURSOR_KEYS)
                or not all(isinstance(v, str) and 0 < len(v) <= 256 for v in plain.values())
                or plain["suspenseListIn"] != region or plain["sk"] != SUSPENSE_SK):
            raise ValueError
    except ValueError:
        raise InvalidRequest("cursor: not a cursor of this list") from None
    return {k: {"S": v} for k, v in plain.items()}
