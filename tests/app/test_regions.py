"""Two Regions (docs/regions.md) on in-memory fakes: the health decisions, the lease and the gate, the
failover and the takeover by stage, the ownership races, the returning Region's steps doing nothing, the
reconciliation of payments only the returning Region had, and the Recovering API's domain.

The two Regions share one replica of the payment table and of the Regions' records (replication at
once) unless a test gives each its own; each has its own Step Functions (FakeWorkflow, FakeRecovery) and
its own release queue, so a send is counted where it happened."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest
from conftest import schema_registry
from fakes import FakeProbes, FakeRecovery, FakeRegionStore, FakeReleaseQueue, FakeWorkflow

from mxflow.errors import NotOwner, RegionConflict, RegionUnavailable, UnknownRegion
from mxflow.lifecycle import PaymentLifecycle
from mxflow.regions import (
    SHARDS,
    DependencyResult,
    RegionGate,
    RegionService,
    anchor_name,
    assess,
    recovery_run_name,
)

A, B = "eu-west-1", "eu-central-1"
CLIENT_ID = "bank-a-client"


def two_region_settings(settings, region):
    return replace(settings, region=region, primary_region=A, peer_region=B if region == A else A,
                   health_probe_seconds=1.0, health_failures=3, health_recoveries=3, health_slow_ms=500,
                   replication_settle_seconds=0.0)


@dataclass
class Region:
    name: str
    settings: object
    lifecycle: PaymentLifecycle
    service: RegionService
    workflow: FakeWorkflow
    queue: FakeReleaseQueue
    recovery: FakeRecovery
    probes: FakeProbes
    regions: FakeRegionStore


class World:
    """Two Regions over the fakes of `ports` (its store is the shared replica unless `stores` says)."""

    def __init__(self, ports, settings, stores=None, region_items=None):
        self.ports = ports
        self.clock = ports.clock
        stores = stores or {A: ports.store, B: ports.store}
        region_items = region_items or {A: {}, B: None}
        region_items[B] = region_items[A] if region_items[B] is None else region_items[B]
        self.regions: dict[str, Region] = {}
        region_stores = {name: FakeRegionStore(region_items[name]) for name in (A, B)}
        recoveries = {name: FakeRecovery() for name in (A, B)}
        for name in (A, B):
            peer = B if name == A else A
            region_settings = two_region_settings(settings, name)
            workflow, queue, probes = FakeWorkflow(), FakeReleaseQueue(), FakeProbes()
            lifecycle = PaymentLifecycle(
                store=stores[name], archive=ports.archive, workflow=workflow, release_queue=queue,
                events=ports.events, settings=region_settings, registry=schema_registry(), clock=self.clock,
                gate=RegionGate(region_stores[name], region_settings, clock=self.clock, cache_seconds=0),
                at_region=lambda other: self.regions[other].lifecycle)
            service = RegionService(settings=region_settings, regions=region_stores[name], payments=stores[name],
                                    probes=probes, recovery=recoveries[name], peer_regions=region_stores[peer],
                                    peer_recovery=recoveries[peer], clock=self.clock)
            self.regions[name] = Region(name, region_settings, lifecycle, service, workflow, queue,
                                        recoveries[name], probes, region_stores[name])

    def __getitem__(self, name) -> Region:
        return self.regions[name]

    def probe(self, *names):
        return {name: self.regions[name].service.probe() for name in names}

    def tick(self, seconds: int, *alive: str) -> list[dict]:
        """`seconds` one-second probe intervals in which only the `alive` Regions probe; their outcomes."""
        outcomes = []
        for _ in range(seconds):
            self.clock.advance(1)
            outcomes += [self.regions[name].service.probe() for name in alive]
        return outcomes

    def fail_over_to(self, survivor: str) -> dict:
        """The other Region stops probing; the survivor's probes fail it over: that probe's outcome."""
        (outcome,) = [o for o in self.tick(5, survivor) if o.get("failover")]
        return outcome

    def run_recovery(self, region: str, run_name: str) -> int:
        """What the recovery state machine does with the run's input: every shard, page by page."""
        run = self.regions[region].recovery.runs[run_name]
        taken = 0
        for shard in SHARDS:
            cursor = None
            while True:
                page = self.regions[region].service.take_over_page(
                    from_region=run["from"], to_region=run["to"], epoch=run["epoch"], shard=shard,
                    cursor=cursor, reconcile=run["reconcile"])
                taken += page["takenOver"]
                cursor = page["cursor"]
                if cursor is None:
                    break
        self.regions[region].service.finish(from_region=run["from"], epoch=run["epoch"], reconcile=run["reconcile"])
        return taken


