"""Two Regions (docs/regions.md): the health decisions, the Region lease, the routing item and its epoch,
the takeover of a failed Region's in-flight payments and their resumption by stage, the reconciliation
of a returning Region's own unreplicated payments, and what the Recovering API shows and does.

Pure domain, like mxflow.lifecycle: it talks to the world through ports (mxflow.ports: RegionStore,
HealthProbes, RecoveryWorkflow, PaymentStore) and raises mxflow.errors; mxflow.service wires it to AWS.

The pieces, each a few lines of policy (docs/regions.md says why each is so):
- `assess`: one probe of the Region's dependencies -> its health record. N consecutive failures make it
  unhealthy, M consecutive successes bring it back (no flapping), a dependency that answers slowly makes
  it degraded, not dead. A good probe renews the Region's **lease** (N + 1/2 probe intervals): the time until
  which the Region may act on the payments it owns. A Region whose lease lapsed renews it only once it
  is healthy again and has caught up with its peer (`rejoin_ready`).
- `RegionGate`: what every workflow step and the API ask first -- may this Region act (its lease)? which
  epoch do new payments get? may the owner Region of a payment be written to (its lease)?
- `RegionService`: the health function's probe (its own record, the peer's failover when the peer's
  lease has lapsed, its own rejoin), the recovery workflow's steps (claim the traffic, take over the
  failed Region's payments one shard page at a time, finish), GET /regions and POST /regions/{r}/recover.
- `resume_stage`: the documented policy: received or validated -> validated again and parked; waiting
  -> a new callback in the new Region; approved -> released under the release claim (never twice).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Iterable, Mapping

from mxflow.clock import format_utc, parse_utc, seconds_between, utc_now
from mxflow.errors import (
    PaymentNotFound,
    RegionConflict,
    RegionUnavailable,
    ServiceError,
    StatusConflict,
    UnknownRegion,
)
from mxflow.ports import IN_FLIGHT_STATUSES, Clock, Fence
from mxflow.settings import Settings

MODES = ("active-passive", "active-active")
CONSISTENCIES = ("EVENTUAL", "STRONG")
DEPENDENCIES = ("stateMachine", "table", "queue", "archive")
STATUSES = ("healthy", "degraded", "unhealthy", "unknown")
SHARDS = [f"{shard:02d}" for shard in range(16)]   # the InFlight index's shards (mxflow.aws.dynamodb)
TAKEOVER_PAGE = 25          # payments taken over per recovery task invocation
GATE_MARGIN_SECONDS = 1.0   # a Region stops acting this long before its lease ends (check-to-write time)
RECOVERY_ACTOR = "recovery"


@dataclass(frozen=True)
class DependencyResult:
    """One dependency's part of a probe: did it do its work, how long it took, why not (an error code,
    never data)."""

    name: str
    ok: bool
    ms: float
    error: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in (("ok", self.ok), ("ms", round(self.ms, 1)), ("error", self.error)) if v is not None}


def _later(now: str, seconds: float) -> str:
    return format_utc(parse_utc(now) + timedelta(seconds=seconds))


def _number(value) -> float | None:
    """A number as the table gives it back (a Decimal) as JSON's number."""
    return None if value is None else float(value)


def lease_seconds(settings: Settings) -> float:
    """How long a good probe renews the lease: N probe intervals and half of one more. The Nth failed probe
    after the last good one then comes before the lease ends (N failures make a Region unhealthy, not N-1
    and a lapse), and a good probe after N-1 failures still finds its lease and renews it."""
    return (settings.health_failures + 0.5) * settings.health_probe_seconds


def lease_valid(record: Mapping[str, Any] | None, now: str, margin: float = 0.0) -> bool:
    """Does the Region of this health record hold its lease at `now` (`margin` seconds to spare)?"""
    lease = (record or {}).get("leaseUntil")
    return bool(lease) and seconds_between(now, lease) > margin


