"""Restore from the archive (issue 13): rebuild the payment table from what the archive holds, into an
empty or partly lost table, idempotently (`mxflow restore --from-archive`, src/mxflow_cli/restore_cmd.py).

What the archive holds for every payment: the message as received (`received/`, written before the 202,
with the client, the time and the owning Region as object metadata), every generated message too large
for the record (`generated/`), and the journal of every change of the table (`journal/`, mxflow.journal):
each item's images, its status history and generated messages inside.

Two passes:
1. the journal: each item's newest journaled image (payments, messages with several transactions and
   their parts), written when the item is absent or older (a conditional put on `version`; an item
   without one, a part, only when absent). An in-flight payment keeps its owner Region and epoch and is
   put back in the InFlight index under `<ownerRegion>#<shard>` (recomputed, so index and owner agree);
   a terminal one is out of it.
2. the received messages no journal line names (the last changes before the loss, within the journal's
   batching window): a payment is rebuilt RCVD from its message and the metadata archived with it, as
   the API created it; the recovery policy resumes it by its status (it validates again). A message with
   several transactions whose record was never journaled cannot be rebuilt this way (its split's
   progress is unknown): it is reported, to be submitted again.

Executions are not restored (they live in Step Functions, docs/flow.md "Restore"): a restored payment
whose anchor still runs is answered by it as before (its task token is in the record); where the
executions were lost too, the recovery policy resumes each in-flight payment by its status.

Pure domain on two ports: the archive (MessageArchive with `list_keys` and `metadata`) and a
RestoreTable (below).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Protocol

from mxflow import iso20022
from mxflow.journal import JOURNAL_PREFIX, newest_images, read_journal_object, since_prefix
from mxflow.ports import IN_FLIGHT_STATUSES, inflight_key

RECEIVED_PREFIX = "received/"
PAYMENT_SK = "PAYMENT"
WORKERS = 8
# Object metadata the API archives a received message with (S3 user metadata: x-amz-meta-*).
CLIENT_METADATA, TIME_METADATA, REGION_METADATA = "client-id", "received-at", "owner-region"


class RestoreTable(Protocol):
    """The table being restored (client item format: {"name": {"S": ...}})."""

    def put_if_newer(self, item: dict) -> bool:
        """Write the item when absent, or older (a lower `version`) when it has a version; True when
        written, False when the table holds it already (as new or newer)."""

    def current_version(self, pk: str, sk: str) -> int | None:
        """The version of the item in the table (0 when it has none), None when there is none."""


@dataclass
class RestoreReport:
    dry_run: bool
    journal_objects: int = 0
    journal_lines: int = 0
    restored: dict = field(default_factory=dict)      # kind -> count
    skipped: dict = field(default_factory=dict)       # kind -> count (already there, as new or newer)
    failed: list = field(default_factory=list)        # {"key", "reason"}

    def count(self, bucket: dict, kind: str) -> None:
        bucket[kind] = bucket.get(kind, 0) + 1

    def to_dict(self) -> dict:
        return {"dryRun": self.dry_run, "journalObjects": self.journal_objects, "journalLines": self.journal_lines,
                "restored": dict(sorted(self.restored.items())), "skipped": dict(sorted(self.skipped.items())),
                "couldNotRestore": self.failed}


def kind_of(sk: str) -> str:
    return {"PAYMENT": "payments", "MESSAGE": "messages"}.get(sk, "parts" if sk.startswith("PART#") else "other")


def normalised(image: dict) -> dict:
    """A payment image as it goes back: in the InFlight index under its owner Region when in flight
    (the key recomputed from the payment id and ownerRegion), out of it when terminal."""
    if image.get("sk", {}).get("S") != PAYMENT_SK:
        return image
    item = dict(image)
    status = item.get("status", {}).get("S")
    owner = item.get("ownerRegion", {}).get("S")
    if status in IN_FLIGHT_STATUSES and owner:
        item["inflight"] = {"S": inflight_key(item["pk"]["S"], owner)}
    else:
        item.pop("inflight", None)
    return item


def expired(image: dict, now: datetime) -> bool:
    """An item whose TTL (expiresAt, epoch seconds) has passed is not brought back."""
    value = (image.get("expiresAt") or {}).get("N")
    return value is not None and float(value) < now.timestamp()


class Restore:
    def __init__(self, archive, table: RestoreTable, *, clock=lambda: datetime.now(timezone.utc)):
        self.archive, self.table, self.clock = archive, table, clock

    def run(self, *, since: datetime | None = None, dry_run: bool = False) -> RestoreReport:
        report = RestoreReport(dry_run=dry_run)
        entries = list(self._journal(since, report))
        report.journal_lines = len(entries)
        newest = newest_images(entries)
        now = self.clock()
        images = [normalised(n["image"]) for n in newest.values() if not expired(n["image"], now)]
        self._write(images, report, dry_run)
        journaled = {pk for pk, _sk in newest}
        self._received(journaled, since, report, dry_run)
        return report

    # -- pass 1: the journal -----------------------------------------------------------------------

    def _journal(self, since: datetime | None, report: RestoreReport) -> Iterable[dict]:
        start_after = since_prefix(since) if since else None
        threshold = since.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z") \
            if since else None
        for key in self.archive.list_keys(JOURNAL_PREFIX, start_after=start_after):
            report.journal_objects += 1
            try:
                lines = list(read_journal_object(self.archive.get(key)))
            except (ValueError, OSError, EOFError) as error:
                report.failed.append({"key": key, "reason": f"unreadable journal object ({type(error).__name__})"})
                continue
            for entry in lines:
                if threshold is None or entry["time"] >= threshold:
                    yield entry

    def _write(self, images: list[dict], report: RestoreReport, dry_run: bool) -> None:
        def one(image: dict):
            kind = kind_of(image["sk"]["S"])
            try:
                if dry_run:
                    current = self.table.current_version(image["pk"]["S"], image["sk"]["S"])
                    version = int((image.get("version") or {}).get("N", 0))
                    written = current is None or (image.get("version") is not None and current < version)
                else:
                    written = self.table.put_if_newer(image)
            except Exception as error:  # noqa: BLE001 - reported per item, the others go on
                return kind, None, f"{image['pk']['S']}/{image['sk']['S']}", f"{type(error).__name__}: {error}"
            return kind, written, None, None

        with ThreadPoolExecutor(WORKERS) as pool:
            for kind, written, key, reason in pool.map(one, images):
                if written is None:
                    report.failed.append({"key": key, "reason": reason})
                else:
                    report.count(report.restored if written else report.skipped, kind)

    # -- pass 2: received messages no journal line names -------------------------------------------

    def _received(self, journaled: set[str], since: datetime | None, report: RestoreReport, dry_run: bool) -> None:
        by_id: dict[str, list[str]] = {}
        for key in self.archive.list_keys(RECEIVED_PREFIX):
            parts = key.split("/")
            if len(parts) == 3 and parts[1] not in journaled:
                by_id.setdefault(parts[1], []).append(key)
        for record_id, keys in sorted(by_id.items()):
            if record_id.startswith("m-"):
                report.failed.append({"key": keys[0], "reason": "a message with several transactions whose record "
                                      "was never journaled: submit it again (its payments are rebuilt from the "
                                      "journal where they were journaled)"})
                continue
            try:
                image = self._from_received(record_id, keys, since)
            except _NotRebuilt as reason:
                report.failed.append({"key": keys[0], "reason": str(reason)})
                continue
            if image is None:
                continue
            self._write([normalised(image)], report, dry_run)

    def _from_received(self, payment_id: str, keys: list[str], since: datetime | None) -> dict | None:
        """A payment's RCVD image rebuilt from its received message and metadata (as the API wrote it)."""
        from mxflow.lifecycle import facts_summary

        described = sorted((self.archive.metadata(key), key) for key in keys)
        (first, key), *others = [(m, k) for m, k in described if m.get(TIME_METADATA)] or [(None, None)]
        if first is None:
            raise _NotRebuilt("archived without the metadata a record is rebuilt from (client, time, Region)")
        if others and others[0][0].get(TIME_METADATA) == first.get(TIME_METADATA):
            raise _NotRebuilt("several messages with this payment's identity were received at the same time")
        received_at = first[TIME_METADATA]
        if since and received_at < since.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"):
            return None
        data = self.archive.get(key)
        try:
            parsed = iso20022.parse_message(data, limits=iso20022.ParseLimits(max_bytes=max(len(data), 1)))
            facts = iso20022.extract_facts(parsed)
        except iso20022.MessageError as error:
            raise _NotRebuilt(f"the received message cannot be read again ({error.issue.message})") from None
        if facts.payment_id != payment_id:
            raise _NotRebuilt("the received message does not have the identity its key names")
        event = {"M": {"status": {"S": "RCVD"}, "time": {"S": received_at}, "actor": {"S": first[CLIENT_METADATA]},
                       "restoredFrom": {"S": "received message"}}}
        image = {"pk": {"S": payment_id}, "sk": {"S": PAYMENT_SK}, "status": {"S": "RCVD"}, "version": {"N": "1"},
                 "clientId": {"S": first[CLIENT_METADATA]}, "messageType": {"S": parsed.message_id},
                 "contentSha256": {"S": key.rsplit("/", 1)[-1].removesuffix(".xml")},
                 "receivedAt": {"S": received_at}, "ownerRegion": {"S": first[REGION_METADATA]},
                 "epoch": {"N": "1"}, "facts": _map(facts_summary(facts)), "messages": {"M": {}},
                 "history": {"L": [event]}}
        if facts.message_family != "camt.056" and facts.reference_key():
            # the ByReference key the API writes with a payment (a recall or an engine answer finds it by it)
            image["matchKey"] = {"S": facts.reference_key()}
        return image


class _NotRebuilt(Exception):
    pass


def _map(values: dict[str, Any]) -> dict:
    """A flat dict of strings and numbers as a DynamoDB map (what the API writes in `facts`)."""
    out = {}
    for name, value in values.items():
        if isinstance(value, bool):
            out[name] = {"BOOL": value}
        elif isinstance(value, (int, float)):
            out[name] = {"N": str(value)}
        elif value is not None:
            out[name] = {"S": str(value)}
    return {"M": out}
