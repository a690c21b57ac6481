"""No payment data in the logs: every line a full run of the demo writes (all eight paths, as
`mxflow demo` runs them) holds none of the IBANs, account numbers, party names, addresses, remittance
texts or amounts of the messages the demo sent.

The demo runs as a subprocess with `--log-level DEBUG`: the functions' Powertools JSON logs and metrics
(what they would write to CloudWatch Logs, at the most verbose level an operator can choose), the local
runtime's own log and the demo's story, stdout and stderr both, are the capture. The values searched for
are read from the messages the demo really submitted (a spy on the API client records each body), so the
check cannot pass by searching for nothing; the capture is first shown to hold the functions' log lines."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from schwifty import IBAN

from mxflow.iso20022 import parse_message

REPO = Path(__file__).resolve().parents[2]

# Runs `mxflow demo` in this interpreter with PaymentsClient.submit recording each body it sends.
DEMO_WITH_A_SPY = """
import json, sys
from mxflow_local import client
sent_file = sys.argv[1]
submit = client.PaymentsClient.submit
def recording_submit(self, message, *args, **kwargs):
    with open(sent_file, "a", encoding="utf-8") as out:
        out.write(json.dumps(message.decode("utf-8")) + "\\n")
    return submit(self, message, *args, **kwargs)
client.PaymentsClient.submit = recording_submit
from mxflow_cli.main import main
sys.exit(main(sys.argv[2:]))
"""
FUNCTION_LOG_MESSAGES = {"payment received", "validated", "anchor wait", "decision claimed", "decision timeout handled",
                         "sent", "settled", "execution redriven"}
DEMO_TIMEOUT_S = 300


def _texts(root, local_name: str) -> set[str]:
    return {t.strip() for t in root.xpath(f"//*[local-name()='{local_name}']/text()") if t.strip()}


def payment_data(messages: list[bytes]) -> dict[str, set[str]]:
    """What must never be logged, by kind, from the messages themselves."""
    found: dict[str, set[str]] = {"name": set(), "iban": set(), "printed iban": set(), "account": set(),
                                  "amount": set(), "address": set(), "remittance": set()}
    for data in messages:
        root = parse_message(data).root
        found["name"] |= _texts(root, "Nm")
        found["address"] |= _texts(root, "TwnNm") | _texts(root, "StrtNm")
        found["remittance"] |= _texts(root, "Ustrd")
        found["amount"] |= {t.strip() for t in root.xpath("//*[@Ccy]/text()")}
        for text in _texts(root, "IBAN"):
            iban = IBAN(text)
            found["iban"].add(text)
            found["printed iban"].add(iban.formatted)  # in groups of four, as printed for people
            found["account"] |= {iban.account_code, iban.bban}
    return found


def leaks(text: str, data: dict[str, set[str]]) -> list[str]:
    """Each value found in text, with the first line holding it. Amounts match as whole numbers (not
    inside a longer number); the rest anywhere, in any case."""
    found = []
    lines = text.splitlines()
    for kind, values in data.items():
        for value in values:
            if kind == "amount":
                pattern = re.compile(r"(?<![0-9.])" + re.escape(value) + r"(?![0-9])")
            else:
                pattern = re.compile(re.escape(value), re.IGNORECASE)
            hits = [line for line in lines if pattern.search(line)]
            if hits:
                found.append(f"{kind} {value!r} in: {hits[0][:300]}")
    return found


@pytest.mark.slow
def test_a_full_demo_run_logs_no_payment_data(tmp_path, schema_dir_args):
    sent_file = tmp_path / "sent.jsonl"
    env = dict(os.environ, MXFLOW_STATE_DIR=str(tmp_path / "state"), PYTHONUNBUFFERED="1")
    run = subprocess.run(
        [sys.executable, "-c", DEMO_WITH_A_SPY, str(sent_file), "demo", "--log-level", "DEBUG",
         "--template", str(REPO / "template.yaml"), *schema_dir_args, "--output", str(tmp_path / "out")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S, check=False)
    capture = run.stdout + "\n" + run.stderr
    assert run.returncode == 0 and "all 12 paths ended as expected" in run.stdout, capture[-3000:]

    # What was sent, and what must not be logged: real values, every kind of them.
    sent = [json.loads(line).encode("utf-8") for line in sent_file.read_text(encoding="utf-8").splitlines()]
    assert len(sent) >= 10  # one per path, the duplicate path's resubmission and conflicting message
    data = payment_data(sent)
    assert len(data["name"]) >= 2 and len(data["iban"]) >= 2 and len(data["account"]) >= 4, data
    assert len(data["amount"]) >= 8 and data["address"] and len(data["remittance"]) >= 2, data
    # The search finds each value where it is: in the messages themselves (all but the printed IBANs,
    # a form the messages never use).
    sent_text = "\n".join(m.decode("utf-8") for m in sent)
    missed = [(kind, v) for kind, values in data.items() if kind != "printed iban" for v in values
              if not leaks(sent_text, {kind: {v}})]
    assert not missed, missed

    # The capture holds the functions' own log lines (Powertools JSON, every step) and metrics, and the
    # local runtime's log.
    records = []
    for line in capture.splitlines():
        if line.startswith("{"):
            try:
                records.append(json.loads(line))
            except ValueError:
                pass
    function_logs = [r for r in records if r.get("service") == "mxflow" and "level" in r and "function_name" in r]
    assert {r["message"] for r in function_logs} >= FUNCTION_LOG_MESSAGES, {r["message"] for r in function_logs}
    assert any("_aws" in r for r in records), "no metrics (EMF) lines"
    runtime_lines = [line for line in capture.splitlines() if " mxflow_local.http_api: " in line]
    assert len(runtime_lines) >= 20 and any("POST /payments -> 202" in line for line in runtime_lines)

    assert not leaks(capture, data), "\n".join(leaks(capture, data))
