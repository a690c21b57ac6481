"""`mxflow demo`: the end-to-end demonstration that `make demo` runs.

It starts the embedded local runtime on the application's own template.yaml with the local HTTP API,
submits example payments (real pacs.008 messages generated for this run) and follows each one through
the real state machine and handlers to the end of its path: approved and released, rejected by the
consumer, invalid (schema and business rule), a duplicate and a conflicting resubmission, a cancel, a
decision timeout, and a send that fails, leaves the payment's anchor execution FAILED and is redriven;
then the return leg, with a simulated payment engine (mxflow_local.engine_simulator) answering through
its inbound queue: recalled before release (camt.056 -> CANC), recalled after release and returned
(pacs.004), a recall the engine refuses (camt.029 RJCR), and the engine rejecting after release.
Each path is printed with its history; every received and generated message is fetched through the API,
checked against the installed official XSD of its exact namespace and written under the output
directory. Exit 0 only if every path ended as expected.

Schemas: those every local command uses (local_schemas.py: schema directories, the added schemas, the
built-in set), so a bare clone runs it on the built-in set alone. Where a configured message version
(CBPR+'s by default) has no installed schema, the demo generates the newest version of that message
that has one, and says so.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mxflow_cli.main import UsageError

DEMO_ENGINE_POLICY = "reject-above=50000,reject-reason=AM04,recalls=accept,return-after=1"  # the return leg's engine
DEMO_DECISION_TIMEOUT_SECONDS = 8  # the timeout path's short demo timeout (the template's default is a day)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the end-to-end demonstration on the local runtime",
                                   description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", default="template.yaml", help="the SAM template (default: template.yaml)")
    parser.add_argument("--schema-dir", action="append", default=[],
                        help="directory of official XSDs, searched before $MXFLOW_SCHEMA_DIR's, the added schemas "
                        "and the built-in set (without either: ../shared/iso20022/xsd when present)")
    parser.add_argument("--output", default=".mxflow/demo", help="where generated messages are written")
    parser.add_argument("--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), default=None,
                        help="also show the logs, at this level: the functions' Powertools JSON logs and metrics "
                             "(stdout) and the local runtime's own log (stderr); default: warnings only, no metrics")
    parser.set_defaults(func=run)


@dataclass
class Outcome:
    title: str
    payment_id: str = "-"
    path: list[str] = field(default_factory=list)
    detail: str = ""
    problems: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)   # lines printed after the detail

    def expect(self, condition: bool, problem: str) -> None:
        if not condition:
            self.problems.append(problem)


RECEIVED_MESSAGES = ("pacs.008.001.08", "head.001.001.02")  # what mxflow_local.sample_messages builds


def demo_schemas(explicit_dirs=()):
    """(schema directories, registry, versions to generate, {configured: chosen}) for the demo: the
    configured versions, each without an installed schema replaced by the newest one that has one.
    UsageError when the demo's own messages or a generated family have no schema at all."""
    from mxflow_cli.local_schemas import configured_versions, local_registry, schema_dirs

    for directory in explicit_dirs:
        if not Path(directory).is_dir():
            raise UsageError(f"--schema-dir {directory}: not a directory")
    registry = local_registry(explicit_dirs)
    try:
        versions, _origin = configured_versions()
        chosen, changes = versions.installed(registry)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    missing = [m for m in RECEIVED_MESSAGES if not registry.has_schema(m)]
    if missing:
        raise UsageError(f"no schema installed for {', '.join(missing)} (the demo's messages): add it with "
                         "`mxflow schemas add PATH` or reinstall (make venv)")
    return schema_dirs(explicit_dirs), registry, chosen, changes


