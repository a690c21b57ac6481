"""`mxflow local up` (the embedded runtime and the local HTTP API) and `mxflow token` (a bearer token
the local API accepts). Contract: ../shared/DESIGN.md section 5.

`mxflow local up` publishes its token-signing key in the state directory ($MXFLOW_STATE_DIR, default
~/.mxflow/) so that `mxflow token`, another process, can sign with it; the file goes when it stops.
"""
from __future__ import annotations

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
    up.set_defaults(func=run_local_up)
    local.set_defaults(func=help_without_subcommand(local))

    token = subparsers.add_parser(
        "token",
        help="print a bearer token the running local API accepts",
        description="Print an access token signed with the key of the running 'mxflow local up'.",
    )
    token.add_argument("--scope", nargs="+", action="extend", required=True, metavar="SCOPE",
                       help="OAuth scopes, e.g. payments/submit payments/read")
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
    return {"template": template, "port": args.port, "region": args.region,
            "env_overrides": function_environment(dirs), "parameter_overrides": {**declared, **parameters},
            "registry": local_registry(explicit), "versions": versions if declared else None}


def _declared(template: Path, parameters: dict) -> dict:
    """The parameters among `parameters` that the template declares (another template may have none)."""
    from mxflow_local.template import TemplateError, load_yaml

    try:
        declared = (load_yaml(template) or {}).get("Parameters") or {}
    except (TemplateError, OSError):
        return {}  # LocalApi.start reports the unreadable template
    return {name: value for name, value in parameters.items() if name in declared}


def run_local_up(args) -> int:
    try:
        settings = local_up_settings(args)
    except LocalUsageError as exc:
        return _usage_error(str(exc))
    template = settings["template"]
    from mxflow_cli.local_schemas import missing_versions_note, schema_summary

    versions, registry = settings.pop("versions"), settings.pop("registry")
    if versions:
        print(f"mxflow: {schema_summary(registry)}; generating {', '.join(versions.message_ids())}",
              file=sys.stderr, flush=True)
    note = missing_versions_note(versions, registry) if versions else None
    if note:
        print(f"mxflow: warning: {note}", file=sys.stderr, flush=True)

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
        try:
            try:
                key_file = publish_signing_key(api.issuer, url=api.url)
            except OSError as exc:
                print(f"mxflow: error: cannot write the token-signing key in the state directory "
                      f"(set MXFLOW_STATE_DIR): {exc}", file=sys.stderr)
                return 1
            print(api.url, flush=True)
            started = getattr(api.runtime, "start_seconds", None)
            print(f"mxflow: local API for {template} in {args.region}"
                  f"{f' (runtime started in {started:.2f} s)' if started else ''}; token key in {key_file}; "
                  "Ctrl-C to stop", file=sys.stderr, flush=True)
            while not stop.wait(0.5):
                pass
        finally:
            withdraw_signing_key(api.issuer)
            api.close()
        print("mxflow: local API stopped", file=sys.stderr, flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