def run_name(world, replica: str, kind: str, region: str, epoch: int) -> str:
    """The recovery run of the claim recorded for `region` in `replica`'s routing item (its epoch checked)."""
    claim = world[replica].regions.items["routing"]["failedOver"][region]
    assert int(claim["epoch"]) == epoch
    return recovery_run_name(kind, region, claim)


@pytest.fixture
def world(ports, settings):
    world = World(ports, settings)
    world.probe(A, B)
    return world


def received_in(region: Region, message) -> str:
    created, receipt = region.lifecycle.receive(CLIENT_ID, message())
    assert created
    return receipt["paymentId"]


def pending_in(region: Region, message, token: str) -> str:
    payment_id = received_in(region, message)
    assert region.lifecycle.validate(payment_id)["outcome"] == "await"
    assert region.lifecycle.park(payment_id, token)["action"] == "parked"
    return payment_id


def sends(world, payment_id) -> int:
    """Released messages of the payment on both Regions' queues together."""
    return sum(len(world[name].queue.of(payment_id)) for name in (A, B))


# -- the health decisions ----------------------------------------------------------------------------

OK = [DependencyResult(name, True, 5.0) for name in ("stateMachine", "table", "queue", "archive")]


def failing(name="table", error="ProvisionedThroughputExceededException"):
    return [r if r.name != name else DependencyResult(name, False, 5.0, error) for r in OK]


def run(settings, probes, start=None):
    """assess() over a sequence of probes, one second apart; the statuses in order."""
    from fakes import FakeClock

    clock, record, seen = FakeClock(), start, []
    for results in probes:
        clock.advance(1)
        record = assess(record, results, settings, clock())
        seen.append(record["status"])
    return seen, record


def test_n_consecutive_failures_make_a_region_unhealthy_and_one_failing_dependency_is_named(settings):
    s = two_region_settings(settings, A)
    seen, record = run(s, [OK, failing(), failing(), failing()])
    assert seen == ["healthy", "degraded", "degraded", "unhealthy"]
    assert record["consecutiveFailures"] == 3
    assert record["lastError"] == "table: ProvisionedThroughputExceededException"
    assert record["dependencies"]["table"] == {"ok": False, "ms": 5.0, "error": "ProvisionedThroughputExceededException"}
    # two failures, then a success: the count starts again (one bad minute is not a failover)
    seen, record = run(s, [OK, failing(), failing(), OK, failing(), failing()])
    assert "unhealthy" not in seen and record["consecutiveFailures"] == 2


def test_coming_back_needs_m_consecutive_successes_no_flapping(settings):
    s = two_region_settings(settings, A)
    _, down = run(s, [failing()] * 3)
    seen, record = run(s, [OK, OK, failing(), OK, OK, OK], start=down)
    assert seen == ["unhealthy", "unhealthy", "unhealthy", "unhealthy", "unhealthy", "healthy"]
    assert record["consecutiveSuccesses"] == 3


def test_a_slow_dependency_is_degraded_not_dead_and_keeps_the_lease(settings):
    s = two_region_settings(settings, A)
    slow = [r if r.name != "stateMachine" else DependencyResult("stateMachine", True, 1800.0) for r in OK]
    seen, record = run(s, [OK] + [slow] * 5)
    assert seen == ["healthy"] + ["degraded"] * 5
    assert record["consecutiveFailures"] == 0 and record["lastError"] == "slow: stateMachine over 500 ms"
    assert record["leaseRenewedAt"] == record["lastProbeAt"]   # still serving: its lease renewed


