"""Entry point of the `mxflow` command line (the commands of README.md).

Each subcommand lives in its own module and registers itself through `add_parser(subparsers)`;
this module only wires them together and maps outcomes to exit codes:
0 success, 1 a negative result (for example an invalid message), 2 a usage error.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

# module name -> the subcommands it provides (imported lazily, so `mxflow validate` never loads moto)
SUBCOMMAND_MODULES = {
    "validate": "mxflow_cli.validate_cmd",
    "schemas": "mxflow_cli.schemas_cmd",
    "local": "mxflow_cli.local_cmd",
    "token": "mxflow_cli.local_cmd",
    "invoke": "mxflow_cli.invoke_cmd",
    "demo": "mxflow_cli.demo_cmd",
    "restore": "mxflow_cli.restore_cmd",
    "drill": "mxflow_cli.drill_cmd",
    "engine": "mxflow_cli.engine_cmd",
}


class UsageError(Exception):
    """A command-line usage error: exit code 2 with a message, never a traceback."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse exits 2 on usage errors; keep that, print cleanly
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def help_without_subcommand(parser: argparse.ArgumentParser):
    """The `func` of a command that needs a subcommand: its help on stderr and exit code 2."""

    def run(_args) -> int:
        parser.print_help(sys.stderr)
        return 2

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mxflow", description="ISO 20022 payment workflow: validation, local runtime, demo")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    seen = set()
    for name, module_name in SUBCOMMAND_MODULES.items():
        if module_name in seen:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:  # subcommand not built yet
                continue
            raise
        seen.add(module_name)
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(f"mxflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the command line shows a message, never a traceback
        if os.environ.get("MXFLOW_DEBUG"):
            raise
        print(f"mxflow: error: {type(exc).__name__}: {exc} (set MXFLOW_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    # Run through the importable module, so that subcommands and this entry point share one UsageError.
    from mxflow_cli.main import main as _main

    sys.exit(_main())
