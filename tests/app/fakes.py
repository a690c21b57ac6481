"""In-memory implementations of the lifecycle's ports (mxflow.ports), for the lifecycle tests.

They keep the contract the AWS adapters keep (tests/app/test_store.py runs the same checks on the
fake store and on the DynamoDB one): one record per payment with its history inside, conditional
status changes (status, version, fence), the release claim's conditions, DuplicatePayment and
StatusConflict carrying the record, MessageNotFound. Each fake also records what it was asked, so a
test can assert on every side effect (a second release send is visible here even where SQS FIFO
deduplication would hide it).
"""
from __future__ import annotations

import copy
import itertools
import threading
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from mxflow.errors import (
    BulkMessageNotFound,
    DuplicateMessage,
    DuplicatePayment,
    SendRefused,
    MessageNotFound,
    NotRedrivable,
    PaymentNotFound,
    ServiceError,
    StatusConflict,
)
from mxflow.ports import IN_FLIGHT_STATUSES, Fence


class FakeClock:
    """utc_now() that moves one millisecond per reading, from a fixed start: ordered, repeatable;
    `advance(seconds)` jumps ahead (the release window is tested without sleeping)."""

    def __init__(self, start: datetime = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)):
        self.start = start
        self._ticks = itertools.count()
        self._lock = threading.Lock()
        self.offset = timedelta()

    def __call__(self) -> str:
        with self._lock:
            now = self.start + self.offset + timedelta(milliseconds=next(self._ticks))
        return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.offset += timedelta(seconds=seconds)


class Unavailable:
    """A switch every fake consults: while on, each call fails as an unreachable service would."""

    def __init__(self):
        self.on = False

    def check(self) -> None:
        if self.on:
            raise ServiceError("the service is unavailable (fake)")


