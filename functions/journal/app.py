"""JournalFunction: the payment table's stream (NEW_IMAGE), one batch at a time, written to the archive as
one object per batch (mxflow.journal): what `mxflow restore --from-archive` rebuilds the table from.

Thin: hands the event's records to mxflow.journal.Journal. A failure raises: the event source mapping
retries the batch, bisects it, and after its retries sends the batch's position to the journal's
on-failure queue (alarmed). Logs carry counts and the object key only.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mxflow.journal import Journal
from mxflow.service import default_lifecycle

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    result = Journal(default_lifecycle().archive).write(event.get("Records") or [])
    logger.info("journaled", extra=result)
    metrics.add_metric(name="JournaledChanges", unit=MetricUnit.Count, value=result["entries"])
    return result
