"""`mxflow demo` (what `make demo` runs) as a user runs it: every path ends as expected, and the redrive
path prints the equivalent AWS CLI command against the runtime's AWS endpoint."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 300   # bounded; the demo itself takes about 20 s here


def test_demo_paths_and_the_printed_aws_redrive_command(xsd_dir, tmp_path):
    done = subprocess.run([sys.executable, "-m", "mxflow_cli.main", "demo", "--schema-dir", str(xsd_dir),
                           "--output", str(tmp_path / "demo")], capture_output=True, text=True, cwd=REPO,
                          timeout=DEMO_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "mxflow demo: all 8 paths ended as expected." in done.stdout
    endpoint = re.search(r"AWS_ENDPOINT_URL=(http://127\.0\.0\.1:\d+)", done.stdout).group(1)
    payment_id = re.search(r"release fails, redriven\s+(p-[0-9a-f]+)", done.stdout).group(1)
    command = (f"aws stepfunctions redrive-execution --execution-arn "
               f"arn:aws:states:us-east-1:123456789012:execution:mxflow-payment:{payment_id} "
               f"--endpoint-url {endpoint} --region us-east-1")
    assert command in done.stdout
