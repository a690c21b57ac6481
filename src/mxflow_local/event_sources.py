"""The local stand-in for Lambda's SQS event source mappings (AWS::Lambda::EventSourceMapping on a queue): polls the queue
and invokes the function with batches, as Lambda's pollers do.

- A batch is up to BatchSize (at most 10) messages received at once, as the `Records` of an SQS event
  (messageId, receiptHandle, body, attributes with MessageGroupId and ApproximateReceiveCount,
  messageAttributes, md5OfBody, eventSource, eventSourceARN, awsRegion).
- The function succeeds: every record is deleted, except, with FunctionResponseTypes
  ReportBatchItemFailures, those its `batchItemFailures` name (an unreadable answer fails them all).
  The function fails: none is deleted. What is not deleted comes back after the queue's visibility
  timeout (moto's, on the runtime's clock: `LocalRuntime.clock.advance` brings it back at once) and, after
  the queue's maxReceiveCount, moves to its dead-letter queue (moto's redrive policy).
- Nothing is polled while the Region is stopped. Mappings with `Enabled: false` are not polled.
- A queue with no message to receive costs no call (`_may_receive`: a look at moto's queue).
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

LOG = logging.getLogger("mxflow_local.event_sources")
POLL_SECONDS = 0.1
MAX_BATCH = 10


@dataclass
class SqsEventSource:
    """One mapping: a queue (its ARN) to a function (its name)."""

    queue_arn: str
    function: str
    batch_size: int
    report_failures: bool
    sqs: Any                                  # the runtime's boto3 SQS client
    invoke: Callable[[str, dict], Any]        # LocalRuntime.invoke
    available: Callable[[], bool]
    region: str
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _queue_url: str | None = None

    @classmethod
    def from_mapping(cls, mapping: dict, *, sqs, invoke, available, region: str) -> "SqsEventSource | None":
        """The poller of a translated AWS::Lambda::EventSourceMapping, None when it is no SQS mapping."""
        arn = str(mapping.get("EventSourceArn") or "")
        if ":sqs:" not in arn or str(mapping.get("Enabled", True)).lower() == "false":
            return None
        return cls(queue_arn=arn, function=str(mapping["FunctionName"]),
                   batch_size=max(1, min(MAX_BATCH, int(mapping.get("BatchSize") or MAX_BATCH))),
                   report_failures="ReportBatchItemFailures" in (mapping.get("FunctionResponseTypes") or []),
                   sqs=sqs, invoke=invoke, available=available, region=region)

    @property
    def queue_url(self) -> str:
        if self._queue_url is None:
            self._queue_url = self.sqs.get_queue_url(QueueName=self.queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        return self._queue_url

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"sqs-poller-{self.function}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                handled = self.poll_once() if self.available() else 0
            except Exception:  # noqa: BLE001 - a poller keeps polling, as Lambda's does
                LOG.exception("polling %s for %s failed", self.queue_arn, self.function)
                handled = 0
            if not handled:
                self._stop.wait(POLL_SECONDS)

    def poll_once(self) -> int:
        """Receive one batch, invoke the function with it, delete what it handled; the batch's size."""
        if not self._may_receive():
            return 0
        received = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=self.batch_size,
                                            AttributeNames=["All"], MessageAttributeNames=["All"],
                                            WaitTimeSeconds=0).get("Messages", [])
        if not received:
            return 0
        event = {"Records": [self._record(message) for message in received]}
        result = self.invoke(self.function, event)
        if not result.ok:
            LOG.warning("%s failed on a batch of %d from %s: %s", self.function, len(received), self.queue_arn,
                        (result.error or {}).get("errorType"))
            return len(received)
        failed = self._failures(result.payload, received)
        done = [m for m in received if m["MessageId"] not in failed]
        for start in range(0, len(done), MAX_BATCH):
            entries = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[start:start + 10])]
            if entries:
                self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        return len(received)

    def _may_receive(self) -> bool:
        """False when moto's queue holds no message a ReceiveMessage could return (none visible and not
        delayed, on the runtime's clock): the poller then makes no call. An idle look at the queue, as the
        stream poller's at its shard: an empty ReceiveMessage through botocore and moto took milliseconds,
        ten times a second per mapping (the poller's thread: 0.77 ms of CPU per payment in `make bench`'s
        local run, 0.06-0.11 ms so; a local runtime with no traffic: 27.8 ms of CPU a second, 5.6 so).
        True when the queue cannot be looked at: ReceiveMessage then tells why."""
        from moto.sqs.models import sqs_backends

        _, _, _, region, account, name = self.queue_arn.split(":", 5)
        try:
            return bool(sqs_backends[account][region].get_queue(name).messages)
        except Exception:  # noqa: BLE001 - any failure of the look: the call is made and answers for itself
            return True

    def _failures(self, payload: Any, received: list[dict]) -> set[str]:
        """The message ids the function reported failed (ReportBatchItemFailures); all of them when its
        answer cannot be read, none without ReportBatchItemFailures."""
        if not self.report_failures:
            return set()
        if payload is None or payload == {}:
            return set()
        try:
            return {str(item["itemIdentifier"]) for item in payload.get("batchItemFailures") or []}
        except (AttributeError, KeyError, TypeError):
            return {m["MessageId"] for m in received}

    def _record(self, message: dict) -> dict:
        attributes = dict(message.get("Attributes") or {})
        return {
            "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
            "attributes": attributes, "messageAttributes": _message_attributes(message.get("MessageAttributes")),
            "md5OfBody": message.get("MD5OfBody"), "eventSource": "aws:sqs", "eventSourceARN": self.queue_arn,
            "awsRegion": self.region,
        }


def _message_attributes(attributes: dict | None) -> dict:
    """SQS's MessageAttributes as the Lambda event writes them (camelCase keys)."""
    out = {}
    for name, value in (attributes or {}).items():
        out[name] = {"dataType": value.get("DataType"), "stringValue": value.get("StringValue"),
                     "binaryValue": value.get("BinaryValue"), "stringListValues": [], "binaryListValues": []}
    return json.loads(json.dumps(out, default=str))


def start_event_sources(runtime) -> list[SqsEventSource]:
    """Start a poller for every SQS event source mapping of a started runtime."""
    pollers = []
    for mapping in runtime.record.event_source_mappings:
        poller = SqsEventSource.from_mapping(mapping, sqs=runtime.client("sqs"), invoke=runtime.invoke,
                                             available=lambda: runtime.available, region=runtime.region)
        if poller is not None:
            poller.start()
            pollers.append(poller)
    return pollers
