"""`mxflow engine simulate [policy options]`: a payment engine for the demo and the drills
(mxflow_local.engine_simulator). It consumes the release queue of the running `mxflow local up` (its
published AWS endpoint and stack) -- or of any deployment, given the queue URLs and AWS credentials --
and answers each payment and recall by the policy: pacs.002 to settle or reject, camt.029 to accept or
refuse a recall, pacs.004 to return a recalled payment, through the inbound FIFO queue (default) or POST
/engine/messages. Every answer is checked against its installed official schema before it is sent.

Exit 0 when stopped (Ctrl-C, --duration, --max-answers); 2 for a usage error (bad policy, nothing to
connect to).
"""
from __future__ import annotations

import json
import signal
import sys
import threading

from mxflow_cli.main import UsageError


def add_parser(subparsers) -> None:
    from mxflow_cli.main import help_without_subcommand

    engine = subparsers.add_parser("engine", help="a payment engine for the demo and the drills")
    engine_sub = engine.add_subparsers(dest="engine_command", metavar="SUBCOMMAND")
    simulate = engine_sub.add_parser(
        "simulate", help="consume the release queue and answer as a payment engine would, by a policy",
        description=__doc__.split("\n\n")[0])
    add_policy_arguments(simulate)
    simulate.add_argument("--policy", metavar="SPEC",
                          help="the policy in one argument, as `mxflow local up --engine` takes it: settle-all, or "
                               "KEY=VALUE pairs joined by commas (reject-above, reject-reason, recalls, refuse-reason, "
                               "return-after, return-reason); the options above override it")
    simulate.add_argument("--via", choices=("queue", "api"), default="queue",
                          help="answer through the inbound FIFO queue (default) or POST /engine/messages")
    simulate.add_argument("--release-queue-url", help="the release queue (default: the running local runtime's)")
    simulate.add_argument("--inbound-queue-url", help="the engine's inbound queue (default: the running local runtime's)")
    simulate.add_argument("--api-url", help="the API for --via api (default: the running local API)")
    simulate.add_argument("--token", help="a bearer token with scope payments/engine for --via api "
                                          "(default: one signed by the running local API)")
    simulate.add_argument("--region", help="the Region (default: the running local runtime's)")
    simulate.add_argument("--schema-dir", action="append", default=[],
                          help="official XSDs the answers are checked with, before the added and built-in schemas")
    simulate.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    simulate.add_argument("--max-answers", type=int, help="stop after sending this many answers")
    simulate.add_argument("--json", action="store_true", help="one JSON object per answer on stdout")
    simulate.set_defaults(func=run_simulate)
    engine.set_defaults(func=help_without_subcommand(engine))


def add_policy_arguments(parser) -> None:
    """The policy options (shared with tests that build the same parser)."""
    parser.add_argument("--reject-above", metavar="AMOUNT", help="reject payments above this amount (pacs.002 RJCT)")
    parser.add_argument("--reject-reason", metavar="CODE", help="ExternalStatusReason1Code of a rejection (default AM04)")
    parser.add_argument("--recalls", choices=("accept", "refuse"), help="accept (default) or refuse recalls")
    parser.add_argument("--refuse-reason", metavar="CODE",
                        help="ExternalPaymentCancellationRejection1Code of a refused recall (default CUST)")
    parser.add_argument("--return-after", metavar="SECONDS", help="seconds between accepting a recall and its "
                        "pacs.004 return (default 0)")
    parser.add_argument("--return-reason", metavar="CODE", help="ExternalReturnReason1Code of a return (default FOCR)")


def policy_from(args):
    """The EnginePolicy of the command line (UsageError for a policy that cannot be followed)."""
    from mxflow_local.engine_simulator import EnginePolicy, PolicyError

    try:
        base = EnginePolicy.parse(getattr(args, "policy", None) or "")
        overrides = {name: getattr(args, name) for name in ("reject_above", "reject_reason", "recalls", "refuse_reason",
                                                            "return_after", "return_reason")
                     if getattr(args, name, None) is not None}
        if not overrides:
            return base
        current = {k: getattr(base, k) for k in ("reject_above", "reject_reason", "recalls", "refuse_reason",
                                                 "return_after", "return_reason")}
        return EnginePolicy.from_values(**{**current, **overrides})
    except PolicyError as exc:
        raise UsageError(f"engine policy: {exc}") from None


