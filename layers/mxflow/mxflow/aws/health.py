"""HealthProbes (mxflow.ports) in one Region: each dependency a payment needs, made to do real work and
timed (docs/regions.md, "Health"). A Lambda invoke that answers 200 says nothing about them; these do:

- stateMachine: a probe execution of the Region's probe state machine (template.yaml
  `HealthProbeStateMachine`, STANDARD, one Pass state) started and followed until it SUCCEEDED;
- table: a PutItem of the Region's probe item in the payment table, then a strongly consistent GetItem
  that must return what was written;
- queue: a SendMessage to the Region's probe queue (same service, same KMS key as the release queue,
  never read by the payment engine);
- archive: a PutObject under `health/` of the archive bucket (same bucket, same key, same permissions
  path as a received message).

The four run at once (each on its own thread, in the invocation's context): a probe takes as long as its
slowest dependency, not their sum, so a Region under load still renews its lease within the probe
interval. A failing call is a failed dependency with its error code (never data); nothing raises.
"""
from __future__ import annotations

import contextvars
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from botocore.exceptions import BotoCoreError, ClientError

from mxflow.aws.clients import aws_client, error_code
from mxflow.aws.dynamodb import _to_item
from mxflow.clock import utc_now
from mxflow.regions import DependencyResult
from mxflow.settings import Settings

POLL_SECONDS = 0.05


@dataclass
class AwsHealthProbes:
    settings: Settings
    clients: Callable[[str, str], object] = aws_client

    def _client(self, service: str):
        return self.clients(service, self.settings.region)

    @property
    def deadline_seconds(self) -> float:
        return max(5.0, 3 * self.settings.health_slow_ms / 1000)

    def probe(self) -> list[DependencyResult]:
        checks = (("stateMachine", self._state_machine), ("table", self._table), ("queue", self._queue),
                  ("archive", self._archive))
        for service in ("stepfunctions", "dynamodb", "sqs", "s3"):
            self._client(service)   # made here, once: creating boto3 clients is not thread-safe
        with ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="health-probe") as pool:
            # each check in a copy of the invocation's context (its environment, as Lambda gives it)
            running = [pool.submit(contextvars.copy_context().run, self._timed, name, check) for name, check in checks]
            return [future.result() for future in running]

    def _timed(self, name: str, check: Callable[[], str | None]) -> DependencyResult:
        began = time.perf_counter()
        try:
            error = check()
        except ClientError as failure:
            error = error_code(failure) or "ClientError"
        except BotoCoreError as failure:
            error = type(failure).__name__
        return DependencyResult(name, error is None, (time.perf_counter() - began) * 1000, error)

    def _state_machine(self) -> str | None:
        if not self.settings.probe_state_machine_arn:
            return "not configured"
        sfn = self._client("stepfunctions")
        # Named: a name per probe (Step Functions keeps names 90 days; one a minute is well within it).
        arn = sfn.start_execution(stateMachineArn=self.settings.probe_state_machine_arn, name=f"probe-{uuid.uuid4().hex}",
                                  input=json.dumps({"probe": self.settings.region, "at": utc_now()}))["executionArn"]
        deadline = time.monotonic() + self.deadline_seconds
        while True:
            status = sfn.describe_execution(executionArn=arn)["status"]
            if status != "RUNNING":
                return None if status == "SUCCEEDED" else f"probe execution {status}"
            if time.monotonic() > deadline:
                return "probe execution still running"
            time.sleep(POLL_SECONDS)

    def _table(self) -> str | None:
        if not self.settings.payment_table:
            return "not configured"
        dynamodb = self._client("dynamodb")
        key = {"pk": f"probe#{self.settings.region}", "sk": "PROBE"}
        nonce = uuid.uuid4().hex
        dynamodb.put_item(TableName=self.settings.payment_table, Item=_to_item({**key, "nonce": nonce, "at": utc_now()}))
        item = dynamodb.get_item(TableName=self.settings.payment_table, Key=_to_item(key), ConsistentRead=True).get("Item")
        return None if item and item.get("nonce", {}).get("S") == nonce else "probe item not read back"

    def _queue(self) -> str | None:
        if not self.settings.probe_queue_url:
            return "not configured"
        self._client("sqs").send_message(QueueUrl=self.settings.probe_queue_url,
                                         MessageBody=json.dumps({"probe": self.settings.region, "at": utc_now()}))
        return None

    def _archive(self) -> str | None:
        if not self.settings.archive_bucket:
            return "not configured"
        kwargs = {"Bucket": self.settings.archive_bucket, "Key": f"health/{self.settings.region}/probe.json",
                  "Body": json.dumps({"probe": self.settings.region, "at": utc_now()}).encode(),
                  "ContentType": "application/json"}
        if self.settings.archive_kms_key_id:
            kwargs.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=self.settings.archive_kms_key_id,
                          BucketKeyEnabled=True)
        self._client("s3").put_object(**kwargs)
        return None
