"""FinaliseFunction (Finalise): the ISO answer of a terminal decision: pacs.002 RJCT (reject,
timeout) or camt.029 CNCL (cancel), archived, added to the record, event published.

Thin: checks the task's event, calls mxflow.lifecycle.PaymentLifecycle.finalise, returns its answer
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
    event = task_event("finalise", event)
    result = default_lifecycle().finalise(event["paymentId"], event["decision"])
    logger.info("finalised", extra={"paymentId": event["paymentId"], "status": result["status"]})
    metrics.add_metric(name="PaymentsCancelled" if result["status"] == "CANC" else "PaymentsRejected",
                       unit=MetricUnit.Count, value=1)
    return result
