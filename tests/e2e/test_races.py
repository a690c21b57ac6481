"""Races through the running API (issue 8, figure 3), on a real `mxflow local up` in its own process.

- Submissions: N concurrent POST /payments, 70% distinct messages, 20% identical resubmissions of one of
  them and 10% conflicting ones (the same identity -- sender, MsgId, EndToEndId, UETR -- with other
  bytes), all in flight at once. Exactly one payment per identity: one 202, 200 for each identical
  resubmission, 409 AM05 for each message with other bytes than the one that won.
- Decisions: M pending payments, each sent approve, reject and cancel at once. One decision per payment:
  one 200, the others 409; the status is the winner's; exactly one message on the release queue for
  each approved payment and none for the others (read through the runtime's AWS endpoint).
- Decisions racing the decision timeout: K pending payments on a server with a short
  DecisionTimeoutSeconds (--parameter-overrides), each decided around the moment its wait times out.
  Either the decision won (200, its status) or the timeout did (409, RJCT AB06); never both.
- Nothing stuck: every payment ends in its expected status within a bounded wait.

`make test` runs bounded sizes (a few minutes on two cores); `make reliability` runs the issue's sizes
(N=200, M=100) and prints the figures as JSON. Every loop and wait is bounded.
"""
from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest

from local_up import local_up  # beside this file
from mxflow_local.sample_messages import credit_transfer

FULL = os.environ.get("MXFLOW_RELIABILITY") == "full"
# (submissions N, decision races M, timeout races K, client threads)
BOUNDED = {"submissions": 40, "decisions": 15, "timeouts": 8, "threads": 16}
ISSUE = {"submissions": 200, "decisions": 100, "timeouts": 40, "threads": 32}
DECISION_TIMEOUT_S = 8        # the timeout races' server
TERMINAL_WAIT_S = 600         # bound on waiting for every payment to settle
DECISION_STATUS = {"approve": "ACSC", "reject": "RJCT", "cancel": "CANC"}

full_only = pytest.mark.skipif(not FULL, reason="the issue's sizes: make reliability (MXFLOW_RELIABILITY=full)")


def installed_versions(versions) -> list[str]:
    """The generated message versions as parameter overrides (K=V): CBPR+'s, or the newest installed
    where one has no schema (tests/e2e/conftest.py `versions`), so a cancel's camt.029 can be generated."""
    from mxflow_cli.local_schemas import version_parameters

    return [f"{key}={value}" for key, value in version_parameters(versions).items()]


@pytest.fixture(scope="module")
def server(schema_dirs, versions, tmp_path_factory):
    state, logs = tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("logs")
    with local_up(state, logs, "DecisionTimeoutSeconds=3600", "LogLevel=WARNING", *installed_versions(versions),
                  schema_dirs=schema_dirs) as running:
        yield running


@pytest.fixture(scope="module")
def timeout_server(schema_dirs, versions, tmp_path_factory):
    state, logs = tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("logs")
    with local_up(state, logs, f"DecisionTimeoutSeconds={DECISION_TIMEOUT_S}", "LogLevel=WARNING",
                  *installed_versions(versions), schema_dirs=schema_dirs) as running:
        yield running


def in_parallel(function, items, threads: int) -> list:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(function, items))


def wait_all(client, payment_ids, statuses, threads: int) -> dict[str, dict]:
    """Every payment once it reached one of `statuses` (bounded); a payment that does not is a failure."""
    deadline = time.monotonic() + TERMINAL_WAIT_S

    def settle(payment_id):
        return client.wait_for_status(payment_id, *statuses, timeout=max(1.0, deadline - time.monotonic()))

    return dict(zip(payment_ids, in_parallel(settle, payment_ids, threads)))


def pending_payments(client, count: int, threads: int) -> list[str]:
    replies = in_parallel(lambda _: client.submit(credit_transfer(uetr=str(uuid.uuid4()))), range(count), threads)
    assert all(r.status == 202 for r in replies), Counter(r.status for r in replies)
    ids = [r.json["paymentId"] for r in replies]
    settled = wait_all(client, ids, ("PDNG", "RJCT"), threads)
    assert {p["status"] for p in settled.values()} == {"PDNG"}, Counter(p["status"] for p in settled.values())
    return ids


