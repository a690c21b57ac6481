"""`mxflow invoke` on the fixture's event files, in a subprocess (as a user runs it) and through main()."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mxflow_cli.main import main

FIXTURE = Path(__file__).parent / "fixture"
TEMPLATE = str(FIXTURE / "template.yaml")


def test_invoke_prints_handler_result(capsys):
    code = main(["invoke", "WorkerFunction", "-e", str(FIXTURE / "events/worker/work.json"), "--template", TEMPLATE])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["worked"] is True and out["id"] == "event-1" and out["mode"] == "relaxed"


def test_invoke_with_parameter_override(capsys):
    code = main(["invoke", "WorkerFunction", "-e", str(FIXTURE / "events/worker/env.json"), "--template", TEMPLATE,
                 "--parameter-overrides", "Stage=prod"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (out["STAGE"], out["MODE"], out["LOG_LEVEL"]) == ("prod", "strict", "INFO")


def test_invoke_handler_error_prints_lambda_error_shape_and_exits_1(capsys):
    code = main(["invoke", "WorkerFunction", "-e", str(FIXTURE / "events/worker/transient_failure.json"),
                 "--template", TEMPLATE])
    out = json.loads(capsys.readouterr().out)
    assert code == 1
    assert out["errorType"] == "TransientError"
    assert out["errorMessage"] == "transient failure requested by the input"
    assert any("app.py" in line for line in out["stackTrace"])


@pytest.mark.parametrize("args, message", [
    (["NoSuchFunction", "-e", str(FIXTURE / "events/worker/work.json")], "no function NoSuchFunction"),
    (["WorkerFunction", "-e", str(FIXTURE / "events/worker/missing.json")], "cannot read event file"),
    (["WorkerFunction", "-e", str(FIXTURE / "events/worker/work.json"), "--parameter-overrides", "Nope=1"],
     "unknown template parameter"),
    (["WorkerFunction", "-e", str(FIXTURE / "events/worker/work.json"), "--parameter-overrides", "Stage=qa"],
     "is not one of"),
])
def test_invoke_usage_errors_exit_2(capsys, args, message):
    code = main(["invoke", *args, "--template", TEMPLATE])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_invoke_as_a_subprocess():
    done = subprocess.run([sys.executable, "-m", "mxflow_cli.main", "invoke", "ApiFunction",
                           "-e", str(FIXTURE / "events/api/get_item.json"), "--template", TEMPLATE],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    assert body["pathParameters"] == {"id": "42"} and body["claims"]["scope"] == "items/read"
    assert body["region"] == "us-east-1"
