"""ReleaseQueue and EventPublisher (mxflow.ports) on SQS and SNS: the FIFO release queue the payment
engine reads (template.yaml `ReleaseQueue`) and the payment events topic (`PaymentEventsTopic`)."""
from __future__ import annotations

import json
from typing import Any, Mapping

from mxflow.aws.clients import AwsAdapter, service_errors


class SqsReleaseQueue(AwsAdapter):
    service = "sqs"

    def __init__(self, queue_url: str | None, *, region: str | None = None, client=None):
        super().__init__(region=region, client=client)
        self.queue_url = queue_url

    @service_errors
    def send(self, body: Mapping[str, Any], *, deduplication_id: str, group_id: str) -> str:
        sent = self.client.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(body),
                                        MessageDeduplicationId=deduplication_id, MessageGroupId=group_id)
        return sent["MessageId"]


class SnsEventPublisher(AwsAdapter):
    service = "sns"

    def __init__(self, topic_arn: str, *, region: str | None = None, client=None):
        super().__init__(region=region, client=client)
        self.topic_arn = topic_arn

    @service_errors
    def publish(self, event: Mapping[str, Any], *, attributes: Mapping[str, str]) -> None:
        self.client.publish(TopicArn=self.topic_arn, Message=json.dumps(event), MessageAttributes={
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()})
