"""In-memory implementations of the lifecycle's ports (mxflow.ports), for the lifecycle tests.

They keep the contract the AWS adapters keep (tests/app/test_store.py runs the same checks on the
fake store and on the DynamoDB one): conditional status changes with history, DuplicatePayment and
StatusConflict carrying the record, MessageNotFound, a workflow that starts each name once. Each
fake also records what it was asked, so a test can assert on every side effect (a second release
send is visible here even where SQS FIFO deduplication would hide it).
"""
from __future__ import annotations

import copy
import itertools
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

from mxflow.errors import (
    DuplicatePayment,
    MessageNotFound,
    NotRedrivable,
    PaymentNotFound,
    ServiceError,
    StatusConflict,
)
from mxflow.ports import IN_FLIGHT_STATUSES


class FakeClock:
    """utc_now() that moves one millisecond per reading, from a fixed start: ordered, repeatable."""

    def __init__(self, start: datetime = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)):
        self.start = start
        self._ticks = itertools.count()
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            now = self.start + timedelta(milliseconds=next(self._ticks))
        return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Unavailable:
    """A switch every fake consults: while on, each call fails as an unreachable service would."""

    def __init__(self):
        self.on = False

    def check(self) -> None:
        if self.on:
            raise ServiceError("the service is unavailable (fake)")


class FakePaymentStore:
    def __init__(self, clock=None, unavailable: Unavailable | None = None):
        self.clock = clock or FakeClock()
        self.unavailable = unavailable or Unavailable()
        self._records: dict[str, dict] = {}
        self._history: dict[str, list[dict]] = {}
        self._lock = threading.Lock()  # DynamoDB serialises the writes to one item

    def get(self, payment_id: str) -> dict:
        self.unavailable.check()
        with self._lock:
            return self._get(payment_id)

    def _get(self, payment_id: str) -> dict:
        if payment_id not in self._records:
            raise PaymentNotFound(payment_id)
        return copy.deepcopy(self._records[payment_id])

    def history(self, payment_id: str) -> list[dict]:
        self.unavailable.check()
        with self._lock:
            return copy.deepcopy(self._history.get(payment_id, []))

    def probe(self) -> None:
        self.unavailable.check()

    def oldest_in_flight_since(self, status: str) -> str | None:
        self.unavailable.check()
        with self._lock:
            since = [r["statusSince"] for r in self._records.values()
                     if r["status"] == status and status in IN_FLIGHT_STATUSES]
        return min(since, default=None)

    def create(self, record: Mapping[str, Any], *, event: Mapping[str, Any] | None = None) -> dict:
        self.unavailable.check()
        payment_id = record["paymentId"]
        now = record.get("receivedAt") or self.clock()
        with self._lock:
            if payment_id in self._records:
                raise DuplicatePayment(self._get(payment_id))
            item = {**copy.deepcopy(dict(record)), "version": 1, "ownerRegion": record.get("ownerRegion", "fake"),
                    "epoch": record.get("epoch", 1), "updatedAt": now, "statusSince": now}
            self._records[payment_id] = item
            self._history[payment_id] = [{"status": record["status"], "time": now, "version": 1, **(event or {})}]
            return copy.deepcopy(item)

    def transition(self, payment_id: str, *, expected_status: str | Iterable[str], expected_version: int,
                   new_status: str, set_values: Mapping[str, Any] | None = None, remove: Iterable[str] = (),
                   reason: Mapping[str, Any] | None = None, require_no_decision: bool = False,
                   event_detail: Mapping[str, Any] | None = None) -> int:
        self.unavailable.check()
        expected = [expected_status] if isinstance(expected_status, str) else sorted(expected_status)
        with self._lock:
            current = self._get(payment_id)
            if (current["status"] not in expected or current["version"] != expected_version
                    or (require_no_decision and "decision" in current)):
                raise StatusConflict(payment_id, expected_status, current)
            now = self.clock()
            version = expected_version + 1
            record = self._records[payment_id]
            for name in remove:
                record.pop(name, None)
            record.update(copy.deepcopy(dict(set_values or {})))
            record.update(status=new_status, version=version, updatedAt=now, statusSince=now)
            if reason is not None:
                record["reason"] = dict(reason)
            event = {"status": new_status, "time": now, "version": version,
                     "fromStatus": expected[0] if len(expected) == 1 else None, **(event_detail or {})}
            if reason is not None:
                event["reason"] = dict(reason)
            self._history[payment_id].append({k: v for k, v in event.items() if v is not None})
            return version

    def set_attributes(self, payment_id: str, values: Mapping[str, Any], *,
                       expected_status: str | Iterable[str] | None = None) -> None:
        self.unavailable.check()
        with self._lock:
            current = self._get(payment_id)
            if expected_status is not None:
                expected = [expected_status] if isinstance(expected_status, str) else list(expected_status)
                if current["status"] not in expected:
                    raise StatusConflict(payment_id, expected_status, current)
            self._records[payment_id].update(copy.deepcopy(dict(values)))

    def record_message(self, payment_id: str, name: str, key: str) -> None:
        self.unavailable.check()
        with self._lock:
            self._get(payment_id)
            self._records[payment_id].setdefault("messages", {})[name] = key


