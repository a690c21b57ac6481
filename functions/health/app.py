"""HealthFunction (on its schedule, template.yaml): probes what a payment needs in this Region -- a probe
execution of a state machine, a table write and read, a queue send, an archive write -- and writes the
Region's health record (its status and lease); fails the peer Region over when the peer's lease lapsed;
reconciles this Region's own payments when it comes back (mxflow.regions, docs/regions.md).

Thin: calls mxflow.regions.RegionService.probe, publishes RegionHealthy, ServesTraffic (the metric of the
alarm Route 53's health check reads) and the probe's latency, returns the outcome. Logs carry the Region,
statuses and timings only.
"""
from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from mxflow.service import default_region_service

logger = Logger()
metrics = Metrics()


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event, context):
    outcome = default_region_service().probe()
    record = outcome["record"]
    metrics.add_metric(name="RegionHealthy", unit=MetricUnit.Count,
                       value=1 if record["status"] in ("healthy", "degraded") else 0)
    metrics.add_metric(name="ServesTraffic", unit=MetricUnit.Count, value=1 if outcome.get("servesTraffic") else 0)
    metrics.add_metric(name="ProbeLatencyMs", unit=MetricUnit.Milliseconds, value=record["lastProbeLatencyMs"])
    logger.info("region probed", extra={"region": outcome["region"], "status": record["status"],
                                        "dependencies": record.get("dependencies"),
                                        "failover": outcome.get("failover"), "reconcile": outcome.get("reconcile")})
    return outcome
