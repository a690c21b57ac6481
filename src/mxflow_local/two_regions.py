"""Two Regions in one process (issue 11, docs/regions.md): one `LocalRuntime` per Region on the same template
(each with `PeerRegion` naming the other), the payment table's replica in the second Region, replication
between the two replicas with a configurable lag, each Region's health function probing every
`probe_seconds`, one local API per Region, and the Region switch that kills one.

Replication, as DynamoDB global tables (MREC) do it: every write in a replica is read from its stream
(moto's DynamoDB Streams, NEW_IMAGE) and written, `lag_ms` later, to the other replica as it is (the
last arrival wins). A write the replicator made is not replicated back (it remembers what it wrote).
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

LOG = logging.getLogger("mxflow_local.two_regions")
DEFAULT_REGIONS = ("us-east-1", "us-west-2")
POLL_SECONDS = 0.02


def _fingerprint(keys: dict, image: dict | None) -> str:
    text = json.dumps([keys, image], sort_keys=True, default=lambda o: o.hex() if isinstance(o, bytes) else str(o))
    return hashlib.sha256(text.encode()).hexdigest()


class Replicator:
    """Both directions of the global table's replication, with a lag, on one thread."""

    def __init__(self, runtimes: dict, table_name: str, lag_ms: float):
        self.runtimes = runtimes
        self.table_name = table_name
        self.lag = lag_ms / 1000.0
        self._written: dict[str, set[str]] = {region: set() for region in runtimes}   # by the replicator
        self._due: list = []   # heap of (due time, seq, target Region, record)
        self._seq = itertools.count()
        self._iterators: dict[tuple[str, str], str | None] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.replicated = 0

    def start(self) -> "Replicator":
        for region in self.runtimes:
            self._open_shards(region, "TRIM_HORIZON")
        self._thread = threading.Thread(target=self._loop, name="mxflow-replicator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def pending(self) -> int:
        with self._lock:
            return len(self._due)

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
                self._read()
                self._apply()
            except Exception:  # noqa: BLE001 - replication keeps going (a failed round is read again)
                LOG.exception("replication round failed")

    def _read(self) -> None:
        now = time.monotonic()
        for region in self.runtimes:
            self._open_shards(region, "TRIM_HORIZON")   # a new shard (moto opens one per 1,000 records)
        for (region, shard), iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            streams = self.runtimes[region].client("dynamodbstreams")
            answer = streams.get_records(ShardIterator=iterator, Limit=1000)
            target = next(r for r in self.runtimes if r != region)
            for record in answer.get("Records", []):
                change = record["dynamodb"]
                print_ = _fingerprint(change["Keys"], change.get("NewImage"))
                with self._lock:
                    if print_ in self._written[region]:
                        self._written[region].discard(print_)   # the replicator's own write: not sent back
                        continue
                    heapq.heappush(self._due, (now + self.lag, next(self._seq), target, record))
            self._iterators[(region, shard)] = answer.get("NextShardIterator")   # read: move on

    def _apply(self) -> None:
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._due or self._due[0][0] > now:
                    return
                _, _, target, record = heapq.heappop(self._due)
                change = record["dynamodb"]
                self._written[target].add(_fingerprint(change["Keys"], change.get("NewImage")))
            dynamodb = self.runtimes[target].client("dynamodb")
            if record["eventName"] == "REMOVE":
                dynamodb.delete_item(TableName=self.table_name, Key=change["Keys"])
            else:
                dynamodb.put_item(TableName=self.table_name, Item=change["NewImage"])
            self.replicated += 1


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
        self.probes: dict[str, int] = {region: 0 for region in self.regions}

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
        next_at = time.monotonic()
        while True:
            next_at += self.probe_seconds
            if self._stop.wait(max(0.0, next_at - time.monotonic())):
                return
            self.probe(region)

    def probe(self, region: str):
        runtime = self.runtimes[region]
        if not runtime.available:
            return None   # a stopped Region probes nothing: its lease lapses
        self.probes[region] += 1
        return runtime.invoke("HealthFunction", {"source": "mxflow.local", "detail-type": "Scheduled Event"})

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