def run(args) -> int:
    template = Path(args.template)
    if not template.is_file():
        raise UsageError(f"template not found: {template} (run from the repository root)")
    dirs, registry, versions, changes = demo_schemas(args.schema_dir)
    output = Path(args.output)

    from mxflow.iso20022 import parse_message
    from mxflow_cli.local_schemas import function_environment, version_parameters
    from mxflow_local.aws_endpoint import AwsEndpoint
    from mxflow_local.client import ALL_SCOPES, PaymentsClient
    from mxflow_local.http_api import LocalApi

    overrides = {"DecisionTimeoutSeconds": str(DEMO_DECISION_TIMEOUT_SECONDS), **version_parameters(versions)}
    # The functions' own logs and metrics (JSON lines) would drown the story the demo tells: keep warnings,
    # unless --log-level asks for everything the functions would write to CloudWatch Logs.
    env = {**function_environment(dirs), "LOG_LEVEL": args.log_level or "WARNING",
           "POWERTOOLS_METRICS_DISABLED": "false" if args.log_level else "true"}
    if args.log_level:
        _log_runtime(args.log_level)
    started = time.monotonic()
    print(f"mxflow demo: starting the local runtime on {template} ...", flush=True)
    for configured, chosen in changes.items():
        print(f"  {configured} (configured) has no installed schema: this demo generates {chosen} instead "
              f"(add {configured} with `mxflow schemas add PATH` to generate it)")
    print("  schemas (message id: source):")
    for message_id in (*RECEIVED_MESSAGES, *[m for m in versions.message_ids() if m not in RECEIVED_MESSAGES]):
        print(f"    {message_id}: {registry.entry_for(message_id).label}")
    with LocalApi.start(template, port=0, parameter_overrides=overrides, env_overrides=env) as api, \
            AwsEndpoint.start(api.runtime, port=0) as aws_endpoint:
        client = PaymentsClient(api.url, api.issue_token(ALL_SCOPES, client_id="demo"))
        print(f"  local API {api.url} (Region {api.region}), up in {time.monotonic() - started:.1f}s")
        print(f"  AWS service APIs for the AWS CLI and boto3: AWS_ENDPOINT_URL={aws_endpoint.url} (127.0.0.1 only)")
        print(f"  decision timeout for this demo: {DEMO_DECISION_TIMEOUT_SECONDS}s\n", flush=True)
        demo = _Demo(client, api, registry, parse_message, output, aws_endpoint, versions)
        try:
            outcomes = demo.run_all()
        finally:
            demo.stop_engine()
    return _report(outcomes, output)


def _log_runtime(level: str) -> None:
    """The local runtime's own log (mxflow_local: requests, routes, faults) at `level` on stderr; other
    libraries at WARNING, as the Lambda runtime's root logger keeps them quiet in AWS.

    The runtime's log has its own handler: Powertools' Logger (service "mxflow") adds a filter to every
    root handler that drops records of loggers whose name contains the service name, mxflow_local's too."""
    import logging

    log_format = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.root.handlers[0].setFormatter(log_format)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(log_format)
    runtime_log = logging.getLogger("mxflow_local")
    runtime_log.addHandler(handler)
    runtime_log.setLevel(level)
    runtime_log.propagate = False


