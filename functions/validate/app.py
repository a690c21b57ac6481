"""ValidateFunction (PaymentFlow's Validate): XSD + business rules + facts; RCVD->ACTC, RCVD->RJCT
with its pacs.002, or RCVD->ACSP under the auto-decision policy, one conditional write each.

Thin: checks the task's event, calls mxflow.lifecycle.PaymentLifecycle.validate, returns its answer
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
    event = task_event("validate", event)
    result = default_lifecycle().validate(event["paymentId"], carried_message(event))
    logger.info("validated", extra={"paymentId": event["paymentId"], "status": result["status"],
                                    "outcome": result["outcome"]})
    metrics.add_metric(name="PaymentsRejectedInvalid" if result["outcome"] == "invalid" else "PaymentsAccepted",
                       unit=MetricUnit.Count, value=1)
    return result
