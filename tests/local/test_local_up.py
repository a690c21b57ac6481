"""`mxflow local up` and `mxflow token` as a user runs them: separate processes, bounded waits."""
from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mxflow_cli.local_cmd import LocalUsageError, local_up_settings, parse_parameter_overrides
from mxflow_cli.main import build_parser

FIXTURE_TEMPLATE = Path(__file__).parent / "fixture" / "template.yaml"
MXFLOW = [sys.executable, "-m", "mxflow_cli.main"]
START_TIMEOUT_S = 60  # generous on a shared 2-core machine; the bench measures the real start-up time


def _environment(state_dir: Path) -> dict:
    env = dict(os.environ)
    env["MXFLOW_STATE_DIR"] = str(state_dir)
    env.pop("AWS_PROFILE", None)
    return env


def _read_line(process: subprocess.Popen, deadline: float) -> str:
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
                return process.stdout.readline()
            if process.poll() is not None:
                return ""
        return ""
    finally:
        selector.close()


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
        raise


def test_local_up_serves_and_mxflow_token_is_accepted(tmp_path, http):
    env = _environment(tmp_path / "state")
    process = subprocess.Popen(
        MXFLOW + ["local", "up", "--port", "0", "--template", str(FIXTURE_TEMPLATE),
                  "--parameter-overrides", "Stage=dev", "ParameterKey=WaitSeconds,ParameterValue=0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = _read_line(process, time.monotonic() + START_TIMEOUT_S).strip()
        if not url:
            _stop(process)
            pytest.fail(f"mxflow local up printed no URL; stderr:\n{process.stderr.read()[-3000:]}")
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
        status, _, body = http(url, "GET", "/health")
        assert status == 200 and body["status"] == "ok"
        key_file = tmp_path / "state" / "local-signing-key.json"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"

        token = subprocess.run(MXFLOW + ["token", "--scope", "items/read", "--client", "cli-client"],
                               capture_output=True, text=True, env=env, timeout=60)
        assert token.returncode == 0, token.stderr
        bearer = token.stdout.strip()
        status, _, body = http(url, "GET", "/items/7", token=bearer)
        assert status == 200 and body["claims"]["client_id"] == "cli-client"
        assert body["pathParameters"] == {"id": "7"}
        assert http(url, "POST", "/items", token=bearer, body={})[0] == 403  # read scope only

        # the AWS endpoint (a free port, as --port is 0), published next to the key
        endpoint_file = tmp_path / "state" / "local-aws-endpoint.json"
        assert oct(endpoint_file.stat().st_mode & 0o777) == "0o600"
        exports = subprocess.run(MXFLOW + ["local", "env"], capture_output=True, text=True, env=env, timeout=60)
        assert exports.returncode == 0, exports.stderr
        variables = dict(line.removeprefix("export ").split("=", 1) for line in exports.stdout.splitlines())
        assert variables["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:") and variables["AWS_REGION"] == "us-east-1"
        assert variables["AWS_ENDPOINT_URL"] != url and not variables["AWS_ENDPOINT_URL"].endswith(":0")
    finally:
        code = _stop(process)
    stderr = process.stderr.read()
    assert code == 0, stderr[-3000:]
    assert f"export AWS_ENDPOINT_URL={variables['AWS_ENDPOINT_URL']}" in stderr and "127.0.0.1 only" in stderr
    assert not key_file.exists()  # withdrawn on a clean stop
    assert not endpoint_file.exists()
    missing = subprocess.run(MXFLOW + ["token", "--scope", "items/read"], capture_output=True, text=True,
                             env=env, timeout=60)
    assert missing.returncode == 2 and "no running 'mxflow local up'" in missing.stderr


def test_token_without_a_running_server_exits_2(tmp_path):
    result = subprocess.run(MXFLOW + ["token", "--scope", "payments/read"], capture_output=True, text=True,
                            env=_environment(tmp_path), timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "no running 'mxflow local up' found" in result.stderr and "Traceback" not in result.stderr


def test_local_up_with_a_missing_template_is_a_usage_error(tmp_path):
    result = subprocess.run(MXFLOW + ["local", "up", "--port", "0", "--template", str(tmp_path / "none.yaml")],
                            capture_output=True, text=True, env=_environment(tmp_path), timeout=60)
    assert result.returncode == 2 and "not found" in result.stderr and "Traceback" not in result.stderr


def test_parameter_overrides_as_sam_deploy_takes_them():
    assert parse_parameter_overrides(["A=1", "B=x=y", "ParameterKey=C,ParameterValue=three",
                                      "D='two words' E=5"]) == {"A": "1", "B": "x=y", "C": "three",
                                                                  "D": "two words", "E": "5"}
    for bad in (["novalue"], ["=1"], ["ParameterKey=K"], ["A='unclosed"]):
        with pytest.raises(LocalUsageError):
            parse_parameter_overrides(bad)


def test_local_up_options_reach_the_runtime_settings(tmp_path, monkeypatch):
    monkeypatch.delenv("MXFLOW_SCHEMA_DIR", raising=False)
    monkeypatch.setenv("MXFLOW_STATE_DIR", str(tmp_path / "state"))
    schema_dir = tmp_path / "xsd"
    schema_dir.mkdir()
    args = build_parser().parse_args(["local", "up", "--port", "0", "--template", str(FIXTURE_TEMPLATE),
                                      "--schema-dir", str(schema_dir), "--parameter-overrides", "Stage=prod"])
    settings = local_up_settings(args)
    # the functions get the command line's schema sources: the directory, then the added schemas
    assert settings["env_overrides"] == {"MXFLOW_SCHEMA_DIR": str(schema_dir.resolve()),
                                         "MXFLOW_ADDED_SCHEMAS": str(tmp_path / "state" / "schemas")}
    # the fixture template declares no message-version parameters: none are passed
    assert settings["parameter_overrides"] == {"Stage": "prod"} and settings["port"] == 0
    assert settings["versions"] is None
    assert build_parser().parse_args(["local", "up"]).port == 3000
    args = build_parser().parse_args(["local", "up", "--template", str(FIXTURE_TEMPLATE),
                                      "--schema-dir", str(tmp_path / "missing")])
    with pytest.raises(LocalUsageError, match="not a directory"):
        local_up_settings(args)


def test_unknown_parameter_override_is_a_usage_error(tmp_path):
    result = subprocess.run(MXFLOW + ["local", "up", "--port", "0", "--template", str(FIXTURE_TEMPLATE),
                                      "--parameter-overrides", "NoSuchParameter=1"],
                            capture_output=True, text=True, env=_environment(tmp_path), timeout=60)
    assert result.returncode == 2 and "NoSuchParameter" in result.stderr and "Traceback" not in result.stderr


def test_local_up_passes_the_configured_message_versions(tmp_path, monkeypatch):
    """The application's template: the versions to generate reach the functions as template parameters;
    an explicit parameter override wins over the environment, the environment over CBPR+'s defaults."""
    monkeypatch.setenv("MXFLOW_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MXFLOW_CANCELLATION_ANSWER_VERSION", "camt.029.001.14")
    template = str(Path(__file__).resolve().parents[2] / "template.yaml")
    args = build_parser().parse_args(["local", "up", "--template", template,
                                      "--parameter-overrides", "StatusReportVersion=pacs.002.001.12"])
    settings = local_up_settings(args)
    assert {k: v for k, v in settings["parameter_overrides"].items() if k.endswith("Version")} == {
        "StatusReportVersion": "pacs.002.001.12", "CancellationAnswerVersion": "camt.029.001.14",
        "AppHeaderVersion": "head.001.001.02", "CancellationRequestVersion": "camt.056.001.08"}
    assert settings["versions"].message_ids() == ("pacs.002.001.12", "camt.029.001.14", "head.001.001.02",
                                                  "camt.056.001.08")
    monkeypatch.setenv("MXFLOW_APP_HEADER_VERSION", "head.001.001.09")
    with pytest.raises(LocalUsageError, match="MXFLOW_APP_HEADER_VERSION='head.001.001.09'"):
        local_up_settings(args)


def test_local_up_says_at_start_which_configured_versions_have_no_schema(tmp_path, monkeypatch, capsys):
    from mxflow_cli.main import main
    from mxflow_local import http_api

    for variable in ("MXFLOW_SCHEMA_DIR", "MXFLOW_STATUS_REPORT_VERSION", "MXFLOW_CANCELLATION_ANSWER_VERSION",
                     "MXFLOW_APP_HEADER_VERSION", "MXFLOW_CANCELLATION_REQUEST_VERSION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MXFLOW_SHARED", "off")  # the built-in set alone: camt.029.001.14, not .09; camt.056.001.12
    monkeypatch.setenv("MXFLOW_STATE_DIR", str(tmp_path / "state"))

    def refuse(*_args, **_kwargs):
        raise OSError("stopped here by the test")

    monkeypatch.setattr(http_api.LocalApi, "start", staticmethod(refuse))
    template = str(Path(__file__).resolve().parents[2] / "template.yaml")
    assert main(["local", "up", "--template", template, "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "generating pacs.002.001.10, camt.029.001.09, head.001.001.02, camt.056.001.08" in err
    assert "no schema is installed for the configured version(s) camt.029.001.09, camt.056.001.08" in err
    assert "mxflow schemas versions --set camt.029.001.14 camt.056.001.12" in err
    assert main(["local", "up", "--template", template, "--port", "0", "--parameter-overrides",
                 "CancellationAnswerVersion=camt.029.001.14", "CancellationRequestVersion=camt.056.001.12"]) == 1
    assert "no schema is installed" not in capsys.readouterr().err


def test_local_up_without_the_aws_endpoint(tmp_path):
    env = _environment(tmp_path / "state")
    process = subprocess.Popen(MXFLOW + ["local", "up", "--port", "0", "--no-aws-endpoint", "--template",
                                         str(FIXTURE_TEMPLATE)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = _read_line(process, time.monotonic() + START_TIMEOUT_S).strip()
        assert url.startswith("http://127.0.0.1:"), process.stderr.read()[-3000:] if not url else url
        assert (tmp_path / "state" / "local-signing-key.json").exists()
        assert not (tmp_path / "state" / "local-aws-endpoint.json").exists()
        missing = subprocess.run(MXFLOW + ["local", "env"], capture_output=True, text=True, env=env, timeout=60)
        assert missing.returncode == 2 and "no running 'mxflow local up' with an AWS endpoint" in missing.stderr
    finally:
        code = _stop(process)
    stderr = process.stderr.read()
    assert code == 0 and "no AWS endpoint (--no-aws-endpoint)" in stderr and "AWS_ENDPOINT_URL" not in stderr


def test_aws_endpoint_port_options():
    from mxflow_cli.local_cmd import aws_endpoint_port

    parse = build_parser().parse_args
    assert aws_endpoint_port(parse(["local", "up"])) == 3001            # as `sam local start-lambda`
    assert aws_endpoint_port(parse(["local", "up", "--port", "0"])) == 0   # a free port, as the API's
    assert aws_endpoint_port(parse(["local", "up", "--port", "0", "--aws-port", "4001"])) == 4001
    assert aws_endpoint_port(parse(["local", "up", "--aws-port", "0"])) == 0
    assert aws_endpoint_port(parse(["local", "up", "--no-aws-endpoint"])) is None
    with pytest.raises(LocalUsageError, match="--aws-port"):
        local_up_settings(parse(["local", "up", "--template", str(FIXTURE_TEMPLATE), "--aws-port", "70000"]))
