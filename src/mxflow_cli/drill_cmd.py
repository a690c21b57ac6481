"""`mxflow drill failover`: the two-Region drill (issue 11, docs/regions.md) on one machine.

Two Regions in one process (mxflow_local.two_regions: one local runtime and one API each, the payment
table replicated with a lag, each Region probing itself every second), N payments submitted to the
first Region and caught at every stage (received, waiting for a decision, decided and releasing,
released), the first Region stopped, the second Region's health check failing it over and its recovery
workflow taking the payments over, consumers deciding during the failover and after it (through the
second Region's API), the first Region restarted and reconciled, then every payment counted: its status
in the surviving replica and its messages on both Regions' release queues together.

Bounded: N at most 2,000; every wait, and every consumer's retrying, ends at its phase's deadline
(--timeout) and at the drill's (PHASES_BUDGET x --timeout from the start), after which the remaining waits
only look once; a watchdog ends the process with the figures it has (and the phase it was in) if even
that does not finish (a stuck stop or start-up). Exit 1 when `lost` or `releasedTwice` is not zero (or a
wait ran out), 2 on a usage error.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from mxflow_cli.main import UsageError

MAX_PAYMENTS = 2000
STP_AMOUNT, DECISION_AMOUNT, AUTO_APPROVE_MAX = "100.00", "25000.00", "1000"
RETRY_STATUSES = (429, 500, 502, 503)
ACCEPTED = (200, 202)   # a submission's answer: accepted (202), or a copy of one accepted already (200)
PHASES_BUDGET = 3          # the whole drill: at most this many --timeout (each phase: at most one)
WATCHDOG_GRACE_S = 120     # past the drill's deadline: start-up, the stop of both Regions, the counting


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("drill", help="run a resilience drill on the local runtime",
                                   description=__doc__.split("\n\n")[0])
    drills = parser.add_subparsers(dest="drill", metavar="DRILL")
    failover = drills.add_parser("failover", help="two Regions, the first stopped mid-flight, failover, recovery, return",
                                 description=__doc__.split("\n\n")[1])
    failover.add_argument("--payments", type=int, default=40, help=f"payments in flight (1-{MAX_PAYMENTS}, default 40)")
    failover.add_argument("--lag-ms", type=float, default=0.0, help="replication lag between the replicas (ms)")
    failover.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    failover.add_argument("--regions", default="us-east-1,us-west-2", help="the two Regions, primary first")
    failover.add_argument("--probe-seconds", type=float, default=1.0, help="the health check's interval (default 1)")
    failover.add_argument("--timeout", type=float, default=300.0,
                          help=f"the longest any phase may wait (s); the drill as a whole waits at most {PHASES_BUDGET} "
                          "times this")
    failover.add_argument("--template", default="template.yaml")
    failover.add_argument("--schema-dir", action="append", default=[], help="directory of official XSDs")
    failover.set_defaults(func=run)

    def no_drill(_args) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(func=no_drill)


def run(args) -> int:
    if not 1 <= args.payments <= MAX_PAYMENTS:
        raise UsageError(f"--payments must be 1-{MAX_PAYMENTS}")
    if args.lag_ms < 0 or args.lag_ms > 60_000 or args.probe_seconds <= 0 or args.timeout <= 0:
        raise UsageError("--lag-ms must be 0-60000, --probe-seconds and --timeout positive")
    regions = tuple(r.strip() for r in args.regions.split(","))
    if len(regions) != 2 or regions[0] == regions[1]:
        raise UsageError("--regions needs two different Regions, e.g. us-east-1,us-west-2")
    if not Path(args.template).is_file():
        raise UsageError(f"template not found: {args.template} (run from the repository root)")
    drill = Drill(args, regions)
    stdout = sys.stdout
    watchdog = threading.Timer(PHASES_BUDGET * args.timeout + WATCHDOG_GRACE_S, drill.give_up, args=(stdout,))
    watchdog.daemon = True
    watchdog.start()
    try:
        if args.json:
            # The functions' own output (Powertools' metrics and logs, on stdout as in Lambda) would break the
            # one JSON document: it goes nowhere during a --json drill.
            with open(os.devnull, "w") as nowhere, contextlib.redirect_stdout(nowhere):
                figures = drill.run()
        else:
            figures = drill.run()
    finally:
        watchdog.cancel()
    _print_figures(figures, args.json, stdout)
    return 0 if figures["lost"] == 0 and figures["releasedTwice"] == 0 and not figures["problems"] else 1


def _print_figures(figures: dict, as_json: bool, out) -> None:
    if as_json:
        print(json.dumps(figures, indent=2), file=out, flush=True)
    else:
        for key, value in figures.items():
            print(f"{key}: {value}", file=out, flush=True)


class Drill:
    def __init__(self, args, regions):
        self.args = args
        self.primary, self.secondary = regions
        self.deadline_s = args.timeout
        self.end = time.monotonic() + PHASES_BUDGET * args.timeout   # the whole drill's deadline
        self.phase = "starting the two Regions"
        self.seen: dict = {}     # the figures known so far (what the watchdog reports)
        self.problems: list[str] = []
        self.log = (lambda *a: None) if args.json else (lambda *a: print("  ", *a, flush=True))

    # -- helpers -----------------------------------------------------------------------------------------
    def _deadline(self) -> float:
        """A phase's deadline: --timeout from now, never past the drill's."""
        return min(time.monotonic() + self.deadline_s, self.end)

    def _wait(self, what: str, predicate, interval: float = 0.1):
        """The predicate's first true value, or None and a problem once the deadline passed (looked at once
        at least, even past the drill's deadline: the figures say what was seen)."""
        self.phase = f"waiting for {what}"
        deadline = self._deadline()
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                break
            time.sleep(interval)
        self.problems.append(f"timed out waiting for {what} ({self.deadline_s:.0f} s, or the drill's "
                             f"{PHASES_BUDGET * self.deadline_s:.0f} s)")
        return None

    def _retrying(self, call, deadline: float):
        """A consumer's request, sent again while the answer says retry (503 during a failover), until the
        deadline (one for all of a phase's requests, so a Region that never answers cannot hold the drill)."""
        while True:
            reply = call()
            if reply.status not in RETRY_STATUSES or time.monotonic() > deadline:
                return reply
            time.sleep(0.2)

    def _submit(self, api, message: bytes, deadline: float):
        """A submission, sent again while the answer says retry (the same message: its id makes it one
        payment: a copy of one accepted already answers 200 with its receipt)."""
        return self._retrying(lambda: api.submit(message), deadline)

    def give_up(self, out) -> None:
        """The watchdog: the drill did not end by its deadline and the grace; the figures seen so far, the
        phase it was in, exit 1 (the process may hold threads that would never end)."""
        figures = {**self.seen, "problems": [*self.problems, f"the drill did not finish: still {self.phase} "
                                             f"{PHASES_BUDGET * self.deadline_s + WATCHDOG_GRACE_S:.0f} s after it began"]}
        with contextlib.suppress(Exception):
            _print_figures(figures, self.args.json, out)
        os._exit(1)

    # -- the drill -------------------------------------------------------------------------------------------
    def run(self) -> dict:
        from mxflow_cli.demo_cmd import demo_schemas
        from mxflow_cli.local_schemas import function_environment, version_parameters
        from mxflow_local.client import ALL_SCOPES, PaymentsClient
        from mxflow_local.sample_messages import credit_transfer
        from mxflow_local.two_regions import TwoRegions
        from mxflow.regions import recovery_run_name

        dirs, _registry, versions, _changes = demo_schemas(self.args.schema_dir)
        overrides = {"DecisionTimeoutSeconds": "3600", "AutoApproveMaxAmount": AUTO_APPROVE_MAX,
                     **version_parameters(versions)}
        env = {**function_environment(dirs), "LOG_LEVEL": "ERROR", "POWERTOOLS_METRICS_DISABLED": "true"}
        a, b = self.primary, self.secondary
        n = self.args.payments
        self.log(f"starting {a} and {b} (replication lag {self.args.lag_ms:.0f} ms, probes every "
                 f"{self.args.probe_seconds} s) ...")
        with TwoRegions(self.args.template, regions=(a, b), lag_ms=self.args.lag_ms,
                        probe_seconds=self.args.probe_seconds, parameter_overrides=overrides,
                        env_overrides=env) as world:
            token = world.api(a).issue_token(ALL_SCOPES, client_id="drill")
            api_a = PaymentsClient(world.api(a).url, token)
            api_b = PaymentsClient(world.api(b).url, token)
            self._wait("both Regions healthy", lambda: all(
                r["status"] == "healthy" for r in (api_a.request("GET", "/regions").json or {}).get("regions", [{}])))

            # Payments at every stage: STP (released or releasing), waiting, decided, and just received.
            n_received = max(1, n // 8) if n >= 4 else 0
            kinds = ["stp" if i % 4 == 0 else "wait" for i in range(n - n_received)]
            # A submission or decision answered 503 (the Region's gate, on a slow host, a probe late) is sent
            # again, as a client does; one still refused at the deadline is a problem below.
            before_stop = self._deadline()
            with ThreadPoolExecutor(max_workers=4) as pool:
                receipts = list(pool.map(lambda kind: self._submit(api_a, credit_transfer(
                    amount=STP_AMOUNT if kind == "stp" else DECISION_AMOUNT), before_stop), kinds))
            ids = [r.json["paymentId"] for r in receipts if r.status in ACCEPTED]
            # each accepted payment with its own kind (a refused one leaves no gap between the two lists)
            waiting = [r.json["paymentId"] for r, kind in zip(receipts, kinds) if r.status in ACCEPTED and kind == "wait"]
            if not self._wait("the waiting payments in PDNG", _each_reaches(world, a, waiting, {"PDNG"}.__contains__),
                              interval=0.2):
                self.problems.append(_stuck(world, a, [pid for pid in waiting
                                                       if (world.payment(a, pid) or {}).get("status") != "PDNG"]))
            decided = waiting[: len(waiting) // 3]
            during, after = waiting[len(waiting) // 3:][::2], waiting[len(waiting) // 3:][1::2]
            before_stop = self._deadline()
            with ThreadPoolExecutor(max_workers=4) as pool:
                approved = list(pool.map(lambda pid: self._retrying(lambda: api_a.approve(pid), before_stop), decided))
                received = list(pool.map(lambda _: self._submit(api_a, credit_transfer(amount=DECISION_AMOUNT),
                                                                before_stop), range(n_received)))
            for pid, reply in zip(decided, approved):
                if reply.status != 200:
                    self.problems.append(f"approve {pid} before the stop: {reply.status}")
            ids += [r.json["paymentId"] for r in received if r.status in ACCEPTED]
            stages = {s: 0 for s in ("RCVD", "ACTC", "PDNG", "ACSP", "ACSC", "RJCT", "CANC")}
            for pid in ids:
                stages[(world.payment(a, pid) or {}).get("status", "RCVD")] += 1
            self.log(f"{len(ids)} payments accepted by {a}; at the stop: {stages}")
            self.seen.update(submitted=len(ids), atStop=stages, lagMs=self.args.lag_ms,
                             probeSeconds=self.args.probe_seconds)

            refused = [r.status for r in (*receipts, *received) if r.status not in ACCEPTED]
            if refused:
                self.problems.append(f"{len(refused)} submissions refused before the stop: {sorted(set(refused))}")
            epoch_at_stop = int(world.routing(a).get("epoch", 0))
            if epoch_at_stop != 1 or world.routing(a).get("trafficOwner") != a:
                self.problems.append(f"{a} had lost the traffic before the stop (epoch {epoch_at_stop})")
            # The first Region stops; consumers decide through the second Region's API meanwhile.
            stopped = time.monotonic()
            world.stop(a)
            during_deadline = self._deadline()
            consumers = threading.Thread(target=lambda: [self._decide(api_b, pid, i, during_deadline)
                                                         for i, pid in enumerate(during)], daemon=True)
            consumers.start()
            detected = self._wait(f"{b} to take the traffic", lambda: world.routing(b).get("trafficOwner") == b and
                                  time.monotonic(), interval=0.05)
            detect_s = (detected - stopped) if detected else None
            self.seen.update(epochAtStop=epoch_at_stop, detectSeconds=round(detect_s, 2) if detect_s is not None else None)
            self.log(f"failover detected after {detect_s:.1f} s" if detect_s is not None else "no failover")
            claim = (world.routing(b).get("failedOver") or {}).get(a) or {"epoch": world.routing(b).get("epoch", 0)}
            run_arn = (f"{world.runtimes[b].physical('RecoveryStateMachine').replace(':stateMachine:', ':execution:')}:"
                       f"{recovery_run_name('takeover', a, claim)}")
            sfn = world.runtimes[b].client("stepfunctions")
            finished = self._wait("the recovery workflow", lambda: _status(sfn, run_arn) in ("SUCCEEDED", "FAILED", "ABORTED",
                                                                                            "TIMED_OUT") and time.monotonic(),
                                  interval=0.05)
            recover_s = (finished - stopped) if finished else None
            self.seen.update(recoverSeconds=round(recover_s, 2) if recover_s is not None else None)
            if _status(sfn, run_arn) != "SUCCEEDED":
                self.problems.append(f"recovery run {run_arn}: {_status(sfn, run_arn)}")
            self.log(f"recovery finished after {recover_s:.1f} s" if recover_s is not None else "no recovery")
            self.phase = "waiting for the consumers deciding during the failover"
            consumers.join(timeout=max(0.0, during_deadline - time.monotonic()) + 1)
            if consumers.is_alive():
                self.problems.append("the consumers deciding during the failover had not finished")
            # The rest of the waiting payments are decided now, through the second Region.
            if not self._wait("the taken-over payments waiting again",
                              _each_reaches(world, b, ids, lambda status: status not in (None, "RCVD")), interval=0.2):
                self.problems.append(_stuck(world, b, [pid for pid in ids if (world.payment(b, pid) or {}).get("status")
                                                       in (None, "RCVD")]))
            self._wait("the remaining payments in PDNG", _each_reaches(
                world, b, after + ids[-n_received:] if n_received else [],
                {"PDNG", "ACSC", "RJCT", "CANC", "ACSP"}.__contains__), interval=0.2)
            pending_now = [pid for pid in ids if (world.payment(b, pid) or {}).get("status") == "PDNG"]
            self.phase = f"deciding {len(pending_now)} payments through {b}"
            after_deadline = self._deadline()
            for i, pid in enumerate(pending_now):
                self._decide(api_b, pid, i, after_deadline)

            # The first Region comes back: it finds the payments taken over and reconciles what only it had.
            world.start_region(a)
            rejoined = self._wait(f"{a} to rejoin", lambda: any(
                r["region"] == a and r["status"] == "healthy" and "leaseUntil" in r
                for r in (api_b.request("GET", "/regions").json or {}).get("regions", [])), interval=0.2)
            self.log(f"{a} back and caught up" if rejoined else f"{a} did not rejoin")
            terminal = self._wait("every payment terminal",
                                  _each_reaches(world, b, ids, {"ACSC", "RJCT", "CANC"}.__contains__), interval=0.25)
            if not terminal:
                self.problems.append(_stuck(world, b, [pid for pid in ids if (world.payment(b, pid) or {}).get("status")
                                                       not in ("ACSC", "RJCT", "CANC")]))
            time.sleep(max(0.5, 2 * self.args.lag_ms / 1000))   # anything still on its way to a queue
            # Replication settles: every write made until now applied to the other replica (or dropped as
            # older than what it holds); then the two replicas must hold the same items.
            settled_from = time.time()   # the replicator's clock: the writes' own times
            self._wait("the replication to drain", lambda: world.replicator.pending(written_before=settled_from) == 0,
                       interval=0.05)
            differ = world.replicator.differing(skip=_probe_written)
            records = {pid: world.payment(b, pid) or {} for pid in ids}
            released = world.released_messages()
            statuses = [r.get("status") for r in records.values()]
            figures = {
                "submitted": len(ids), "released": statuses.count("ACSC"), "rejected": statuses.count("RJCT"),
                "cancelled": statuses.count("CANC"),
                "lost": sum(1 for s in statuses if s not in ("ACSC", "RJCT", "CANC")),
                "releasedTwice": sum(1 for pid in ids if released.get(pid, 0) > 1),
                "releasedWithoutMessage": sum(1 for pid, r in records.items()
                                              if r.get("status") == "ACSC" and not released.get(pid)),
                # a release message of a payment that ended rejected or cancelled (one not terminal is `lost`)
                "messagesForUnreleased": sum(1 for pid, r in records.items()
                                             if r.get("status") in ("RJCT", "CANC") and released.get(pid)),
                "replicasDiffer": len(differ),
                "takenOver": sum(1 for r in records.values() if r.get("ownerRegion") == b),
                # the longest time between two probes' ends (lease renewals): the first Region until its stop,
                # the second throughout (a gap past the lease, (N + 1/2) probe intervals, lapses it)
                "probeGapMaxSeconds": {a: _round(world.probe_gap(a, until=stopped)), b: _round(world.probe_gap(b))},
                "slowestProbe": world.slowest_probe,
                "detectSeconds": round(detect_s, 2) if detect_s is not None else None,
                "recoverSeconds": round(recover_s, 2) if recover_s is not None else None,
                "lagMs": self.args.lag_ms, "probeSeconds": self.args.probe_seconds,
                "settleSeconds": world.settle_seconds, "atStop": stages, "epochAtStop": epoch_at_stop,
                "replicatedWrites": world.replicator.replicated, "supersededImages": world.replicator.superseded,
                "everyPaymentTerminal": bool(terminal),
                "problems": self.problems,
            }
            if figures["releasedWithoutMessage"] or figures["messagesForUnreleased"]:
                self.problems.append("a release and its message disagree")
            if differ:
                self.problems.append(f"{len(differ)} items differ between the replicas after replication "
                                     f"settled, e.g. {differ[:3]}")
            return figures

    def _decide(self, api, payment_id: str, i: int, deadline: float) -> None:
        """Approve two in four, reject one, cancel one; sent again while the answer is 503 (failing over)."""
        action = ("approve", "approve", "reject", "cancel")[i % 4]
        if action == "approve":
            reply = self._retrying(lambda: api.approve(payment_id), deadline)
        elif action == "reject":
            reply = self._retrying(lambda: api.reject(payment_id, "AM04"), deadline)
        else:
            reply = self._retrying(lambda: api.cancel(payment_id, "DUPL"), deadline)
        if reply.status not in (200, 409):
            self.problems.append(f"{action} {payment_id}: {reply.status}")


def _each_reaches(world, region: str, payment_ids: list[str], reached: Callable[[str | None], bool]) -> Callable[[], bool]:
    """A wait's predicate: has every payment's status in `region`'s replica `reached` (a status it keeps or
    passes, never leaves for one not reached)? Each look reads the payments from the first not reached yet
    and stops at the next one still short of it: a payment seen there is not read again (the drill's own
    reads, 200 payments every 0.2 s, were load on the Region it measures)."""
    remaining = list(payment_ids)

    def every_one() -> bool:
        while remaining and reached((world.payment(region, remaining[0]) or {}).get("status")):
            remaining.pop(0)
        return not remaining

    return every_one


def _stuck(world, region: str, payment_ids: list[str]) -> str:
    """What the payments a wait ran out on show: their status, owner and epoch, and their anchors' state in
    each Region (the anchor of a taken-over payment: mxflow.regions.anchor_name): a diagnosis, in `problems`."""
    from mxflow.regions import anchor_name

    shown = []
    for pid in payment_ids[:8]:
        record = world.payment(region, pid) or {}
        anchors = []
        for name in dict.fromkeys((pid, *(anchor_name(pid, e) for e in range(2, int(record.get("epoch", 1)) + 1)))):
            for r, runtime in world.runtimes.items():
                arn = f"{runtime.physical('PaymentStateMachine').replace(':stateMachine:', ':execution:')}:{name}"
                with contextlib.suppress(Exception):
                    described = runtime.client("stepfunctions").describe_execution(executionArn=arn)
                    anchors.append(f"{r}:{name[-4:]}:{described['status']}{':' + described['error'] if described.get('error') else ''}")
        # the other replica's view and the last events (status, actor, note: no payment data) show how it got here
        other = world.payment(world.peer_of(region), pid) or {}
        events = [f"{e.get('time', '')[11:23]} {e.get('status')} {e.get('actor')}" + (f" ({e['note'][:60]})" if e.get("note") else "")
                  for e in (record.get("history") or [])[-4:]]
        shown.append(f"{pid[:8]} {record.get('status')} owner {record.get('ownerRegion')} e{record.get('epoch')} "
                     f"(in {world.peer_of(region)}: {other.get('status')} owner {other.get('ownerRegion')} "
                     f"e{other.get('epoch')}) anchors [{', '.join(anchors)}] events [{'; '.join(events)}]")
    runs = []   # the recovery runs of both Regions (takeovers, reconciliations): did one miss these payments?
    for r, runtime in world.runtimes.items():
        with contextlib.suppress(Exception):
            sfn = runtime.client("stepfunctions")
            runs += [f"{r}:{e['name']}:{e['status']}" for e in sfn.list_executions(
                stateMachineArn=runtime.physical("RecoveryStateMachine"))["executions"]]
    return f"{len(payment_ids)} payments stuck: " + "; ".join(shown) + f"; recovery runs [{', '.join(runs)}]"


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 2)


def _probe_written(keys: dict) -> bool:
    """The items each Region's health check rewrites every probe (its health record and probe item): they
    are in flight while the Regions run, so the replicas' comparison leaves them out."""
    return keys["pk"]["S"].startswith(("region#", "probe#"))


def _status(sfn, execution_arn: str) -> str | None:
    try:
        return sfn.describe_execution(executionArn=execution_arn)["status"]
    except Exception:  # noqa: BLE001 - not started yet
        return None