class FakePaymentStore:
    """One record per payment, its history inside it, as the DynamoDB adapter keeps it."""

    def __init__(self, clock=None, unavailable: Unavailable | None = None, region: str = "eu-west-1"):
        self.clock = clock or FakeClock()
        self.unavailable = unavailable or Unavailable()
        self.region = region
        self._records: dict[str, dict] = {}
        self.suspense: dict[str, dict] = {}  # engine answers kept in suspense, by suspense id
        self._lock = threading.Lock()  # DynamoDB serialises the writes to one item
        self.writes: list[tuple[str, str]] = []  # (payment id, kind of write), in order
        self.page_reads: list[int] = []  # records read per client_page call (the list's cost)
        self.summaries: dict[str, dict] = {}

    def get(self, payment_id: str) -> dict:
        self.unavailable.check()
        with self._lock:
            return self._get(payment_id)

    def _get(self, payment_id: str) -> dict:
        if payment_id not in self._records:
            raise PaymentNotFound(payment_id)
        return copy.deepcopy(self._records[payment_id])

    def probe(self) -> None:
        self.unavailable.check()

    def create(self, record: Mapping[str, Any], *, event: Mapping[str, Any] | None = None) -> dict:
        self.unavailable.check()
        payment_id = record["paymentId"]
        now = record.get("receivedAt") or self.clock()
        with self._lock:
            if payment_id in self._records:
                raise DuplicatePayment(self._get(payment_id))
            region = record.get("ownerRegion", self.region)
            item = {**copy.deepcopy(dict(record)), "version": 1, "ownerRegion": region,
                    "epoch": record.get("epoch", 1), "receivedAt": now, "statusSince": now,
                    "history": [{"status": record["status"], "time": now, **(event or {})}]}
            if record["status"] in IN_FLIGHT_STATUSES:
                item["inflight"] = region
            self._records[payment_id] = item
            self.writes.append((payment_id, "create"))
            return copy.deepcopy(item)

    @staticmethod
    def _fenced(current: dict, fence: Fence | None) -> bool:
        return fence is None or (current.get("ownerRegion") == fence.region and current.get("epoch") == fence.epoch)

    def _in_time(self, fence: Fence | None) -> None:
        """As the DynamoDB store: a fenced write past its `until` is not sent (RegionUnavailable)."""
        if fence is not None:
            fence.check_in_time(self.clock())

    def transition(self, payment_id: str, *, expected_status: str | Iterable[str], expected_version: int,
                   new_status: str, set_values: Mapping[str, Any] | None = None, remove: Iterable[str] = (),
                   messages: Mapping[str, Any] | None = None, reason: Mapping[str, Any] | None = None,
                   require_no_decision: bool = False, passed_through: Iterable[str] = (),
                   event_detail: Mapping[str, Any] | None = None, fence: Fence | None = None) -> int:
        self.unavailable.check()
        self._in_time(fence)
        expected = [expected_status] if isinstance(expected_status, str) else sorted(expected_status)
        with self._lock:
            current = self._get(payment_id)
            if (current["status"] not in expected or current["version"] != expected_version
                    or (require_no_decision and "decision" in current) or not self._fenced(current, fence)):
                raise StatusConflict(payment_id, expected_status, current)
            now = self.clock()
            version = expected_version + 1
            record = self._records[payment_id]
            for name in remove:
                if name not in (set_values or {}):
                    record.pop(name, None)
            record.update(copy.deepcopy(dict(set_values or {})))
            record.setdefault("messages", {}).update(copy.deepcopy(dict(messages or {})))
            record.update(status=new_status, version=version, statusSince=now)
            if reason is not None:
                record["reason"] = {k: v for k, v in reason.items() if v is not None}
            events = [{"status": status, "time": now, **(event_detail or {})} for status in passed_through]
            last = {"status": new_status, "time": now, **(event_detail or {})}
            if reason is not None:
                last["reason"] = {k: v for k, v in reason.items() if v is not None}
            record["history"].extend(events + [last])
            if new_status not in IN_FLIGHT_STATUSES:
                record.pop("inflight", None)
            self.writes.append((payment_id, f"transition:{new_status}"))
            return version

    def set_attributes(self, payment_id: str, values: Mapping[str, Any], *,
                       expected_status: str | Iterable[str] | None = None,
                       require_no_decision: bool = False, fence: Fence | None = None) -> None:
        self.unavailable.check()
        self._in_time(fence)
        with self._lock:
            current = self._get(payment_id)
            if expected_status is not None:
                expected = [expected_status] if isinstance(expected_status, str) else list(expected_status)
                if current["status"] not in expected:
                    raise StatusConflict(payment_id, expected_status, current)
            if (require_no_decision and "decision" in current) or not self._fenced(current, fence):
                raise StatusConflict(payment_id, expected_status or "any", current)
            self._records[payment_id].update(copy.deepcopy(dict(values)))
            self.writes.append((payment_id, "set"))

    def update_release(self, payment_id: str, release: Mapping[str, Any], *, expected_attempts: int | None,
                       fence: Fence, suspense: Mapping[str, Any] | None = None,
                       clear_suspense: bool = False) -> None:
        self.unavailable.check()
        self._in_time(fence)
        with self._lock:
            current = self._get(payment_id)
            claimed = current.get("release")
            if (current["status"] != "ACSP" or (claimed or {}).get("sentAt") or not self._fenced(current, fence)
                    or (expected_attempts is None and claimed is not None)
                    or (expected_attempts is not None and (claimed or {}).get("attempts") != expected_attempts)):
                raise StatusConflict(payment_id, "ACSP", current)
            record = self._records[payment_id]
            record["release"] = copy.deepcopy(dict(release))
            if suspense is not None:
                record.update(suspense=dict(suspense), suspendedIn=fence.region, suspendedAt=suspense["since"])
            elif clear_suspense:
                for name in ("suspense", "suspendedIn", "suspendedAt"):
                    record.pop(name, None)
            self.writes.append((payment_id, "release"))

    def in_flight(self, region: str, *, per_shard: int) -> list[dict]:
        self.unavailable.check()
        with self._lock:
            items = sorted((r for r in self._records.values() if r.get("inflight") == region),
                           key=lambda r: r["receivedAt"])
            return [{**{k: r[k] for k in ("paymentId", "status", "statusSince", "receivedAt", "clientId")},
                     "suspended": bool(r.get("suspendedIn")), "sentAt": (r.get("release") or {}).get("sentAt")}
                    for r in items[:per_shard * 16]]

    def suspended(self, region: str) -> list[str]:
        self.unavailable.check()
        with self._lock:
            return [r["paymentId"] for r in self._records.values() if r.get("suspendedIn") == region]

    def client_page(self, client_id: str, *, received_after: str | None, received_before: str | None,
                    start: tuple[str, str] | None, limit: int) -> tuple[list[dict], bool]:
        """The ByClient index: newest first by (receivedAt, paymentId), as DynamoDB orders a range key
        then the table key; `start` excluded."""
        self.unavailable.check()
        with self._lock:
            keyed = sorted(((r["receivedAt"], r["paymentId"]) for r in self._records.values()
                            if r.get("clientId") == client_id
                            and (received_after is None or r["receivedAt"] >= received_after)
                            and (received_before is None or r["receivedAt"] <= received_before)), reverse=True)
            if start is not None:
                keyed = [key for key in keyed if key < tuple(start)]
            page = keyed[:limit]
            self.page_reads.append(len(page))
            return [copy.deepcopy(self._records[pid]) for _, pid in page], len(keyed) > limit

    def client_search(self, client_id: str, reference: str) -> list[dict]:
        """ByReference by the UETR's key ("u:<UETR>", the return leg's, written by the lifecycle) and
        ByEndToEndId: the client's records with that UETR or end-to-end id."""
        self.unavailable.check()
        with self._lock:
            found = [copy.deepcopy(r) for r in self._records.values() if r.get("clientId") == client_id
                     and (r.get("matchKey") == "u:" + reference.strip()
                          or (r.get("facts") or {}).get("endToEndId") == reference)]
            self.page_reads.append(len(found))
            return found

    def get_summary(self, region: str) -> dict | None:
        self.unavailable.check()
        return copy.deepcopy(self.summaries.get(region))

    def put_summary(self, region: str, summary: Mapping[str, Any]) -> None:
        self.unavailable.check()
        self.summaries[region] = copy.deepcopy(dict(summary))

    # -- the return leg --------------------------------------------------------------------------------
    def find_by_reference(self, reference_key: str) -> list[str]:
        self.unavailable.check()
        with self._lock:
            found = sorted((r for r in self._records.values() if r.get("matchKey") == reference_key),
                           key=lambda r: r["receivedAt"])
            return [r["paymentId"] for r in found]

    def add_suspense_entry(self, entry: Mapping[str, Any]) -> bool:
        self.unavailable.check()
        with self._lock:
            if entry["suspenseId"] in self.suspense:
                return False
            self.suspense[entry["suspenseId"]] = copy.deepcopy(dict(entry))
            self.writes.append((entry["suspenseId"], "suspense"))
            return True

    def suspense_entries(self, region: str, *, limit: int, cursor: str | None = None) -> tuple[list[dict], str | None]:
        from mxflow.errors import InvalidRequest

        self.unavailable.check()
        with self._lock:
            entries = sorted((e for e in self.suspense.values() if e["region"] == region),
                             key=lambda e: (e["receivedAt"], e["suspenseId"]), reverse=True)
        start = 0
        if cursor:
            ids = [e["suspenseId"] for e in entries]
            if cursor not in ids:
                raise InvalidRequest("cursor: not a cursor of this list")
            start = ids.index(cursor) + 1
        page = entries[start:start + limit]
        more = start + limit < len(entries)
        fields = ("suspenseId", "receivedAt", "messageType", "reason", "code", "paymentId")
        return ([{k: e[k] for k in fields if e.get(k) is not None} for e in page],
                page[-1]["suspenseId"] if more and page else None)

    # -- two Regions (mxflow.regions): the in-flight index by shard, the takeover's conditional write --

    @staticmethod
    def shard_of(payment_id: str) -> str:
        return f"{zlib.crc32(payment_id.encode()) % 16:02d}"

    def in_flight_page(self, region: str, shard: str, *, cursor: Any = None, limit: int = 25) -> tuple[list[str], Any]:
        self.unavailable.check()
        with self._lock:
            items = sorted((r for r in self._records.values()
                            if r.get("inflight") == region and self.shard_of(r["paymentId"]) == shard),
                           key=lambda r: (r["receivedAt"], r["paymentId"]))
        start = int(cursor or 0)
        page = [r["paymentId"] for r in items[start:start + limit]]
        return page, (start + limit if start + limit < len(items) else None)

    def take_over(self, payment_id: str, *, expected_status: str, expected_version: int, owner: Fence,
                  new_owner: Fence, anchor: str, event_detail: Mapping[str, Any], suspended: bool = False) -> None:
        self.unavailable.check()
        with self._lock:
            current = self._get(payment_id)
            if (current["status"] != expected_status or current["version"] != expected_version
                    or not self._fenced(current, owner)):
                raise StatusConflict(payment_id, expected_status, current)
            record = self._records[payment_id]
            for name in ("taskToken", "tokenRegion"):
                record.pop(name, None)
            record.update(ownerRegion=new_owner.region, epoch=new_owner.epoch, version=expected_version + 1,
                          inflight=new_owner.region, anchorName=anchor)
            if suspended:
                record["suspendedIn"] = new_owner.region
            record["history"].append({"status": expected_status, "time": self.clock(), **dict(event_detail)})
            self.writes.append((payment_id, "takeover"))

    def copy_to(self, other: "FakePaymentStore", payment_ids: Iterable[str] | None = None) -> None:
        """Replication: these records (all when None), as they are, into another Region's replica."""
        with self._lock:
            chosen = {k: copy.deepcopy(v) for k, v in self._records.items() if payment_ids is None or k in payment_ids}
        with other._lock:
            other._records.update(chosen)