def _connection(args) -> dict:
    """Queue URLs, Region, endpoint and API of what the simulator talks to."""
    found = {"release": args.release_queue_url, "inbound": args.inbound_queue_url, "region": args.region,
             "endpoint": None, "api": args.api_url, "token": args.token}
    if found["release"] and (found["inbound"] or args.via == "api"):
        return found
    from mxflow_local.auth import NoRunningServer
    from mxflow_local.aws_endpoint import load_published_endpoint

    try:
        state = load_published_endpoint()
    except NoRunningServer as exc:
        raise UsageError(f"{exc} (or give --release-queue-url and --inbound-queue-url)") from None
    region = found["region"] or state["region"]
    stack = (state.get("stacks") or {}).get(region) or {}
    resources = stack.get("resources") or {}
    found.update(region=region, endpoint=state["endpointUrl"],
                 release=found["release"] or resources.get("ReleaseQueue"),
                 inbound=found["inbound"] or resources.get("EngineInboundQueue"))
    if not found["release"] or (args.via == "queue" and not found["inbound"]):
        raise UsageError(f"the running local runtime's stack in {region} has no ReleaseQueue / EngineInboundQueue")
    return found


def _poster(args, found):
    from mxflow_local.client import PaymentsClient

    url, token = found["api"], found["token"]
    if not url or not token:
        from mxflow_local.auth import NoRunningServer, load_published_issuer

        try:
            issuer, state = load_published_issuer()
        except NoRunningServer as exc:
            raise UsageError(f"{exc} (or give --api-url and --token)") from None
        url = url or state.get("url")
        token = token or issuer.issue_token(["payments/engine"], "engine-simulator")
    client = PaymentsClient(url, token)

    def post(message: bytes) -> int:
        return client.request("POST", "/engine/messages", body=message, content_type="application/xml").status

    return post


def run_simulate(args) -> int:
    import boto3

    from mxflow_cli.local_schemas import configured_versions, local_registry
    from mxflow_local.engine_simulator import EngineSimulator

    policy = policy_from(args)
    found = _connection(args)
    registry = local_registry(args.schema_dir)
    try:
        versions = configured_versions()[0].installed(registry)[0]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    session_args = {"region_name": found["region"]} if found["region"] else {}
    client_args = {"endpoint_url": found["endpoint"]} if found["endpoint"] else {}
    if found["endpoint"]:
        from mxflow_local.aws_endpoint import ACCESS_KEY_ID, SECRET_ACCESS_KEY

        session_args.update(aws_access_key_id=ACCESS_KEY_ID, aws_secret_access_key=SECRET_ACCESS_KEY)
    session = boto3.session.Session(**session_args)
    simulator = EngineSimulator(
        policy, sqs=session.client("sqs", **client_args), s3=session.client("s3", **client_args),
        release_queue_url=found["release"], inbound_queue_url=found["inbound"] if args.via == "queue" else None,
        post=_poster(args, found) if args.via == "api" else None, registry=registry, versions=versions)
    print(f"mxflow engine: {policy.describe()}; answering through "
          f"{'the inbound queue' if args.via == 'queue' else 'POST /engine/messages'}; pacs.004 "
          f"{simulator.return_version or 'NOT INSTALLED (returns are not sent)'}; Ctrl-C to stop",
          file=sys.stderr, flush=True)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: (stop.set(), simulator.stop())) for sig in (signal.SIGINT, signal.SIGTERM)}
    printed = 0
    try:
        reporter = threading.Thread(target=simulator.run, kwargs={"duration": args.duration,
                                                                  "max_answers": args.max_answers}, daemon=True)
        reporter.start()
        while reporter.is_alive() or printed < len(simulator.answered):
            reporter.join(timeout=0.2)
            for answer in simulator.answered[printed:]:
                _print_answer(answer, args.json)
            printed = len(simulator.answered)
            if stop.is_set() and not reporter.is_alive():
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _print_answer(answer, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"kind": answer.kind, "paymentId": answer.payment_id, "sent": answer.sent,
                          "messageType": answer.message_type, "problem": answer.problem}), flush=True)
    else:
        print(f"{answer.payment_id} {answer.kind}: "
              f"{'sent ' + (answer.message_type or '') if answer.sent else answer.problem}", flush=True)
