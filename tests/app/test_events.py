"""Replays every file under events/ through its function's handler (as `sam local invoke -e` would).

Each case first replays the events that bring its payment to the state the case needs (the same
files, in flow order), then checks the handler's answer. A new file under events/ without an entry
here fails `test_every_event_file_has_a_case`.
"""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

from pathlib import Path

EVENTS = Path(__file__).resolve().parents[2] / "events"
SUBMITTED = ["api/submit.json"]
VALIDATED = SUBMITTED + ["validate/valid.json"]
PARKED = VALIDATED + ["park/park.json"]

APPROVED = PARKED + ["api/approve.json"]
BULK_SUBMITTED = ["api/submit_bulk.json"]
SENT = APPROVED + ["send/send.json"]
SETTLED = SENT + ["settle/settle.json"]
RECALLED = PARKED + ["api/submit_recall.json", "validate/recall.json"]  # a camt.056 of the parked payment

# case -> (events replayed first, expected answer: an HTTP status for the API, else a dict subset)
CASES = {
    "api/submit.json": ([], 202),
    "api/submit_invalid.json": ([], 202),
    "api/submit_wrong_media_type.json": ([], 415),
    "api/submit_not_xml.json": ([], 400),
    "api/submit_without_scope.json": ([], 403),
    "api/get_payment.json": (PARKED, 200),
    "api/get_message.json": (SUBMITTED, 200),
    "api/approve.json": (PARKED, 200),
    "api/reject.json": (PARKED, 200),
    "api/reject_unknown_reason.json": (PARKED, 422),
    "api/cancel.json": (PARKED, 200),
    "api/redrive.json": (SUBMITTED, 409),
    "api/confirm_release.json": (SENT, 409),  # sent and not suspended: nothing to confirm
    "api/health.json": ([], 200),
    "api/submit_bulk.json": ([], 202),
    "api/get_bulk_message.json": (BULK_SUBMITTED, 200),
    "split/split.json": (BULK_SUBMITTED, {"done": True, "next": 3, "created": 3}),
    "journal/batch.json": ([], {"entries": 1, "records": 1}),
    "validate/valid.json": (SUBMITTED, {"outcome": "await", "status": "ACTC"}),
    "validate/invalid.json": (["api/submit_invalid.json"], {"outcome": "invalid", "status": "RJCT"}),
    "park/park.json": (VALIDATED, {"status": "PDNG", "action": "parked"}),
    "park/resume.json": (APPROVED, {"action": "resumed", "stage": "settle"}),
    "decision_timeout/timeout.json": (PARKED, {"action": "done", "status": "RJCT"}),
    "send/send.json": (APPROVED, {}),
    "settle/settle.json": (SENT, {"status": "ACSC"}),
    "sampler/scheduled.json": (PARKED, {"suspendedPayments": 0, "sampled": 1}),
    # the return leg (issue 12)
    "api/submit_recall.json": (PARKED, 202),
    "validate/recall.json": (PARKED + ["api/submit_recall.json"], {"outcome": "recall", "status": "ACTC"}),
    "recall/recall.json": (RECALLED, {"status": "CNCL", "originalPaymentId": "p-b259636f0cbab7ffa12131b3cefc3cbd"}),
    "api/engine_message.json": (SETTLED, 200),             # the engine confirms the release (pacs.002 ACSC)
    "api/engine_suspense.json": ([], 200),
    "engine_answers/answers.json": (SETTLED, {"batchItemFailures": []}),  # pacs.002 RJCT after the release
}


def event_files() -> list[str]:
    return sorted(str(p.relative_to(EVENTS)) for p in EVENTS.glob("*/*.json"))


def test_every_event_file_has_a_case():
    assert event_files() == sorted(CASES)


def replay(functions, context, call_api, name: str):
    event = json.loads((EVENTS / name).read_text())
    directory = name.split("/")[0]
    if directory == "api":
        return call_api(event)
    return functions[directory].lambda_handler(event, context)


@pytest.fixture
def no_redrive_in_moto(functions, monkeypatch):
    """moto 5.2.5 has no RedriveExecution; Step Functions answers ExecutionNotRedrivable for an
    execution that has not failed, which is what the replayed payment's is."""
    from mxflow.service import default_lifecycle

    def redrive_execution(**_):
        raise ClientError({"Error": {"Code": "ExecutionNotRedrivable",
                                     "Message": "Execution is RUNNING and cannot be redriven"}},
                          "RedriveExecution")

    monkeypatch.setattr(default_lifecycle().workflow.client, "redrive_execution", redrive_execution)


@pytest.mark.parametrize("name", sorted(CASES))
def test_replay(name, functions, context, call_api, no_redrive_in_moto):
    before, expected = CASES[name]
    for earlier in before:
        answer = replay(functions, context, call_api, earlier)
        if earlier.startswith("api/"):
            assert answer[0] < 300, (earlier, answer)
    answer = replay(functions, context, call_api, name)
    if isinstance(expected, int):
        status, body, headers = answer
        assert status == expected, body
        if status >= 400:
            assert headers["content-type"] == "application/problem+json"
            assert {"type", "title", "status", "detail"} <= set(body) and body["status"] == status
    else:
        assert expected.items() <= answer.items(), answer
