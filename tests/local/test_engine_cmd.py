"""`mxflow engine simulate` (issue 12): its policy and usage errors, and one run against real queues (moto,
in-process) that answers a released payment with a schema-checked pacs.002 on the inbound FIFO queue."""
from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from mxflow_cli.main import main
from mxflow_local.engine_simulator import EnginePolicy, PolicyError
from mxflow_local.sample_messages import credit_transfer


def test_the_policy_in_one_argument():
    policy = EnginePolicy.parse("reject-above=50000,recalls=refuse,refuse-reason=LEGL,return-after=2")
    assert (policy.reject_above, policy.recalls, policy.refuse_reason, policy.return_after) == (
        Decimal("50000"), "refuse", "LEGL", 2.0)
    assert EnginePolicy.parse("settle-all") == EnginePolicy()
    for bad in ("reject-above=lots", "recalls=maybe", "reject-reason=XXXX", "refuse-reason=ZZZ9", "fly=1",
                "return-after=-1", "return-reason=CUST0"):
        with pytest.raises(PolicyError):
            EnginePolicy.parse(bad)


@pytest.mark.parametrize("argv, expected", [
    (["--policy", "reject-above=lots"], "engine policy: reject-above and return-after take numbers"),
    (["--reject-reason", "ZZZZ"], "engine policy: reject-reason 'ZZZZ' is not an ExternalStatusReason1Code"),
    ([], "--release-queue-url"),  # nothing running to connect to
])
def test_usage_errors_exit_2_with_a_message(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("MXFLOW_STATE_DIR", str(tmp_path))
    assert main(["engine", "simulate", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mxflow: error:") and expected in err and "Traceback" not in err


def test_a_released_payment_is_answered_on_the_inbound_queue(capsys, monkeypatch):
    import boto3
    from moto import mock_aws

    from mxflow.iso20022 import default_registry, parse_message, validate_schema

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-2")
    with mock_aws():
        sqs = boto3.client("sqs", region_name="eu-west-2")
        fifo = {"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        release = sqs.create_queue(QueueName="release.fifo", Attributes=fifo)["QueueUrl"]
        inbound = sqs.create_queue(QueueName="inbound.fifo", Attributes=fifo)["QueueUrl"]
        payment = credit_transfer(amount="60000.00", uetr=str(uuid.uuid4()))
        sqs.send_message(QueueUrl=release, MessageGroupId="BANKGB2LXXX", MessageDeduplicationId="p-1",
                         MessageBody=json.dumps({"paymentId": "p-1", "messageType": "pacs.008.001.08",
                                                 "message": payment.decode()}))
        code = main(["engine", "simulate", "--release-queue-url", release, "--inbound-queue-url", inbound,
                     "--region", "eu-west-2", "--reject-above", "50000", "--max-answers", "1", "--duration", "30",
                     "--json"])
        assert code == 0
        printed = json.loads(capsys.readouterr().out.splitlines()[0])
        assert printed == {"kind": "pacs.002 RJCT", "paymentId": "p-1", "sent": True,
                           "messageType": printed["messageType"], "problem": None}
        answer = sqs.receive_message(QueueUrl=inbound, AttributeNames=["MessageGroupId"])["Messages"][0]
        assert answer["Attributes"]["MessageGroupId"] == "p-1"
        parsed = parse_message(answer["Body"].encode())
        assert validate_schema(parsed, default_registry()) == []
        assert parsed.document.xpath("//*[local-name()='TxSts']/text()") == ["RJCT"]
        assert parsed.document.xpath("//*[local-name()='Rsn']/*[local-name()='Cd']/text()") == ["AM04"]
