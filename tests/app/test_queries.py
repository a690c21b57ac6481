"""The console's reads (mxflow.queries) on the in-memory fakes: the list's filters, order, cursor and its
bound on reads; the counters from the sampler's summary; the path a payment took through PaymentFlow
(from its history) and its anchor (from the execution history); the ISO reason code sets."""
from __future__ import annotations

import pytest

from mxflow.errors import InvalidRequest, PaymentNotFound
from mxflow.queries import EXAMINED_PER_REQUEST, PaymentQueries, anchor_states, decode_cursor, encode_cursor

from test_lifecycle import CLIENT_ID, approved, pending, received


@pytest.fixture
def queries(ports, settings):
    return PaymentQueries(store=ports.store, workflow=ports.workflow, region=settings.region, clock=ports.clock)


def listed(queries, **query) -> dict:
    return queries.list_payments(CLIENT_ID, {k: v if isinstance(v, list) else [str(v)] for k, v in query.items()})


def ids(answer: dict) -> list[str]:
    return [p["paymentId"] for p in answer["payments"]]


def test_the_list_is_the_callers_newest_first_with_the_fields_of_the_contract(lifecycle, message, queries):
    first, _ = received(lifecycle, message, amount="10.00")
    second, _ = received(lifecycle, message, amount="20.00", currency="USD")
    lifecycle.receive("another-client", message())
    answer = listed(queries)
    assert ids(answer) == [second, first] and answer["nextCursor"] is None
    entry = answer["payments"][0]
    assert set(entry) >= {"paymentId", "status", "messageType", "uetr", "endToEndId", "amount", "currency",
                          "receivedAt", "updatedAt", "ownerRegion"}
    assert (entry["status"], entry["amount"], entry["currency"], entry["messageType"]) == \
        ("RCVD", "20.00", "USD", "pacs.008.001.08")


def test_every_filter(lifecycle, message, queries, ports):
    uetr = "0f8b8f1c-6a55-4bd8-9c3c-3d2f5d1f0a11"
    small, _ = received(lifecycle, message, amount="5.00", currency="EUR")
    waiting = pending(lifecycle, message, amount="700.00", currency="EUR", uetr=uetr, end_to_end_id="E2E-FIND-ME")
    usd, _ = received(lifecycle, message, amount="90.00", currency="USD")
    assert ids(listed(queries, status="PDNG")) == [waiting]
    assert ids(listed(queries, status="RCVD,PDNG")) == [usd, waiting, small]
    assert ids(listed(queries, status=["rcvd", "ACSC"])) == [usd, small]
    assert ids(listed(queries, currency="usd")) == [usd]
    assert ids(listed(queries, minAmount="50", maxAmount="100")) == [usd]
    assert ids(listed(queries, minAmount="700.00")) == [waiting]
    assert ids(listed(queries, q=uetr)) == [waiting]
    assert ids(listed(queries, q="E2E-FIND-ME")) == [waiting]
    assert ids(listed(queries, q="no-such-reference")) == []
    assert ids(listed(queries, region="eu-west-1")) == [usd, waiting, small]
    assert ids(listed(queries, region="us-west-2")) == []
    received_at = {pid: ports.store.get(pid)["receivedAt"] for pid in (small, waiting, usd)}
    assert ids(listed(queries, receivedAfter=received_at[waiting])) == [usd, waiting]
    assert ids(listed(queries, receivedBefore=received_at[waiting])) == [waiting, small]
    assert ids(listed(queries, receivedAfter=received_at[waiting], receivedBefore=received_at[waiting])) == [waiting]


@pytest.mark.parametrize("query, named", [
    ({"status": ["DONE"]}, "status"), ({"currency": ["EURO"]}, "currency"), ({"minAmount": ["ten"]}, "minAmount"),
    ({"maxAmount": ["-1"]}, "maxAmount"), ({"receivedAfter": ["yesterday"]}, "receivedAfter"),
    ({"limit": ["0"]}, "limit"), ({"limit": ["101"]}, "limit"), ({"limit": ["x"]}, "limit"),
    ({"cursor": ["not-a-cursor"]}, "cursor"), ({"sort": ["asc"]}, "sort"), ({"q": ["a", "b"]}, "q"),
    ({"receivedAfter": ["2026-02-01T00:00:00Z"], "receivedBefore": ["2026-01-01T00:00:00Z"]}, "receivedAfter"),
])
def test_a_bad_query_is_refused_naming_the_parameter(queries, query, named):
    with pytest.raises(InvalidRequest, match=named):
        queries.list_payments(CLIENT_ID, query)


