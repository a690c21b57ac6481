"""`mxflow local up` (the embedded runtime and the local HTTP API) and `mxflow token` (a bearer token
the local API accepts), as README.md ("Run the API locally") describes them.

`mxflow local up` publishes its token-signing key in the state directory ($MXFLOW_STATE_DIR, default
~/.mxflow/) so that `mxflow token`, another process, can sign with it; the file goes when it stops. It
also serves the runtime's AWS service APIs for the AWS CLI and boto3 (mxflow_local.aws_endpoint) and
publishes that endpoint there too; `mxflow local env` prints the environment that reaches it.
"""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path


def add_parser(subparsers) -> None:
    """Register `local up` and `token` (called by mxflow_cli.main)."""
    from mxflow_cli.main import help_without_subcommand

    local = subparsers.add_parser("local", help="the embedded local runtime")
    local_sub = local.add_subparsers(dest="local_command", metavar="SUBCOMMAND")
    up = local_sub.add_parser(
        "up",
        help="start the embedded runtime and the local HTTP API in the foreground",
        description="Start the SAM application on the embedded runtime (moto, in-process handlers) and the "
        "local HTTP API on 127.0.0.1; prints the base URL once ready; stops on Ctrl-C / SIGTERM.",
    )
    up.add_argument("--port", type=int, default=3000, help="port on 127.0.0.1 (0 picks a free one; default 3000)")
    up.add_argument("--template", default="template.yaml", help="SAM template (default template.yaml)")
    up.add_argument("--schema-dir", help="XSD directory searched before $MXFLOW_SCHEMA_DIR's, the schemas added "
                    "with `mxflow schemas add` and the built-in set (without either: ../shared/iso20022/xsd "
                    "when present)")
    up.add_argument("--parameter-overrides", nargs="+", default=[], metavar="K=V",
                    help="template parameters as sam deploy takes them: K=V ... or ParameterKey=K,ParameterValue=V")
    up.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
                    help="the local Region (default $AWS_DEFAULT_REGION or us-east-1)")
    up.add_argument("--aws-port", type=int, default=None,
                    help="port on 127.0.0.1 of the runtime's AWS service APIs, for the AWS CLI and boto3 "
                    "(default 3001, as `sam local start-lambda`; a free port when --port is 0; 0 picks a free one)")
    up.add_argument("--no-aws-endpoint", action="store_true",
                    help="do not serve the AWS service APIs")
    up.add_argument("--regions", metavar="PRIMARY,PEER",
                    help="two Regions in this process (docs/regions.md), e.g. us-east-1,us-west-2: the payment table "
                    "replicated between them, each probing its health; the second Region's API and AWS endpoint "
                    "listen on --port + 1 and --aws-port + 1 (the AWS endpoints default to 3002 and 3003 then)")
    up.add_argument("--lag-ms", type=float, default=0.0,
                    help="with --regions: the replication lag between the two replicas in ms (default 0)")
    up.add_argument("--probe-seconds", type=float, default=1.0,
                    help="with --regions: each Region's health-probe interval in seconds (default 1)")
    up.add_argument("--engine", metavar="POLICY",
                    help="also run a simulated payment engine in this process (mxflow engine simulate): it consumes "
                    "the release queue and answers through the inbound queue by POLICY -- settle-all, or KEY=VALUE "
                    "pairs joined by commas: reject-above, reject-reason, recalls (accept|refuse), refuse-reason, "
                    "return-after (seconds), return-reason")
    up.set_defaults(func=run_local_up)
    env = local_sub.add_parser(
        "env",
        help="print the environment that points the AWS CLI and boto3 at the running 'mxflow local up'",
        description='Print export lines for the running local runtime\'s AWS endpoint: eval "$(mxflow local env)".',
    )
    env.add_argument("--json", action="store_true", help="everything published: endpoint, environment, the "
                     "stack's resources (logical id -> name, URL or ARN) per Region")
    env.add_argument("--region", help="the Region to use (default: the runtime's)")
    env.set_defaults(func=run_local_env)
    local.set_defaults(func=help_without_subcommand(local))

    token = subparsers.add_parser(
        "token",
        help="print a bearer token the running local API accepts",
        description="Print an access token signed with the key of the running 'mxflow local up'.",
    )
    token.add_argument("--scope", nargs="+", action="extend", required=True, metavar="SCOPE",
                       help="OAuth scopes: payments/submit, payments/read, payments/decide, payments/operate, "
                            "payments/engine (the payment engine's: POST /engine/messages)")
    token.add_argument("--client", default="local", help="the API client id (default local)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (default 3600)")
    token.set_defaults(func=run_token)