class FakeRegionStore:
    """The Regions' health records and the routing item (mxflow.ports.RegionStore); `replicas` share one
    dict of items (replicated at once) unless a test gives each its own."""

    def __init__(self, items: dict | None = None, unavailable: Unavailable | None = None):
        self.items = {} if items is None else items
        self.unavailable = unavailable or Unavailable()
        self._lock = threading.Lock()

    def region_state(self, region: str) -> dict | None:
        self.unavailable.check()
        return copy.deepcopy(self.items.get(f"region#{region}"))

    def put_region_state(self, region: str, state: Mapping[str, Any]) -> bool:
        self.unavailable.check()
        with self._lock:   # the adapter's condition (mxflow.aws.regions.superseded_condition)
            there = self.items.get(f"region#{region}")
            if there and there.get("lastProbeAt") and (
                    there["lastProbeAt"] >= state["lastProbeAt"]
                    or (there.get("leaseUntil") and (not state.get("leaseUntil")
                                                     or there["leaseUntil"] > state["leaseUntil"]))):
                return False
            self.items[f"region#{region}"] = copy.deepcopy(dict(state))
            return True

    def routing(self) -> dict | None:
        self.unavailable.check()
        return copy.deepcopy(self.items.get("routing"))

    def init_routing(self, routing: Mapping[str, Any]) -> dict:
        self.unavailable.check()
        with self._lock:
            self.items.setdefault("routing", copy.deepcopy(dict(routing)))
            return copy.deepcopy(self.items["routing"])

    def claim_traffic(self, *, to_region: str, expected_epoch: int, at: str,
                      failed_over: Mapping[str, Any] | None, seen_epoch: int = 0) -> dict:
        from mxflow.errors import RegionConflict

        self.unavailable.check()
        with self._lock:
            current = self.items.get("routing") or {"epoch": 1}
            if int(current.get("epoch", 1)) != expected_epoch:
                raise RegionConflict(f"the routing epoch is {current.get('epoch')}, not {expected_epoch}")
            epoch = max(expected_epoch, seen_epoch) + 1
            claimed = {**copy.deepcopy(current), "trafficOwner": to_region, "epoch": epoch, "since": at}
            if failed_over:
                claimed["failedOver"] = {**(current.get("failedOver") or {}), failed_over["region"]: {
                    "epoch": epoch, "at": at, "by": to_region, "leaseUntil": failed_over.get("leaseUntil")}}
            self.items["routing"] = claimed
            return copy.deepcopy(claimed)

    def mark_recovered(self, region: str, epoch: int, at: str) -> None:
        with self._lock:
            done = ((self.items.get("routing") or {}).get("failedOver") or {}).get(region)
            if done and int(done["epoch"]) == epoch:
                done["completedAt"] = at