def release_messages(running, wanted: int) -> Counter:
    """Receive and delete every message of the release queue (bounded): the count per payment id."""
    sqs = running.boto3_client("sqs")
    queue = running.resources["ReleaseQueue"].rsplit("/", 1)[-1]
    url = sqs.get_queue_url(QueueName=queue)["QueueUrl"]
    seen: Counter = Counter()
    empty, deadline = 0, time.monotonic() + 120
    while empty < 3 and time.monotonic() < deadline:
        batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                    VisibilityTimeout=600).get("Messages", [])
        empty = 0 if batch else empty + 1
        for message in batch:
            seen[json.loads(message["Body"])["paymentId"]] += 1
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if sum(seen.values()) >= wanted and not batch:
            break
    return seen


# --- submissions --------------------------------------------------------------------------------------
def submissions_race(running, size: int, threads: int, figures, key: str) -> None:
    distinct = round(size * 0.7)
    identical = round(size * 0.2)
    conflicting = size - distinct - identical
    originals = [credit_transfer(uetr=str(uuid.uuid4())) for _ in range(distinct)]
    sends = [(i, data) for i, data in enumerate(originals)]
    sends += [(i, originals[i]) for i in random.sample(range(distinct), identical)]
    # the same identity (MsgId, EndToEndId and UETR are in the bytes unchanged) with other bytes
    sends += [(i, originals[i].replace(b"Invoice 2026-1147", b"Invoice 2026-9999"))
              for i in random.sample(range(distinct), conflicting)]
    random.shuffle(sends)
    client = running.client()
    barrier = threading.Barrier(min(threads, len(sends)))

    def send(item):
        index, data = item
        try:
            barrier.wait(timeout=10)   # the first wave leaves together
        except threading.BrokenBarrierError:
            pass
        return index, data, client.submit(data)

    results = in_parallel(send, sends, threads)
    assert all(reply.status < 500 for _, _, reply in results), Counter(r.status for _, _, r in results)
    by_identity = defaultdict(list)
    for index, data, reply in results:
        by_identity[index].append((data, reply))
    outcomes: Counter = Counter()
    payment_ids = []
    for index, answers in by_identity.items():
        winners = [(data, reply) for data, reply in answers if reply.status == 202]
        assert len(winners) == 1, (index, [(r.status, r.body[:200]) for _, r in answers])
        winning_bytes, winner = winners[0]
        payment_id = winner.json["paymentId"]
        payment_ids.append(payment_id)
        for data, reply in answers:
            if reply is winner:
                outcomes["202 new"] += 1
            elif data == winning_bytes:
                assert reply.status == 200 and reply.json["paymentId"] == payment_id, (index, reply.body)
                outcomes["200 identical"] += 1
            else:
                assert reply.status == 409 and reply.json["code"] == "AM05", (index, reply.status, reply.body)
                assert reply.content_type.startswith("application/problem+json")
                outcomes["409 AM05 conflicting"] += 1
    assert len(set(payment_ids)) == distinct
    settled = wait_all(client, payment_ids, ("PDNG", "RJCT", "ACSC", "CANC"), threads)
    stuck = [p for p, v in settled.items() if v["status"] != "PDNG"]
    assert not stuck, stuck
    figures.setdefault("races", {})[key] = {
        "submissions": len(sends), "identities": distinct, "identical_resubmissions": identical,
        "conflicting": conflicting, "outcomes": dict(outcomes), "payments": len(set(payment_ids)),
        "lost": distinct - len(settled), "stuck": len(stuck)}


def test_concurrent_submissions_give_one_payment_per_identity(server, figures):
    submissions_race(server, BOUNDED["submissions"], BOUNDED["threads"], figures, "submissions_bounded")


@full_only
@pytest.mark.slow
def test_concurrent_submissions_at_the_issues_size(server, figures):
    submissions_race(server, ISSUE["submissions"], ISSUE["threads"], figures, "submissions_full")