def test_the_cursor_walks_every_payment_once(lifecycle, message, queries):
    made = [received(lifecycle, message)[0] for _ in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        answer = listed(queries, limit=3, **({"cursor": cursor} if cursor else {}))
        seen.extend(ids(answer))
        pages += 1
        cursor = answer["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made)) and pages == 3
    assert decode_cursor(encode_cursor("2026-11-24T10:00:00.000Z", "p-1")) == ("2026-11-24T10:00:00.000Z", "p-1")


def test_an_unfiltered_page_reads_its_own_records_only(lifecycle, message, queries, ports):
    for _ in range(12):
        received(lifecycle, message)
    ports.store.page_reads.clear()
    answer = listed(queries, limit=5)
    assert len(answer["payments"]) == 5 and answer["nextCursor"] and ports.store.page_reads == [5]
    ports.store.page_reads.clear()
    rest = listed(queries, limit=10, cursor=answer["nextCursor"])
    assert len(rest["payments"]) == 7 and rest["nextCursor"] is None and ports.store.page_reads == [7]


def test_a_search_reads_the_indexes_never_the_list(lifecycle, message, queries, ports):
    wanted = received(lifecycle, message)[0]
    for _ in range(EXAMINED_PER_REQUEST + 20):
        received(lifecycle, message)
    facts = ports.store.get(wanted)["facts"]
    ports.store.page_reads.clear()
    for reference in (facts["uetr"], facts["endToEndId"], wanted):
        answer = listed(queries, q=reference)
        assert ids(answer) == [wanted] and answer["nextCursor"] is None and answer["examined"] <= 1, reference
    assert ports.store.page_reads == [1, 1, 0]   # the search's matches only; the payment id is one GetItem
    assert listed(queries, q="no-such-reference")["payments"] == []
    assert listed(queries, q=facts["uetr"], status="RJCT")["payments"] == []   # the other filters still apply


def test_a_rare_filter_reads_a_bounded_page_and_continues_with_a_cursor(lifecycle, message, queries, ports):
    wanted = received(lifecycle, message, currency="CHF")[0]
    for _ in range(EXAMINED_PER_REQUEST + 20):
        received(lifecycle, message)
    ports.store.page_reads.clear()
    first = listed(queries, currency="CHF")
    assert first["payments"] == [] and first["nextCursor"] and first["examined"] == EXAMINED_PER_REQUEST
    assert sum(ports.store.page_reads) == EXAMINED_PER_REQUEST   # never more records read than the bound
    second = listed(queries, currency="CHF", cursor=first["nextCursor"])
    assert ids(second) == [wanted] and second["nextCursor"] is None


def test_the_counters_are_the_samplers_per_client_never_computed_by_the_list(lifecycle, message, queries, ports):
    waiting = pending(lifecycle, message)
    received(lifecycle, message)
    lifecycle.receive("another-client", message())
    before = listed(queries)
    assert before["counts"] == {} and before["oldestPendingAgeSeconds"] is None   # no sample yet
    sample = lifecycle.sample()
    queries.save_summary(sample["items"], complete=sample["complete"], sampled_at=sample["sampledAt"])
    ports.clock.advance(30)
    answer = listed(queries)
    assert answer["counts"] == {"RCVD": 1, "ACTC": 0, "PDNG": 1, "ACSP": 0, "PDCR": 0, "suspended": 0}
    assert answer["countsComplete"] is True and answer["countsAsOf"] == sample["sampledAt"]
    pdng_since = ports.store.get(waiting)["statusSince"]
    assert answer["oldestPendingAgeSeconds"] >= 30 and pdng_since < answer["countsAsOf"]
    other = queries.list_payments("another-client", {})
    assert other["counts"]["RCVD"] == 1 and other["counts"]["PDNG"] == 0 and other["oldestPendingAgeSeconds"] is None


def names(machine: dict) -> list[str]:
    return [state["name"] for state in machine["states"]]


def test_the_path_of_an_approved_payment(lifecycle, message, queries, ports):
    payment_id = approved(lifecycle, message)
    sent = lifecycle.send(payment_id)
    lifecycle.settle(payment_id, sent["messageId"])
    anchor_arn = f"arn:aws:states:eu-west-1:123456789012:execution:mxflow-payment:{payment_id}"
    ports.workflow.anchors[payment_id] = {
        "executionArn": anchor_arn, "status": "SUCCEEDED", "redrivable": False, "redriveCount": 0,
        "startedAt": "2026-11-24T10:00:01.000Z",
        "events": [{"type": "ExecutionStarted", "time": "2026-11-24T10:00:01.000Z"},
                   {"type": "TaskStateEntered", "time": "2026-11-24T10:00:01.001Z", "state": "AwaitOutcome"},
                   {"type": "TaskStateExited", "time": "2026-11-24T10:00:09.000Z", "state": "AwaitOutcome"},
                   {"type": "ExecutionSucceeded", "time": "2026-11-24T10:00:09.001Z"}]}
    answer = queries.execution(CLIENT_ID, payment_id)
    validate_run, release_run, anchor = answer["stateMachines"]
    assert names(validate_run) == ["Begin", "Validate", "Route", "StartAnchor", "Done"]
    assert names(release_run) == ["Begin", "Send", "Settle", "Answer", "AnswerAnchor", "Done"]
    assert validate_run["type"] == release_run["type"] == "EXPRESS" and release_run["status"] == "SUCCEEDED"
    assert anchor["type"] == "STANDARD" and anchor["executionArn"] == anchor_arn
    assert anchor["states"] == [{"name": "AwaitOutcome", "enteredAt": "2026-11-24T10:00:01.001Z",
                                 "exitedAt": "2026-11-24T10:00:09.000Z"}]
    history = ports.store.get(payment_id)["history"]
    assert [(e["status"], e.get("state")) for e in history] == [
        ("RCVD", None), ("ACTC", "Validate"), ("PDNG", "AwaitOutcome"), ("ACSP", None), ("ACSC", "Settle")]
    with pytest.raises(PaymentNotFound):
        queries.execution("another-client", payment_id)


def test_the_path_of_an_invalid_and_of_an_auto_approved_payment(lifecycle_with, settings, message, queries):
    from dataclasses import replace
    from decimal import Decimal

    lifecycle = lifecycle_with(replace(settings, auto_approve_max_amount=Decimal("100")))
    invalid, _ = received(lifecycle, message, currency="XAU")
    lifecycle.validate(invalid)
    (run,) = queries.execution(CLIENT_ID, invalid)["stateMachines"]
    assert names(run) == ["Begin", "Validate", "Route", "Answer", "Done"]
    auto, _ = received(lifecycle, message, amount="50")
    lifecycle.validate(auto)
    (run,) = queries.execution(CLIENT_ID, auto)["stateMachines"]
    assert names(run) == ["Begin", "Validate", "Route", "Send"] and run["status"] == "RUNNING"
    sent = lifecycle.send(auto)
    lifecycle.settle(auto, sent["messageId"])
    (run,) = queries.execution(CLIENT_ID, auto)["stateMachines"]
    assert names(run) == ["Begin", "Validate", "Route", "Send", "Settle", "Answer", "Done"]
    assert run["states"][3]["exitedAt"]   # the send's time, from the release claim


def test_a_failed_anchor_shows_where_and_why():
    states = anchor_states([
        {"type": "TaskStateEntered", "time": "t1", "state": "AwaitOutcome"},
        {"type": "TaskFailed", "time": "t2", "error": "StageFailed", "cause": '{"stage": "send"}'},
        {"type": "TaskStateExited", "time": "t3", "state": "AwaitOutcome"},
        {"type": "TaskStateEntered", "time": "t4", "state": "Resume"},
        {"type": "TaskFailed", "time": "t5", "error": "States.TaskFailed", "cause": "StageFailed"},
        {"type": "ExecutionFailed", "time": "t6", "error": "States.TaskFailed"},
        {"type": "ExecutionRedriven", "time": "t7"},
        {"type": "TaskStateEntered", "time": "t8", "state": "Resume"},
        {"type": "TaskStateExited", "time": "t9", "state": "Resume"},
    ])
    assert [(s["name"], s.get("error"), s.get("redriven", False)) for s in states] == [
        ("AwaitOutcome", "StageFailed", False), ("Resume", "States.TaskFailed", False), ("Resume", None, True)]
    assert states[1]["enteredAt"] == "t4" and "exitedAt" not in states[1] and states[2]["exitedAt"] == "t9"


def test_the_reason_codes_are_the_installed_iso_code_sets(queries):
    from mxflow.iso20022 import codes

    answer = queries.reason_codes()
    reject = {c["code"]: c["name"] for c in answer["reject"]["codes"]}
    cancel = {c["code"]: c["name"] for c in answer["cancel"]["codes"]}
    assert answer["edition"] == codes.edition() and answer["reject"]["codeSet"] == "ExternalStatusReason1Code"
    assert set(reject) == set(codes.code_set(codes.STATUS_REASON).codes) and len(reject) > 100
    assert "timeout at the Instructed Agent" in reject["AB06"] and "\xa0" not in "".join(reject.values())
    assert set(cancel) == set(codes.code_set(codes.CANCELLATION_REASON).codes) and "DUPL" in cancel
