"""The archive journal (issue 13): every change of the payment table, written to the archive as it
happens, so the archive alone can rebuild the table (`mxflow restore --from-archive`).

The table's stream (NEW_IMAGE) is read by JournalFunction in batches (its event source mapping: up to
JournalBatchSize records or JournalBatchingWindowSeconds, whichever comes first); each batch becomes ONE
object in the archive bucket (versioned, KMS, Object Lock when configured: as durable as the received
messages), so a payment pays only its share of a batch's PUT. docs/flow.md ("The archive journal").

Object: `journal/YYYY/MM/DD/HH/<first record's time>-<its sequence number>-<digest>.jsonl.gz`, gzip (no
timestamp in the header: the same batch gives the same bytes) of JSON lines, one per INSERT or MODIFY:
{"format", "seq", "time", "event", "keys", "image"}, `image` being the item as the stream gives it
(DynamoDB JSON, binary values base64). REMOVE records are not journaled (the mapping's filter drops
them): a deleted item is not a change a restore replays. The key is derived from the batch (the time of
its first record, its first sequence number and a digest of its event ids), so a retried batch writes
the same object again, and a batch bisected after an error writes its halves under their own keys: the
restore reads every object and keeps each item's newest image, so overlaps are harmless.

Pure domain: the archive port only.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator, Mapping

JOURNAL_PREFIX = "journal/"
JOURNAL_FORMAT = "mxflow-journal/1"
JOURNALED_EVENTS = ("INSERT", "MODIFY")
CONTENT_TYPE = "application/x-ndjson"


def _when(record: Mapping[str, Any]) -> datetime:
    """The record's ApproximateCreationDateTime (epoch seconds in Lambda's event) as UTC."""
    value = (record.get("dynamodb") or {}).get("ApproximateCreationDateTime")
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc)
    return datetime.fromtimestamp(float(value or 0), tz=timezone.utc)


def journal_entry(record: Mapping[str, Any]) -> dict | None:
    """The journal line of one stream record (Lambda's DynamoDB event record); None for a record that
    carries no new image (REMOVE)."""
    change = record.get("dynamodb") or {}
    if record.get("eventName") not in JOURNALED_EVENTS or not change.get("NewImage"):
        return None
    return {"format": JOURNAL_FORMAT, "seq": str(change.get("SequenceNumber")),
            "time": _when(record).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": record["eventName"], "keys": change.get("Keys"), "image": change["NewImage"]}


def journal_key(records: list[Mapping[str, Any]]) -> str:
    """Where a batch is journaled (see the module docstring): deterministic for the same batch."""
    first = records[0]
    when = _when(first)
    sequence = str((first.get("dynamodb") or {}).get("SequenceNumber") or "0")
    digest = hashlib.sha256("\n".join(str(r.get("eventID", "")) for r in records).encode()).hexdigest()[:16]
    return f"{JOURNAL_PREFIX}{when:%Y/%m/%d/%H}/{when:%Y%m%dT%H%M%S}Z-{sequence}-{digest}.jsonl.gz"


def journal_object(records: list[Mapping[str, Any]]) -> tuple[str, bytes, int] | None:
    """(key, gzip bytes, lines) of a batch; None when no record of it carries a new image."""
    lines = [entry for entry in map(journal_entry, records) if entry is not None]
    if not lines:
        return None
    text = "".join(json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n" for line in lines)
    return journal_key(list(records)), gzip.compress(text.encode("utf-8"), mtime=0), len(lines)


class Journal:
    """Writes batches of stream records to the archive (MessageArchive port)."""

    def __init__(self, archive):
        self.archive = archive

    def write(self, records: list[Mapping[str, Any]]) -> dict:
        """One object for the batch (nothing for a batch without new images). Raises the archive's
        ServiceError: the event source mapping retries the batch (then bisects it, then sends its
        position to the on-failure destination)."""
        made = journal_object(records)
        if made is None:
            return {"key": None, "entries": 0, "records": len(records)}
        key, data, lines = made
        self.archive.put(key, data, content_type=CONTENT_TYPE)
        return {"key": key, "entries": lines, "records": len(records)}


def read_journal_object(data: bytes) -> Iterator[dict]:
    """The lines of one journal object (ValueError for an object that is not one)."""
    for line in gzip.decompress(data).decode("utf-8").splitlines():
        if line.strip():
            entry = json.loads(line)
            if entry.get("format") != JOURNAL_FORMAT:
                raise ValueError(f"not a journal line of {JOURNAL_FORMAT}")
            yield entry


def since_prefix(since: datetime) -> str:
    """The key a listing starts after to skip journal objects of hours before `since`."""
    return f"{JOURNAL_PREFIX}{since.astimezone(timezone.utc):%Y/%m/%d/%H}/"


def image_version(image: Mapping[str, Any]) -> int | None:
    """The record's version (payments and messages carry one; parts are written once and have none)."""
    value = (image.get("version") or {}).get("N")
    return int(value) if value is not None else None


def newest_images(entries: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], dict]:
    """Each item's newest journaled image, by (pk, sk): the highest version, then the latest time and
    sequence number (the same version journaled twice is the same image)."""
    newest: dict[tuple[str, str], dict] = {}
    for entry in entries:
        image = entry["image"]
        key = (image["pk"]["S"], image["sk"]["S"])
        rank = (image_version(image) or 0, entry["time"], int(entry["seq"]) if str(entry["seq"]).isdigit() else 0)
        if key not in newest or rank > newest[key]["rank"]:
            newest[key] = {"rank": rank, "image": image, "time": entry["time"]}
    return newest


def to_client_item(image: Mapping[str, Any]) -> dict:
    """A journaled image (DynamoDB JSON, binary values base64 as the stream's Lambda event gives them) as
    the DynamoDB client takes an item (binary values as bytes)."""
    return {name: _client_value(value) for name, value in image.items()}


def _client_value(value: Mapping[str, Any]) -> dict:
    (kind, inner), = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner) if isinstance(inner, str) else inner}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) if isinstance(v, str) else v for v in inner]}
    if kind == "M":
        return {"M": {k: _client_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [_client_value(v) for v in inner]}
    return {kind: inner}