# --- decisions ----------------------------------------------------------------------------------------
def decisions_race(running, size: int, threads: int, figures, key: str) -> None:
    client = running.client()
    release_messages(running, 0)   # start from an empty queue (earlier tests of the module released nothing)
    payment_ids = pending_payments(client, size, threads)
    requests = [(p, action) for p in payment_ids for action in ("approve", "reject", "cancel")]
    random.shuffle(requests)
    calls = {"approve": client.approve, "reject": lambda p: client.reject(p, "AM04", "insufficient cover"),
             "cancel": lambda p: client.cancel(p, "DUPL")}
    results = in_parallel(lambda item: (item, calls[item[1]](item[0])), requests, threads)
    assert all(reply.status in (200, 409) for _, reply in results), Counter(r.status for _, r in results)
    winners: dict[str, list[str]] = defaultdict(list)
    for (payment_id, action), reply in results:
        if reply.status == 200:
            winners[payment_id].append(action)
        else:
            assert reply.content_type.startswith("application/problem+json")
    assert all(len(winners[p]) == 1 for p in payment_ids), {p: winners[p] for p in payment_ids if len(winners[p]) != 1}
    expected = {p: DECISION_STATUS[winners[p][0]] for p in payment_ids}
    settled = wait_all(client, payment_ids, ("ACSC", "RJCT", "CANC"), threads)
    wrong = {p: (expected[p], v["status"]) for p, v in settled.items() if v["status"] != expected[p]}
    assert not wrong, wrong
    approved = {p for p in payment_ids if expected[p] == "ACSC"}
    released = release_messages(running, len(approved))
    assert set(released) == approved, (set(released) ^ approved)
    assert all(count == 1 for count in released.values()), {p: c for p, c in released.items() if c != 1}
    figures.setdefault("races", {})[key] = {
        "payments": size, "requests": len(requests), "winners": dict(Counter(w[0] for w in winners.values())),
        "answers": dict(Counter(reply.status for _, reply in results)), "released": sum(released.values()),
        "released_twice": sum(1 for c in released.values() if c > 1), "lost": size - len(settled),
        "stuck": 0}


def test_concurrent_decisions_give_one_decision_and_one_release(server, figures):
    decisions_race(server, BOUNDED["decisions"], BOUNDED["threads"], figures, "decisions_bounded")


@full_only
@pytest.mark.slow
def test_concurrent_decisions_at_the_issues_size(server, figures):
    decisions_race(server, ISSUE["decisions"], ISSUE["threads"], figures, "decisions_full")


# --- decisions racing the decision timeout -----------------------------------------------------------
def timeout_race(running, size: int, threads: int, figures, key: str) -> None:
    client = running.client()
    release_messages(running, 0)
    replies = in_parallel(lambda _: client.submit(credit_transfer(uetr=str(uuid.uuid4()))), range(size), threads)
    assert all(r.status == 202 for r in replies)
    ids = [r.json["paymentId"] for r in replies]

    def decide_near_the_timeout(indexed):
        index, payment_id = indexed
        client.wait_for_status(payment_id, "PDNG", timeout=120)
        # the wait starts when AwaitDecision parks (PDNG, seen here a little later): decide from 3 s before
        # to the moment it ends
        time.sleep(max(0.0, DECISION_TIMEOUT_S - 3.0 + (index % 7) * 0.5))
        action = "approve" if index % 2 == 0 else "reject"
        reply = client.approve(payment_id) if action == "approve" else client.reject(payment_id, "AM04")
        return payment_id, action, reply

    results = in_parallel(decide_near_the_timeout, list(enumerate(ids)), max(threads, size))
    settled = wait_all(client, ids, ("ACSC", "RJCT", "CANC"), threads)
    outcomes: Counter = Counter()
    approved = set()
    for payment_id, action, reply in results:
        payment = settled[payment_id]
        assert reply.status in (200, 409), (payment_id, reply.status, reply.body)
        decisions = [e for e in payment["history"] if e["status"] in ("ACSP", "RJCT", "CANC")]
        assert len(decisions) == 1, (payment_id, payment["history"])   # one decision, the winner's
        if reply.status == 200:
            assert payment["status"] == DECISION_STATUS[action], (payment_id, action, payment)
            if action == "reject":
                assert payment["reason"]["code"] == "AM04"
            outcomes[f"{action} won"] += 1
        else:
            assert payment["status"] == "RJCT" and payment["reason"]["code"] == "AB06", (payment_id, payment)
            outcomes["timeout won"] += 1
        if payment["status"] == "ACSC":
            approved.add(payment_id)
    released = release_messages(running, len(approved))
    assert set(released) == approved and all(c == 1 for c in released.values()), (released, approved)
    figures.setdefault("races", {})[key] = {
        "payments": size, "decision_timeout_s": DECISION_TIMEOUT_S, "outcomes": dict(outcomes),
        "released": sum(released.values()), "released_twice": sum(1 for c in released.values() if c > 1),
        "lost": size - len(settled), "stuck": 0}


def test_decisions_racing_the_timeout_give_one_outcome(timeout_server, figures):
    timeout_race(timeout_server, BOUNDED["timeouts"], BOUNDED["threads"], figures, "timeouts_bounded")


@full_only
@pytest.mark.slow
def test_decisions_racing_the_timeout_at_a_larger_size(timeout_server, figures):
    timeout_race(timeout_server, ISSUE["timeouts"], ISSUE["threads"], figures, "timeouts_full")
