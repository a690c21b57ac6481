"""Messages with several transactions (issue 13): a pacs.008 or pacs.009 with N transactions becomes N
payments under the `iso` profile, each with its own id, flow, decision and release; the message keeps a
record of its own that groups them and answers with the group pacs.002 once every payment is terminal.
docs/flow.md ("Messages with several transactions") describes the design and its costs.

- `receive` (the API): the group checks (the message's schemas, NbOfTxs, TtlIntrBkSttlmAmt, CtrlSum, the
  group header's rules, one identity per transaction) first: a message that fails them is rejected whole
  (status RJCT with a group pacs.002 RJCT) and no payment is created. Else the bytes are archived, the
  message record is written (RCVD) and the split is started; 202 with the message id and every
  transaction's payment id. The same message again: 200 with the same body; another message under the
  same identity, or a transaction whose payment id another payment holds: 409 (AM05).
- `split` (BulkSplitStateMachine's Split task): reads the archived message, and for each batch of its
  transactions creates the payments (RCVD, conditional puts, in parallel), records the batch's payment
  ids (a part) and starts each payment's PaymentFlow with its transaction message inline, at a bounded
  rate; stops before its time is up and says where to go on; the last call marks the message ACTC.
  Idempotent: a payment that exists is not created again, a part that exists is not written again.
- `view` / `message_file` (GET /messages/{id}...): the group's payments, counts by status and, once the
  split is complete and every payment terminal, the group pacs.002 (built once, kept with the record).
- `transaction_message`: the bytes of one payment of a message (its transaction message), rebuilt from
  the message record's layout and one ranged read of the archived message.

Pure domain, like mxflow.lifecycle: ports only (store, message store, archive, workflow), no AWS library.
"""
from __future__ import annotations

import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Mapping

from mxflow import iso20022
from mxflow.errors import (
    BulkMessageNotFound,
    Conflict,
    DuplicateIdentity,
    DuplicateMessage,
    DuplicatePayment,
    InvalidState,
    MessageNotFound,
    MessageTooLarge,
    StatusConflict,
    UnsupportedMessage,
)
from mxflow.iso20022 import bulk as iso_bulk
from mxflow.lifecycle import facts_summary, flow_input, inline_message, short_info
from mxflow.ports import TERMINAL_STATUSES

MESSAGE_RECEIVED = "received"
GROUP_REPORT = "pacs.002"
DUPLICATE_REASON = "AM05"
SPLIT_BATCH = 100             # transactions per batch: one part, then their flows
CREATE_WORKERS = 8            # conditional puts in flight at once within a batch
SPLIT_MARGIN_SECONDS = 30.0   # the split returns with this much of its time left
# Flows in flight (backpressure): the split keeps at most a window of flows in flight. It starts a flow only
# once the payment it started a window of flows earlier has left RCVD/ACTC (validated, parked or decided),
# looked at every 1/IN_FLIGHT_CHECKS of the window and for at most IN_FLIGHT_WAIT_SECONDS at a time (a
# payment stuck longer is visibly stuck, alarmed as any other, and holds the split back no more). The
# window is BulkFlowsInFlight, or 0 for the pace times IN_FLIGHT_SECONDS: in AWS (100 a second: 1,000 in
# flight, a look every 250 starts) a flow takes about a second and this never waits. Where the flows run
# slower than the pace (the local runtime: every function's environments share one machine's cores) it
# holds the split back to what the flows take, so their calls never queue past their Timeout.
IN_FLIGHT_SECONDS = 10.0
IN_FLIGHT_CHECKS = 4
IN_FLIGHT_WAIT_SECONDS = 60.0
_NOT_YET_THROUGH = ("RCVD", "ACTC")
# The group's facts the message record keeps (what the group pacs.002 needs): camelCase Facts keys.
_GROUP_FACTS = ("msgId", "creationDateTime", "headerFrom", "instructingAgentBic", "debtorAgentBic",
                "businessService", "currency")


def flows_in_flight(settings) -> int:
    """The split's window: the most flows it keeps in flight (see IN_FLIGHT_SECONDS)."""
    return max(1, int(settings.bulk_flows_in_flight or settings.bulk_start_rate * IN_FLIGHT_SECONDS))


def is_bulk(parsed, profile: str) -> bool:
    """Whether a parsed message is received as a message with several transactions: a pacs.008 or
    pacs.009 with more than one, under the `iso` profile (`cbpr+` allows one transaction per message:
    such a message stays one payment and its validation rejects it, AM18)."""
    return profile == "iso" and iso_bulk.is_bulk(parsed)


