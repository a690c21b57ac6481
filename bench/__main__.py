"""Run every benchmark section and print one JSON document (one key per section).

Each section is a module in this package with `run() -> dict`; its dict is merged at the top level
under the section's own keys (for example {"validation": {...}}). Progress goes to stderr.
"""
from __future__ import annotations

import contextlib
import importlib
import json
import sys
import time

SECTIONS = ["bench.validation", "bench.local_runtime", "bench.local_api", "bench.payments", "bench.bulk"]


def main() -> int:
    document: dict = {"generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    # The functions run in this process and write to stdout as in Lambda (Powertools' metrics print their
    # EMF document when a metric reaches 100 values, even with POWERTOOLS_METRICS_DISABLED): while the
    # sections run, stdout goes to stderr, so stdout carries the one JSON document only.
    with contextlib.redirect_stdout(sys.stderr):
        _run_sections(document)
    json.dump(document, sys.stdout, indent=2, sort_keys=True)
    print()
    return 0


def _run_sections(document: dict) -> None:
    for name in SECTIONS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        document.update(module.run())
        print(f"bench: {name} done in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
