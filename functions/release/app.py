"""ReleaseFunction (Release): ACSP->ACSC: SQS FIFO send (deduplication id = paymentId, group
per counterparty), event, pacs.002 ACSC and the outbound message archived. Idempotent; technical
failures surface as TransientError for the state machine's retry.

Thin: checks the task's event, calls mxflow.lifecycle.PaymentLifecycle.release, returns its answer
to the state machine. Logs carry the payment id and status only.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from mxflow.service import default_lifecycle
from mxflow.task_events import task_event

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    event = task_event("release", event)
    result = default_lifecycle().release(event["paymentId"])
    logger.info("released", extra={"paymentId": event["paymentId"], "status": result["status"]})
    metrics.add_metric(name="PaymentsReleased", unit=MetricUnit.Count, value=1)
    return result