def test_a_slow_probe_overtaken_by_the_next_one_writes_nothing_and_renews_nothing(world, monkeypatch):
    """The schedule does not wait for a slow probe: the next one may start, end and write first. The slow
    one's record (an earlier probe time, its lease renewed from then) is not written over the later one's,
    and it acts on nothing (docs/regions.md, "Health")."""
    region = world[B]
    read = region.regions.region_state
    overtaken = []

    def read_then_overtaken(name):
        record = read(name)
        if not overtaken:
            overtaken.append(True)
            world.clock.advance(1)
            overtaken.append(region.service.probe())   # the next probe, a second later, writes first
        return record

    monkeypatch.setattr(region.regions, "region_state", read_then_overtaken)
    slow = region.service.probe()
    monkeypatch.undo()
    later = overtaken[1]
    assert later["superseded"] is False and slow["superseded"] is True
    stored = region.regions.region_state(B)
    assert stored["lastProbeAt"] == later["record"]["lastProbeAt"] > slow["record"]["lastProbeAt"]
    assert stored["leaseUntil"] == later["record"]["leaseUntil"] > slow["record"]["leaseUntil"]
    assert "failover" not in slow and "reconcile" not in slow


def test_a_region_whose_lease_lapsed_accepts_nothing_until_it_probes_well_again(world, message):
    world.clock.advance(5)   # A missed its probes: its lease (3 x 1 s) lapsed
    with pytest.raises(RegionUnavailable):
        world[A].lifecycle.receive(CLIENT_ID, message())
    assert world.ports.store._records == {}   # nothing created (the archive write may be there: not a payment)


# -- failover, takeover by stage, never twice ----------------------------------------------------------

def test_failover_takes_every_in_flight_payment_over_by_its_stage_and_releases_none_twice(world, message):
    a, b = world[A], world[B]
    rcvd = received_in(a, message)
    pdng = pending_in(a, message, token="token-a")
    armed = pending_in(a, message, token="token-a2")          # approved; A's Send armed and sent it ...
    a.lifecycle.decide(CLIENT_ID, armed, "approve", {})
    assert a.lifecycle.send(armed)["messageId"]                # ... and A died before its Settle
    unsent = pending_in(a, message, token="token-a3")         # approved; A never began the send
    a.lifecycle.decide(CLIENT_ID, unsent, "approve", {})
    assert sends(world, armed) == 1 and sends(world, unsent) == 0

    # A stops probing; B's probe after the lease finds it lapsed, claims the traffic, starts the takeover.
    outcome = world.fail_over_to(B)
    assert outcome["failover"]["claimed"] and outcome["failover"]["epoch"] == 2
    assert outcome["servesTraffic"] is True
    assert list(b.recovery.runs) == [run_name(world, B, "takeover", A, 2)]
    assert world.run_recovery(B, run_name(world, B, "takeover", A, 2)) == 4
    # Each payment: B owns it at epoch 2, a new anchor named with the epoch resumes it by the policy.
    resumes = {pid: b.recovery.anchors[anchor_name(pid, 2)]["resume"] for pid in (rcvd, pdng, armed, unsent)}
    assert resumes == {rcvd: {"stage": "validate", "carried": {}}, pdng: None,
                       armed: {"stage": "send", "carried": {}}, unsent: {"stage": "send", "carried": {}}}
    for pid in resumes:
        record = world.ports.store.get(pid)
        assert (record["ownerRegion"], record["epoch"], record["inflight"]) == (B, 2, B)
        assert "taskToken" not in record and record["history"][-1]["actor"] == "recovery"

    # B resumes them: the armed release is settled as released by A, never sent again; the unsent one is
    # sent once by B; the received one is validated and parked; the waiting one gets a new callback here.
    released_elsewhere = b.lifecycle.send(armed)
    assert released_elsewhere["releasedElsewhere"] == A and sends(world, armed) == 1
    b.lifecycle.settle(armed, released_elsewhere["messageId"])
    assert world.ports.store.get(armed)["status"] == "ACSC"
    assert "settled here, not sent again" in world.ports.store.get(armed)["history"][-1]["note"]
    b.lifecycle.settle(unsent, b.lifecycle.send(unsent)["messageId"])
    assert world.ports.store.get(unsent)["status"] == "ACSC" and sends(world, unsent) == 1
    assert b.lifecycle.validate(rcvd)["outcome"] == "await"
    assert b.lifecycle.park(rcvd, "token-b1")["action"] == "parked"
    assert b.lifecycle.park(pdng, "token-b2")["action"] == "parked"
    assert world.ports.store.get(pdng)["taskToken"] == "token-b2"
    # The consumer's next decision works against either Region's API: asked of A, it is written in B.
    assert a.lifecycle.decide(CLIENT_ID, pdng, "reject", {"reasonCode": "AM04"})["status"] == "RJCT"
    assert b.workflow.successes[-1][0] == "token-b2" and not a.workflow.successes

    # A comes back: its old executions' steps find it no longer owns them and do nothing.
    writes_before, flows_before = list(world.ports.store.writes), list(a.workflow.flows)
    with pytest.raises(NotOwner):
        a.lifecycle.validate(rcvd)
    with pytest.raises(NotOwner):
        a.lifecycle.send(unsent)
    assert a.lifecycle.park(pdng, "token-a")["action"] == "relinquished"   # the old wait just ends
    assert world.ports.store.writes == writes_before and a.workflow.flows == flows_before
    assert sends(world, armed) == sends(world, unsent) == 1


