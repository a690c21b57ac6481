"""RecallFunction (PaymentFlow's Recall): a validated camt.056 applied to the payment it recalls --
cancelled while it waits for a decision, forwarded to the payment engine once released, refused with its
camt.029 RJCR otherwise (mxflow/recalls.py). Idempotent.

Thin: checks the task's event, calls mxflow.recalls.Recalls.apply through the lifecycle, returns its
answer to the state machine. Logs carry payment ids and statuses only.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mxflow.service import default_lifecycle
from mxflow.task_events import task_event

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    event = task_event("recall", event)
    result = default_lifecycle().recalls.apply(event["paymentId"])
    logger.info("recall applied", extra={"paymentId": result["paymentId"], "status": result["status"],
                                         "originalPaymentId": result.get("originalPaymentId")})
    metrics.add_metric(name=f"Recalls{result['status']}", unit=MetricUnit.Count, value=1)
    return result
