"""A configured message version whose schema is not installed, on the real state machine: the step that
generates it fails with the named error SchemaNotInstalled, the execution is FAILED (what the
failed-executions alarm counts) with nothing kept or sent, and once the schema is installed (a new
layer: new execution environments) a redrive finishes the payment from that step."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-central-1"  # its own Region: never meets the other suites' runtimes


@pytest.fixture
def layer_without_camt029_14(monkeypatch):
    """The functions' built-in set without camt.029.001.14, as a layer lacking it would be; returns a
    function that installs it (and, like new execution environments, rebuilds the registries)."""
    from mxflow.iso20022 import schema_sets, schemas

    full = schema_sets.builtin_entries()
    monkeypatch.setitem(schema_sets._builtin_cache, "entries", [e for e in full if e.message_id != "camt.029.001.14"])
    monkeypatch.setattr(schemas, "_defaults", {})

    def install():
        from mxflow import service

        schema_sets._builtin_cache["entries"] = full
        schemas._defaults.clear()
        service.default_lifecycle.cache_clear()  # the functions' services, with their registries

    return install


@pytest.mark.slow
def test_a_missing_schema_fails_the_step_and_a_redrive_finishes_once_it_is_installed(layer_without_camt029_14):
    from mxflow.iso20022 import parse_message
    from mxflow_local.client import ALL_SCOPES, PaymentsClient
    from mxflow_local.http_api import LocalApi
    from mxflow_local.sample_messages import credit_transfer

    overrides = {"CancellationAnswerVersion": "camt.029.001.14"}
    env = {"MXFLOW_SCHEMA_DIR": "", "MXFLOW_ADDED_SCHEMAS": "", "LOG_LEVEL": "WARNING",
           "POWERTOOLS_METRICS_DISABLED": "true"}
    with LocalApi.start(REPO / "template.yaml", port=0, parameter_overrides=overrides, env_overrides=env,
                        region=REGION) as api:
        client = PaymentsClient(api.url, api.issue_token(ALL_SCOPES, client_id="e2e-schema"))
        payment_id = client.submit(credit_transfer()).json["paymentId"]
        assert client.wait_for_status(payment_id, "PDNG")["status"] == "PDNG"
        assert client.cancel(payment_id, "DUPL").status == 200
        sfn = api.runtime.client("stepfunctions")
        execution_arn = api.runtime.physical("PaymentStateMachine").replace(":stateMachine:", ":execution:") + \
            f":{payment_id}"
        assert api.runtime.wait_execution(execution_arn, timeout=60)["status"] == "FAILED"
        failed = sfn.describe_execution(executionArn=execution_arn)
        assert failed.get("error") == "SchemaNotInstalled"
        assert "camt.029.001.14" in failed.get("cause", "")
        payment = client.get(payment_id).json
        assert payment["status"] == "CANC" and "camt.029" not in payment["messages"]  # nothing kept unchecked

        layer_without_camt029_14()  # the schema installed
        assert client.redrive(payment_id).status == 202
        payment = client.wait_for(payment_id, lambda p: "camt.029" in p["messages"], timeout=60)
        assert api.runtime.wait_execution(execution_arn, timeout=60)["status"] == "SUCCEEDED"
        answer = client.message(payment_id, "camt.029")
        assert parse_message(answer.body).message_id == "camt.029.001.14"