def test_a_lease_that_lapsed_only_in_the_survivors_replica_is_not_failed_over(ports, settings, message):
    """The peer's lease is read from this Region's replica, where it ends no later than the real one: while
    replication is behind, a live Region looks lapsed. Its gate reads its own replica and it goes on
    acting (sending releases), so a takeover then would send them again: the survivor fails over only when
    the peer's own replica shows the lapse too (or cannot be read)."""
    import copy

    items = {A: {}, B: {}}
    world = World(ports, settings, region_items=dict(items))
    world.probe(A, B)
    for source, target in ((A, B), (B, A)):   # replicated once, then replication stalls
        target_items = items[target]
        for key, value in items[source].items():
            target_items.setdefault(key, copy.deepcopy(value))
    a, b = world[A], world[B]
    payment_id = pending_in(a, message, token="t")

    outcomes = world.tick(5, A, B)   # both probe well; B's copy of A's lease lapses meanwhile
    assert not [o for o in outcomes if (o.get("failover") or {}).get("claimed")]
    refused = [o["failover"] for o in outcomes if o["region"] == B and o.get("failover")]
    assert refused and all(not r["claimed"] and "replication is behind" in r["reason"] for r in refused)
    assert b.recovery.runs == {} and items[B]["routing"]["epoch"] == 1
    a.lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    assert a.lifecycle.send(payment_id)["messageId"] and sends(world, payment_id) == 1   # A still acts

    # A really stops: once its own replica shows the lapse, B fails over (replication still stalled).
    (outcome,) = [o for o in world.tick(5, B) if (o.get("failover") or {}).get("claimed")]
    assert outcome["failover"]["epoch"] == 2 and list(b.recovery.runs) == [run_name(world, B, "takeover", A, 2)]


def test_a_claim_at_an_epoch_used_before_starts_its_own_takeover(world, message):
    """MREC: two Regions claiming at once each write epoch + 1 in their own replica and the later write wins
    in both, so the routing epoch can come back to one used before. A takeover claimed then is its own run
    (named by the claim's time too), never taken for the earlier run of that epoch (ExecutionAlreadyExists:
    skipped, the failed Region's payments left in it)."""
    import copy

    payment_id = pending_in(world[A], message, token="t")
    before = copy.deepcopy(world[B].regions.items["routing"])
    world.fail_over_to(B)
    first = run_name(world, B, "takeover", A, 2)
    assert first.startswith(f"takeover-{A}-e2-")
    world[B].regions.items["routing"] = before   # an epoch-1 image of the routing item, written later, won
    world.tick(1, B)                               # A's lease still lapsed, not failed over in this item
    second = run_name(world, B, "takeover", A, 2)
    assert second != first and set(world[B].recovery.runs) == {first, second}
    assert world.run_recovery(B, second) == 1
    assert (world.ports.store.get(payment_id)["ownerRegion"], world.ports.store.get(payment_id)["epoch"]) == (B, 2)


def test_a_takeover_claims_above_the_epoch_of_the_failed_regions_own_replica(ports, settings, message):
    """MREC: the failed Region stamps its payments with the epoch of its own replica, which may be ahead of
    the survivor's (a claim of its own not replicated yet). A takeover at an epoch not above a payment's
    would skip it (taken over only from an older epoch): the claim goes above the epoch read there."""
    import copy

    items = {A: {}, B: {}}
    world = World(ports, settings, region_items=dict(items))
    world.probe(A, B)
    for source, target in ((A, B), (B, A)):   # replicated once, then replication stalls
        for key, value in items[source].items():
            items[target].setdefault(key, copy.deepcopy(value))
    items[A]["routing"]["epoch"] = 3          # in A's replica only
    payment_id = pending_in(world[A], message, token="t")
    assert world.ports.store.get(payment_id)["epoch"] == 3
    outcome = world.fail_over_to(B)
    assert outcome["failover"]["claimed"] and outcome["failover"]["epoch"] == 4
    assert world.run_recovery(B, run_name(world, B, "takeover", A, 4)) == 1
    assert (world.ports.store.get(payment_id)["ownerRegion"], world.ports.store.get(payment_id)["epoch"]) == (B, 4)


