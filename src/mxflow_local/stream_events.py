"""DynamoDB-stream event sources of the local runtime: what Lambda's event source mappings do in AWS.

moto keeps a table's stream (StreamSpecification) and answers DynamoDB Streams' API, but does not poll
it for the template's `AWS::Lambda::EventSourceMapping`s (the runtime records them, `StackRecord.
event_source_mappings`). `StreamEventSources` polls every mapping whose source is a DynamoDB stream and
invokes its function as Lambda does:

- reads the stream from `StartingPosition` (TRIM_HORIZON or LATEST), one shard iterator per mapping
  (moto has one shard), with the calls moto's DynamoDB Streams API makes on its backend (GetShardIterator,
  GetRecords), without the round trip through botocore: the records are GetRecords' JSON
  (`mxflow_local.dynamodb.stream_records`), which is Lambda's event form already (binary values base64).
  Through a boto3 client, botocore parsed every nested attribute value of the records' images (a
  payment's item, old and new) and this module turned the binary ones back into base64: the poller's
  thread took 3.0-3.2 ms of CPU per payment in `make bench`'s local run, 1.1-1.4 ms so (its thread's
  CPU time, two runs each);
- batches up to `BatchSize` records, waiting at most `MaximumBatchingWindowInSeconds` for a batch to fill
  (capped by `window_cap` for tests and the demo; 0: deliver what there is);
- keeps the records `FilterCriteria` lets through (equality patterns on the record's fields: what the
  application's filters use; a record no filter matches is dropped, as Lambda drops it unbilled);
- invokes the function synchronously through the runtime with Lambda's event shape (`{"Records": [...]}`:
  eventID, eventName, eventVersion 1.1, eventSource, awsRegion, dynamodb {ApproximateCreationDateTime in
  epoch seconds, Keys, NewImage/OldImage with binary values base64, SequenceNumber, SizeBytes,
  StreamViewType}, eventSourceARN);
- on a function error: retries the batch up to `MaximumRetryAttempts` (-1, AWS's default "until the
  record expires", is capped at `max_local_retries` here), halving it first when
  `BisectBatchOnFunctionError`; a partial batch response (`ReportBatchItemFailures`) retries from the
  first failed record; when the retries are spent, sends Lambda's failure record (`requestContext`,
  `responseContext`, `DDBStreamBatchInfo` with the shard, sequence range and stream) to the
  `DestinationConfig.OnFailure` queue or topic, and goes on (in order, one batch at a time per shard).

Memory: moto keeps every stream record (and every shard iterator it hands out) for good; once each
mapping on a stream has delivered records, they are dropped from moto's shard (under the runtime's
DynamoDB lock, so a transaction's rollback sees a consistent stream), and used iterators are forgotten.
AWS keeps records 24 hours; locally a record no mapping reads is kept.

Generic: nothing here knows the application; another event source (an SQS poller) lives in its own
module. Hooked into `LocalRuntime.start`/`stop`; `flush()` delivers every record written so far (tests,
the demo, the restore path) without waiting for a batching window.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

LOG = logging.getLogger("mxflow_local.stream_events")

POLL_INTERVAL_S = 0.1           # between GetRecords calls when the stream had nothing new
MAX_GET_RECORDS = 1000          # DynamoDB Streams' GetRecords limit
DEFAULT_BATCH_SIZE = 100        # Lambda's default for DynamoDB streams
MAX_LOCAL_RETRIES = 3           # MaximumRetryAttempts -1 ("until the record expires", 24 h) locally
RETRY_BACKOFF_S = 0.2


def is_stream_arn(arn: Any) -> bool:
    return isinstance(arn, str) and ":dynamodb:" in arn and "/stream/" in arn


def lambda_record(record: dict, *, region: str, stream_arn: str) -> dict:
    """A GetRecords record (its JSON: binary values base64, the creation time in epoch seconds with a
    fraction) as Lambda hands it to the function (the creation time in whole seconds)."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if created is not None:
        change["ApproximateCreationDateTime"] = int(created)
    return {"eventID": record.get("eventID") or uuid.uuid4().hex, "eventName": record["eventName"],
            "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": region, "dynamodb": change,
            "eventSourceARN": stream_arn}


