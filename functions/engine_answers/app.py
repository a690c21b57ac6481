"""EngineAnswersFunction: the payment engine's answers (pacs.002, camt.029, pacs.004) from the inbound
SQS FIFO queue, each applied to its payment by mxflow/engine.py, as POST /engine/messages does.

Every record of a batch is processed (Powertools' SqsFifoPartialProcessor, skipping only the records of a
message group after a failure in it, so the answers about one payment stay in order) and the failures are
reported (ReportBatchItemFailures): only they come back, after the queue's visibility timeout, and after
maxReceiveCount they go to the dead-letter queue (its alarm). An answer that cannot be applied is no
failure: it is kept in the suspense list (AnswerSuspended) and the record is done. Logs carry ids,
message types and outcomes only.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from mxflow.errors import AnswerSuspended
from mxflow.service import default_lifecycle

logger = Logger()
metrics = Metrics()
processor = SqsFifoPartialProcessor(skip_group_on_error=True)


def record_handler(record: SQSRecord) -> dict:
    """One answer: the record's body is the XML message, as the engine sent it (UTF-8)."""
    try:
        result = default_lifecycle().engine.receive(record.body.encode("utf-8"), source="queue")
    except AnswerSuspended as suspended:
        logger.warning("engine answer kept in suspense", extra={"suspenseId": suspended.suspense_id,
                                                                "code": suspended.code, "messageId": record.message_id})
        metrics.add_metric(name="EngineAnswersSuspended", unit=MetricUnit.Count, value=1)
        return {"suspenseId": suspended.suspense_id}
    logger.info("engine answer applied", extra={"paymentId": result["paymentId"], "status": result["status"],
                                                "messageType": result["messageType"], "outcome": result["outcome"]})
    metrics.add_metric(name="EngineAnswersApplied", unit=MetricUnit.Count, value=1)
    return result


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