class _Demo:
    def __init__(self, client, api, registry, parse_message, output: Path, aws_endpoint, versions=None):
        self.client, self.api, self.registry, self.parse_message, self.output = client, api, registry, parse_message, output
        self.aws_endpoint, self.versions = aws_endpoint, versions
        self.engine = None  # the simulated payment engine of the return leg's paths (started for them)
        from mxflow_local.sample_messages import credit_transfer

        self.credit_transfer = credit_transfer

    # --- the paths ------------------------------------------------------------------------------------------
    def run_all(self) -> list[Outcome]:
        scenarios = [self.approved, self.rejected_by_consumer, self.invalid_schema, self.invalid_rule,
                     self.duplicate, self.cancelled, self.timed_out, self.release_fails_then_redriven]
        # The timeout path waits longest: submit it first so its clock runs while the others go.
        timeout_start = self._submit_pending(self.credit_transfer(amount="75.00"), Outcome("decision timeout"))
        outcomes = []
        if "EngineInboundQueue" in self.api.runtime.record.resources:  # the return leg (issue 12)
            scenarios += [self._with_engine(self.recalled_before_release), self.recalled_after_release_and_returned,
                          self.recall_refused, self.engine_rejects_after_release]
        for scenario in scenarios:
            print(f"- {scenario.__doc__.strip()} ...", flush=True)
            try:
                outcome = scenario(timeout_start) if scenario == self.timed_out else scenario()
            except Exception as error:  # noqa: BLE001 - a demo path that breaks is reported, not a traceback
                outcome = Outcome(scenario.__doc__.strip(), problems=[f"{type(error).__name__}: {error}"])
            outcomes.append(outcome)
            self._print(outcome)
        return outcomes

    def approved(self) -> Outcome:
        """approved and released"""
        outcome = self._submit_pending(self.credit_transfer(amount="1250.00"), Outcome("approved and released"))
        reply = self.client.approve(outcome.payment_id)
        outcome.expect(reply.status == 200, f"approve answered {reply.status}")
        payment = self.client.wait_for_status(outcome.payment_id, "ACSC", "RJCT", "CANC")
        self._finish(outcome, payment, status="ACSC", report_status="ACSC", messages=("pacs.002", "outbound"))
        return outcome

    def rejected_by_consumer(self) -> Outcome:
        """rejected by the consumer"""
        outcome = self._submit_pending(self.credit_transfer(amount="980.40"), Outcome("rejected by the consumer"))
        reply = self.client.reject(outcome.payment_id, "AM04", "Insufficient cover on the nostro")
        outcome.expect(reply.status == 200, f"reject answered {reply.status}")
        payment = self.client.wait_for(outcome.payment_id, lambda p: "pacs.002" in _names(p))
        self._finish(outcome, payment, status="RJCT", report_status="RJCT", reason="AM04", messages=("pacs.002",))
        return outcome

    def invalid_schema(self) -> Outcome:
        """invalid against the official XSD"""
        message = self.credit_transfer(amount="10.00").replace(b"<SttlmMtd>INDA</SttlmMtd>", b"<SttlmMtd>XXXX</SttlmMtd>")
        return self._invalid(message, Outcome("invalid: schema (XSD)"), reason="FF01", received_valid=False)

    def invalid_rule(self) -> Outcome:
        """invalid by a business rule"""
        message = self.credit_transfer(amount="12.345", currency="EUR")  # EUR has two decimals
        return self._invalid(message, Outcome("invalid: business rule"), reason="CH20")

    def duplicate(self) -> Outcome:
        """a duplicate and a conflicting resubmission"""
        outcome = Outcome("duplicate and conflict")
        message = self.credit_transfer(amount="300.00")
        first = self.client.submit(message)
        outcome.expect(first.status == 202, f"first submission answered {first.status}")
        outcome.payment_id = first.json.get("paymentId", "-") if first.status < 300 else "-"
        again = self.client.submit(message)
        outcome.expect(again.status == 200, f"identical resubmission answered {again.status} (200 expected)")
        outcome.expect(again.json == first.json, "identical resubmission returned a different body")
        altered = message.replace(b"Invoice 2026-1147", b"Invoice 2026-1148")
        conflict = self.client.submit(altered)
        outcome.expect(conflict.status == 409, f"same identity, other bytes answered {conflict.status} (409 expected)")
        code = (conflict.json or {}).get("code") if conflict.body else None
        outcome.detail = (f"resubmitted: {again.status} same payment; altered bytes: {conflict.status} "
                          f"{conflict.json.get('title', '') if conflict.body else ''} (code {code})")
        payment = self.client.wait_for_status(outcome.payment_id, "PDNG", "RJCT")
        outcome.expect(payment["status"] == "PDNG", f"reached {payment['status']}, PDNG expected")
        detail = outcome.detail
        self.client.approve(outcome.payment_id)  # leave nothing waiting; its messages are checked too
        payment = self.client.wait_for_status(outcome.payment_id, "ACSC", "RJCT", "CANC")
        self._finish(outcome, payment, status="ACSC", report_status="ACSC", messages=("pacs.002", "outbound"))
        outcome.detail = detail + "; then approved: " + outcome.detail
        return outcome

    def cancelled(self) -> Outcome:
        """a cancellation (camt.029, CANC)"""
        outcome = self._submit_pending(self.credit_transfer(amount="4400.00"), Outcome("cancelled"))
        reply = self.client.cancel(outcome.payment_id, "DUPL")
        outcome.expect(reply.status == 200, f"cancel answered {reply.status}")
        payment = self.client.wait_for(outcome.payment_id, lambda p: "camt.029" in _names(p))
        self._finish(outcome, payment, status="CANC", reason="DUPL", messages=("camt.029",))
        return outcome

    def timed_out(self, outcome: Outcome) -> Outcome:
        """a decision timeout"""
        payment = self.client.wait_for(outcome.payment_id, lambda p: "pacs.002" in _names(p),
                                       timeout=DEMO_DECISION_TIMEOUT_SECONDS + 60)
        self._finish(outcome, payment, status="RJCT", report_status="RJCT", reason="AB06", messages=("pacs.002",))
        return outcome

    def release_fails_then_redriven(self) -> Outcome:
        """a release that fails, then is redriven"""
        outcome = self._submit_pending(self.credit_transfer(amount="15000.00"), Outcome("release fails, redriven"))
        # The Send step fails in the flow the approval starts (its first attempt and three retries: the
        # flow hands the stage to the payment's anchor), then again in the anchor's Resume: the anchor
        # execution is FAILED at Resume, redrivable.
        self.api.runtime.faults.inject("SendFunction", kind="raise", count=8, error_type="TransientError")
        self.client.approve(outcome.payment_id)
        sfn = self.api.runtime.client("stepfunctions")
        machine = self.api.runtime.physical("PaymentStateMachine")
        execution_arn = machine.replace(":stateMachine:", ":execution:") + f":{outcome.payment_id}"
        failed = self.api.runtime.wait_execution(execution_arn, timeout=90)
        outcome.expect(failed["status"] == "FAILED", f"anchor execution ended {failed['status']}, FAILED expected")
        stuck = self.client.get(outcome.payment_id).json
        reply = self.client.redrive(outcome.payment_id)
        outcome.expect(reply.status == 202, f"redrive answered {reply.status}")
        payment = self.client.wait_for_status(outcome.payment_id, "ACSC", timeout=60)
        description = sfn.describe_execution(executionArn=execution_arn)
        outcome.expect(description.get("redriveCount") == 1, f"redriveCount {description.get('redriveCount')}")
        again = self.client.redrive(outcome.payment_id)
        outcome.expect(again.status == 409, f"redrive of a finished execution answered {again.status} (409 expected)")
        self._finish(outcome, payment, status="ACSC", report_status="ACSC", messages=("pacs.002", "outbound"))
        outcome.detail = (f"anchor execution FAILED at Resume with status {stuck.get('status')}; redriven "
                          f"(redriveCount {description.get('redriveCount')}) -> {payment['status']}; a second redrive: "
                          f"{again.status}. " + outcome.detail)
        from mxflow_local.aws_endpoint import aws_cli_command

        outcome.notes += [
            f"redriven with POST /payments/{outcome.payment_id}/redrive; the same with the AWS CLI (while the "
            "runtime runs):",
            "  " + aws_cli_command(self.aws_endpoint.url, self.api.region, "stepfunctions", "redrive-execution",
                                   "--execution-arn", execution_arn),
            f"in AWS: Step Functions console, state machine {machine.rsplit(':', 1)[-1]}, execution "
            f"{outcome.payment_id} (status Failed), Redrive"]
        return outcome

    # --- the return leg (issue 12): recalls and the payment engine's answers ------------------------------------
    def _with_engine(self, scenario):
        """`scenario`, after the simulated payment engine has started. It starts only now, after the paths
        above, so their releases are answered (pacs.002 ACSC, recorded) only after their messages were
        written out: their files stay the same from run to run."""
        def started():
            from mxflow_local.engine_simulator import EnginePolicy, for_runtime

            self.engine = for_runtime(self.api.runtime, EnginePolicy.parse(DEMO_ENGINE_POLICY), registry=self.registry,
                                      versions=self.versions).start()
            print(f"  simulated payment engine: {self.engine.policy.describe()} (mxflow engine simulate --policy "
                  f"{DEMO_ENGINE_POLICY}); answers through the inbound FIFO queue", flush=True)
            return scenario()

        started.__doc__ = scenario.__doc__
        return started

    def stop_engine(self) -> None:
        if self.engine is not None:
            self.engine.stop()

    def _submit_recall(self, original: bytes, outcome: Outcome, reason: str = "DUPL") -> str:
        from mxflow_local.sample_messages import recall

        reply = self.client.submit(recall(original, reason=reason, version=self.versions.cancellation_request))
        outcome.expect(reply.status == 202, f"camt.056 answered {reply.status}: {reply.body[:200]!r}")
        outcome.expect(reply.json.get("originalPaymentId") == outcome.payment_id,
                       f"the camt.056 matched {reply.json.get('originalPaymentId')}, {outcome.payment_id} expected")
        return reply.json["paymentId"]

    def _released_and_confirmed(self, amount: str, outcome: Outcome) -> tuple[bytes, dict]:
        """A payment approved, released, and answered by the engine (its pacs.002 recorded)."""
        message = self.credit_transfer(amount=amount)
        self._submit_pending(message, outcome)
        reply = self.client.approve(outcome.payment_id)
        outcome.expect(reply.status == 200, f"approve answered {reply.status}")
        payment = self.client.wait_for(outcome.payment_id, lambda p: "engine.pacs.002" in _names(p), timeout=60)
        return message, payment

    def _recall_item(self, outcome: Outcome, recall_id: str, status: str, reason: str | None = None) -> dict:
        recall_item = self.client.wait_for(recall_id, lambda p: p["status"] in ("CNCL", "RJCR"), timeout=60)
        recall_outcome = Outcome(f"{outcome.title} (camt.056)", payment_id=recall_id)
        self._finish(recall_outcome, recall_item, status=status, reason=reason, messages=("camt.029",))
        outcome.problems += recall_outcome.problems
        outcome.files += recall_outcome.files
        outcome.notes.append(f"camt.056 {recall_id}: {' -> '.join(recall_outcome.path)}; {recall_outcome.detail}")
        return recall_item

    def recalled_before_release(self) -> Outcome:
        """recalled before release (camt.056 -> CANC)"""
        message = self.credit_transfer(amount="2300.00")
        outcome = self._submit_pending(message, Outcome("recalled before release"))
        recall_id = self._submit_recall(message, outcome)
        self._recall_item(outcome, recall_id, "CNCL")
        payment = self.client.wait_for_status(outcome.payment_id, "CANC", "RJCT", "ACSC")
        self._finish(outcome, payment, status="CANC", messages=("camt.029",))
        return outcome

    def recalled_after_release_and_returned(self) -> Outcome:
        """recalled after release, returned (pacs.004)"""
        outcome = Outcome("recalled after release")
        message, _ = self._released_and_confirmed("3150.00", outcome)
        recall_id = self._submit_recall(message, outcome, reason="FRAD")
        self._recall_item(outcome, recall_id, "CNCL")
        if self.engine.return_version is None:  # never sent unchecked: say what is missing
            payment = self.client.get(outcome.payment_id).json
            self._finish(outcome, payment, status="ACSC", messages=("camt.056", "engine.camt.029", "camt.029"))
            outcome.notes.append("the engine accepted the recall; its pacs.004 return is not sent: no pacs.004 "
                                 "schema is installed (no package on PyPI carries one): add the official XSD "
                                 "from the ISO 20022 catalogue with `mxflow schemas add PATH`, or run with "
                                 "--schema-dir DIR")
            return outcome
        payment = self.client.wait_for(outcome.payment_id, lambda p: "returned" in p, timeout=60)
        self._finish(outcome, payment, status="ACSC",
                     messages=("camt.056", "engine.camt.029", "engine.pacs.004", "camt.029"))
        returned = payment["returned"]
        outcome.expect(returned.get("amount") == "3150.00", f"returned {returned.get('amount')}, 3150.00 expected")
        # no amount printed: the demo's output holds no payment data (tests/e2e/test_log_privacy.py)
        outcome.detail = f"returned in full ({(returned.get('reason') or {}).get('code')}); " + outcome.detail
        return outcome

    def recall_refused(self) -> Outcome:
        """recall refused by the engine (camt.029 RJCR)"""
        outcome = Outcome("recall refused")
        message, _ = self._released_and_confirmed("2750.00", outcome)
        from dataclasses import replace

        policy = self.engine.policy
        self.engine.policy = replace(policy, recalls="refuse", refuse_reason="LEGL")
        try:
            recall_id = self._submit_recall(message, outcome, reason="CUST")
            self._recall_item(outcome, recall_id, "RJCR", reason="LEGL")
        finally:
            self.engine.policy = policy
        payment = self.client.get(outcome.payment_id).json
        self._finish(outcome, payment, status="ACSC", messages=("camt.056", "engine.camt.029", "camt.029"))
        outcome.expect("returned" not in payment, "a refused recall returned the payment")
        return outcome

    def engine_rejects_after_release(self) -> Outcome:
        """the engine rejects after release (pacs.002 RJCT)"""
        outcome = Outcome("engine rejects after release")
        self._submit_pending(self.credit_transfer(amount="64000.00"), outcome)
        reply = self.client.approve(outcome.payment_id)
        outcome.expect(reply.status == 200, f"approve answered {reply.status}")
        payment = self.client.wait_for_status(outcome.payment_id, "RJCT", timeout=60)
        self._finish(outcome, payment, status="RJCT", report_status="RJCT", reason="AM04",
                     messages=("pacs.002", "pacs.002.ACSC", "engine.pacs.002", "outbound"))
        return outcome

    # --- shared steps ---------------------------------------------------------------------------------------
    def _submit_pending(self, message: bytes, outcome: Outcome) -> Outcome:
        reply = self.client.submit(message)
        outcome.expect(reply.status == 202, f"submission answered {reply.status}: {reply.body[:200]!r}")
        outcome.payment_id = reply.json["paymentId"]
        payment = self.client.wait_for_status(outcome.payment_id, "PDNG", "RJCT")
        outcome.expect(payment["status"] == "PDNG", f"reached {payment['status']}, PDNG expected")
        return outcome

    def _invalid(self, message: bytes, outcome: Outcome, *, reason: str, received_valid: bool = True) -> Outcome:
        reply = self.client.submit(message)
        outcome.expect(reply.status == 202, f"submission answered {reply.status}")
        outcome.payment_id = reply.json["paymentId"]
        payment = self.client.wait_for(outcome.payment_id, lambda p: "pacs.002" in _names(p))
        self._finish(outcome, payment, status="RJCT", report_status="RJCT", reason=reason, messages=("pacs.002",),
                     received_valid=received_valid)
        return outcome

    def _finish(self, outcome: Outcome, payment: dict, *, status: str, messages: tuple, reason: str | None = None,
                report_status: str | None = None, received_valid: bool = True) -> None:
        outcome.path = _path(payment)
        outcome.expect(payment["status"] == status, f"ended {payment['status']}, {status} expected")
        got_reason = (payment.get("reason") or {}).get("code") if isinstance(payment.get("reason"), dict) else payment.get("reason")
        if reason:
            outcome.expect(got_reason == reason, f"reason {got_reason}, {reason} expected")
        outcome.detail = f"reason {got_reason}" if got_reason else ""
        for name in messages:
            outcome.expect(name in _names(payment), f"no {name} message")
        for name in _names(payment):
            self._save_message(outcome, payment["paymentId"], name, report_status if name == "pacs.002" else None,
                               valid=received_valid or name != "received")

    def _save_message(self, outcome: Outcome, payment_id: str, name: str, expected_status: str | None,
                      *, valid: bool = True) -> None:
        """Fetch a message through the API, write it out, and check it against the installed schema of
        each of its parts (AppHdr, Document): `valid` says whether it should pass."""
        reply = self.client.message(payment_id, name)
        if reply.status != 200:
            outcome.problems.append(f"GET message {name} answered {reply.status}")
            return
        target = self.output / payment_id / f"{name}.xml"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(reply.body)
        outcome.files.append(str(target))
        from mxflow.iso20022 import validate_schema

        parsed = self.parse_message(reply.body)
        parts = [p for p in (parsed.header_namespace.rpartition(":")[2] if parsed.app_header is not None else None,
                             parsed.message_id) if p]
        missing = [p for p in parts if not self.registry.has_schema(p)]
        if missing:
            outcome.problems.append(f"{name}: no installed schema for {', '.join(missing)}: not checked")
            return
        errors = validate_schema(parsed, self.registry)
        if valid:
            outcome.expect(not errors, f"{name} fails its XSD: {[e.message for e in errors[:2]]}")
        else:
            outcome.expect(bool(errors), f"{name} passes its XSD, a schema error was expected")
        if expected_status:
            statuses = parsed.document.xpath("//*[local-name()='TxSts']/text()")
            outcome.expect(statuses == [expected_status], f"{name} TxSts {statuses}, {expected_status} expected")
        label = f"{name} ({'+'.join(parts)}, XSD {'valid' if not errors else 'INVALID'})"
        outcome.detail = (outcome.detail + "; " if outcome.detail else "") + label

    @staticmethod
    def _print(outcome: Outcome) -> None:
        mark = "ok " if not outcome.problems else "FAILED"
        print(f"  [{mark}] {outcome.title:<26} {outcome.payment_id}")
        print(f"         path: {' -> '.join(outcome.path) if outcome.path else '-'}")
        if outcome.detail:
            print(f"         {outcome.detail}")
        for note in outcome.notes:
            print(f"         {note}")
        for problem in outcome.problems:
            print(f"         PROBLEM: {problem}")
        sys.stdout.flush()


def _names(payment: dict) -> list[str]:
    messages = payment.get("messages") or []
    return list(messages) if isinstance(messages, (list, dict)) else []


def _path(payment: dict) -> list[str]:
    """The statuses a payment went through; an event that kept the status (a recall recorded, forwarded,
    answered; the engine's answer) by its name in brackets."""
    path: list[str] = []
    last = None
    for entry in payment.get("history") or []:
        status = entry.get("status", "?")
        path.append(f"({entry['event']})" if status == last and entry.get("event") else status)
        last = status
    return path


def _report(outcomes: list[Outcome], output: Path) -> int:
    failed = [o for o in outcomes if o.problems]
    print()
    print(f"Generated and received messages: {output}/<paymentId>/<name>.xml "
          f"({sum(len(o.files) for o in outcomes)} files); in the running API: GET /payments/<id>/messages/<name>")
    if failed:
        print(f"mxflow demo: {len(failed)} of {len(outcomes)} paths did NOT end as expected: "
              f"{', '.join(o.title for o in failed)}")
        return 1
    print(f"mxflow demo: all {len(outcomes)} paths ended as expected.")
    return 0
