"""The payment store (DynamoDB) and the message archive (S3): every AWS data access of mxflow.

Table layout (shared design, template.yaml `PaymentTable`):
- `pk` = paymentId, `sk` = "PAYMENT" for the payment record;
- `sk` = "EVENT#<10-digit version>" for each history event: append-only, written with
  `attribute_not_exists(pk)` in the same TransactWriteItems as the record's conditional update, so a
  status change and its history event are atomic;
- GSI `InFlightByStatus`: HASH `inflightShard` ("PDNG#07": status + shard 00-15, present only while the
  payment is in flight, removed at a terminal status: a sparse index), RANGE `statusSince` (ISO-8601 UTC).

Every status change is conditional on the expected status and version. The boto3 clients are created
once per process (or injected) and are region-agnostic (the Region comes from the environment).
"""
from __future__ import annotations

import hashlib
import os
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable, Mapping

import boto3
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config
from botocore.exceptions import ClientError

RECORD_SK = "PAYMENT"
EVENT_SK_PREFIX = "EVENT#"
INFLIGHT_INDEX = "InFlightByStatus"
INFLIGHT_SHARDS = 16
IN_FLIGHT_STATUSES = frozenset({"RCVD", "ACTC", "PDNG", "ACSP"})
TERMINAL_STATUSES = frozenset({"ACSC", "RJCT", "CANC"})

_CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_clients: dict[tuple[str, str], Any] = {}


def aws_client(service: str):
    """One boto3 client per service and Region, reused across invocations as Lambda reuses a process.

    In AWS a process lives in one Region, so this is one client per service; the embedded local runtime
    runs several Regions' functions in one process, and keying by the invocation's Region keeps each
    Region's calls in that Region."""
    region = current_region()
    client = _clients.get((service, region))
    if client is None:
        client = _clients[(service, region)] = boto3.client(service, region_name=region, config=_CLIENT_CONFIG)
    return client


def reset_clients() -> None:
    """Forget the cached clients (tests that switch between mocked environments)."""
    _clients.clear()


def utc_now() -> str:
    """ISO-8601 UTC with milliseconds, sortable as a string (the GSI range key)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def current_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class StoreError(Exception):
    """Base of the store's named errors."""


class PaymentNotFound(StoreError):
    def __init__(self, payment_id: str):
        super().__init__(f"payment {payment_id} not found")
        self.payment_id = payment_id


class DuplicatePayment(StoreError):
    """A record with this payment id already exists; `existing` is that record."""

    def __init__(self, existing: dict):
        super().__init__(f"payment {existing.get('paymentId')} already exists")
        self.existing = existing


class StatusConflict(StoreError):
    """The conditional write failed: the payment is not in the expected status/version any more."""

    def __init__(self, payment_id: str, expected: str | Iterable[str], current: dict | None):
        self.payment_id = payment_id
        self.expected = expected if isinstance(expected, str) else "|".join(sorted(expected))
        self.current = current or {}
        status = self.current.get("status")
        super().__init__(f"payment {payment_id} is {status}, expected {self.expected}")

    @property
    def current_status(self) -> str | None:
        return self.current.get("status")


class MessageNotFound(StoreError):
    def __init__(self, key: str):
        super().__init__(f"archived message {key} not found")
        self.key = key


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
    code = error.response.get("Error", {}).get("Code")
    if code == "ConditionalCheckFailedException":
        return True
    if code == "TransactionCanceledException":
        reasons = error.response.get("CancellationReasons") or []
        if any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
            return True
        # Some endpoints only put the reasons in the message.
        return "ConditionalCheckFailed" in str(error.response.get("Error", {}).get("Message", ""))
    return False


def inflight_shard(payment_id: str, status: str) -> str:
    """GSI hash key: the status plus a stable shard 00-15, so no status is one hot partition."""
    shard = int(hashlib.sha256(payment_id.encode()).hexdigest()[:8], 16) % INFLIGHT_SHARDS
    return f"{status}#{shard:02d}"


def event_sk(version: int) -> str:
    return f"{EVENT_SK_PREFIX}{version:010d}"