class FakeMessageArchive:
    bucket = "fake-archive"

    def __init__(self, unavailable: Unavailable | None = None):
        self.unavailable = unavailable or Unavailable()
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes) -> str:
        self.unavailable.check()
        self.objects[key] = bytes(data)
        return key

    def get(self, key: str) -> bytes:
        self.unavailable.check()
        if key not in self.objects:
            raise MessageNotFound(f"archived message {key} not found")
        return self.objects[key]


@dataclass
class FakeWorkflow:
    """Executions by name; task tokens resumed; tokens in `gone_tokens` answer as timed-out tasks."""

    executions: dict[str, dict] = field(default_factory=dict)
    starts: list[tuple[str, dict]] = field(default_factory=list)
    successes: list[tuple[str, dict]] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    redrives: list[str] = field(default_factory=list)
    gone_tokens: set[str] = field(default_factory=set)
    redrivable: set[str] = field(default_factory=set)  # names whose execution failed
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self, name: str, execution_input: Mapping[str, Any]) -> None:
        with self._lock:
            self.starts.append((name, dict(execution_input)))
            self.executions.setdefault(name, {"name": name, "input": dict(execution_input), "status": "RUNNING"})

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

    def redrive(self, name: str) -> str | None:
        with self._lock:
            if name not in self.executions:
                raise NotRedrivable(name, "ExecutionDoesNotExist")
            if name not in self.redrivable:
                raise NotRedrivable(name, "ExecutionNotRedrivable")
            self.redrivable.discard(name)
            self.redrives.append(name)
            return "2026-11-24T10:05:00+00:00"


@dataclass
class FakeReleaseQueue:
    """Every send as made (no deduplication: a second send of a payment is visible)."""

    sent: list[dict] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)  # raised by the next sends, in order

    def send(self, body: Mapping[str, Any], *, deduplication_id: str, group_id: str) -> str:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append({"body": dict(body), "deduplicationId": deduplication_id, "groupId": group_id})
        return f"message-{len(self.sent)}"


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

    @classmethod
    def new(cls) -> "Ports":
        clock, unavailable = FakeClock(), Unavailable()
        return cls(FakePaymentStore(clock, unavailable), FakeMessageArchive(unavailable), FakeWorkflow(),
                   FakeReleaseQueue(), FakeEventPublisher(), clock, unavailable)

    def lifecycle(self, settings, registry=None):
        from mxflow.lifecycle import PaymentLifecycle

        return PaymentLifecycle(store=self.store, archive=self.archive, workflow=self.workflow,
                                release_queue=self.release_queue, events=self.events, settings=settings,
                                registry=registry, clock=self.clock)
