"""ReleaseQueue and EventPublisher (mxflow.ports) on SQS and SNS: the FIFO release queue the payment
engine reads (template.yaml `ReleaseQueue`) and the payment events topic (`PaymentEventsTopic`)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from botocore.exceptions import ClientError

from mxflow.aws.clients import AwsAdapter, error_code, service_errors
from mxflow.errors import SendRefused


@dataclass
class SqsReleaseQueue(AwsAdapter):
    service: ClassVar[str] = "sqs"
    queue_url: str | None

    @service_errors
    def send(self, body: Mapping[str, Any], *, deduplication_id: str, group_id: str) -> str:
        """One SendMessage. A 4xx answer (refused, throttled, denied) means SQS did not take the
        message: SendRefused, a definitive failure of this attempt. A 5xx answer, a timeout or a
        broken connection leaves the outcome unknown (the message may be on the queue):
        TransientError through `service_errors`."""
        try:
            sent = self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body),
                                            MessageDeduplicationId=deduplication_id, MessageGroupId=group_id)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if 400 <= status < 500:
                raise SendRefused(f"SendMessage: {error_code(error) or status}") from error
            raise
        return sent["MessageId"]


@dataclass
class SnsEventPublisher(AwsAdapter):
    service: ClassVar[str] = "sns"
    topic_arn: str

    @service_errors
    def publish(self, event: Mapping[str, Any], *, attributes: Mapping[str, str]) -> None:
        self.client.publish(TopicArn=self.topic_arn, Message=json.dumps(event), MessageAttributes={
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()})