def message_key(message_id: str, content_sha256: str) -> str:
    """Where the archive keeps the message as received (one key per distinct content)."""
    return f"received/{message_id}/{content_sha256}.xml"


def group_status_of(statuses: list[str]) -> str:
    """ACSC when every transaction settled, RJCT when none did (rejected or cancelled), else PART."""
    settled = sum(1 for status in statuses if status == "ACSC")
    if settled == len(statuses):
        return "ACSC"
    return "RJCT" if settled == 0 else "PART"


class BulkMessages:
    """The messages with several transactions, on the lifecycle's ports and settings."""

    def __init__(self, lifecycle, messages):
        self.lifecycle = lifecycle
        self.messages = messages        # MessageStore
        self.store = lifecycle.store
        self.archive = lifecycle.archive
        self.workflow = lifecycle.workflow
        self.settings = lifecycle.settings
        self.clock = lifecycle.clock

    # -- receive (API) ---------------------------------------------------------------------------

    def receive(self, client_id: str, data: bytes, parsed) -> tuple[bool, dict]:
        """A message with several transactions, parsed (see the module docstring). Returns (created,
        receipt): created False for the same message again (same client, identity and bytes)."""
        settings = self.settings
        count = iso_bulk.transaction_count(parsed)
        if count > settings.max_bulk_transactions:
            raise MessageTooLarge(f"the message has {count} transactions; the limit is "
                                  f"{settings.max_bulk_transactions} (MaxBulkTransactions)")
        facts = iso20022.extract_facts(parsed)
        message_id = iso20022.message_identity(message_family=facts.message_family, sender=facts.sender_bic,
                                              msg_id=facts.msg_id)
        sha256 = iso20022.content_hash(data)
        issues = iso_bulk.group_issues(parsed, profile=settings.profile, registry=self.lifecycle.registry)
        layout = None
        payment_ids: list[str] = []
        if not issues:
            try:
                layout = iso_bulk.layout_of(data)
            except iso20022.MessageError as error:
                raise UnsupportedMessage(error.issue.message, code=error.issue.code) from None
            if len(layout) != count:
                raise UnsupportedMessage("the transactions of the message could not be located in its bytes",
                                         code="FF01")
            payment_ids = iso20022.transaction_payment_ids(parsed)
            issues = iso_bulk.duplicate_identities(payment_ids, parsed.message_id)
        existing = self._existing(message_id)
        if existing is not None:
            return False, self._again(existing, client_id, sha256, payment_ids)
        if not issues:
            self._refuse_taken_identities(payment_ids, message_id)
        received_at = self.clock()
        # The raw bytes are durable before the message exists (and before the 202).
        self.archive.put(message_key(message_id, sha256), data,
                         metadata=self.lifecycle.received_metadata(client_id, received_at))
        record = {"messageId": message_id, "clientId": client_id, "messageType": parsed.message_id,
                  "contentSha256": sha256, "receivedAt": received_at, "numberOfTransactions": count,
                  "facts": {k: v for k, v in facts.to_dict().items() if k in _GROUP_FACTS and v is not None},
                  "messages": {}}
        if issues:
            record.update(self._rejected_whole(record, facts, issues, count))
        else:
            record.update(status="RCVD", layout={"head": {"z": zlib.compress(layout.head, 9)}, "tail": layout.tail})
        try:
            record = self.messages.create_message(record, event={"actor": client_id})
        except DuplicateMessage as duplicate:  # the same message, submitted twice at once
            return False, self._again(duplicate.existing, client_id, sha256, payment_ids)
        if record["status"] == "RCVD":
            self.workflow.start_split(message_id)
        return True, self._receipt(record, payment_ids)

    def _existing(self, message_id: str) -> dict | None:
        try:
            return self.messages.get_message(message_id)
        except BulkMessageNotFound:
            return None

    def _again(self, existing: Mapping[str, Any], client_id: str, sha256: str, payment_ids: list[str]) -> dict:
        """The same message again: the same receipt (and its split started again if it never ran);
        DuplicateIdentity for other bytes or another client."""
        if existing.get("clientId") != client_id or existing.get("contentSha256") != sha256:
            raise DuplicateIdentity("a message with the same identity (sender, message id) and different content "
                                    "exists (DUPL)", code=DUPLICATE_REASON)
        if existing["status"] == "RCVD":
            self.workflow.start_split(existing["messageId"])  # named by the message id: no second split
        return self._receipt(existing, payment_ids if existing["status"] != "RJCT" else [])

    def _refuse_taken_identities(self, payment_ids: list[str], message_id: str) -> None:
        """DuplicateIdentity when a transaction's payment id is another payment's (a message submitted
        before, alone or in another message): two messages cannot be one payment."""
        for start in range(0, len(payment_ids), 100):
            for payment_id, summary in self.messages.summaries(payment_ids[start:start + 100]).items():
                if summary.get("messageId") != message_id:
                    index = payment_ids.index(payment_id) + 1
                    raise DuplicateIdentity(f"transaction {index} has the identity (sender, message id, end-to-end "
                                            "id, UETR) of an existing payment (DUPL)", code=DUPLICATE_REASON)

    def _rejected_whole(self, record: dict, facts, issues: list, count: int) -> dict:
        """What a message that fails its group checks is recorded with: RJCT, the reason (the first
        issue's code), the issues, and its group pacs.002 RJCT."""
        first = issues[0]
        reason = {"code": first.code, "additionalInfo": short_info(first.message)}
        report = self.lifecycle.generated_message(iso20022.build_group_status_report(
            facts, "RJCT", [], number_of_transactions=count, reason_code=reason["code"],
            additional_info=reason["additionalInfo"], operator_bic=self.settings.operator_bic,
            message_key=record["messageId"], versions=self.settings.message_versions))
        return {"status": "RJCT", "reason": reason, "validationErrors": [i.to_dict() for i in issues[:20]],
                "messages": {GROUP_REPORT: self.lifecycle.stored_message(record["messageId"], GROUP_REPORT, report)}}

    @staticmethod
    def _receipt(record: Mapping[str, Any], payment_ids: list[str]) -> dict:
        # the status of the submission (RCVD, or RJCT when rejected whole); GET /messages/{id} gives the rest
        return {"messageId": record["messageId"], "status": "RJCT" if record["status"] == "RJCT" else "RCVD",
                "receivedAt": record["receivedAt"], "numberOfTransactions": record["numberOfTransactions"],
                "payments": [{"paymentId": payment_id, "status": "RCVD"} for payment_id in payment_ids]}

    # -- the split (BulkSplitStateMachine) --------------------------------------------------------

    def split(self, message_id: str, start: int = 0, *, remaining_seconds: Callable[[], float] | None = None) -> dict:
        """Create the payments of transactions start.. batch by batch (see the module docstring) until
        done or the time is nearly up. Returns {"messageId", "next", "done", "created"}."""
        record = self.messages.get_message(message_id)
        count = int(record["numberOfTransactions"])
        if record["status"] != "RCVD":
            return {"messageId": message_id, "next": count, "done": True, "created": 0}
        data = self.archive.get(message_key(message_id, record["contentSha256"]))
        layout = iso_bulk.layout_of(data)
        if len(layout) != count:
            raise InvalidState(f"message {message_id}: {len(layout)} transactions found, {count} recorded")
        pacer = _Pacer(self.settings.bulk_start_rate)
        window = flows_in_flight(self.settings)
        started: list[str] = []
        created = 0
        with ThreadPoolExecutor(CREATE_WORKERS) as pool:
            for first in range(start, count, SPLIT_BATCH):
                indexes = range(first, min(first + SPLIT_BATCH, count))
                outcomes = list(pool.map(lambda i: self._create(record, layout, data, i), indexes))
                conflicts = {str(o["index"]): o["references"] for o in outcomes if o["conflict"]}
                self.messages.put_part(message_id, first, [o["paymentId"] for o in outcomes], conflicts or None)
                for outcome in outcomes:
                    if outcome["start"]:
                        self._hold_back(started, window, remaining_seconds)
                        pacer.wait()
                        self.workflow.start_flow(outcome["flow"])
                        started.append(outcome["paymentId"])
                created += sum(1 for o in outcomes if o["created"])
                following = first + SPLIT_BATCH
                if following < count and remaining_seconds is not None and remaining_seconds() < SPLIT_MARGIN_SECONDS:
                    return {"messageId": message_id, "next": following, "done": False, "created": created}
        try:
            self.messages.update_message(message_id, expected_status="RCVD", expected_version=record["version"],
                                         new_status="ACTC", event_detail={"actor": "split", "payments": count})
        except StatusConflict as conflict:
            if conflict.current_status != "ACTC":
                raise
        return {"messageId": message_id, "next": count, "done": True, "created": created}

    def _hold_back(self, started: list[str], window: int, remaining_seconds: Callable[[], float] | None) -> None:
        """Wait while the payment started `window` flows ago is not through validation (see IN_FLIGHT_SECONDS)."""
        if len(started) < window or len(started) % max(1, window // IN_FLIGHT_CHECKS):
            return
        payment_id = started[len(started) - window]
        until = time.monotonic() + IN_FLIGHT_WAIT_SECONDS
        while time.monotonic() < until and (remaining_seconds is None or remaining_seconds() > SPLIT_MARGIN_SECONDS):
            if self.store.get(payment_id)["status"] not in _NOT_YET_THROUGH:
                return
            time.sleep(0.5)

    def _create(self, message: Mapping[str, Any], layout, data: bytes, index: int) -> dict:
        """One transaction's payment, created RCVD (or found: created before, by an earlier split)."""
        start, end = layout.transactions[index]
        transaction_message = layout.transaction_message(data, index)
        facts = iso_bulk.transaction_facts(transaction_message)
        payment_id = facts.payment_id
        sha256 = iso20022.content_hash(transaction_message)
        record = {"paymentId": payment_id, "clientId": message["clientId"], "status": "RCVD",
                  "messageType": facts.message_type, "contentSha256": sha256, "receivedAt": message["receivedAt"],
                  "facts": facts_summary(facts), "messages": {}, "messageId": message["messageId"],
                  "tx": [index, start, end]}
        if facts.reference_key():
            # how a recall or an engine answer finds this payment (the ByReference index), as for any payment
            record["matchKey"] = facts.reference_key()
        gate = self.lifecycle.gate
        if gate is not None and gate.enabled:
            record["epoch"] = gate.epoch()   # the routing epoch, as the API gives a payment (docs/regions.md)
        outcome = {"index": index, "paymentId": payment_id, "created": True, "conflict": False, "start": True}
        try:
            self.store.create(record, event={"actor": message["clientId"]})
        except DuplicatePayment as duplicate:
            existing = duplicate.existing
            ours = existing.get("messageId") == message["messageId"] and existing.get("contentSha256") == sha256
            outcome.update(created=False, start=ours and existing.get("status") == "RCVD", conflict=not ours)
            if not ours:  # another payment holds this identity: this transaction is rejected (AM05)
                outcome["references"] = {k: v for k, v in (("instrId", facts.instr_id), ("endToEndId",
                                         facts.end_to_end_id), ("txId", facts.tx_id), ("uetr", facts.uetr)) if v}
        if outcome["start"]:
            outcome["flow"] = flow_input(payment_id, "validate",
                                         decisionTimeoutSeconds=int(self.settings.decision_timeout_seconds),
                                         message=inline_message(transaction_message))
        return outcome

    # -- read model (API) ------------------------------------------------------------------------

    def view(self, client_id: str, message_id: str) -> dict:
        """GET /messages/{id}: the group's payments (in message order), counts by status, and once the
        split is complete and every payment terminal the group status and its pacs.002."""
        record = self._owned(client_id, message_id)
        entries = self._entries(message_id)
        statuses = [entry["status"] for entry in entries]
        if (record["status"] == "ACTC" and len(entries) == int(record["numberOfTransactions"])
                and all(status in TERMINAL_STATUSES for status in statuses)):
            record = self._report(record, entries)
        view = {"messageId": message_id, "messageType": record.get("messageType"), "status": record["status"],
                "receivedAt": record.get("receivedAt"), "numberOfTransactions": int(record["numberOfTransactions"]),
                "payments": [{"paymentId": e["paymentId"], "status": e["status"]} for e in entries],
                "counts": dict(sorted(Counter(statuses).items())),
                "messages": sorted([MESSAGE_RECEIVED, *(record.get("messages") or {})])}
        if record["status"] in ("ACSC", "PART", "RJCT"):
            view["groupStatus"] = record["status"]
        if record.get("reason"):
            view["reason"] = {k: v for k, v in record["reason"].items() if v is not None}
        if record.get("validationErrors"):
            view["errors"] = record["validationErrors"]
        return view

    def message_file(self, client_id: str, message_id: str, name: str) -> bytes:
        """GET /messages/{id}/messages/{name}: the message as received, or its group pacs.002."""
        record = self._owned(client_id, message_id)
        if name == MESSAGE_RECEIVED:
            return self.archive.get(message_key(message_id, record["contentSha256"]))
        entry = (record.get("messages") or {}).get(name)
        if not entry:
            raise MessageNotFound(f"message {message_id} has no message {name!r} (yet)")
        return self.lifecycle.message_bytes(entry)

    def _owned(self, client_id: str, message_id: str) -> dict:
        record = self.messages.get_message(message_id)
        if record.get("clientId") != client_id:
            raise BulkMessageNotFound(message_id)  # another client's message: not found either
        return record

    def _entries(self, message_id: str) -> list[dict]:
        """Every transaction's payment id, status, reason and references, in message order."""
        entries = []
        for part in self.messages.parts(message_id):
            conflicts = part.get("conflicts") or {}
            for offset, payment_id in enumerate(part["paymentIds"]):
                index = int(part["first"]) + offset
                if str(index) in conflicts:
                    entries.append({"paymentId": payment_id, "status": "RJCT", "reasonCode": DUPLICATE_REASON,
                                    "references": conflicts[str(index)], "conflict": True})
                else:
                    entries.append({"paymentId": payment_id, "status": "RCVD"})
        summaries = {}
        ids = [e["paymentId"] for e in entries if not e.get("conflict")]
        for start in range(0, len(ids), 100):
            summaries.update(self.messages.summaries(ids[start:start + 100]))
        for entry in entries:
            summary = summaries.get(entry["paymentId"])
            if summary and not entry.get("conflict"):
                entry["status"] = summary["status"]
                entry["reasonCode"] = (summary.get("reason") or {}).get("code") if summary["status"] in ("RJCT", "CANC") else None
                facts = summary.get("facts") or {}
                entry["references"] = {k: facts[k] for k in ("instrId", "endToEndId", "txId", "uetr") if facts.get(k)}
        return entries

    def _report(self, record: dict, entries: list[dict]) -> dict:
        """Every payment is terminal: the group pacs.002 is built once and kept with the record (the
        group status becomes the message's status). Concurrent readers: one write wins, the others
        read what it wrote."""
        group_status = group_status_of([e["status"] for e in entries])
        facts = iso20022.Facts.from_dict({**(record.get("facts") or {}), "messageType": record["messageType"],
                                          "paymentId": record["messageId"]})
        transactions = [{"status": e["status"], "reasonCode": e.get("reasonCode"), **(e.get("references") or {})}
                        for e in entries]
        report = self.lifecycle.generated_message(iso20022.build_group_status_report(
            facts, group_status, transactions, number_of_transactions=len(entries),
            operator_bic=self.settings.operator_bic, message_key=record["messageId"],
            versions=self.settings.message_versions))
        stored = self.lifecycle.stored_message(record["messageId"], GROUP_REPORT, report)
        try:
            version = self.messages.update_message(
                record["messageId"], expected_status="ACTC", expected_version=record["version"],
                new_status=group_status, messages={GROUP_REPORT: stored},
                event_detail={"actor": "report", "counts": dict(Counter(e["status"] for e in entries))})
        except StatusConflict:
            return self.messages.get_message(record["messageId"])
        return {**record, "status": group_status, "version": version,
                "messages": {**(record.get("messages") or {}), GROUP_REPORT: stored}}

    # -- the bytes of one payment ------------------------------------------------------------------

    def transaction_message(self, payment: Mapping[str, Any]) -> bytes:
        """The transaction message of a payment of a message with several transactions: the message
        record's head and tail around its transaction's bytes (one ranged read of the archive),
        checked against the payment's SHA-256."""
        message = self.messages.get_message(payment["messageId"])
        _index, start, end = (int(v) for v in payment["tx"])
        layout = message["layout"]
        transaction = self.archive.get_range(message_key(message["messageId"], message["contentSha256"]), start, end)
        data = iso_bulk.assemble(zlib.decompress(layout["head"]["z"]), transaction, layout["tail"])
        if iso20022.content_hash(data) != payment.get("contentSha256"):
            raise InvalidState(f"the transaction message of payment {payment['paymentId']} does not match its SHA-256")
        return data


class _Pacer:
    """At most `rate` calls of wait() per second (a steady pace, not bursts): the split starts the
    payments' flows no faster than Lambda concurrency and the Express start quota take them."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.next_at = time.monotonic()

    def wait(self) -> None:
        now = time.monotonic()
        if self.next_at > now:
            time.sleep(self.next_at - now)
        self.next_at = max(self.next_at, now) + self.interval