class PaymentStore:
    """All DynamoDB access of the payment lifecycle."""

    def __init__(self, table_name: str | None = None, *, client=None, region: str | None = None):
        self.table_name = table_name or os.environ["PAYMENT_TABLE"]
        self._client = client
        self.region = region or current_region()

    @property
    def client(self):
        if self._client is None:
            self._client = aws_client("dynamodb")
        return self._client

    # -- reads -------------------------------------------------------------------------------------

    def get(self, payment_id: str, *, consistent: bool = True) -> dict:
        response = self.client.get_item(
            TableName=self.table_name,
            Key=_to_item({"pk": payment_id, "sk": RECORD_SK}),
            ConsistentRead=consistent,
        )
        if "Item" not in response:
            raise PaymentNotFound(payment_id)
        return _from_item(response["Item"])

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

    def probe(self) -> None:
        """A cheap reachability check: one GetItem of a key no payment uses (the same permission and
        KMS path as real reads); raises the client's error when the table is unreachable."""
        self.client.get_item(TableName=self.table_name,
                             Key=_to_item({"pk": "health-probe", "sk": RECORD_SK}),
                             ProjectionExpression="pk")

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

    def create(self, record: Mapping[str, Any], *, event: Mapping[str, Any] | None = None) -> dict:
        """Put a new payment record (status and version 1 set here) and its first history event.

        Raises DuplicatePayment (carrying the existing record) when the payment id exists.
        """
        payment_id = record["paymentId"]
        now = record.get("receivedAt") or utc_now()
        status = record["status"]
        item = {
            **record,
            "pk": payment_id,
            "sk": RECORD_SK,
            "version": 1,
            "ownerRegion": record.get("ownerRegion") or self.region,
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
    ) -> dict:
        """Conditional status change plus its history event, in one TransactWriteItems.

        The record must be in `expected_status` (one or several) at `expected_version` (and, with
        `require_no_decision`, carry no decision yet); otherwise StatusConflict (with the current
        record) or PaymentNotFound. `set_values` sets top-level attributes, `remove` removes them.
        Returns the new version.
        """
        now = utc_now()
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
        expected = [expected_status] if isinstance(expected_status, str) else sorted(expected_status)

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
        names["#status"] = "status"
        names["#version"] = "version"
        status_terms = []
        for i, status in enumerate(expected):
            attr_values[f":e{i}"] = status
            status_terms.append(f":e{i}")
        attr_values[":ev"] = expected_version
        condition = f"#status IN ({', '.join(status_terms)}) AND #version = :ev"
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
            expected = [expected_status] if isinstance(expected_status, str) else sorted(expected_status)
            names["#status"] = "status"
            terms = []
            for i, status in enumerate(expected):
                attr_values[f":e{i}"] = status
                terms.append(f":e{i}")
            condition += f" AND #status IN ({', '.join(terms)})"
        self._update(payment_id, "SET " + ", ".join(sets), condition, names, attr_values,
                     expected_status)

    def record_message(self, payment_id: str, name: str, key: str) -> None:
        """Add a generated message (name -> S3 key) to the record; idempotent."""
        self._update(payment_id, "SET #messages.#name = :key", "attribute_exists(#pk)",
                     {"#messages": "messages", "#name": name, "#pk": "pk"}, {":key": key}, None)

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


class MessageArchive:
    """All S3 access: the raw received messages and every generated message, SSE-KMS encrypted."""

    def __init__(self, bucket: str | None = None, *, client=None, kms_key_id: str | None = None):
        self.bucket = bucket or os.environ["ARCHIVE_BUCKET"]
        self._client = client
        self.kms_key_id = kms_key_id if kms_key_id is not None else os.environ.get("ARCHIVE_KMS_KEY_ID")

    @property
    def client(self):
        if self._client is None:
            self._client = aws_client("s3")
        return self._client

    @staticmethod
    def received_key(payment_id: str, content_hash: str) -> str:
        return f"received/{payment_id}/{content_hash}.xml"

    @staticmethod
    def generated_key(payment_id: str, name: str) -> str:
        return f"generated/{payment_id}/{name}.xml"

    def put(self, key: str, data: bytes, *, content_type: str = "application/xml") -> str:
        """Store `data` under `key`. With a KMS key id (ARCHIVE_KMS_KEY_ID) the request names it
        (SSE-KMS, S3 Bucket Key); without one no encryption header is sent, so the bucket's default
        SSE-KMS key applies (a bare `aws:kms` header would select the AWS-managed aws/s3 key)."""
        kwargs = {"Bucket": self.bucket, "Key": key, "Body": data, "ContentType": content_type,
                  "ChecksumAlgorithm": "SHA256"}
        if self.kms_key_id:
            kwargs.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.kms_key_id,
                          BucketKeyEnabled=True)
        self.client.put_object(**kwargs)
        return key

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise MessageNotFound(key) from None
            raise