def assess(previous: Mapping[str, Any] | None, results: Iterable[DependencyResult], settings: Settings,
           now: str, *, rejoin_ready: Callable[[], bool] | None = None) -> dict:
    """The Region's health record after one probe (docs/regions.md, "Health").

    - every dependency ok: a success; any failing: a failure. N (`health_failures`) consecutive failures:
      unhealthy. An unhealthy Region needs M (`health_recoveries`) consecutive successes to count again.
      A Region whose lease lapsed since its last record (it could not even probe) is unhealthy too, and
      counts its successes from this probe.
    - ok but slower than `health_slow_ms`: degraded (still serving, lease renewed).
    - the lease (`lease_seconds`: N + 1/2 probe intervals) is renewed by a success of a Region that counts (healthy or
      degraded) and either still holds it, or is new, or -- back after a lapse -- `rejoin_ready()` says it
      has caught up with its peer (checked only then: it reads the peer's replica).
    """
    results = list(results)
    prev = dict(previous or {})
    ok = bool(results) and all(r.ok for r in results)
    slow = [r.name for r in results if r.ok and r.ms > settings.health_slow_ms]
    failing = [r for r in results if not r.ok]
    lapsed = bool(prev) and not lease_valid(prev, now)
    status_before = prev.get("status") or "unknown"
    # The lapse counts once: a record written after the lease had ended already knew of it (the Region is
    # back and counting good probes, or healthy and waiting to catch up).
    lapse_seen = bool(prev.get("leaseUntil")) and seconds_between(prev["leaseUntil"], prev.get("lastProbeAt") or now) > 0
    if lapsed and not lapse_seen and status_before != "unhealthy":
        status_before, prev["consecutiveSuccesses"] = "unhealthy", 0
    failures = 0 if ok else int(prev.get("consecutiveFailures", 0)) + 1
    successes = int(prev.get("consecutiveSuccesses", 0)) + 1 if ok else 0
    if not ok:
        status = "unhealthy" if failures >= settings.health_failures or status_before == "unhealthy" else "degraded"
    elif status_before == "unhealthy" and successes < settings.health_recoveries:
        status = "unhealthy"
    else:
        status = "degraded" if slow else "healthy"
    record = {
        "status": status, "lastProbeAt": now,
        "lastProbeLatencyMs": round(max((r.ms for r in results), default=0.0), 1),
        "consecutiveFailures": failures, "consecutiveSuccesses": successes,
        "dependencies": {r.name: r.to_dict() for r in results},
        "leaseUntil": prev.get("leaseUntil"), "leaseRenewedAt": prev.get("leaseRenewedAt"),
    }
    if failing:
        record["lastError"] = "; ".join(f"{r.name}: {r.error or 'failed'}" for r in failing)
    elif slow:
        record["lastError"] = "slow: " + ", ".join(f"{name} over {settings.health_slow_ms} ms" for name in slow)
    elif lapsed:
        record["lastError"] = f"lease lapsed at {prev.get('leaseUntil')}; back, counting good probes"
    renew = ok and status in ("healthy", "degraded") and (
        not prev or not settings.two_regions or lease_valid(prev, now)
        or (rejoin_ready is not None and rejoin_ready()))
    if renew:
        record["leaseUntil"] = _later(now, lease_seconds(settings))
        record["leaseRenewedAt"] = now
    elif ok and status != "unhealthy":
        record["lastError"] = "waiting to catch up with the peer Region before acting again"
    return {k: v for k, v in record.items() if v is not None}


def shown_status(record: Mapping[str, Any] | None, now: str, settings: Settings) -> str:
    """A Region's status as others see it: its record's, but unhealthy once its lease has lapsed by more
    than a probe interval (it stopped probing: a dead Region writes nothing), unknown without a record."""
    if not record:
        return "unknown"
    lease = record.get("leaseUntil")
    if record.get("status") != "unhealthy" and (not lease or seconds_between(lease, now) > settings.health_probe_seconds):
        return "unhealthy"
    return record.get("status", "unknown")


def resume_stage(record: Mapping[str, Any]) -> dict | None:
    """Where a taken-over (or reconciled) payment resumes in its new Region, as the anchor's `resume`
    (statemachines/payment.asl.json; docs/regions.md, "Resume policy"):
    - RCVD, ACTC: validate (again: XSD, rules, facts), then it parks with the new anchor's token;
    - PDNG: None -- the new anchor's wait parks it with a new token (a new callback in this Region);
    - ACSP: send, under the release claim (docs/flow.md): a claim armed by the other Region with no
      definitive failure recorded is settled as released by that Region, never sent again; settle when
      a send is recorded.
    """
    status = record["status"]
    if status in ("RCVD", "ACTC"):
        return {"stage": "validate", "carried": {}}
    if status == "PDNG":
        return None
    if status == "ACSP":
        return {"stage": "settle" if (record.get("release") or {}).get("sentAt") else "send", "carried": {}}
    raise ValueError(f"status {status} is not in flight")