@dataclass
class FakeProbes:
    """HealthProbes: each dependency ok in 5 ms unless `failing` names it (with an error code) or `slow`
    gives it a duration."""

    failing: dict[str, str] = field(default_factory=dict)
    slow: dict[str, float] = field(default_factory=dict)

    def probe(self) -> list:
        from mxflow.regions import DEPENDENCIES, DependencyResult

        return [DependencyResult(name, name not in self.failing, self.slow.get(name, 5.0), self.failing.get(name))
                for name in DEPENDENCIES]


@dataclass
class FakeRecovery:
    """RecoveryWorkflow: the runs and anchors started, by name (a name started again is not a new one)."""

    runs: dict[str, dict] = field(default_factory=dict)
    anchors: dict[str, dict] = field(default_factory=dict)

    def start_recovery(self, name: str, recovery_input: Mapping[str, Any]) -> str | None:
        self.runs.setdefault(name, dict(recovery_input))
        return f"arn:aws:states:fake:123456789012:execution:recovery:{name}"

    def start_anchor(self, name: str, anchor_input: Mapping[str, Any]) -> None:
        self.anchors.setdefault(name, dict(anchor_input))


class FakeMessageArchive:
    bucket = "fake-archive"

    def __init__(self, unavailable: Unavailable | None = None):
        self.unavailable = unavailable or Unavailable()
        self.objects: dict[str, bytes] = {}
        self.object_metadata: dict[str, dict] = {}
        self.ranged_reads: list[tuple[str, int, int]] = []

    def put(self, key: str, data: bytes, *, content_type: str = "application/xml",
            metadata: Mapping[str, str] | None = None) -> str:
        self.unavailable.check()
        self.objects[key] = bytes(data)
        self.object_metadata[key] = dict(metadata or {})
        return key

    def get(self, key: str) -> bytes:
        self.unavailable.check()
        if key not in self.objects:
            raise MessageNotFound(f"archived message {key} not found")
        return self.objects[key]

    def get_range(self, key: str, start: int, end: int) -> bytes:
        self.ranged_reads.append((key, start, end))
        return self.get(key)[start:end]

    def list_keys(self, prefix: str, *, start_after: str | None = None):
        self.unavailable.check()
        return [k for k in sorted(self.objects) if k.startswith(prefix) and (start_after is None or k > start_after)]

    def metadata(self, key: str) -> dict:
        self.get(key)
        return dict(self.object_metadata.get(key) or {})


