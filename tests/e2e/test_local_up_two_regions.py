"""`mxflow local up --regions us-east-1,us-west-2` (its own process, the application's template): a payment
submitted to the first Region's API is read through the second Region's API and, with boto3, from the second
Region's replica of the payment table through the second Region's own AWS endpoint, found with `mxflow local
env --region`. Bounded waits; everything on 127.0.0.1."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import boto3

from local_up import COMMAND_TIMEOUT_S, REPO, local_up  # beside this file
from mxflow_local.client import ALL_SCOPES, PaymentsClient
from mxflow_local.sample_messages import credit_transfer

PRIMARY, PEER = "us-east-1", "us-west-2"
LAG_MS = 300
READ_TIMEOUT_S = 60


def _local_env(state_dir, region: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "mxflow_cli.main", "local", "env", "--json", "--region", region],
                          capture_output=True, text=True, env=dict(os.environ, MXFLOW_STATE_DIR=str(state_dir)),
                          cwd=REPO, timeout=COMMAND_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_local_up_with_two_regions_serves_an_api_and_an_aws_endpoint_per_region(tmp_path, schema_dirs):
    (tmp_path / "logs").mkdir()
    with local_up(tmp_path / "state", tmp_path / "logs", schema_dirs=schema_dirs,
                  arguments=["--regions", f"{PRIMARY},{PEER}", "--lag-ms", str(LAG_MS), "--probe-seconds", "2"]) as up:
        urls = (up.logs / "stdout").read_text().splitlines()[:2]   # the functions' own output follows
        assert all(u.startswith("http://127.0.0.1:") for u in urls) and urls[0] == up.url and urls[0] != urls[1], urls
        token = up.issuer.issue_token(ALL_SCOPES, "two-regions")
        first, second = PaymentsClient(urls[0], token), PaymentsClient(urls[1], token)

        receipt = first.submit(credit_transfer(amount="25000.00"))
        assert receipt.status == 202, receipt.body
        payment_id = receipt.json["paymentId"]
        assert first.wait_for_status(payment_id, "PDNG", timeout=READ_TIMEOUT_S)["status"] == "PDNG"
        # the second Region's API reads its own replica: the payment arrives there within the lag
        seen = second.wait_for_status(payment_id, "PDNG", timeout=READ_TIMEOUT_S)
        assert seen["paymentId"] == payment_id and seen["uetr"] == receipt.json.get("uetr", seen["uetr"])

        regions = {r["region"]: r for r in (second.request("GET", "/regions").json or {}).get("regions", [])}
        assert set(regions) == {PRIMARY, PEER}

        peer, primary = _local_env(up.state_dir, PEER), _local_env(up.state_dir, PRIMARY)
        assert primary["environment"]["AWS_ENDPOINT_URL"] != peer["environment"]["AWS_ENDPOINT_URL"]
        assert peer["environment"]["AWS_REGION"] == PEER
        environment = peer["environment"]
        dynamodb = boto3.session.Session().client(
            "dynamodb", endpoint_url=environment["AWS_ENDPOINT_URL"], region_name=environment["AWS_REGION"],
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"], aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"])
        # the global table has one name in both Regions; the primary's stack creates it (with the peer's replica)
        table = peer["stacks"][PRIMARY]["resources"]["PaymentTable"]
        deadline, item = time.monotonic() + READ_TIMEOUT_S, None
        while item is None and time.monotonic() < deadline:
            item = dynamodb.get_item(TableName=table, ConsistentRead=True,
                                     Key={"pk": {"S": payment_id}, "sk": {"S": "PAYMENT"}}).get("Item")
            time.sleep(0.2)
        assert item is not None and item["ownerRegion"]["S"] == PRIMARY and item["status"]["S"] == "PDNG"
        # and the other Region's endpoint reaches its own stack: its state machines are listed there
        sfn = boto3.session.Session().client(
            "stepfunctions", endpoint_url=environment["AWS_ENDPOINT_URL"], region_name=PEER,
            aws_access_key_id=environment["AWS_ACCESS_KEY_ID"], aws_secret_access_key=environment["AWS_SECRET_ACCESS_KEY"])
        arns = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]]
        assert peer["stacks"][PEER]["resources"]["PaymentStateMachine"] in arns and all(f":{PEER}:" in a for a in arns)
