"""A payment engine for the demo, the drills and the tests (`mxflow engine simulate`, `mxflow local up
--engine POLICY`): it consumes mxflow's release queue and answers as an operator's payment engine would,
by a policy.

- A released payment (the release queue's JSON body: paymentId, uetr, the outbound message inline or by
  its archive bucket and key): pacs.002 ACSC, or RJCT with the policy's reason when its amount is above
  `reject_above`.
- A forwarded recall (messageType camt.056): camt.029 CNCL (`recalls=accept`) and, `return_after` seconds
  later, a pacs.004 returning the whole amount; or camt.029 RJCR with the policy's reason
  (`recalls=refuse`); RJCR ARJT for a payment this engine rejected.

Every answer is built by mxflow's ISO 20022 builders from the message it answers (the engine is the
sender: the outbound message's AppHdr To), checked against the installed official schema of each part
before it leaves (`check_generated`: never sent unchecked), and sent to the inbound FIFO queue (the body
is the XML; group = the payment id) or posted to POST /engine/messages. An answer whose schema is not
installed is not sent: the simulator records why and which `mxflow schemas add` enables it.

The engine honours the idempotency keys mxflow documents: a payment id (or recall id) it has answered is
answered again with the same bytes, never differently.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

POLICY_KEYS = ("reject-above", "reject-reason", "recalls", "refuse-reason", "return-after", "return-reason")
MISSING_SCHEMA_HINT = ("add it with `mxflow schemas add PATH` (an official XSD, e.g. "
                       "../shared/iso20022/xsd/{message_id}.xsd of a development checkout)")


class PolicyError(ValueError):
    """A policy that cannot be followed (a bad amount, a code of the wrong ISO set, an unknown key)."""


@dataclass(frozen=True)
class EnginePolicy:
    """How the simulated engine answers. Default: settle every payment, accept every recall and return it
    at once."""

    reject_above: Decimal | None = None     # payments above this amount are rejected (pacs.002 RJCT)
    reject_reason: str = "AM04"             # ExternalStatusReason1Code (AM04 insufficient funds)
    recalls: str = "accept"                 # accept | refuse
    refuse_reason: str = "CUST"             # ExternalPaymentCancellationRejection1Code (CUST customer decision)
    return_after: float = 0.0               # seconds between accepting a recall and its pacs.004
    return_reason: str = "FOCR"             # ExternalReturnReason1Code (FOCR following a cancellation request)

    def __post_init__(self):
        from mxflow.iso20022 import codes

        if self.recalls not in ("accept", "refuse"):
            raise PolicyError("recalls: accept or refuse")
        if not codes.is_status_reason(self.reject_reason):
            raise PolicyError(f"reject-reason {self.reject_reason!r} is not an ExternalStatusReason1Code")
        if not codes.is_cancellation_rejection_reason(self.refuse_reason):
            raise PolicyError(f"refuse-reason {self.refuse_reason!r} is not an ExternalPaymentCancellationRejection1Code")
        if not codes.is_return_reason(self.return_reason):
            raise PolicyError(f"return-reason {self.return_reason!r} is not an ExternalReturnReason1Code")
        if not 0 <= self.return_after <= 86400:
            raise PolicyError("return-after: seconds from 0 to 86400")
        if self.reject_above is not None and self.reject_above < 0:
            raise PolicyError("reject-above: an amount of 0 or more")

    @classmethod
    def parse(cls, spec: str) -> "EnginePolicy":
        """From `settle-all` or comma-separated key=value pairs of POLICY_KEYS, e.g.
        "reject-above=50000,recalls=refuse,refuse-reason=LEGL,return-after=2"."""
        values: dict[str, Any] = {}
        for part in [p.strip() for p in (spec or "").split(",") if p.strip()]:
            if part == "settle-all":
                continue
            key, sep, value = part.partition("=")
            if not sep or key not in POLICY_KEYS or not value:
                raise PolicyError(f"{part!r}: expected settle-all or KEY=VALUE with KEY one of {', '.join(POLICY_KEYS)}")
            values[key.replace("-", "_")] = value
        return cls.from_values(**values)

    @classmethod
    def from_values(cls, **values) -> "EnginePolicy":
        try:
            if values.get("reject_above") is not None:
                values["reject_above"] = Decimal(str(values["reject_above"]))
            if values.get("return_after") is not None:
                values["return_after"] = float(values["return_after"])
        except (InvalidOperation, ValueError):
            raise PolicyError("reject-above and return-after take numbers") from None
        return cls(**{k: v for k, v in values.items() if v is not None})

    def describe(self) -> str:
        parts = ["settle all" if self.reject_above is None else
                 f"reject above {self.reject_above} ({self.reject_reason}), settle the rest"]
        parts.append("accept recalls, return after "
                     f"{self.return_after:g}s ({self.return_reason})" if self.recalls == "accept"
                     else f"refuse recalls ({self.refuse_reason})")
        return "; ".join(parts)


@dataclass
class Answered:
    """One answer the engine sent (or could not send)."""

    kind: str             # pacs.002 ACSC / pacs.002 RJCT / camt.029 CNCL / camt.029 RJCR / pacs.004
    payment_id: str
    sent: bool
    message_type: str | None = None
    problem: str | None = None


@dataclass
class EngineSimulator:
    """The engine: `step()` handles what is on the release queue now and sends the returns that are due;
    `start()`/`stop()` run it on a thread."""

    policy: EnginePolicy
    sqs: Any                                   # boto3 SQS client reaching the release (and inbound) queue
    release_queue_url: str
    registry: Any                              # iso20022.SchemaRegistry: the schemas answers are checked with
    versions: Any                              # iso20022.MessageVersions of its pacs.002 and camt.029
    inbound_queue_url: str | None = None       # answers to the inbound queue ...
    post: Callable[[bytes], int] | None = None  # ... or posted (POST /engine/messages), returning the HTTP status
    s3: Any = None                             # for outbound messages too large to travel inline
    return_version: str | None = None          # pacs.004 version (None: the newest installed, if any)
    monotonic: Callable[[], float] = time.monotonic
    answered: list[Answered] = field(default_factory=list)
    _memory: dict = field(default_factory=dict)        # idempotency key -> (bytes, kind) answered
    _outcomes: dict = field(default_factory=dict)      # payment id -> "ACSC" | "RJCT"
    _payments: dict = field(default_factory=dict)      # payment id -> the outbound message's facts
    _returns: list = field(default_factory=list)       # (due, payment id, recall facts)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self):
        if (self.inbound_queue_url is None) == (self.post is None):
            raise ValueError("answer through the inbound queue or POST /engine/messages (one of them)")
        if self.return_version is None:
            from mxflow.iso20022 import PAYMENT_RETURN_VERSIONS

            installed = [v for v in PAYMENT_RETURN_VERSIONS if self.registry.has_schema(v)]
            self.return_version = installed[-1] if installed else None

    # -- running -----------------------------------------------------------------------------------------
    def start(self) -> "EngineSimulator":
        self._thread = threading.Thread(target=self._run, name="engine-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "EngineSimulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handled = self.step()
            except Exception as error:  # noqa: BLE001 - a simulator keeps going and says why
                self.answered.append(Answered("error", "-", False, problem=f"{type(error).__name__}: {error}"))
                handled = 0
            if not handled:
                self._stop.wait(0.1)

    def run(self, *, duration: float | None = None, max_answers: int | None = None) -> None:
        """In the foreground, until `duration` seconds, `max_answers` answers or stop()."""
        deadline = None if duration is None else self.monotonic() + duration
        while not self._stop.is_set():
            if deadline is not None and self.monotonic() >= deadline:
                return
            if max_answers is not None and len([a for a in self.answered if a.sent]) >= max_answers:
                return
            if not self.step():
                self._stop.wait(0.1)

    def step(self) -> int:
        """Handle the release queue's messages received now and the returns due; how many were handled."""
        with self._lock:
            handled = self._send_due_returns()
            messages = self.sqs.receive_message(QueueUrl=self.release_queue_url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=0).get("Messages", [])
            for message in messages:
                self._handle(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.release_queue_url, ReceiptHandle=message["ReceiptHandle"])
            return handled + len(messages)

    # -- answering --------------------------------------------------------------------------------------
    def _handle(self, body: dict) -> None:
        from mxflow.iso20022 import extract_facts, parse_message

        data = self._message_of(body)
        facts = extract_facts(parse_message(data))
        if str(body.get("messageType") or "").startswith("camt.056"):
            self._answer_recall(body, facts)
        else:
            self._answer_payment(body, facts)

    def _message_of(self, body: dict) -> bytes:
        if body.get("message"):
            return body["message"].encode("utf-8")
        if self.s3 is None:
            raise ValueError(f"payment {body.get('paymentId')}: the outbound message is archived and no S3 client was given")
        return self.s3.get_object(Bucket=body["bucket"], Key=body["key"])["Body"].read()

    def _answer_payment(self, body: dict, facts) -> None:
        from mxflow.iso20022 import build_status_report

        payment_id = body["paymentId"]
        self._payments[payment_id] = facts
        if ("payment", payment_id) in self._memory:  # the same payment again: the same answer
            self._resend(("payment", payment_id), payment_id)
            return
        rejected = self.policy.reject_above is not None and _amount(facts.amount) > self.policy.reject_above
        status = "RJCT" if rejected else "ACSC"
        message = build_status_report(facts, status, reason_code=self.policy.reject_reason if rejected else None,
                                      operator_bic=_engine_bic(facts), versions=self.versions)
        self._outcomes[payment_id] = status
        self._send(("payment", payment_id), f"pacs.002 {status}", payment_id, message)

    def _answer_recall(self, body: dict, recall) -> None:
        from mxflow.iso20022 import build_cancellation_answer

        payment_id, recall_id = body["paymentId"], body.get("recallId") or recall.case_id
        key = ("recall", recall_id)
        if key in self._memory:
            self._resend(key, payment_id)
            return
        engine = _engine_bic(recall)
        if self._outcomes.get(payment_id) == "RJCT":
            accepted, reason = False, "ARJT"
        else:
            accepted, reason = self.policy.recalls == "accept", self.policy.refuse_reason
        message = build_cancellation_answer(recall, accepted=accepted, reason_code=None if accepted else reason,
                                            operator_bic=engine, case_id=recall.case_id, versions=self.versions)
        self._send(key, f"camt.029 {'CNCL' if accepted else 'RJCR'}", payment_id, message)
        if accepted:
            self._returns.append((self.monotonic() + self.policy.return_after, payment_id, recall))

    def _send_due_returns(self) -> int:
        from mxflow.iso20022 import build_payment_return

        due = [r for r in self._returns if r[0] <= self.monotonic()]
        self._returns = [r for r in self._returns if r[0] > self.monotonic()]
        for _when, payment_id, recall in due:
            if self.return_version is None:
                self.answered.append(Answered("pacs.004", payment_id, False, problem=(
                    "no installed schema for any pacs.004 version the builder builds: the return is not sent "
                    "(never unchecked); " + MISSING_SCHEMA_HINT.format(message_id="pacs.004.001.09"))))
                continue
            original = self._payments.get(payment_id) or _original_of(recall)
            message = build_payment_return(original, reason_code=self.policy.return_reason,
                                           operator_bic=_engine_bic(recall), version=self.return_version,
                                           app_header=self.versions.app_header)
            self._send(("return", payment_id), "pacs.004", payment_id, message)
        return len(due)

    def _send(self, key: tuple, kind: str, payment_id: str, message: bytes) -> None:
        from mxflow.iso20022 import GeneratedMessageError, check_generated, parse_message

        message_type = parse_message(message).message_id
        try:
            check_generated(message, self.registry)
        except GeneratedMessageError as error:
            missing = getattr(error, "message_id", None)
            hint = f"; {MISSING_SCHEMA_HINT.format(message_id=missing)}" if missing else ""
            self.answered.append(Answered(kind, payment_id, False, message_type, f"not sent: {error}{hint}"))
            return
        self._memory[key] = (message, kind)
        self._deliver(payment_id, message)
        self.answered.append(Answered(kind, payment_id, True, message_type))

    def _resend(self, key: tuple, payment_id: str) -> None:
        message, kind = self._memory[key]
        self._deliver(payment_id, message)
        self.answered.append(Answered(kind + " (again)", payment_id, True))

    def _deliver(self, payment_id: str, message: bytes) -> None:
        if self.post is not None:
            status = self.post(message)
            if status >= 500:
                raise RuntimeError(f"POST /engine/messages answered {status}")
            return
        self.sqs.send_message(QueueUrl=self.inbound_queue_url, MessageBody=message.decode("utf-8"),
                              MessageGroupId=payment_id)


