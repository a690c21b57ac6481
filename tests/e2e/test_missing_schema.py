"""A configured message version whose schema is not installed, on the real state machines
(docs/flow.md): nothing is kept or sent unchecked.

- A decision whose answer cannot be generated is not taken: a terminal status is written together with
  its answer (issue 8.3), so a cancel without the camt.029's schema changes nothing (the API's 500) and
  the payment keeps waiting; once the schema is installed the same cancel is taken, with its answer.
- A flow step that generates such a message fails with the named error SchemaNotInstalled: an approved
  payment whose pacs.002 ACSC has no schema is never sent, its anchor execution is FAILED at Resume (what
  the failed-executions alarm counts) with the error named in its cause, and once the schema is
  installed (a new layer: new execution environments) a redrive sends it, once."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REGION = "eu-central-1"  # its own Region: never meets the other suites' runtimes
MISSING = ("camt.029.001.14", "pacs.002.001.10")


@pytest.fixture
def layer_without_schemas(monkeypatch):
    """The functions' built-in set without MISSING, as a layer lacking them would be; returns a
    function that installs them (and, like new execution environments, rebuilds the registries)."""
    from mxflow.iso20022 import schema_sets, schemas

    full = schema_sets.builtin_entries()
    monkeypatch.setitem(schema_sets._builtin_cache, "entries", [e for e in full if e.message_id not in MISSING])
    monkeypatch.setattr(schemas, "_defaults", {})

    def install():
        from mxflow import service

        schema_sets._builtin_cache["entries"] = full
        schemas._defaults.clear()
        service.default_lifecycle.cache_clear()  # the functions' services, with their registries

    return install


def released(api, payment_id: str) -> int:
    """Messages for this payment on the release queue (moto's backend: nothing received or deleted)."""
    from moto.sqs.models import sqs_backends

    url = api.runtime.physical("ReleaseQueue")
    queue = sqs_backends[api.runtime.account_id][api.runtime.region].get_queue(url.rsplit("/", 1)[-1])
    return sum(1 for m in queue._messages if m.deduplication_id == payment_id)


@pytest.mark.slow
def test_a_missing_schema_takes_no_decision_fails_no_send_and_a_redrive_finishes_once_installed(
        layer_without_schemas):
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
        anchor_arn = api.runtime.physical("PaymentStateMachine").replace(":stateMachine:", ":execution:")
        sfn = api.runtime.client("stepfunctions")

        cancelled = client.submit(credit_transfer()).json["paymentId"]
        approved = client.submit(credit_transfer()).json["paymentId"]
        for payment_id in (cancelled, approved):
            assert client.wait_for_status(payment_id, "PDNG")["status"] == "PDNG"

        # a decision without its answer is not taken
        refused = client.cancel(cancelled, "DUPL")
        assert refused.status == 500 and refused.json["status"] == 500
        payment = client.get(cancelled).json
        assert payment["status"] == "PDNG" and "camt.029" not in payment["messages"]
        assert sfn.describe_execution(executionArn=f"{anchor_arn}:{cancelled}")["status"] == "RUNNING"

        # an approval is taken, its send fails before anything leaves, the anchor is FAILED at Resume
        assert client.approve(approved).status == 200
        assert api.runtime.wait_execution(f"{anchor_arn}:{approved}", timeout=60)["status"] == "FAILED"
        failed = sfn.describe_execution(executionArn=f"{anchor_arn}:{approved}")
        assert failed.get("error") == "States.TaskFailed" and "SchemaNotInstalled" in failed.get("cause", "")
        assert failed["redriveStatus"] == "REDRIVABLE"
        payment = client.get(approved).json
        assert payment["status"] == "ACSP" and released(api, approved) == 0  # nothing sent unchecked

        layer_without_schemas()  # the schemas installed
        assert client.cancel(cancelled, "DUPL").status == 200
        assert client.get(cancelled).json["status"] == "CANC"
        answer = client.message(cancelled, "camt.029")
        assert parse_message(answer.body).message_id == "camt.029.001.14"
        assert api.runtime.wait_execution(f"{anchor_arn}:{cancelled}", timeout=60)["status"] == "SUCCEEDED"

        assert client.redrive(approved).status == 202
        payment = client.wait_for_status(approved, "ACSC", timeout=60)
        assert payment["status"] == "ACSC" and released(api, approved) == 1
        assert api.runtime.wait_execution(f"{anchor_arn}:{approved}", timeout=60)["status"] == "SUCCEEDED"
        report = client.message(approved, "pacs.002")
        assert parse_message(report.body).message_id == "pacs.002.001.10"
