"""RecoveryFunction: the tasks of the recovery workflow (statemachines/recovery.asl.json): take over one
page of a failed Region's in-flight payments, start again the anchors of those taken over, record the
recovery as finished (mxflow.regions.RegionService, docs/regions.md).

Thin: checks the task's event, calls the Region service, returns its answer. Logs carry Regions, epochs,
shards and counts only.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mxflow.service import default_region_service
from mxflow.task_events import task_event

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    event = task_event("recovery", event)
    service = default_region_service()
    action = event["action"]
    if action == "takeOver":
        result = service.take_over_page(from_region=event["from"], to_region=event["to"], epoch=event["epoch"],
                                        shard=event["shard"], cursor=event.get("cursor"),
                                        reconcile=bool(event.get("reconcile")))
        metrics.add_metric(name="PaymentsTakenOver", unit=MetricUnit.Count, value=result["takenOver"])
    elif action == "resumeSweep":
        result = service.resume_sweep(epoch=event["epoch"], shard=event["shard"], cursor=event.get("cursor"))
    else:
        result = service.finish(from_region=event["from"], epoch=event["epoch"], reconcile=bool(event.get("reconcile")))
    logger.info("recovery step", extra={"action": action, "from": event["from"], "epoch": event["epoch"],
                                        "shard": event.get("shard"),
                                        **{k: v for k, v in result.items() if k != "cursor"}})
    return result
