"""The AWS adapters of the lifecycle's ports (mxflow.ports): every boto3 and botocore use of the layer.

- clients: one boto3 client per service and Region, and AWS errors turned into the domain's
  ServiceError / TransientError;
- dynamodb: PaymentStore on the payment table (conditional writes, history, in-flight index);
- s3: MessageArchive on the archive bucket (SSE-KMS);
- stepfunctions: Workflow on the payment state machine (start, task tokens, redrive);
- messaging: ReleaseQueue on the SQS FIFO release queue, EventPublisher on the SNS events topic.
"""