class FakeMessageStore:
    """Messages with several transactions and their parts, as the DynamoDB adapter keeps them (beside the
    payments of `store`, which `summaries` reads)."""

    def __init__(self, store: "FakePaymentStore", clock=None):
        self.store = store
        self.clock = clock or store.clock
        self._messages: dict[str, dict] = {}
        self._parts: dict[str, dict[int, dict]] = {}
        self._lock = threading.Lock()

    def create_message(self, record: Mapping[str, Any], *, event: Mapping[str, Any] | None = None) -> dict:
        with self._lock:
            message_id = record["messageId"]
            if message_id in self._messages:
                raise DuplicateMessage(copy.deepcopy(self._messages[message_id]))
            now = record.get("receivedAt") or self.clock()
            item = {**copy.deepcopy(dict(record)), "version": 1, "receivedAt": now,
                    "history": [{"status": record["status"], "time": now, **(event or {})}]}
            self._messages[message_id] = item
            return copy.deepcopy(item)

    def get_message(self, message_id: str) -> dict:
        with self._lock:
            if message_id not in self._messages:
                raise BulkMessageNotFound(message_id)
            return copy.deepcopy(self._messages[message_id])

    def update_message(self, message_id: str, *, expected_status: str, expected_version: int, new_status: str,
                       set_values: Mapping[str, Any] | None = None, messages: Mapping[str, Any] | None = None,
                       event_detail: Mapping[str, Any] | None = None) -> int:
        with self._lock:
            current = self._messages[message_id]
            if current["status"] != expected_status or current["version"] != expected_version:
                raise StatusConflict(message_id, expected_status, copy.deepcopy(current))
            current.update(copy.deepcopy(dict(set_values or {})), status=new_status, version=expected_version + 1)
            current.setdefault("messages", {}).update(copy.deepcopy(dict(messages or {})))
            current["history"].append({"status": new_status, "time": self.clock(), **(event_detail or {})})
            return current["version"]

    def put_part(self, message_id: str, first: int, payment_ids: list[str],
                 conflicts: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self._parts.setdefault(message_id, {}).setdefault(
                first, {"first": first, "paymentIds": list(payment_ids), "conflicts": dict(conflicts or {})})

    def parts(self, message_id: str) -> list[dict]:
        with self._lock:
            return [copy.deepcopy(p) for _, p in sorted(self._parts.get(message_id, {}).items())]

    def summaries(self, payment_ids: list[str]) -> dict[str, dict]:
        found = {}
        for payment_id in payment_ids:
            try:
                record = self.store.get(payment_id)
            except PaymentNotFound:
                continue
            found[payment_id] = {k: record[k] for k in ("status", "reason", "facts", "clientId", "messageId")
                                 if k in record}
        return found


@dataclass
class FakeWorkflow:
    """PaymentFlow starts as asked (not run: a test runs the steps it wants); anchor tokens resumed;
    tokens in `gone_tokens` answer as timed-out tasks; anchors in `redrivable` have failed."""

    flows: list[dict] = field(default_factory=list)
    successes: list[tuple[str, dict]] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    redrives: list[str] = field(default_factory=list)
    gone_tokens: set[str] = field(default_factory=set)
    redrivable: set[str] = field(default_factory=set)  # anchor names whose execution failed
    splits: list[str] = field(default_factory=list)     # messages whose split was started (once per id)
    refuse_starts: int = 0  # the next starts fail as an unreachable service would
    anchors: dict = field(default_factory=dict)  # name -> what anchor_execution answers
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start_flow(self, flow_input: Mapping[str, Any]) -> None:
        with self._lock:
            if self.refuse_starts:
                self.refuse_starts -= 1
                raise ServiceError("StartExecution failed (fake)")
            self.flows.append(dict(flow_input))

    def send_task_success(self, task_token: str, output: Mapping[str, Any]) -> bool:
        with self._lock:
            if task_token in self.gone_tokens:
                return False
            self.successes.append((task_token, dict(output)))
            return True

    def send_task_failure(self, task_token: str, error: str, cause: str) -> bool:
        with self._lock:
            if task_token in self.gone_tokens:
                return False
            self.failures.append((task_token, error, cause))
            return True

    def start_split(self, message_id: str) -> None:
        with self._lock:
            if message_id not in self.splits:   # named by the message id: a second start is no second split
                self.splits.append(message_id)

    def redrive(self, name: str) -> str | None:
        with self._lock:
            if name not in self.redrivable:
                raise NotRedrivable(name, "ExecutionNotRedrivable")
            self.redrivable.discard(name)
            self.redrives.append(name)
            return "2026-11-24T10:05:00+00:00"

    def anchor_execution(self, name: str) -> dict | None:
        return copy.deepcopy(self.anchors.get(name))


@dataclass
class FakeReleaseQueue:
    """Every send as made (no deduplication: a second send of a payment is visible). `failures` are
    raised by the next sends, in order: an exception fails before the send; ("after", exception)
    sends, then fails (the caller cannot know the message is on the queue)."""

    sent: list[dict] = field(default_factory=list)
    failures: list = field(default_factory=list)

    def send(self, body: Mapping[str, Any], *, deduplication_id: str, group_id: str) -> str:
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, Exception):
            raise failure
        self.sent.append({"body": dict(body), "deduplicationId": deduplication_id, "groupId": group_id})
        if failure is not None:
            raise failure[1]
        return f"message-{len(self.sent)}"

    def of(self, payment_id: str) -> list[dict]:
        return [m for m in self.sent if m["deduplicationId"] == payment_id]