def recovery_run_name(kind: str, region: str, claim: Mapping[str, Any]) -> str:
    """The name of a recovery run (`takeover` of the failed `region`, or its own `reconcile`): the epoch and
    the time of the traffic claim it serves (`claim`: the routing item's `failedOver[region]` record). An
    epoch alone may come twice under MREC -- two Regions claiming at once each write epoch + 1 in their
    own replica, and the later write wins in both, so the epoch can go back -- and a run started under a
    name already used is taken for the one that exists (ExecutionAlreadyExists): that takeover would be
    skipped. The claim's time makes each claim's name its own; started twice for one claim, it runs once."""
    stamp = "".join(ch for ch in str(claim.get("at") or "") if ch.isdigit())
    return f"{kind}-{region}-e{int(claim['epoch'])}" + (f"-{stamp}" if stamp else "")


def anchor_name(payment_id: str, epoch: int) -> str:
    """The name of the anchor a takeover starts: the payment id and the epoch, so that it never meets
    an earlier anchor of the same payment (execution names are unique per state machine for 90 days)."""
    return f"{payment_id}-e{epoch}"


class RegionGate:
    """May this Region act, and at which epoch? Asked by every workflow step (via the lifecycle's fence)
    and by the API. One Region (no peer): always, at epoch 1, reading nothing. Two Regions: the Region's
    lease and the routing epoch, read from its own replica and kept for at most `cache_seconds` (a kept
    lease end is never later than the real one: leases only grow, so the check stays on the safe side)."""

    def __init__(self, store, settings: Settings, clock: Clock = utc_now, cache_seconds: float | None = None):
        self.store = store
        self.settings = settings
        self.clock = clock
        self.cache_seconds = (min(5.0, settings.health_probe_seconds / 2) if cache_seconds is None
                              else cache_seconds)
        self._cached: dict[str, tuple[str, Any]] = {}

    @property
    def enabled(self) -> bool:
        return self.settings.two_regions

    def _read(self, key: str, load: Callable[[], Any]) -> Any:
        now = self.clock()
        kept = self._cached.get(key)
        if kept and seconds_between(kept[0], now) < self.cache_seconds:
            return kept[1]
        value = load()
        self._cached[key] = (now, value)
        return value

    def forget(self) -> None:
        self._cached.clear()

    def region_state(self, region: str) -> dict | None:
        return self._read(f"region:{region}", lambda: self.store.region_state(region))

    def routing(self) -> dict | None:
        return self._read("routing", self.store.routing)

    def check(self) -> str | None:
        """RegionUnavailable unless this Region holds its lease (with a margin for the time between this
        check and the write it guards); else the time after which no write may be sent (the lease end less
        the margin: a Fence's `until`), None with one Region."""
        if not self.enabled:
            return None
        state = self.region_state(self.settings.region)
        if not lease_valid(state, self.clock(), GATE_MARGIN_SECONDS):
            self.forget()   # the next check reads again: a renewal shows at once
            raise RegionUnavailable(f"Region {self.settings.region} does not hold its lease (failed over, or "
                                    "back and not caught up yet); it does not act on payments now")
        return format_utc(parse_utc(state["leaseUntil"]) - timedelta(seconds=GATE_MARGIN_SECONDS))

    def epoch(self) -> int:
        """The routing epoch new payments are created with (1 with one Region, or before any routing)."""
        if not self.enabled:
            return 1
        return int((self.routing() or {}).get("epoch", 1))

    def owner_reachable(self, region: str) -> None:
        """RegionUnavailable when a payment's owner Region (another one) does not hold its lease: a
        decision would be written where it cannot count; the takeover comes first."""
        if region == self.settings.region or not self.enabled:
            return
        if not lease_valid(self.region_state(region), self.clock(), GATE_MARGIN_SECONDS):
            self.forget()
            raise RegionUnavailable(f"the payment is owned by Region {region}, which is failing over; "
                                    "retry shortly (it is taken over within the recovery time)")