class LocalUsageError(ValueError):
    """A usage error of these subcommands: a message and exit code 2."""


def _usage_error(message: str) -> int:
    print(f"mxflow: error: {message}", file=sys.stderr)
    return 2


def parse_parameter_overrides(items) -> dict:
    """`K=V K2=V2` or `ParameterKey=K,ParameterValue=V`, as `sam deploy --parameter-overrides` takes
    them (one argument may hold several, space-separated, shell-quoted)."""
    values: dict = {}
    for item in items or ():
        try:
            tokens = shlex.split(item)
        except ValueError as exc:
            raise LocalUsageError(f"bad parameter override {item!r}: {exc}") from None
        for token in tokens:
            if token.startswith("ParameterKey="):
                fields = dict(part.split("=", 1) for part in token.split(",", 1) if "=" in part)
                key, value = fields.get("ParameterKey"), fields.get("ParameterValue")
                if not key or value is None:
                    raise LocalUsageError(f"bad parameter override {token!r}: expected ParameterKey=K,ParameterValue=V")
            elif "=" in token:
                key, value = token.split("=", 1)
                if not key:
                    raise LocalUsageError(f"bad parameter override {token!r}: expected K=V")
            else:
                raise LocalUsageError(f"bad parameter override {token!r}: expected K=V")
            values[key] = value
    return values


def local_up_settings(args) -> dict:
    """The LocalApi.start keyword arguments for `mxflow local up` (LocalUsageError on bad input)."""
    template = Path(args.template)
    if not template.is_file():
        raise LocalUsageError(f"template {template} not found (use --template)")
    if not 0 <= args.port <= 65535:
        raise LocalUsageError("--port must be between 0 and 65535")
    if args.aws_port is not None and not 0 <= args.aws_port <= 65535:
        raise LocalUsageError("--aws-port must be between 0 and 65535")
    from mxflow_cli.local_schemas import (
        configured_versions, function_environment, local_registry, schema_dirs, version_parameters,
    )

    explicit = []
    if args.schema_dir:
        schema_dir = Path(args.schema_dir)
        if not schema_dir.is_dir():
            raise LocalUsageError(f"--schema-dir {schema_dir} is not a directory")
        explicit.append(str(schema_dir))
    dirs = schema_dirs(explicit)
    parameters = parse_parameter_overrides(args.parameter_overrides)
    try:
        versions, _origin = configured_versions(parameters)
    except ValueError as exc:
        raise LocalUsageError(str(exc)) from None
    declared = _declared(template, version_parameters(versions))
    engine = None
    if getattr(args, "engine", None):
        from mxflow_local.engine_simulator import EnginePolicy, PolicyError

        try:
            engine = EnginePolicy.parse(args.engine)
        except PolicyError as exc:
            raise LocalUsageError(f"--engine: {exc}") from None
    regions = two_regions_of(args)
    return {"template": template, "port": args.port, "region": regions[0] if regions else args.region,
            "env_overrides": function_environment(dirs), "parameter_overrides": {**declared, **parameters},
            "registry": local_registry(explicit), "versions": versions if declared else None, "engine": engine}


def two_regions_of(args) -> tuple[str, str] | None:
    """`--regions A,B` as two different Regions (None without it); LocalUsageError on bad input."""
    if not getattr(args, "regions", None):
        return None
    regions = tuple(r.strip() for r in args.regions.split(","))
    if len(regions) != 2 or not all(regions) or regions[0] == regions[1]:
        raise LocalUsageError("--regions needs two different Regions, primary first, e.g. us-east-1,us-west-2")
    if getattr(args, "engine", None):
        raise LocalUsageError("--engine runs with one Region only (the drill and the tests drive two)")
    if not 0 <= args.lag_ms <= 60_000 or args.probe_seconds <= 0:
        raise LocalUsageError("--lag-ms must be 0-60000 and --probe-seconds positive")
    if args.port == 65535 or (args.aws_port or 0) == 65535:
        raise LocalUsageError("--regions needs the port after --port and --aws-port free for the second Region")
    return regions