@dataclass
class FakeEventPublisher:
    published: list[tuple[dict, dict]] = field(default_factory=list)

    def publish(self, event: Mapping[str, Any], *, attributes: Mapping[str, str]) -> None:
        self.published.append((dict(event), dict(attributes)))

    def of_type(self, event_type: str) -> list[dict]:
        return [event for event, _ in self.published if event["type"] == event_type]


@dataclass
class Ports:
    """One set of fakes, as the lifecycle gets them."""

    store: FakePaymentStore
    archive: FakeMessageArchive
    workflow: FakeWorkflow
    release_queue: FakeReleaseQueue
    events: FakeEventPublisher
    clock: FakeClock
    unavailable: Unavailable
    messages: FakeMessageStore = None

    @classmethod
    def new(cls) -> "Ports":
        clock, unavailable = FakeClock(), Unavailable()
        store = FakePaymentStore(clock, unavailable)
        return cls(store, FakeMessageArchive(unavailable), FakeWorkflow(), FakeReleaseQueue(), FakeEventPublisher(),
                   clock, unavailable, FakeMessageStore(store, clock))

    def lifecycle(self, settings, registry=None):
        from mxflow.lifecycle import PaymentLifecycle

        return PaymentLifecycle(store=self.store, archive=self.archive, workflow=self.workflow,
                                release_queue=self.release_queue, events=self.events, settings=settings,
                                registry=registry, clock=self.clock, messages=self.messages)
