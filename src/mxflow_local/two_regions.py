"""Two Regions in one process (issue 11, docs/regions.md): one `LocalRuntime` per Region on the same template
(each with `PeerRegion` naming the other), the payment table's replica in the second Region, replication
between the two replicas with a configurable lag, each Region's health function probing every
`probe_seconds`, one local API per Region, and the Region switch that kills one.

Replication, as DynamoDB global tables (MREC) do it: every write in a replica is read from its stream
(moto's DynamoDB Streams, NEW_IMAGE) and written, `lag_ms` later, to the other replica as it is, unless
that replica holds a later write of the item (last writer wins, by the time of the write in its Region:
`Replicator`). A write the replicator made is not replicated back (it remembers what it wrote).
A Region that is stopped takes no new requests and its functions fail, but what it committed before
still replicates within the lag (its replica and its stream are not lost with its compute).

    with TwoRegions("template.yaml", lag_ms=1000) as regions:
        regions.api("us-east-1").url; regions.stop("us-east-1"); regions.start("us-east-1")
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
import json
import logging
import threading
import time
from pathlib import Path
from typing import Callable

LOG = logging.getLogger("mxflow_local.two_regions")
DEFAULT_REGIONS = ("us-east-1", "us-west-2")
POLL_SECONDS = 0.02
APPLY_BATCH = 20   # images applied per hold of the DynamoDB lock
PROBES_IN_FLIGHT = 3   # a Region's probes running at once (the schedule does not wait for a slow one)
SHARD_CHECK_ROUNDS = 50   # rounds between two looks for a new stream shard


def _fingerprint(keys: dict, image: dict | None) -> str:
    text = json.dumps([keys, image], sort_keys=True, default=lambda o: o.hex() if isinstance(o, bytes) else str(o))
    return hashlib.sha256(text.encode()).hexdigest()


class Replicator:
    """Both directions of the global table's replication, with a lag, on one thread: last writer wins.

    As DynamoDB global tables (MREC) resolve it: every write carries its time in the Region that took it
    (the stream record's ApproximateCreationDateTime); an image is applied to the other replica only when
    it is newer than what that replica holds for the item (its own latest write, or the latest image
    applied there), else it is dropped (`superseded`). Equal times are decided by the Region (the first of
    the two, sorted, wins) and, within one Region, by the stream's order. So an image that arrives late
    never undoes a later write (a takeover, a decision), and both replicas end with the same item.

    Checking what a replica holds and writing the image are one step: a round (both streams read, the due
    images applied) runs under the process-wide lock of the local DynamoDB (mxflow_local.dynamodb.LOCK),
    so no write of a Region's functions falls between the check and the put."""

    def __init__(self, runtimes: dict, table_name: str, lag_ms: float):
        self.runtimes = runtimes
        self.table_name = table_name
        self.lag = lag_ms / 1000.0
        self._rank = {region: rank for rank, region in enumerate(sorted(runtimes, reverse=True))}
        self._written: dict[str, dict[str, tuple]] = {region: {} for region in runtimes}   # by the replicator
        self._held: dict[tuple[str, str], tuple] = {}   # (Region, item key) -> the write time of what it holds
        self._due: list = []   # heap of (due time, seq, read at, target Region, stamp, record)
        self._seq = itertools.count()
        self._iterators: dict[tuple[str, str], str | None] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last_read_at = 0.0   # when the last round began reading (time.time())
        self._rounds = 0
        self.replicated = 0
        self.superseded = 0

    def start_reading(self) -> "Replicator":
        """Open both streams from their start (rounds are then run by `round`, or by `start`'s thread)."""
        for region in self.runtimes:
            self._open_shards(region, "TRIM_HORIZON")
        return self

    def start(self) -> "Replicator":
        self.start_reading()
        self._thread = threading.Thread(target=self._loop, name="mxflow-replicator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def pending(self, written_before: float | None = None) -> int:
        """Images not applied (nor dropped) yet; with `written_before` (time.time()), only those of writes
        made before it (by their own write time: one read after the mark counts too), plus one while no
        round has read the streams since."""
        with self._lock:
            if written_before is None:
                return len(self._due)
            unread = 1 if self._last_read_at <= written_before else 0
            return unread + sum(1 for entry in self._due if entry[4][0] <= written_before)

    def _stream_arn(self, region: str) -> str:
        return self.runtimes[region].client("dynamodb").describe_table(TableName=self.table_name)["Table"]["LatestStreamArn"]

    def _open_shards(self, region: str, iterator_type: str) -> None:
        streams = self.runtimes[region].client("dynamodbstreams")
        arn = self._stream_arn(region)
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            key = (region, shard["ShardId"])
            if key not in self._iterators:
                self._iterators[key] = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                                                  ShardIteratorType=iterator_type)["ShardIterator"]

    def _loop(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.round()
            except Exception:  # noqa: BLE001 - replication keeps going (a failed round is read again)
                LOG.exception("replication round failed")

    def round(self) -> None:
        """Read both streams, then apply what is due: each batch (bounded, so the Regions' own writes wait at
        most one batch) under the lock, after reading the streams again there (a write of the target's own
        made since the last read is known before an older image could be put over it)."""
        from mxflow_local.dynamodb import LOCK

        self._rounds += 1
        if self._rounds % SHARD_CHECK_ROUNDS == 0:
            for region in self.runtimes:
                self._open_shards(region, "TRIM_HORIZON")   # a shard opened since (none in moto 5.2, kept for AWS)
        self._read()
        while self._is_due():
            with LOCK:
                self._read()
                if not self._apply(APPLY_BATCH):
                    return

    def _is_due(self) -> bool:
        with self._lock:
            return bool(self._due) and self._due[0][0] <= time.monotonic()

    def _stamp(self, region: str, record: dict) -> tuple:
        """A write's place in last-writer-wins: its time, then the Region, then its order in the stream."""
        change = record["dynamodb"]
        written = change.get("ApproximateCreationDateTime")
        seconds = written.timestamp() if hasattr(written, "timestamp") else float(written or 0)
        return (seconds, self._rank[region], int(change.get("SequenceNumber", 0)))

    def _read(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._last_read_at = time.time()
        for (region, shard), iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            streams = self.runtimes[region].client("dynamodbstreams")
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            target = next(r for r in self.runtimes if r != region)
            for record in answer.get("Records", []):
                change = record["dynamodb"]
                key = _fingerprint(change["Keys"], None)
                print_ = _fingerprint(change["Keys"], change.get("NewImage"))
                with self._lock:
                    if self._written[region].pop(print_, None) is not None:
                        continue   # the replicator's own write: held already, not sent back
                    stamp = self._stamp(region, record)
                    # A write of the Region's own: the replica holds it now (a local write is always taken, and
                    # it is later than any image applied there before it: one clock, an image's time is older).
                    self._held[(region, key)] = max(stamp, self._held.get((region, key), stamp))
                    heapq.heappush(self._due, (now + self.lag, next(self._seq), now, target, stamp, record))
            self._iterators[(region, shard)] = answer.get("NextShardIterator")   # read: move on

    def _apply(self, limit: int) -> int:
        """Apply up to `limit` due images (newer than what the target holds; older ones dropped); returns
        how many were taken off the queue (0: nothing was due)."""
        now = time.monotonic()
        done = 0
        while done < limit:
            with self._lock:
                if not self._due or self._due[0][0] > now:
                    return done
                _, _, _, target, stamp, record = heapq.heappop(self._due)
                done += 1
                change = record["dynamodb"]
                key = _fingerprint(change["Keys"], None)
                held = self._held.get((target, key))
                if held is not None and held >= stamp:
                    self.superseded += 1   # the target holds a later write of this item: last writer wins
                    continue
                self._held[(target, key)] = stamp
                self._written[target][_fingerprint(change["Keys"], change.get("NewImage"))] = stamp
            dynamodb = self.runtimes[target].client("dynamodb")
            if record["eventName"] == "REMOVE":
                dynamodb.delete_item(TableName=self.table_name, Key=change["Keys"])
            else:
                dynamodb.put_item(TableName=self.table_name, Item=change["NewImage"])
            self.replicated += 1
        return done

    def differing(self, skip: Callable[[dict], bool] = lambda keys: False) -> list[dict]:
        """The keys of the items the two replicas hold differently (one has it, the other not, or not the
        same attributes), read in one step (under the DynamoDB lock); `skip(keys)` leaves an item out."""
        from mxflow_local.dynamodb import LOCK

        images: list[dict[str, dict]] = []
        with LOCK:
            for runtime in self.runtimes.values():
                items: dict[str, dict] = {}
                paginator = runtime.client("dynamodb").get_paginator("scan")
                for page in paginator.paginate(TableName=self.table_name, ConsistentRead=True):
                    for item in page.get("Items", []):
                        keys = {"pk": item["pk"], "sk": item["sk"]}
                        if not skip(keys):
                            items[_fingerprint(keys, None)] = item
                images.append(items)
        first, second = images
        return [{name: value["S"] for name, value in (first.get(k) or second.get(k)).items() if name in ("pk", "sk")}
                for k in sorted(set(first) | set(second))
                if _fingerprint({}, first.get(k)) != _fingerprint({}, second.get(k))]


class TwoRegions:
    """Two LocalRuntimes (the first Region primary), the table replica, replication, probes, one API each."""

    def __init__(self, template_path: str | Path, *, regions=DEFAULT_REGIONS, lag_ms: float = 0.0,
                 probe_seconds: float = 1.0, parameter_overrides: dict | None = None, env_overrides: dict | None = None,
                 settle_seconds: float | None = None, ports: tuple[int, int] = (0, 0)):
        from mxflow_local.runtime import LocalRuntime

        self.regions = tuple(regions)
        if len(self.regions) != 2 or self.regions[0] == self.regions[1]:
            raise ValueError(f"two different Regions are needed, not {', '.join(self.regions)}")
        self.primary, self.secondary = self.regions
        self.lag_ms = lag_ms
        self.probe_seconds = probe_seconds
        # What a takeover waits for the failed Region's last writes: the lag and a margin of two probe intervals.
        self.settle_seconds = settle_seconds if settle_seconds is not None else round(lag_ms / 1000 + 2 * probe_seconds, 1)
        env = {"HEALTH_PROBE_SECONDS": str(probe_seconds), "REPLICATION_SETTLE_SECONDS": str(self.settle_seconds),
               **(env_overrides or {})}
        self.runtimes = {}
        for region in self.regions:
            peer = self.secondary if region == self.primary else self.primary
            params = {**(parameter_overrides or {}), "PrimaryRegion": self.primary, "PeerRegion": peer,
                      "ArchiveReplication": "false"}   # the steps read the peer's archive when a message is missing
            self.runtimes[region] = LocalRuntime(template_path, parameter_overrides=params, region=region,
                                                 env_overrides=env, scheduler=False)
            # the replicator reads the table's stream too: the journal's poller must not trim it
            self.runtimes[region].trim_streams = False
        self.ports = ports
        self.apis: dict = {}
        self.replicator: Replicator | None = None
        self._stop = threading.Event()
        self._probers: list[threading.Thread] = []
        self._probe_runs: dict[str, list[threading.Thread]] = {region: [] for region in self.regions}   # they overlap
        self.probes: dict[str, int] = {region: 0 for region in self.regions}
        self.probe_ends: dict[str, list[float]] = {region: [] for region in self.regions}   # renewals, monotonic
        self.slowest_probe: dict[str, dict] = {}   # by Region: the longest probe's seconds and dependencies (ms)

    # -- life cycle ------------------------------------------------------------------------------------
    def start(self) -> "TwoRegions":
        from mxflow_local.auth import LocalTokenIssuer, cognito_issuer
        from mxflow_local.http_api import LocalApi

        try:
            for runtime in self.runtimes.values():
                runtime.start()
            self._create_replica()
            self.replicator = Replicator(self.runtimes, self.table_name, self.lag_ms).start()
            issuer = LocalTokenIssuer.generate(cognito_issuer(self.primary, f"{self.primary}_mxflowLocal"))
            for region, port in zip(self.regions, self.ports):
                self.apis[region] = LocalApi(self.runtimes[region], port=port, region=region, issuer=issuer).serve()
            # Each Region probes on its own schedule (a slow probe of one never delays the other's).
            self._probers = [threading.Thread(target=self._probe_loop, args=(region,), name=f"mxflow-probe-{region}",
                                              daemon=True) for region in self.regions]
            for prober in self._probers:
                prober.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self._stop.set()
        for prober in self._probers:
            prober.join(timeout=10)
        for run in [run for runs in self._probe_runs.values() for run in runs]:
            run.join(timeout=10)
        for api in self.apis.values():
            api.close()
        if self.replicator is not None:
            self.replicator.stop()
        for runtime in self.runtimes.values():
            runtime.stop()

    def __enter__(self) -> "TwoRegions":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def table_name(self) -> str:
        return self.runtimes[self.primary].physical("PaymentTable")

    def _create_replica(self) -> None:
        """The secondary's replica, as the primary's stack creates it in AWS (the same keys and indexes)."""
        source = self.runtimes[self.primary].client("dynamodb").describe_table(TableName=self.table_name)["Table"]
        indexes = [{"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
                   for i in source.get("GlobalSecondaryIndexes", [])]
        self.runtimes[self.secondary].client("dynamodb").create_table(
            TableName=self.table_name, KeySchema=source["KeySchema"], AttributeDefinitions=source["AttributeDefinitions"],
            GlobalSecondaryIndexes=indexes, BillingMode="PAY_PER_REQUEST",
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})

    # -- health probes (the health function's schedule, every probe_seconds) --------------------------------
    def _probe_loop(self, region: str) -> None:
        """The health function's schedule, as EventBridge runs it: an invocation every `probe_seconds`,
        whether the last one has ended or not (a probe slowed by the load does not delay the next one's
        lease renewal; their records never go back: RegionStore.put_region_state), at most
        PROBES_IN_FLIGHT at once per Region (a tick beyond that is skipped, as a throttled one); a tick
        missed by more than an interval is not made up."""
        in_flight = threading.BoundedSemaphore(PROBES_IN_FLIGHT)
        next_at = time.monotonic()
        while True:
            next_at = max(next_at + self.probe_seconds, time.monotonic() - self.probe_seconds)
            if self._stop.wait(max(0.0, next_at - time.monotonic())):
                return
            if not in_flight.acquire(blocking=False):
                continue

            def probe_once() -> None:
                try:
                    self.probe(region)
                finally:
                    in_flight.release()

            prober = threading.Thread(target=probe_once, name=f"mxflow-probe-{region}-run", daemon=True)
            runs = self._probe_runs[region] = [run for run in self._probe_runs[region] if run.is_alive()]
            runs.append(prober)
            prober.start()

    def probe(self, region: str):
        runtime = self.runtimes[region]
        if not runtime.available:
            return None   # a stopped Region probes nothing: its lease lapses
        self.probes[region] += 1
        began = time.monotonic()
        result = None
        try:
            result = runtime.invoke("HealthFunction", {"source": "mxflow.local", "detail-type": "Scheduled Event"})
            return result
        finally:
            ended = time.monotonic()
            outcome = (result.payload if result is not None else None) or {}
            written = (outcome.get("record") or {}) if not outcome.get("superseded") else {}
            if written.get("leaseRenewedAt") and written.get("leaseRenewedAt") == written.get("lastProbeAt"):
                self.probe_ends[region].append(ended)   # a renewal (an overtaken probe renews nothing)
            if ended - began > self.slowest_probe.get(region, {}).get("seconds", 0.0):
                record = outcome.get("record") or {}
                self.slowest_probe[region] = {"seconds": round(ended - began, 2), "dependencies": {
                    name: round(float(d.get("ms", 0))) for name, d in (record.get("dependencies") or {}).items()}}

    def probe_gap(self, region: str, since: float = 0.0, until: float = float("inf")) -> float | None:
        """The longest time between two consecutive lease renewals of `region` (the ends of the probes that
        renewed it) within [since, until]; None with fewer than two."""
        ends = [t for t in self.probe_ends[region] if since <= t <= until]
        return max((b - a for a, b in zip(ends, ends[1:])), default=None)

    # -- the Region switch -------------------------------------------------------------------------------
    def stop(self, region: str) -> None:
        self.runtimes[region].stop_region()

    def start_region(self, region: str) -> None:
        self.runtimes[region].start_region()

    def api(self, region: str):
        return self.apis[region]

    def peer_of(self, region: str) -> str:
        return self.secondary if region == self.primary else self.primary

    # -- reading a Region's replica (the drill's bookkeeping; what GET /regions shows) ---------------------
    def routing(self, region: str) -> dict:
        from mxflow.aws.dynamodb import _from_item

        item = self.runtimes[region].client("dynamodb").get_item(
            TableName=self.table_name, Key={"pk": {"S": "routing"}, "sk": {"S": "ROUTING"}}, ConsistentRead=True).get("Item")
        return _from_item(item) if item else {}

    def payment(self, region: str, payment_id: str) -> dict | None:
        from mxflow.aws.dynamodb import _from_item

        item = self.runtimes[region].client("dynamodb").get_item(
            TableName=self.table_name, Key={"pk": {"S": payment_id}, "sk": {"S": "PAYMENT"}}, ConsistentRead=True).get("Item")
        return _from_item(item) if item else None

    def released_messages(self) -> dict[str, int]:
        """Messages on both Regions' release queues together, by payment id (moto's backends: nothing is
        consumed in the drill, so every message ever accepted by either queue is there)."""
        from moto.sqs.models import sqs_backends

        counts: dict[str, int] = {}
        for region, runtime in self.runtimes.items():
            url = runtime.physical("ReleaseQueue")
            queue = sqs_backends[runtime.account_id][region].get_queue(url.rsplit("/", 1)[-1])
            for message in list(queue._messages):
                payment_id = json.loads(message.body)["paymentId"]
                counts[payment_id] = counts.get(payment_id, 0) + 1
        return counts
