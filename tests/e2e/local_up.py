"""A running `mxflow local up` in its own process, for the end-to-end tests that need one: the AWS tools
(test_aws_tools.py), hostile input (test_hostile_input_api.py), races (test_races.py) and fuzzing
(test_fuzz_api.py). It listens on 127.0.0.1 only, keeps its state directory and logs in the test's
folders, and is stopped with SIGTERM (then killed if it does not stop within the bound)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

from mxflow_local.auth import load_published_issuer
from mxflow_local.aws_endpoint import load_published_endpoint
from mxflow_local.client import ALL_SCOPES, PaymentsClient

REPO = Path(__file__).resolve().parents[2]
AWS_CLI = Path(sys.executable).with_name("aws")
START_TIMEOUT_S = 90   # generous on a shared 2-core machine; the bench measures the real start-up time
COMMAND_TIMEOUT_S = 60


class RunningLocalUp:
    """A running `mxflow local up` and the AWS tools pointed at it."""

    def __init__(self, process: subprocess.Popen, state_dir: Path, logs: Path):
        self.process, self.state_dir, self.logs = process, state_dir, logs
        self.endpoint = load_published_endpoint(state_dir)
        self.issuer, key_state = load_published_issuer(state_dir)
        self.url = key_state["url"]
        self.api = PaymentsClient(self.url, self.issuer.issue_token(ALL_SCOPES, "aws-tools"))
        self.region = self.endpoint["region"]
        self.resources = self.endpoint["stacks"][self.region]["resources"]
        # exactly the published environment: no profile, config file or credentials of the machine
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(self.endpoint["environment"], AWS_CONFIG_FILE=os.devnull,
                        AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_PAGER="")

    def client(self, scopes=ALL_SCOPES, client_id: str = "e2e-client", **kwargs) -> PaymentsClient:
        return PaymentsClient(self.url, self.issuer.issue_token(list(scopes), client_id), **kwargs)

    def boto3_client(self, service: str):
        """A boto3 client of this process talking to the server's AWS endpoint (not to this process's moto)."""
        import boto3

        environment = self.endpoint["environment"]
        return boto3.session.Session().client(
            service, endpoint_url=environment["AWS_ENDPOINT_URL"], region_name=self.region,
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"])

    def memory_kib(self) -> dict:
        """The server process's resident set now (VmRSS) and at its peak (VmHWM), in KiB (/proc)."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines()
                      if ":" in line)
        return {name: int(fields[name].split()[0]) for name in ("VmRSS", "VmHWM")}

    def log_text(self) -> str:
        return (self.logs / "stdout").read_text(errors="replace") + (self.logs / "stderr").read_text(errors="replace")

    def aws(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(AWS_CLI), *args, "--output", "json"], capture_output=True, text=True,
                              env=self.env, timeout=COMMAND_TIMEOUT_S)
        if check:
            assert done.returncode == 0, f"aws {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}"
        return done

    def aws_json(self, *args: str):
        out = self.aws(*args).stdout
        return json.loads(out) if out.strip() else None

    def sqs(self, *args: str):
        # AWS CLI v1 ignores AWS_ENDPOINT_URL for sqs (aws/aws-cli#8737): the documented --endpoint-url
        return self.aws_json("sqs", *args, "--endpoint-url", self.endpoint["endpointUrl"])


@contextlib.contextmanager
def local_up(state_dir: Path, logs: Path, *overrides: str, schema_dirs: Iterable[str] = (),
             extra_env: dict | None = None, cls: type[RunningLocalUp] = RunningLocalUp,
             arguments: Iterable[str] = ()) -> Iterator[RunningLocalUp]:
    """`mxflow local up --port 0 --aws-port 0` on the application's template with these parameter
    overrides (K=V); yields once it printed its URL; asserts a clean stop (exit 0, endpoint withdrawn)."""
    env = dict(os.environ, MXFLOW_STATE_DIR=str(state_dir), **(extra_env or {}))
    command = [sys.executable, "-m", "mxflow_cli.main", "local", "up", "--port", "0", "--aws-port", "0",
               "--template", str(REPO / "template.yaml"), *arguments]
    for directory in schema_dirs:   # none: the built-in schema set alone (a bare clone)
        command += ["--schema-dir", str(directory)]
    if overrides:
        command += ["--parameter-overrides", *overrides]
    with open(logs / "stdout", "w") as stdout, open(logs / "stderr", "w") as stderr:   # handlers log a lot
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while "\n" not in (logs / "stdout").read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (logs / "stdout").read_text().startswith("http://127.0.0.1:"), (logs / "stderr").read_text()[-3000:]
        yield cls(process, state_dir, logs)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0, (logs / "stderr").read_text()[-3000:]
    assert not (state_dir / "local-aws-endpoint.json").exists()   # withdrawn on a clean stop