def test_a_peer_whose_replica_cannot_be_read_is_failed_over_on_the_lapse_seen_here(world):
    from fakes import FakeRegionStore, Unavailable

    unreachable = Unavailable()
    unreachable.on = True
    world[B].service.peer_regions = FakeRegionStore(world[B].regions.items, unavailable=unreachable)
    outcome = world.fail_over_to(B)
    assert outcome["failover"]["claimed"] and outcome["failover"]["epoch"] == 2


def test_an_armed_release_with_every_attempt_refused_is_sent_by_the_new_owner(world, message):
    from mxflow.errors import TransientError

    a, b = world[A], world[B]
    payment_id = pending_in(a, message, token="t")
    a.lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    from mxflow.errors import SendRefused

    a.queue.failures.append(SendRefused("AccessDenied"))
    with pytest.raises(TransientError):
        a.lifecycle.send(payment_id)               # refused: nothing sent, a definitive failure recorded
    world.fail_over_to(B)
    world.run_recovery(B, run_name(world, B, "takeover", A, 2))
    result = b.lifecycle.send(payment_id)
    assert "releasedElsewhere" not in result and sends(world, payment_id) == 1
    assert world.ports.store.get(payment_id)["release"]["region"] == B


def test_of_two_takeovers_of_one_payment_exactly_one_wins(world, message, monkeypatch):
    a, b = world[A], world[B]
    payment_id = pending_in(a, message, token="t")
    world.fail_over_to(B)
    # A second recovery run (a duplicate start) reads the payment, then the first takes it over before
    # the second writes: the second's conditional write fails, it reads again and finds nothing to do.
    other = RegionService(settings=b.settings, regions=b.regions, payments=world.ports.store, probes=FakeProbes(),
                          recovery=FakeRecovery(), clock=world.clock)
    real_get, raced = world.ports.store.get, []

    def get_then_lose_the_race(pid):
        record = real_get(pid)
        if not raced:
            raced.append("started")
            raced.append(b.service.take_over_payment(pid, from_region=A, epoch=2))
        return record

    monkeypatch.setattr(world.ports.store, "get", get_then_lose_the_race)
    assert other.take_over_payment(payment_id, from_region=A, epoch=2) is False
    assert raced == ["started", True]
    assert list(b.recovery.anchors) == [anchor_name(payment_id, 2)] and not other.recovery.anchors
    assert [kind for pid, kind in world.ports.store.writes if pid == payment_id].count("takeover") == 1


def test_a_decision_racing_the_takeover_is_refused_503_never_lost(world, message, monkeypatch):
    a, b = world[A], world[B]
    payment_id = pending_in(a, message, token="t")
    flows_before = list(a.workflow.flows)
    # A still holds its lease when it reads; the takeover lands between its read and its write.
    real_get, done = world.ports.store.get, []

    def read_then_taken_over(pid):
        record = real_get(pid)
        if not done:
            done.append("started")
            done.append(b.service.take_over_payment(pid, from_region=A, epoch=2))
        return record

    monkeypatch.setattr(world.ports.store, "get", read_then_taken_over)
    with pytest.raises(RegionUnavailable):
        a.lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    monkeypatch.undo()
    record = world.ports.store.get(payment_id)
    assert done == ["started", True] and record["status"] == "PDNG" and "decision" not in record
    assert a.workflow.flows == flows_before   # nothing started for the lost write: the client sends it again


# -- the returning Region: rejoin and reconciliation ------------------------------------------------------