def _declared(template: Path, parameters: dict) -> dict:
    """The parameters among `parameters` that the template declares (another template may have none)."""
    from mxflow_local.template import TemplateError, load_yaml

    try:
        declared = (load_yaml(template) or {}).get("Parameters") or {}
    except (TemplateError, OSError):
        return {}  # LocalApi.start reports the unreadable template
    return {name: value for name, value in parameters.items() if name in declared}


def aws_endpoint_port(args) -> int | None:
    """The AWS endpoint's port for `local up` (None: no endpoint)."""
    if args.no_aws_endpoint:
        return None
    if args.aws_port is not None:
        return args.aws_port
    from mxflow_local.aws_endpoint import DEFAULT_PORT

    if args.port == 0:
        return 0
    # two Regions: the APIs take --port and --port + 1 (3000, 3001), the AWS endpoints the next two
    return DEFAULT_PORT + 1 if getattr(args, "regions", None) else DEFAULT_PORT


def run_local_up(args) -> int:
    try:
        settings = local_up_settings(args)
    except LocalUsageError as exc:
        return _usage_error(str(exc))
    template = settings["template"]
    from mxflow_cli.local_schemas import missing_versions_note, schema_summary

    versions, registry, engine_policy = settings.pop("versions"), settings.pop("registry"), settings.pop("engine")
    if versions:
        print(f"mxflow: {schema_summary(registry)}; generating {', '.join(versions.message_ids())}",
              file=sys.stderr, flush=True)
    note = missing_versions_note(versions, registry) if versions else None
    if note:
        print(f"mxflow: warning: {note}", file=sys.stderr, flush=True)
    aws_port = aws_endpoint_port(args)
    regions = two_regions_of(args)
    if regions:
        return _run_two_regions(args, settings, regions, aws_port)

    stop = threading.Event()

    def request_stop(signum, _frame):
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    from mxflow_local.auth import publish_signing_key, withdraw_signing_key
    from mxflow_local.http_api import LocalApi
    from mxflow_local.template import TemplateError

    try:
        try:
            api = LocalApi.start(**settings)
        except OSError as exc:
            print(f"mxflow: error: cannot start the local API on 127.0.0.1:{args.port}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 1
        except TemplateError as exc:  # unreadable template, unknown or invalid parameter override, ...
            return _usage_error(str(exc))
        except ValueError as exc:  # the template's routes cannot be served (duplicate route, bad method, ...)
            print(f"mxflow: error: {exc}", file=sys.stderr)
            return 1
        endpoint = endpoint_file = None
        try:
            try:
                key_file = publish_signing_key(api.issuer, url=api.url)
            except OSError as exc:
                print(f"mxflow: error: cannot write the token-signing key in the state directory "
                      f"(set MXFLOW_STATE_DIR): {exc}", file=sys.stderr)
                return 1
            if aws_port is not None:
                endpoint, endpoint_file = _start_aws_endpoint(api.runtime, aws_port)
                if endpoint is None:
                    return 1
            print(api.url, flush=True)
            started = getattr(api.runtime, "start_seconds", None)
            print(f"mxflow: local API for {template} in {args.region}"
                  f"{f' (runtime started in {started:.2f} s)' if started else ''}; token key in {key_file}; "
                  "Ctrl-C to stop", file=sys.stderr, flush=True)
            if api.console is not None:
                print(f"mxflow: operations console at {api.url}/console/ - sign in once with "
                      f"{api.console.sign_in_link(api.url)} (a one-time link), or with a token from "
                      "`mxflow token --scope payments/read payments/decide payments/operate`",
                      file=sys.stderr, flush=True)
            if endpoint is not None:
                _print_aws_endpoint(endpoint, endpoint_file)
            else:
                print("mxflow: no AWS endpoint (--no-aws-endpoint)", file=sys.stderr, flush=True)
            engine = _start_engine(api.runtime, engine_policy, registry, versions) if engine_policy else None
            while not stop.wait(0.5):
                pass
            if engine is not None:
                engine.stop()
        finally:
            if endpoint is not None:
                _stop_aws_endpoint(endpoint)
            withdraw_signing_key(api.issuer)
            api.close()
        print("mxflow: local API stopped", file=sys.stderr, flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run_two_regions(args, settings: dict, regions: tuple[str, str], aws_port: int | None) -> int:
    """`local up --regions A,B`: mxflow_local.two_regions.TwoRegions (the template in both Regions of this
    process, the table replicated with --lag-ms, the health probes), one local API and one AWS endpoint per
    Region; the URLs printed (one a line, the primary's first) and published in the state directory."""
    from mxflow_local.auth import publish_signing_key, withdraw_signing_key
    from mxflow_local.template import TemplateError
    from mxflow_local.two_regions import TwoRegions

    def next_port(port: int) -> int:
        return port + 1 if port else 0

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda _signum, _frame: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    endpoints: list = []
    try:
        # The health probes start with the Regions and their functions print (Powertools' metrics, on stdout
        # as in Lambda): until the URLs are printed that goes to stderr, so they are stdout's first lines.
        startup_output = contextlib.redirect_stdout(sys.stderr)
        startup_output.__enter__()
        try:
            world = TwoRegions(settings["template"], regions=regions, lag_ms=args.lag_ms,
                               probe_seconds=args.probe_seconds, parameter_overrides=settings["parameter_overrides"],
                               env_overrides=settings["env_overrides"],
                               ports=(args.port, next_port(args.port))).start()
        except OSError as exc:
            print(f"mxflow: error: cannot start the local APIs on 127.0.0.1:{args.port} and the next port: "
                  f"{exc.strerror or exc}", file=sys.stderr)
            return 1
        except TemplateError as exc:
            return _usage_error(str(exc))
        except ValueError as exc:
            print(f"mxflow: error: {exc}", file=sys.stderr)
            return 1
        finally:
            if "world" not in locals():
                startup_output.__exit__(None, None, None)
        issuer = world.api(regions[0]).issuer
        try:
            try:
                key_file = publish_signing_key(issuer, url=world.api(regions[0]).url)
            except OSError as exc:
                print(f"mxflow: error: cannot write the token-signing key in the state directory "
                      f"(set MXFLOW_STATE_DIR): {exc}", file=sys.stderr)
                return 1
            endpoint_file = None
            try:
                if aws_port is not None:
                    endpoints, endpoint_file = _start_aws_endpoints([world.runtimes[r] for r in regions],
                                                                    [aws_port, next_port(aws_port)])
                    if not endpoints:
                        return 1
                healthy = _both_healthy(world, regions, issuer, timeout=max(30.0, 20 * args.probe_seconds))
            finally:
                startup_output.__exit__(None, None, None)
            if not healthy:
                print("mxflow: warning: the two Regions did not both report healthy in time; they refuse payments "
                      "(503) until they do (GET /regions)", file=sys.stderr, flush=True)
            for region in regions:
                print(world.api(region).url, flush=True)
            print(f"mxflow: two Regions of {settings['template']}: "
                  + "; ".join(f"{r} at {world.api(r).url}" for r in regions)
                  + f" (one token works in both; key in {key_file}); replication lag {args.lag_ms:g} ms, health "
                  f"probes every {args.probe_seconds:g} s; Ctrl-C to stop", file=sys.stderr, flush=True)
            for endpoint in endpoints:
                _print_aws_endpoint(endpoint, endpoint_file)
            if not endpoints:
                print("mxflow: no AWS endpoint (--no-aws-endpoint)", file=sys.stderr, flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            if endpoints:
                _stop_aws_endpoint(endpoints)
            withdraw_signing_key(issuer)
            world.close()
        print("mxflow: local APIs stopped", file=sys.stderr, flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _both_healthy(world, regions, issuer, *, timeout: float) -> bool:
    """Wait (bounded) until GET /regions shows both Regions healthy with a lease: before their first good
    probes a Region refuses payments with 503, so the URLs are printed once they serve."""
    from mxflow_local.client import PaymentsClient

    client = PaymentsClient(world.api(regions[0]).url, issuer.issue_token(["payments/operate"], "local-up"), timeout=5)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = (client.request("GET", "/regions").json or {}).get("regions", [])
        if len(shown) == 2 and all(r.get("status") == "healthy" and "leaseUntil" in r for r in shown):
            return True
        time.sleep(0.2)
    return False


def _start_engine(runtime, policy, registry, versions):
    """The simulated payment engine of `local up --engine` on this runtime's queues (a thread)."""
    from mxflow_local.engine_simulator import for_runtime

    if "EngineInboundQueue" not in runtime.record.resources:
        print("mxflow: warning: --engine: the template has no EngineInboundQueue; no engine runs", file=sys.stderr)
        return None
    from mxflow.iso20022 import CBPR_PLUS_VERSIONS

    chosen = (versions or CBPR_PLUS_VERSIONS).installed(registry)[0]
    engine = for_runtime(runtime, policy, registry=registry, versions=chosen).start()
    print(f"mxflow: simulated payment engine: {policy.describe()}; pacs.004 "
          f"{engine.return_version or 'has no installed schema (returns are not sent)'}", file=sys.stderr, flush=True)
    return engine


def _start_aws_endpoint(runtime, port: int):
    """(the runtime's AWS endpoint, started, and the file it is published in); (None, None) after a message
    when it cannot be."""
    endpoints, published = _start_aws_endpoints([runtime], [port])
    return (endpoints[0] if endpoints else None), published


def _start_aws_endpoints(runtimes: list, ports: list[int]):
    """(one AWS endpoint per runtime, started, and the file they are published in); ([], None) after a
    message when they cannot be."""
    from mxflow_local.aws_endpoint import AwsEndpoint, publish_endpoint

    endpoints = []
    for runtime, port in zip(runtimes, ports):
        try:
            endpoints.append(AwsEndpoint.start(runtime, port=port))
        except OSError as exc:
            for started in endpoints:
                started.close()
            print(f"mxflow: error: cannot serve the AWS endpoint on 127.0.0.1:{port}: {exc.strerror or exc} "
                  "(choose another with --aws-port, 0 for a free one, or turn it off with --no-aws-endpoint)",
                  file=sys.stderr)
            return [], None
    try:
        return endpoints, publish_endpoint(*endpoints)
    except OSError as exc:
        for endpoint in endpoints:
            endpoint.close()
        print(f"mxflow: error: cannot write the AWS endpoint in the state directory (set MXFLOW_STATE_DIR): {exc}",
              file=sys.stderr)
        return [], None


def _print_aws_endpoint(endpoint, published_file) -> None:
    from mxflow_local.aws_endpoint import SQS_CLI_NOTE, shell_exports

    print(f"mxflow: AWS service APIs of this runtime at {endpoint.url} (listening on 127.0.0.1 only; the Region "
          f"of each request is taken from its signature, the stack is in {endpoint.region}). For the AWS CLI and "
          f"boto3:\n{shell_exports(endpoint.environment())}\n"
          f"mxflow: written to {published_file} ('eval \"$(mxflow local env)\"' sets it); {SQS_CLI_NOTE}",
          file=sys.stderr, flush=True)


def _stop_aws_endpoint(endpoint) -> None:
    """Withdraw and close the endpoint (or the endpoints, one per Region, given as a list)."""
    from mxflow_local.aws_endpoint import withdraw_endpoint

    endpoints = endpoint if isinstance(endpoint, list) else [endpoint]
    withdraw_endpoint(endpoints[0])
    for each in endpoints:
        each.close()


def run_local_env(args) -> int:
    from mxflow_local.auth import NoRunningServer
    from mxflow_local.aws_endpoint import aws_environment, load_published_endpoint, shell_exports

    try:
        state = load_published_endpoint()
    except NoRunningServer as exc:
        return _usage_error(str(exc))
    region = args.region or state["region"]
    if region not in state["regions"]:
        return _usage_error(f"--region {region}: the running runtime serves {', '.join(state['regions'])}")
    # one endpoint per Region with `local up --regions`; "endpoints" is absent in files of older versions
    environment = aws_environment((state.get("endpoints") or {}).get(region, state["endpointUrl"]), region)
    if args.json:
        print(json.dumps({**state, "region": region, "environment": environment}, indent=2))
    else:
        print(shell_exports(environment))
    return 0


def run_token(args) -> int:
    from mxflow_local.auth import NoRunningServer, load_published_issuer

    if args.ttl <= 0:
        return _usage_error("--ttl must be a positive number of seconds")
    scopes = [s for s in args.scope if s.strip()]
    if not scopes:
        return _usage_error("--scope needs at least one scope")
    try:
        issuer, _state = load_published_issuer()
    except NoRunningServer as exc:
        return _usage_error(str(exc))
    print(issuer.issue_token(scopes, args.client, ttl=args.ttl, now=time.time()))
    return 0
