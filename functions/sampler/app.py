"""SamplerFunction (every minute, EventBridge schedule): publishes OldestPendingAgeSeconds,
OldestInFlightAgeSeconds (RCVD, ACTC, ACSP), SuspendedPayments and OldestUnconfirmedAgeSeconds (a
send or a recall the payment engine has not answered), the metrics of the pending-age, stuck-payment,
suspended-payment and engine-answer-overdue alarms (template.yaml), which treat missing data as breaching.

Thin: calls mxflow.lifecycle.PaymentLifecycle.sample, publishes the figures (no payment data), writes
the console's counters per client and status (mxflow.queries.PaymentQueries.save_summary: one item),
returns the figures. Logs carry counts and ages only.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mxflow.service import default_lifecycle, default_queries

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    sample = default_lifecycle().sample()
    items = sample.pop("items")
    default_queries().save_summary(items, complete=sample.pop("complete"), sampled_at=sample["sampledAt"])
    metrics.add_metric(name="OldestPendingAgeSeconds", unit=MetricUnit.Seconds, value=sample["oldestPendingAgeSeconds"])
    metrics.add_metric(name="OldestInFlightAgeSeconds", unit=MetricUnit.Seconds,
                       value=sample["oldestInFlightAgeSeconds"])
    metrics.add_metric(name="SuspendedPayments", unit=MetricUnit.Count, value=sample["suspendedPayments"])
    # the return leg: a send or a recall the payment engine has not answered (EngineAnswerOverdueAlarm)
    metrics.add_metric(name="OldestUnconfirmedAgeSeconds", unit=MetricUnit.Seconds,
                       value=sample["oldestUnconfirmedAgeSeconds"])
    logger.info("in-flight sample", extra={"oldestAgeSecondsByStatus": sample["oldestAgeSecondsByStatus"],
                                           "sampled": sample["sampled"], "suspended": sample["suspendedPayments"]})
    return sample