def test_a_returning_region_waits_for_the_takeover_then_reconciles_what_only_it_had(ports, settings, message):
    from fakes import FakePaymentStore

    store_a, store_b = ports.store, FakePaymentStore(ports.clock, region=B)
    world = World(ports, settings, stores={A: store_a, B: store_b})
    world.probe(A, B)
    replicated = pending_in(world[A], message, token="t1")
    store_a.copy_to(store_b)                      # replicated before A died ...
    only_a = received_in(world[A], message)       # ... this one not
    world.fail_over_to(B)
    assert world.run_recovery(B, run_name(world, B, "takeover", A, 2)) == 1
    store_b.copy_to(store_a, [replicated])        # B's takeover write replicates to A's replica

    # A comes back: M good probes before it counts, then its lease is renewed and it reconciles.
    outcomes = [world.probe(A)[A] for _ in range(3)]
    assert [o["record"]["status"] for o in outcomes] == ["unhealthy", "unhealthy", "healthy"]
    assert [o["servesTraffic"] for o in outcomes] == [False, False, False]   # B owns the traffic now
    assert outcomes[-1]["reconcile"]["epoch"] == 2
    assert list(world[A].recovery.runs) == [run_name(world, A, "reconcile", A, 2)]
    assert world.run_recovery(A, run_name(world, A, "reconcile", A, 2)) == 1
    record = store_a.get(only_a)
    assert (record["ownerRegion"], record["epoch"]) == (A, 2)
    assert world[A].recovery.anchors[anchor_name(only_a, 2)]["resume"] == {"stage": "validate", "carried": {}}
    assert "reconciled in" in record["history"][-1]["note"]
    # The payment B took over stays B's: A's reconciliation never takes it back.
    assert store_a.get(replicated)["ownerRegion"] == B



def test_the_old_anchor_of_a_payment_reconciled_into_a_new_one_in_its_own_region_does_nothing(
        ports, settings, message):
    """A payment waiting in A that B never saw is reconciled into a new anchor in A itself (same Region):
    the old anchor is still A's and still waiting. Its decision timeout or a redriven Park (owner check
    passes: A owns it) must do nothing; the new anchor's wait and timeout act (lifecycle.is_current_anchor)."""
    from fakes import FakePaymentStore

    store_a, store_b = ports.store, FakePaymentStore(ports.clock, region=B)
    world = World(ports, settings, stores={A: store_a, B: store_b})
    world.probe(A, B)
    waiting = pending_in(world[A], message, token="old-token")   # its anchor is named by its payment id
    world.fail_over_to(B)
    assert world.run_recovery(B, run_name(world, B, "takeover", A, 2)) == 0   # B never saw it
    for _ in range(3):   # A comes back: M good probes, then it reconciles what only it had
        world.probe(A)
    assert world.run_recovery(A, run_name(world, A, "reconcile", A, 2)) == 1
    new_anchor = anchor_name(waiting, 2)
    before = store_a.get(waiting)
    assert (before["ownerRegion"], before["anchorName"], before["status"]) == (A, new_anchor, "PDNG")
    lifecycle, workflow = world[A].lifecycle, world[A].workflow

    # the old anchor's wait times out, then an operator redrives it: neither writes nor sends anything
    assert lifecycle.decision_timeout(waiting, anchor=waiting) == {"action": "done", "resume": None, "status": "PDNG"}
    assert lifecycle.park(waiting, "redriven-old-token", anchor=waiting)["action"] == "relinquished"
    assert workflow.successes[-1][0] == "redriven-old-token"          # its wait is answered, and ends
    after = store_a.get(waiting)
    assert (after["version"], after["status"], after["history"]) == (before["version"], "PDNG", before["history"])
    assert not world[A].queue.of(waiting) and not world[B].queue.of(waiting)

    # the new anchor parks it with its token, and its timeout rejects it (AB06)
    assert lifecycle.park(waiting, "new-token", anchor=new_anchor)["action"] == "parked"
    assert store_a.get(waiting)["taskToken"] == "new-token"
    timed_out = lifecycle.decision_timeout(waiting, anchor=new_anchor)
    assert (timed_out["action"], timed_out["status"]) == ("done", "RJCT")
    decided = store_a.get(waiting)
    assert decided["decision"]["action"] == "timeout" and decided["decision"]["reasonCode"] == "AB06"


# -- the Recovering API --------------------------------------------------------------------------------

def test_get_regions_shows_health_owner_and_epoch(world):
    view = world[B].service.view()
    assert (view["mode"], view["consistency"], view["trafficOwner"], view["epoch"]) == (
        "active-passive", "EVENTUAL", A, 1)
    assert [(r["region"], r["status"], r["ownsTraffic"]) for r in view["regions"]] == [
        (A, "healthy", True), (B, "healthy", False)]
    world.fail_over_to(B)
    view = world[B].service.view()
    assert (view["trafficOwner"], view["epoch"]) == (B, 2)
    assert [(r["region"], r["status"], r["ownsTraffic"]) for r in view["regions"]] == [
        (A, "unhealthy", False), (B, "healthy", True)]


