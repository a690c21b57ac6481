"""ParkFunction (AwaitDecision): stores the task token (conditional ACTC->PDNG) and publishes
the payment.pending event; also samples the oldest pending age for its alarm.

Thin: checks the task's event, calls mxflow.lifecycle.PaymentLifecycle.park, returns its answer
to the state machine. Logs carry the payment id and status only.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from mxflow.pending_age import PendingAgeSampler
from mxflow.service import default_lifecycle
from mxflow.task_events import task_event

logger = Logger()
tracer = Tracer()
metrics = Metrics()
pending_age = PendingAgeSampler()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event, context):
    event = task_event("park", event)
    lifecycle = default_lifecycle()
    result = lifecycle.park(event["paymentId"], event["taskToken"])
    logger.info("parked", extra={"paymentId": event["paymentId"], "status": result["status"]})
    age = pending_age.sample(lifecycle)
    if age is not None:
        metrics.add_metric(name="OldestPendingAgeSeconds", unit=MetricUnit.Seconds, value=age)
    return result