def matches(pattern: Any, value: Any) -> bool:
    """An event filtering pattern against a value: a dict matches field by field, a list matches when
    the value equals one of its entries (the equality subset of Lambda's filter rules)."""
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(matches(p, value.get(k)) for k, p in pattern.items())
    if isinstance(pattern, list):
        return any(matches(p, value) if isinstance(p, (dict, list)) else p == value for p in pattern)
    return pattern == value


@dataclass
class _Mapping:
    """One event source mapping on a DynamoDB stream, as the template sets it."""

    logical_id: str
    stream_arn: str
    function: str
    batch_size: int
    window_s: float
    starting_position: str
    retries: int
    bisect: bool
    partial: bool
    filters: list = field(default_factory=list)
    on_failure: str | None = None
    enabled: bool = True

    @classmethod
    def of(cls, props: dict, *, window_cap: float | None, max_local_retries: int) -> "_Mapping":
        window = float(props.get("MaximumBatchingWindowInSeconds") or 0)
        retries = int(props.get("MaximumRetryAttempts", -1))
        filters = [json.loads(f["Pattern"]) for f in ((props.get("FilterCriteria") or {}).get("Filters") or [])]
        return cls(logical_id=props.get("LogicalId", "mapping"), stream_arn=props["EventSourceArn"],
                   function=str(props["FunctionName"]).rsplit(":", 1)[-1] if str(props["FunctionName"]).startswith(
                       "arn:") else str(props["FunctionName"]),
                   batch_size=int(props.get("BatchSize") or DEFAULT_BATCH_SIZE),
                   window_s=min(window, window_cap) if window_cap is not None else window,
                   starting_position=props.get("StartingPosition", "TRIM_HORIZON"),
                   retries=max_local_retries if retries < 0 else min(retries, max_local_retries),
                   bisect=str(props.get("BisectBatchOnFunctionError", "false")).lower() == "true",
                   partial="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                   filters=filters,
                   on_failure=((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination"),
                   enabled=str(props.get("Enabled", "true")).lower() != "false")

    def wants(self, record: dict) -> bool:
        return not self.filters or any(matches(pattern, record) for pattern in self.filters)


class StreamEventSources:
    """Polls a runtime's DynamoDB-stream event source mappings (see the module docstring)."""

    def __init__(self, mappings: list[dict], *, invoke: Callable[[str, dict], Any], client: Callable[[str], Any],
                 region: str, account_id: str, available: Callable[[], bool] = lambda: True,
                 window_cap: float | None = None, max_local_retries: int = MAX_LOCAL_RETRIES,
                 trim: bool = True):
        self.mappings = [_Mapping.of(m, window_cap=window_cap, max_local_retries=max_local_retries)
                         for m in mappings if is_stream_arn(m.get("EventSourceArn"))]
        self.invoke, self.client, self.region, self.account_id = invoke, client, region, account_id
        self.available = available
        # Trim moto's shard once delivered: only where the mappings are the stream's only readers (two
        # Regions' replicator, mxflow_local.two_regions, reads the same stream at its own pace).
        self.trim = trim
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pollers: list[_Poller] = []
        self.delivered = 0          # records handed to functions
        self.failed_batches = 0     # batches sent to an on-failure destination
        self._lock = threading.Lock()

    def start(self) -> "StreamEventSources":
        for mapping in self.mappings:
            if not mapping.enabled:
                continue
            poller = _Poller(self, mapping)
            self._pollers.append(poller)
            thread = threading.Thread(target=poller.run, name=f"mxflow-stream-{mapping.logical_id}", daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads.clear()

    def flush(self, timeout: float = 30.0) -> bool:
        """Deliver every record written so far (no batching window); True once each mapping has
        delivered (or sent to its on-failure destination) every record that was in its stream at the
        call, False when `timeout` passed first."""
        targets = [(poller, poller.stream_end()) for poller in self._pollers]
        for poller, _end in targets:
            poller.flush_requested.set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(poller.position >= end for poller, end in targets):
                return True
            time.sleep(0.02)
        return False

    # -- trimming moto's shard -------------------------------------------------------------------

    def _shard(self, stream_arn: str):
        from moto.dynamodb.models import dynamodb_backends

        table_name = stream_arn.split(":table/", 1)[1].split("/stream/", 1)[0]
        table = dynamodb_backends[self.account_id][self.region].get_table(table_name)
        return table.stream_shard

    def _trim(self, stream_arn: str) -> None:
        """Drop the records every mapping of this stream has delivered from moto's shard."""
        from mxflow_local.dynamodb import LOCK

        if not self.trim:
            return

        positions = [p.position for p in self._pollers if p.mapping.stream_arn == stream_arn]
        if not positions:
            return
        upto = min(positions)
        with LOCK:
            shard = self._shard(stream_arn)
            if shard is None:
                return
            drop = upto - shard.starting_sequence_number
            if drop > 0:
                del shard.items[:drop]
                shard.starting_sequence_number += drop

    def _streams_backend(self):
        from moto.dynamodbstreams.models import dynamodbstreams_backends

        return dynamodbstreams_backends[self.account_id][self.region]


class _Poller:
    """One mapping's loop: read, batch, deliver, retry, checkpoint."""

    def __init__(self, sources: StreamEventSources, mapping: _Mapping):
        self.sources, self.mapping = sources, mapping
        self.flush_requested = threading.Event()
        self.position = 0           # the sequence number after the last record delivered (or skipped)
        self._iterator: str | None = None
        self._pending: list[dict] = []
        self._pending_since: float | None = None

    def stream_end(self) -> int:
        """The sequence number after the last record now in the stream."""
        shard = self.sources._shard(self.mapping.stream_arn)
        return shard.starting_sequence_number + len(shard.items) if shard is not None else 0

    def run(self) -> None:
        stop = self.sources._stop
        while not stop.is_set():
            try:
                got = self._poll()
            except Exception:  # noqa: BLE001 - a poller never dies of one bad call: log and go on
                LOG.exception("stream event source %s: polling failed", self.mapping.logical_id)
                self._iterator = None
                got = False
            if not got:
                stop.wait(POLL_INTERVAL_S)

    def _shard_iterator(self, backend) -> str:
        """The mapping's iterator: from the position delivered so far, else from StartingPosition (the
        position is then where moto's iterator starts: the shard's first record, or its end for LATEST)."""
        if self._iterator is None:
            arn = self.mapping.stream_arn
            shard = self.sources._shard(arn)
            if self.position:
                # a number, as moto's GetShardIterator hands its backend the SequenceNumber string
                iterator = backend.get_shard_iterator(arn, shard.id, "AT_SEQUENCE_NUMBER", self.position)
            else:
                iterator = backend.get_shard_iterator(arn, shard.id, self.mapping.starting_position)
                self.position = iterator.sequence_number
            self._iterator = iterator.arn
        return self._iterator

    def _get_records(self, limit: int) -> list[dict]:
        """GetRecords from the mapping's iterator (moto's backend, under the runtime's DynamoDB lock: no
        record of a transaction being cancelled is read) as its JSON (see the module docstring); the
        iterator moves on and the one used is forgotten (moto keeps every iterator it hands out)."""
        from mxflow_local.dynamodb import LOCK, stream_records

        backend = self.sources._streams_backend()
        with LOCK:
            used = self._shard_iterator(backend)
            answer = backend.get_records(used, limit)
        self._iterator = answer["NextShardIterator"]
        if self._iterator != used:
            backend.shard_iterators.pop(used, None)
        return stream_records(answer["Records"])

    def _poll(self) -> bool:
        """One round: read what is new, deliver a batch when full, its window is over or a flush asks.
        True when records were read or delivered (poll again at once)."""
        if not self.sources.available():
            return False
        if self._iterator is not None and self.stream_end() <= self.position + len(self._pending):
            return self._nothing_new()      # idle: a look at the shard's length, no GetRecords call
        room = max(1, min(MAX_GET_RECORDS, self.mapping.batch_size - len(self._pending)))
        records = self._get_records(room)
        if records and self._pending_since is None:
            self._pending_since = time.monotonic()
        self._pending += records
        full = len(self._pending) >= self.mapping.batch_size
        window_over = (self._pending_since is not None
                       and time.monotonic() - self._pending_since >= self.mapping.window_s)
        drained = self.flush_requested.is_set() and not records   # a flush: deliver once nothing more is read
        if self._pending and (full or window_over or drained):
            self._deliver_pending()
            return True
        if drained:
            self.flush_requested.clear()
        return bool(records)

    def _nothing_new(self) -> bool:
        """Nothing was written since the last read: deliver what is pending when its window is over or a
        flush asks; False (wait before the next look) unless a batch was delivered."""
        window_over = (self._pending_since is not None
                       and time.monotonic() - self._pending_since >= self.mapping.window_s)
        drained = self.flush_requested.is_set()
        if self._pending and (window_over or drained):
            self._deliver_pending()
            return True
        if drained:
            self.flush_requested.clear()
        return False

    def _deliver_pending(self) -> None:
        batch, self._pending, self._pending_since = self._pending, [], None
        self._deliver(batch)
        self.position = int(batch[-1]["dynamodb"]["SequenceNumber"]) + 1
        self.sources._trim(self.mapping.stream_arn)

    # -- delivery --------------------------------------------------------------------------------

    def _deliver(self, records: list[dict]) -> None:
        mapping = self.mapping
        region = self.sources.region
        wanted = [r for r in (lambda_record(r, region=region, stream_arn=mapping.stream_arn) for r in records)
                  if mapping.wants(r)]
        if wanted:
            self._deliver_batch(wanted, mapping.retries)

    def _deliver_batch(self, batch: list[dict], retries: int) -> None:
        attempt = 0
        while True:
            outcome = self.sources.invoke(self.mapping.function, {"Records": batch})
            failed_from = self._failed_from(batch, outcome)
            if failed_from is None:
                with self.sources._lock:
                    self.sources.delivered += len(batch)
                return
            if failed_from > 0:           # a partial batch response: the records before it are done
                with self.sources._lock:
                    self.sources.delivered += failed_from
                batch = batch[failed_from:]
            if self.mapping.bisect and len(batch) > 1:
                half = len(batch) // 2
                self._deliver_batch(batch[:half], retries - attempt - 1)
                self._deliver_batch(batch[half:], retries - attempt - 1)
                return
            attempt += 1
            if attempt > retries:
                self._to_failure_destination(batch, outcome, attempt)
                return
            time.sleep(RETRY_BACKOFF_S * attempt)

    def _failed_from(self, batch: list[dict], outcome) -> int | None:
        """None when the batch succeeded; else the index of the first record to retry."""
        if outcome.error is not None:
            return 0
        if self.mapping.partial and isinstance(outcome.payload, dict):
            failures = outcome.payload.get("batchItemFailures") or []
            ids = [f.get("itemIdentifier") for f in failures]
            sequence = [r["dynamodb"]["SequenceNumber"] for r in batch]
            indexes = [sequence.index(i) for i in ids if i in sequence]
            if indexes:
                return min(indexes)
        return None

    def _to_failure_destination(self, batch: list[dict], outcome, attempts: int) -> None:
        with self.sources._lock:
            self.sources.failed_batches += 1
        destination = self.mapping.on_failure
        LOG.warning("stream event source %s: a batch of %d records failed after %d attempts%s",
                    self.mapping.logical_id, len(batch), attempts,
                    f"; sent to {destination}" if destination else " and is dropped (no on-failure destination)")
        if not destination:
            return
        first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
        shard = self.sources.client("dynamodbstreams").describe_stream(
            StreamArn=self.mapping.stream_arn)["StreamDescription"]["Shards"][0]
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        error = outcome.error or {}
        failure = {
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": self.mapping.function,
                               "condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts},
            "responseContext": {"statusCode": getattr(outcome, "status_code", 200), "executedVersion": "$LATEST",
                                "functionError": getattr(outcome, "function_error", None) or "Unhandled"},
            "version": "1.0", "timestamp": now,
            "DDBStreamBatchInfo": {
                "shardId": shard["ShardId"], "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": _iso(first.get("ApproximateCreationDateTime")),
                "approximateArrivalOfLastRecord": _iso(last.get("ApproximateCreationDateTime")),
                "batchSize": len(batch), "streamArn": self.mapping.stream_arn},
            "errorType": error.get("errorType")}
        body = json.dumps(failure)
        if ":sqs:" in destination:
            sqs = self.sources.client("sqs")
            url = sqs.get_queue_url(QueueName=destination.rsplit(":", 1)[-1])["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=body)
        elif ":sns:" in destination:
            self.sources.client("sns").publish(TopicArn=destination, Message=body)


def _iso(epoch: Any) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(float(epoch), tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