def test_recover_is_refused_while_the_target_is_unhealthy_and_moves_the_traffic_when_it_is_healthy(world):
    world.fail_over_to(B)                         # failed over to B at epoch 2
    with pytest.raises(RegionConflict):
        world[B].service.recover(A)               # A has not come back
    with pytest.raises(UnknownRegion):
        world[B].service.recover("ap-south-1")
    world.tick(3, A, B)                           # A back, 3 good probes: but B's takeover of it is not done
    with pytest.raises(RegionConflict):
        world[B].service.recover(A)
    world.run_recovery(B, run_name(world, B, "takeover", A, 2))
    world.tick(1, A, B)                           # caught up: its lease renewed
    result = world[B].service.recover(A)          # a manual failback, asked of either Region's API
    assert result == {"trafficOwner": A, "epoch": 3, "recovery": {"from": B}}
    assert world[A].service.view()["trafficOwner"] == A
    # B is healthy: it keeps and finishes its own payments (no takeover run; A's own reconciliation ran
    # when it rejoined).
    assert list(world[A].recovery.runs) == [run_name(world, A, "reconcile", A, 2)]


def test_a_claim_that_lands_after_the_lease_is_not_followed_by_a_send_and_the_new_owner_sends_once(world, message,
                                                                                                     monkeypatch):
    from mxflow.lifecycle import PaymentLifecycle as Lifecycle

    a, b = world[A], world[B]
    payment_id = pending_in(a, message, token="t")
    a.lifecycle.decide(CLIENT_ID, payment_id, "approve", {})
    real_write = Lifecycle._write_claim

    def slow_claim(self, *args, **kwargs):   # the claim write lands late: A's lease ends meanwhile
        real_write(self, *args, **kwargs)
        world.clock.advance(5)

    monkeypatch.setattr(Lifecycle, "_write_claim", slow_claim)
    with pytest.raises(RegionUnavailable):
        a.lifecycle.send(payment_id)
    monkeypatch.undo()
    release = world.ports.store.get(payment_id)["release"]
    assert sends(world, payment_id) == 0 and (release["attempts"], release["definitiveFailures"]) == (1, 1)
    world.fail_over_to(B)
    world.run_recovery(B, run_name(world, B, "takeover", A, 2))
    result = b.lifecycle.send(payment_id)
    assert "releasedElsewhere" not in result and sends(world, payment_id) == 1


def test_a_slow_step_never_sends_its_write_after_the_lease_so_it_cannot_undo_a_takeover(world, message, monkeypatch):
    """With MREC a write is checked on owner and epoch by the writer's replica only: one sent after the
    lease ended could pass there (the takeover not replicated yet) and, replicated, undo the takeover. The
    store refuses a fenced write past the lease the step's gate check saw (Fence.until), however slow the
    step between the check and the write."""
    from mxflow import iso20022

    a, b = world[A], world[B]
    payment_id = received_in(a, message)
    real_validate = iso20022.validate_message

    def slow_validation(*args, **kwargs):   # a loaded host: the XSD validation outlives A's lease
        result = real_validate(*args, **kwargs)
        world.clock.advance(5)
        return result

    monkeypatch.setattr(iso20022, "validate_message", slow_validation)
    with pytest.raises(RegionUnavailable):
        a.lifecycle.validate(payment_id)
    monkeypatch.undo()
    record = world.ports.store.get(payment_id)
    assert (record["status"], record["version"], record["ownerRegion"]) == ("RCVD", 1, A)   # nothing written
    # the survivor takes the payment over at the new epoch and validates it there once
    world.fail_over_to(B)
    world.run_recovery(B, run_name(world, B, "takeover", A, 2))
    taken = world.ports.store.get(payment_id)
    assert (taken["ownerRegion"], taken["epoch"]) == (B, 2)
    assert b.lifecycle.validate(payment_id)["outcome"] == "await"
    with pytest.raises(NotOwner):
        a.lifecycle.validate(payment_id)   # the old owner's retried step finds it no longer owns it
