"""DecisionTimeoutFunction (the anchor's DecisionTimedOut): claims the timeout (PDNG->RJCT AB06 with
its pacs.002) unless a consumer's decision was claimed first; names a stage to resume otherwise.

Thin: checks the task's event, calls mxflow.lifecycle.PaymentLifecycle.decision_timeout, returns its
answer to the state machine. Logs carry the payment id and status only.
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
    event = task_event("decision_timeout", event)
    result = default_lifecycle().decision_timeout(event["paymentId"], anchor=event.get("anchor"))
    logger.info("decision timeout handled", extra={"paymentId": event["paymentId"], "status": result["status"],
                                                   "action": result["action"]})
    if result["action"] == "done" and result["status"] == "RJCT":
        metrics.add_metric(name="DecisionTimeouts", unit=MetricUnit.Count, value=1)
    return result
