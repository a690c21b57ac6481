"""`mxflow invoke FUNCTION -e EVENT.json`: the project's `sam local invoke`, in-process, no Docker.

Starts the embedded local runtime on the template (every resource created in moto), invokes the
function (logical id) with the event and prints the handler's result as JSON. Exit 0 on success; a
handler error prints Lambda's error shape (`errorType`, `errorMessage`, `stackTrace`) and exits 1;
an unknown function, a missing or invalid event file or a bad template is a usage error (exit 2).
Heavy imports (moto, boto3, the SAM translator) happen only when the command runs.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path


def parse_overrides(values: list[str] | None) -> dict[str, str]:
    """`K=V` items (as `sam deploy --parameter-overrides` takes them; also `ParameterKey=K,ParameterValue=V`)."""
    overrides: dict[str, str] = {}
    for item in values or []:
        for token in item.split():
            if token.startswith("ParameterKey="):
                parts = dict(part.split("=", 1) for part in token.split(",") if "=" in part)
                if "ParameterKey" in parts and "ParameterValue" in parts:
                    overrides[parts["ParameterKey"]] = parts["ParameterValue"]
                    continue
            key, sep, value = token.partition("=")
            if not sep or not key:
                from mxflow_cli.main import UsageError

                raise UsageError(f"parameter override {token!r} is not KEY=VALUE")
            overrides[key] = value
    return overrides


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("invoke", help="invoke one function of the template in-process (like sam local invoke)",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("function", metavar="FUNCTION", help="the function's logical id in the template")
    parser.add_argument("-e", "--event", required=True, help="JSON event file (e.g. events/<function>/<case>.json); '-' reads stdin")
    parser.add_argument("-t", "--template", default="template.yaml", help="SAM template (default: template.yaml)")
    parser.add_argument("--parameter-overrides", nargs="*", metavar="K=V", help="template parameter values")
    parser.add_argument("--region", default=None, help="AWS Region to emulate (default: $AWS_DEFAULT_REGION or us-east-1)")
    parser.set_defaults(func=run)


def _read_event(name: str):
    from mxflow_cli.main import UsageError

    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read event file {name}: {exc.strerror}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"event file {name} is not JSON: {exc}") from None


def run(args: argparse.Namespace) -> int:
    import os

    from mxflow_cli.main import UsageError

    overrides = parse_overrides(args.parameter_overrides)
    event = _read_event(args.event)
    template = Path(args.template)
    if not template.is_file():
        raise UsageError(f"template {template} not found (use --template)")
    from mxflow_local.runtime import LocalRuntime
    from mxflow_local.template import TemplateError

    region = args.region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    runtime = LocalRuntime(template, parameter_overrides=overrides, region=region, scheduler=False)
    try:
        runtime.start()
    except TemplateError as exc:
        raise UsageError(str(exc)) from None
    try:
        if args.function not in runtime.function_names:
            raise UsageError(f"no function {args.function} in {template}; functions: {', '.join(runtime.function_names)}")
        with contextlib.redirect_stdout(sys.stderr):   # the handler's prints/logs go to stderr, as with sam
            result = runtime.invoke(args.function, event)
    finally:
        runtime.stop()
    if result.error is not None:
        print(json.dumps(result.error, indent=2))
        return 1
    print(json.dumps(result.payload, indent=2))
    return 0
