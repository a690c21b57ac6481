"""ParkFunction (the anchor's AwaitOutcome): with the wait's task token, parks the payment in PDNG for
a consumer's decision (event payment.pending), or starts PaymentFlow at the stage to resume.

Thin: checks the task's event, calls mxflow.lifecycle.PaymentLifecycle.park, returns its answer
to the state machine. Logs carry the payment id and status only.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

from mxflow.service import default_lifecycle
from mxflow.task_events import task_event

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    event = task_event("park", event)
    result = default_lifecycle().park(event["paymentId"], event["taskToken"], event.get("resume"),
                                     anchor=event.get("anchor"))
    logger.info("anchor wait", extra={"paymentId": event["paymentId"], "status": result["status"],
                                      "action": result["action"], "stage": result.get("stage")})
    return result
