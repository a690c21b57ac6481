"""Bench section `local_api`: start-up time of `mxflow local up` and GET /health throughput.

startup_ms: from the start of the `mxflow local up --port 0` process to the first 200 of GET /health,
median of 3 runs, on the application's template.yaml if it exists and starts, else on the local-runtime
fixture (`template` says which, `fallback_reason` why). requests_per_s: GET /health over one
keep-alive connection, a bounded loop (at most REQUESTS requests or SECONDS seconds).
"""
from __future__ import annotations

import http.client
import os
import selectors
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
APP_TEMPLATE = REPO / "template.yaml"
FIXTURE_TEMPLATE = REPO / "tests" / "local" / "fixture" / "template.yaml"
RUNS = 3
START_TIMEOUT_S = 60.0
READY_GRACE_S = 5.0
REQUESTS = 2000
SECONDS = 5.0


class StartFailed(Exception):
    pass


def _start(template: Path, state_dir: str) -> tuple[subprocess.Popen, str, float]:
    """Start `mxflow local up`; return (process, url, ms from process start to the first /health 200)."""
    env = dict(os.environ, MXFLOW_STATE_DIR=state_dir)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "mxflow_cli.main", "local", "up", "--port", "0", "--template", str(template)],
        cwd=str(template.parent), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + START_TIMEOUT_S
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    url = ""
    try:
        while not url and time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=0.5):
                url = process.stdout.readline().strip()
    finally:
        selector.close()
    if not url:
        _stop(process)
        raise StartFailed((process.stderr.read() or "no URL printed").strip().splitlines()[-1][:300])
    # The URL is printed once the API is ready; /health must answer 200 now, not eventually.
    deadline = min(deadline, time.monotonic() + READY_GRACE_S)
    status = None
    while time.monotonic() < deadline:
        status = _health_status(url)
        if status == 200:
            return process, url, (time.perf_counter() - started) * 1000
        time.sleep(0.01)
    _stop(process)
    raise StartFailed(f"GET /health answered {status} instead of 200")


def _health_status(url: str) -> int | None:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        response.read()
        return response.status
    except OSError:
        return None
    finally:
        connection.close()


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _requests_per_s(url: str) -> tuple[float, int]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    done, started = 0, time.perf_counter()
    try:
        while done < REQUESTS and time.perf_counter() - started < SECONDS:
            connection.request("GET", "/health")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise StartFailed(f"GET /health answered {response.status} under load")
            done += 1
    finally:
        connection.close()
    return done / (time.perf_counter() - started), done


def _measure(template: Path) -> dict:
    startups, rate, count = [], None, 0
    with tempfile.TemporaryDirectory(prefix="mxflow-bench-") as state_dir:
        for run in range(RUNS):
            process, url, elapsed_ms = _start(template, state_dir)
            try:
                startups.append(elapsed_ms)
                if run == RUNS - 1:
                    rate, count = _requests_per_s(url)
            finally:
                _stop(process)
    return {
        "startup_ms": round(statistics.median(startups), 1),
        "startup_runs_ms": [round(v, 1) for v in startups],
        "requests_per_s": round(rate, 1),
        "requests": count,
    }


def run() -> dict:
    result: dict = {}
    if APP_TEMPLATE.is_file():
        try:
            result = _measure(APP_TEMPLATE) | {"template": "template.yaml"}
        except StartFailed as exc:
            result = {"fallback_reason": f"template.yaml did not start: {exc}"}
    else:
        result = {"fallback_reason": "no template.yaml in the repository"}
    if "startup_ms" not in result:
        try:
            result |= _measure(FIXTURE_TEMPLATE) | {"template": "tests/local/fixture/template.yaml"}
        except StartFailed as exc:
            result |= {"error": f"the fixture did not start either: {exc}"}
    return {"local_api": result}


if __name__ == "__main__":  # python -m bench.local_api
    import json

    json.dump(run(), sys.stdout, indent=2)
    print()