def _amount(text: str | None) -> Decimal:
    try:
        return Decimal(text or "0")
    except InvalidOperation:
        return Decimal(0)


def _engine_bic(facts) -> str:
    """The engine's BIC: whom the message it answers was addressed to (its AppHdr To)."""
    return facts.header_to or facts.instructed_agent_bic or "ENGNGB2LXXX"


def _original_of(recall):
    """The facts of the payment a forwarded camt.056 names (its Orgnl* references), for a pacs.004 when
    this engine did not see the payment itself (it was restarted)."""
    from mxflow.iso20022 import Facts

    return replace(Facts(message_type=recall.original_msg_nm_id or "pacs.008.001.08"),
                   payment_id=recall.original_payment_id or recall.payment_id, msg_id=recall.original_msg_id,
                   creation_date_time=recall.original_creation_date_time, instr_id=recall.original_instr_id,
                   end_to_end_id=recall.original_end_to_end_id, tx_id=recall.original_tx_id, uetr=recall.original_uetr,
                   amount=recall.original_amount, currency=recall.original_currency,
                   settlement_date=recall.original_settlement_date, header_from=recall.header_from)


def for_runtime(runtime, policy: EnginePolicy, *, registry, versions, via: str = "queue", post=None) -> EngineSimulator:
    """A simulator on a LocalRuntime's own queues and clients (the demo, `local up --engine`, the tests)."""
    return EngineSimulator(policy, sqs=runtime.client("sqs"), release_queue_url=runtime.physical("ReleaseQueue"),
                           inbound_queue_url=runtime.physical("EngineInboundQueue") if via == "queue" else None,
                           post=post if via == "api" else None, s3=runtime.client("s3"), registry=registry,
                           versions=versions)
