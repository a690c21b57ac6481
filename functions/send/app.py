"""SendFunction (PaymentFlow's Send): claims the release with a conditional write, then sends it once
to the SQS FIFO release queue (deduplication id = paymentId, group per counterparty). Refuses to send
when an earlier attempt's outcome is unknown past the release window (ReleaseOutcomeUnknown: the
payment is suspended). Technical failures surface as TransientError for the state machine's retry.

Thin: checks the task's event, calls mxflow.lifecycle.PaymentLifecycle.send, returns its answer
to the state machine. Logs carry the payment id only.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mxflow.errors import ReleaseOutcomeUnknown
from mxflow.service import default_lifecycle
from mxflow.task_events import carried_message, task_event

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    event = task_event("send", event)
    try:
        result = default_lifecycle().send(event["paymentId"], carried_message(event))
    except ReleaseOutcomeUnknown:
        logger.warning("release outcome unknown: suspended", extra={"paymentId": event["paymentId"]})
        metrics.add_metric(name="ReleaseOutcomeUnknown", unit=MetricUnit.Count, value=1)
        raise
    logger.info("sent", extra={"paymentId": event["paymentId"], "alreadySent": result.get("alreadySent", False)})
    if not result.get("alreadySent"):
        metrics.add_metric(name="PaymentsSent", unit=MetricUnit.Count, value=1)
    return result
