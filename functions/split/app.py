"""SplitFunction (BulkSplitStateMachine's Split): one call creates the payments of a message with several
transactions, batch by batch from the transaction `next`, starts their PaymentFlows, and returns where
to go on (before its Timeout) or that the split is done.

Thin: checks the task's event, calls mxflow.bulk.BulkMessages.split, returns its answer to the state
machine. Logs carry the message id and counts only.
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
    event = task_event("split", event)
    result = default_lifecycle().bulk.split(event["messageId"], event["next"],
                                            remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000)
    logger.info("split", extra={"messageId": event["messageId"], "next": result["next"], "done": result["done"],
                                "paymentsCreated": result["created"]})
    metrics.add_metric(name="PaymentsSplit", unit=MetricUnit.Count, value=result["created"])
    return result
