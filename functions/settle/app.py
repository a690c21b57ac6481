"""SettleFunction (PaymentFlow's Settle): ACSP->ACSC in one conditional write with the pacs.002 ACSC,
the outbound message as sent and the send's message id; then the payment.released event. Idempotent.

Thin: checks the task's event, calls mxflow.lifecycle.PaymentLifecycle.settle, returns its answer
to the state machine. Logs carry the payment id and status only.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mxflow.service import default_lifecycle
from mxflow.task_events import carried_message, task_event

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    event = task_event("settle", event)
    result = default_lifecycle().settle(event["paymentId"], event.get("messageId"), carried_message(event),
                                        carried_message(event, "outbound"))
    logger.info("settled", extra={"paymentId": event["paymentId"], "status": result["status"]})
    metrics.add_metric(name="PaymentsReleased", unit=MetricUnit.Count, value=1)
    return result
