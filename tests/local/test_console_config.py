"""`make deploy-console`'s config.json (mxflow_cli/console_config.py) from `aws cloudformation
describe-stacks` output: what the page's Cognito sign-in reads, and a clear error without the outputs."""
from __future__ import annotations

import json

from mxflow_cli.console_config import main

OUTPUTS = {"ConsoleUrl": "https://d111111abcdef8.cloudfront.net/", "ConsoleClientId": "4o8peoplec1ient",
           "AuthUrl": "https://mxflow-123456789012-us-east-1.auth.us-east-1.amazoncognito.com",
           "ConsoleBucketName": "mxflow-consolesitebucket-abc", "ConsoleDistributionId": "E2EXAMPLE",
           "ApiUrl": "https://abc123.execute-api.us-east-1.amazonaws.com/v1"}


def describe_stacks(tmp_path, outputs):
    path = tmp_path / "stack.json"
    path.write_text(json.dumps({"Stacks": [{"StackName": "mxflow", "Outputs": [
        {"OutputKey": k, "OutputValue": v} for k, v in outputs.items()]}]}))
    return path


def test_the_config_names_the_hosted_ui_the_people_client_and_the_distribution(tmp_path, capsys):
    assert main([str(describe_stacks(tmp_path, OUTPUTS))]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "mode": "cognito", "apiBase": "/v1", "authority": OUTPUTS["AuthUrl"], "clientId": "4o8peoplec1ient",
        "redirectUri": "https://d111111abcdef8.cloudfront.net/", "logoutUri": "https://d111111abcdef8.cloudfront.net/",
        "scope": "openid"}
    assert main([str(describe_stacks(tmp_path, OUTPUTS)), "--output", "ConsoleBucketName"]) == 0
    assert capsys.readouterr().out.strip() == "mxflow-consolesitebucket-abc"


def test_a_stack_without_the_console_outputs_is_a_clear_error(tmp_path, capsys):
    older = {k: v for k, v in OUTPUTS.items() if k not in ("ConsoleUrl", "ConsoleClientId")}
    assert main([str(describe_stacks(tmp_path, older))]) == 2
    assert "no output ConsoleUrl, ConsoleClientId" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.json")]) == 2
