"""The layer's per-process caches follow the invocation's environment: one entry per Region and
configuration, so functions sharing a process (the embedded local runtime) never borrow each other's."""
from __future__ import annotations

from mxflow import service
from mxflow.aws import clients


def test_clients_are_per_region(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    east = clients.aws_client("sqs")
    assert clients.aws_client("sqs") is east and east.meta.region_name == "us-east-1"
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    west = clients.aws_client("sqs")
    assert west is not east and west.meta.region_name == "eu-west-1"
    assert clients.aws_client("sqs", "us-east-1") is east  # a Region named explicitly


def test_lifecycle_is_per_function_configuration(monkeypatch):
    service.default_lifecycle.cache_clear()
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("PAYMENT_TABLE", "payments")
    monkeypatch.setenv("ARCHIVE_BUCKET", "archive")
    monkeypatch.delenv("STATE_MACHINE_ARN", raising=False)
    worker = service.default_lifecycle()
    assert service.default_lifecycle() is worker and worker.settings.state_machine_arn is None
    monkeypatch.setenv("STATE_MACHINE_ARN", "arn:aws:states:us-east-1:123456789012:stateMachine:m")
    api = service.default_lifecycle()
    assert api is not worker and api.settings.state_machine_arn.endswith(":m")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    west = service.default_lifecycle()
    assert west is not api and west.store.client.meta.region_name == "eu-west-1"
    service.default_lifecycle.cache_clear()