class RegionService:
    """The health function's, the recovery workflow's and the Recovering API's work (docs/regions.md)."""

    def __init__(self, *, settings: Settings, regions, payments, probes, recovery, peer_regions=None,
                 peer_recovery=None, clock: Clock = utc_now):
        self.settings = settings
        self.regions = regions               # RegionStore on this Region's replica
        self.payments = payments             # PaymentStore on this Region's replica
        self.probes = probes                 # HealthProbes of this Region
        self.recovery = recovery             # RecoveryWorkflow of this Region
        self.peer_regions = peer_regions     # RegionStore on the peer's replica (cross-Region), or None
        self.peer_recovery = peer_recovery   # RecoveryWorkflow of the peer Region, or None
        self.clock = clock

    @property
    def here(self) -> str:
        return self.settings.region

    @property
    def peer(self) -> str | None:
        return self.settings.peer_region if self.settings.two_regions else None

    def known_regions(self) -> list[str]:
        regions = [self.settings.primary_region or self.here]
        for region in (self.here, self.peer):
            if region and region not in regions:
                regions.append(region)
        return regions

    def _initial_routing(self) -> dict:
        return {"trafficOwner": self.settings.primary_region or self.here, "epoch": 1,
                "mode": self.settings.region_mode, "consistency": self.settings.table_consistency,
                "since": self.clock()}

    def routing(self) -> dict:
        return self.regions.routing() or self._initial_routing()

    # -- the health function ------------------------------------------------------------------------

    def probe(self) -> dict:
        """One probe of this Region (HealthFunction, on its schedule): the record written, then the
        peer's failover if its lease lapsed, then this Region's own reconciliation when it just came
        back. Returns {"record", "failover"?, "reconcile"?, "servesTraffic"}."""
        results = self.probes.probe()
        now = self.clock()
        try:
            previous = self.regions.region_state(self.here)
        except ServiceError:
            previous = None   # the table is what fails: the record cannot be written either
        record = assess(previous, results, self.settings, now, rejoin_ready=self._rejoin_ready)
        outcome: dict[str, Any] = {"region": self.here, "record": record}
        try:
            written = self.regions.put_region_state(self.here, record)
        except ServiceError as error:
            # The lease is not renewed: after N intervals the peer takes this Region's payments over.
            outcome["recordError"] = error.detail
            outcome["servesTraffic"] = False
            return outcome
        routing = self.regions.routing()
        if routing is None and self.here == (self.settings.primary_region or self.here):
            routing = self.regions.init_routing(self._initial_routing())
        routing = routing or self._initial_routing()
        # Not written: a later probe (the schedule's next one, overlapping this slow one) wrote first, and
        # decides; this one renews nothing and acts on nothing.
        outcome["superseded"] = not written
        renewed = written and record.get("leaseRenewedAt") == now
        if renewed and previous and not lease_valid(previous, now) and self.settings.two_regions:
            outcome["reconcile"] = self._start_reconcile(routing, now)
        if renewed and self.peer:
            outcome["failover"] = self._fail_over_if_due(routing, now)
            routing = self.regions.routing() or routing
        outcome["servesTraffic"] = self.serves_traffic(record, routing, now)
        return outcome

    def serves_traffic(self, record: Mapping[str, Any], routing: Mapping[str, Any], now: str) -> bool:
        """What the Route 53 health check of this Region reads (its alarm on ServesTraffic): active-passive,
        the traffic owner while it holds its lease; active-active, any Region holding its lease."""
        if not lease_valid(record, now) or record.get("status") == "unhealthy":
            return False
        if self.settings.region_mode == "active-active" or not self.settings.two_regions:
            return True
        return routing.get("trafficOwner") == self.here

    def _rejoin_ready(self) -> bool:
        """A Region back after its lease lapsed acts again only once its replica has what the peer did
        meanwhile: the same routing epoch as the peer's replica, and any takeover of this Region finished
        at least the settle interval ago (its writes replicated). Without a readable peer: not ready."""
        if not self.peer or self.peer_regions is None:
            return True
        try:
            theirs = self.peer_regions.routing() or {}
        except ServiceError:
            return False
        mine = self.regions.routing() or {}
        if int(mine.get("epoch", 1)) < int(theirs.get("epoch", 1)):
            return False
        failed_over = (mine.get("failedOver") or {}).get(self.here)
        if failed_over and failed_over.get("epoch") == mine.get("epoch"):
            completed = failed_over.get("completedAt")
            if not completed or seconds_between(completed, self.clock()) < self.settings.replication_settle_seconds:
                return False
        return True

    def _fail_over_if_due(self, routing: Mapping[str, Any], now: str) -> dict | None:
        """The peer's lease lapsed (N missed or failed probes) and it was not failed over for this lapse
        yet: claim the traffic (conditional on the routing epoch) and start the recovery workflow here."""
        peer_state = self.regions.region_state(self.peer)
        if not peer_state or not peer_state.get("leaseUntil") or lease_valid(peer_state, now):
            return None
        done = (routing.get("failedOver") or {}).get(self.peer)
        if done and done.get("leaseUntil") == peer_state["leaseUntil"]:
            return None   # this lapse was failed over already
        if self._peer_holds_lease_at_home(now):
            return {"claimed": False, "reason": f"{self.peer}'s lease lapsed only in this replica (replication "
                                                "is behind): it still acts, so nothing is taken over"}
        return self._fail_over(self.peer, routing, peer_state, now)

    def _peer_holds_lease_at_home(self, now: str) -> bool:
        """Does the peer's own replica show it still holding its lease? The lease seen here is the peer's
        record as replicated, so it ends no later than the real one: a replication delay longer than the
        lease's slack makes a live peer look lapsed, and a takeover then would act on payments the peer is
        still sending (released twice). The peer's gate reads its own replica, so only a lapse there means
        it stopped acting. Unreadable (the Region is gone or cut off): the lapse seen here decides."""
        if self.peer_regions is None:
            return False
        try:
            at_home = self.peer_regions.region_state(self.peer)
        except ServiceError:
            return False
        return lease_valid(at_home, now)

    def _fail_over(self, failed: str, routing: Mapping[str, Any], failed_state: Mapping[str, Any] | None,
                   now: str) -> dict:
        epoch = int(routing.get("epoch", 1))
        try:
            claimed = self.regions.claim_traffic(
                to_region=self.here, expected_epoch=epoch, at=now, seen_epoch=self._epoch_at(failed),
                failed_over={"region": failed, "leaseUntil": (failed_state or {}).get("leaseUntil")})
        except RegionConflict:
            return {"claimed": False, "reason": "the routing epoch moved meanwhile"}
        execution = self.recovery.start_recovery(
            recovery_run_name("takeover", failed, claimed["failedOver"][failed]),
            {"from": failed, "to": self.here, "epoch": claimed["epoch"], "reconcile": False,
             "settleSeconds": int(round(self.settings.replication_settle_seconds)), "shards": SHARDS})
        return {"claimed": True, "epoch": claimed["epoch"], "from": failed, "executionArn": execution}

    def _epoch_at(self, region: str) -> int:
        """The routing epoch in `region`'s own replica (0 when it cannot be read). The failed Region stamps
        its payments with the epoch its replica shows; with MREC that may be later than the one here (a
        claim of its own not replicated yet), and a takeover at an epoch not above a payment's skips it:
        the claim goes above both."""
        if self.peer_regions is None or region != self.peer:
            return 0
        try:
            return int((self.peer_regions.routing() or {}).get("epoch", 0))
        except ServiceError:
            return 0

    def _start_reconcile(self, routing: Mapping[str, Any], now: str) -> dict | None:
        """Back after a lapse, caught up, and failed over meanwhile: re-adopt this Region's own payments
        that the takeover did not see (accepted here, not replicated before the lapse) -- those still
        owned here at an epoch before the takeover's. Payments accepted after the return carry a later
        epoch. Started once per takeover (the run's name)."""
        done = (routing.get("failedOver") or {}).get(self.here)
        if not done:
            return None
        epoch = int(done["epoch"])
        execution = self.recovery.start_recovery(
            recovery_run_name("reconcile", self.here, done),
            {"from": self.here, "to": self.here, "epoch": epoch, "reconcile": True,
             "settleSeconds": 0, "shards": SHARDS})
        return {"epoch": epoch, "executionArn": execution}

    # -- the recovery workflow's steps ------------------------------------------------------------------

    def take_over_page(self, *, from_region: str, to_region: str, epoch: int, shard: str,
                       cursor: Any = None, reconcile: bool = False) -> dict:
        """One page of the failed Region's in-flight payments (InFlight shard `shard`): each one still
        owned by it at an older epoch is taken over (one conditional write on its owner Region and epoch,
        status and version) and resumed by `resume_stage` in a new anchor here. Returns {"cursor",
        "takenOver", "skipped"}: the state machine asks again while the cursor is not null."""
        if to_region != self.here:
            raise RegionConflict(f"the recovery of {to_region} runs in {to_region}, not {self.here}")
        ids, next_cursor = self.payments.in_flight_page(from_region, shard, cursor=cursor, limit=TAKEOVER_PAGE)
        taken = skipped = 0
        for payment_id in ids:
            if self.take_over_payment(payment_id, from_region=from_region, epoch=epoch, reconcile=reconcile):
                taken += 1
            else:
                skipped += 1
        return {"cursor": next_cursor, "takenOver": taken, "skipped": skipped}

    def take_over_payment(self, payment_id: str, *, from_region: str, epoch: int, reconcile: bool = False) -> bool:
        """Take one payment over into this Region at `epoch` and start its new anchor. False when there is
        nothing to do: not in flight, not owned by `from_region`, or already at `epoch` (another recovery
        run took it: of two conditional writes on one owner and epoch exactly one wins)."""
        for _ in range(3):
            try:
                record = self.payments.get(payment_id)
            except PaymentNotFound:
                return False
            if (record["status"] not in IN_FLIGHT_STATUSES or record.get("ownerRegion") != from_region
                    or int(record.get("epoch", 1)) >= epoch):
                return False
            resume = resume_stage(record)
            name = anchor_name(payment_id, epoch)
            note = (f"reconciled in {self.here} after its failover (not replicated before it)" if reconcile
                    else f"taken over from {from_region} by {self.here} at epoch {epoch}")
            try:
                self.payments.take_over(payment_id, expected_status=record["status"],
                                        expected_version=record["version"],
                                        owner=Fence(from_region, int(record.get("epoch", 1))),
                                        new_owner=Fence(self.here, epoch), anchor=name,
                                        event_detail={"actor": RECOVERY_ACTOR, "note": note},
                                        suspended=bool(record.get("suspense")))
            except StatusConflict:
                continue   # it changed meanwhile (or another run took it): look again
            self.recovery.start_anchor(name, {"paymentId": payment_id, "resume": resume,
                                              "decisionTimeoutSeconds": self.remaining_timeout(record)})
            return True
        raise ServiceError(f"payment {payment_id} kept changing while it was taken over")

    def remaining_timeout(self, record: Mapping[str, Any]) -> int:
        """What is left of the decision timeout, counted from when the payment began to wait (or was
        received): the new anchor's wait ends when the old one's would have."""
        began = next((e.get("time") for e in reversed(record.get("history") or []) if e.get("status") == "PDNG"),
                     record.get("receivedAt"))
        total = int(self.settings.decision_timeout_seconds)
        if not began:
            return total
        return max(1, int(total - max(0.0, seconds_between(began, self.clock()))))

    def resume_sweep(self, *, epoch: int, shard: str, cursor: Any = None) -> dict:
        """After the takeover: start again (idempotent: the anchor's name is fixed) the anchor of every
        payment taken over at `epoch` in this shard, in case a start failed after its takeover write."""
        ids, next_cursor = self.payments.in_flight_page(self.here, shard, cursor=cursor, limit=TAKEOVER_PAGE)
        started = 0
        for payment_id in ids:
            try:
                record = self.payments.get(payment_id)
            except PaymentNotFound:
                continue
            if (record.get("ownerRegion") == self.here and int(record.get("epoch", 1)) == epoch
                    and record.get("anchorName") == anchor_name(payment_id, epoch)
                    and record["status"] in IN_FLIGHT_STATUSES):
                self.recovery.start_anchor(record["anchorName"], {
                    "paymentId": payment_id, "resume": resume_stage(record),
                    "decisionTimeoutSeconds": self.remaining_timeout(record)})
                started += 1
        return {"cursor": next_cursor, "started": started}

    def finish(self, *, from_region: str, epoch: int, reconcile: bool = False) -> dict:
        """The recovery is done: record it on the routing item (a returning Region waits for this, plus
        the settle interval, before it acts again)."""
        if not reconcile:
            self.regions.mark_recovered(from_region, epoch, self.clock())
        return {"from": from_region, "epoch": epoch, "completedAt": self.clock()}

    # -- the Recovering API --------------------------------------------------------------------------

    def view(self) -> dict:
        """GET /regions: the mode, the consistency, the traffic owner and epoch, and each Region's health
        as this Region's replica has it."""
        now = self.clock()
        routing = self.routing()
        regions = []
        for region in self.known_regions():
            record = self.regions.region_state(region)
            status = shown_status(record, now, self.settings)
            serving = status != "unhealthy" and status != "unknown" and (
                self.settings.region_mode == "active-active" or routing.get("trafficOwner") == region)
            entry = {"region": region, "status": status, "ownsTraffic": bool(serving),
                     "lastProbeAt": (record or {}).get("lastProbeAt"),
                     "lastProbeLatencyMs": _number((record or {}).get("lastProbeLatencyMs")),
                     "consecutiveFailures": int((record or {}).get("consecutiveFailures", 0)),
                     "consecutiveSuccesses": int((record or {}).get("consecutiveSuccesses", 0))}
            if record and record.get("lastError"):
                entry["lastError"] = record["lastError"]
            if record and record.get("leaseUntil"):
                entry["leaseUntil"] = record["leaseUntil"]
            if record and record.get("dependencies"):
                entry["dependencies"] = {name: {k: _number(v) if k == "ms" else v for k, v in result.items()}
                                         for name, result in record["dependencies"].items()}
            regions.append(entry)
        return {"mode": routing.get("mode", self.settings.region_mode),
                "consistency": routing.get("consistency", self.settings.table_consistency),
                "trafficOwner": routing.get("trafficOwner"), "epoch": int(routing.get("epoch", 1)),
                "regions": regions}

    def recover(self, target: str) -> dict:
        """POST /regions/{target}/recover: a manual failover or failback to `target`. Refused (409) while
        `target` is not healthy. The traffic claim is written in `target`'s replica (conditional on the
        routing epoch); the recovery workflow runs in `target` and takes over the other Region's
        payments only if that Region's lease has lapsed (a healthy Region finishes its own)."""
        if target not in self.known_regions():
            raise UnknownRegion(target)
        now = self.clock()
        target_regions = self.regions if target == self.here else self.peer_regions
        target_recovery = self.recovery if target == self.here else self.peer_recovery
        record = self.regions.region_state(target)
        status = shown_status(record, now, self.settings)
        if status not in ("healthy", "degraded") or not lease_valid(record, now):
            raise RegionConflict(f"Region {target} is {status}; it cannot take the traffic until it is healthy "
                                 f"({self.settings.health_recoveries} good probes in a row)")
        try:
            routing = target_regions.routing() or self._initial_routing()
        except ServiceError:
            raise RegionUnavailable(f"Region {target} cannot be reached") from None
        others = [r for r in self.known_regions() if r != target]
        source = routing.get("trafficOwner") if routing.get("trafficOwner") != target else (others[0] if others else target)
        source_state = self.regions.region_state(source) if source != target else None
        take_over = bool(source != target and source_state and source_state.get("leaseUntil")
                         and not lease_valid(source_state, now)
                         and ((routing.get("failedOver") or {}).get(source) or {}).get("leaseUntil")
                         != source_state.get("leaseUntil"))
        epoch = int(routing.get("epoch", 1))
        if routing.get("trafficOwner") != target or take_over:
            try:
                routing = target_regions.claim_traffic(
                    to_region=target, expected_epoch=epoch, at=now,
                    failed_over={"region": source, "leaseUntil": source_state.get("leaseUntil")} if take_over else None)
            except RegionConflict:
                raise RegionConflict("the routing changed meanwhile (another failover or recovery); look again "
                                     "with GET /regions") from None
            epoch = int(routing["epoch"])
        execution = None
        if take_over:
            execution = target_recovery.start_recovery(
                recovery_run_name("takeover", source, routing["failedOver"][source]),
                {"from": source, "to": target, "epoch": epoch, "reconcile": False,
                 "settleSeconds": int(round(self.settings.replication_settle_seconds)), "shards": SHARDS})
        recovery = {"from": source}
        if execution:
            recovery["executionArn"] = execution
        return {"trafficOwner": target, "epoch": epoch, "recovery": recovery}


