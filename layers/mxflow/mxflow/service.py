"""The composition root: the payment lifecycle wired to its AWS adapters, one per configuration.

In AWS a process has one function's environment, so this is one lifecycle per process. The embedded
local runtime runs every function (and possibly two Regions) in one process, each invocation with
its own environment: keying by the configuration gives each function and Region its own lifecycle
instead of whichever ran first.

With two Regions (docs/regions.md) the lifecycle also gets its Region gate (the lease and the routing
epoch) and, for a payment the other Region owns, the same lifecycle on that Region's replica and
services; `default_region_service()` is the health function's, the recovery workflow's and the
Recovering API's.
"""
from __future__ import annotations

from mxflow.lifecycle import PaymentLifecycle
from mxflow.queries import PaymentQueries
from mxflow.settings import Settings

_lifecycles: dict[Settings, PaymentLifecycle] = {}
_region_services: dict[Settings, object] = {}


def build_lifecycle(settings: Settings, *, events=None, home: bool = True) -> PaymentLifecycle:
    """The lifecycle on DynamoDB, S3, Step Functions, SQS and SNS, as `settings` name them. `home`: the
    lifecycle of this Region (False: the peer's, reached from here, which hops no further)."""
    from mxflow.aws.bulk_store import DynamoDbMessageStore
    from mxflow.aws.dynamodb import DynamoDbPaymentStore
    from mxflow.aws.messaging import SnsEventPublisher, SqsReleaseQueue
    from mxflow.aws.regions import DynamoDbRegionStore
    from mxflow.aws.s3 import S3MessageArchive
    from mxflow.aws.stepfunctions import StepFunctionsWorkflow
    from mxflow.regions import RegionGate

    region = settings.region
    if events is None and settings.events_topic_arn:
        events = SnsEventPublisher(settings.events_topic_arn, region=region)
    gate = at_region = None
    if settings.two_regions and home:
        gate = RegionGate(DynamoDbRegionStore(settings.payment_table, region=region), settings)

        def at_region(other: str, _cache: dict = {}) -> PaymentLifecycle:  # noqa: B006 - one per process
            if other not in _cache:
                _cache[other] = build_lifecycle(settings.in_region(other), events=events, home=False)
            return _cache[other]
    return PaymentLifecycle(
        store=DynamoDbPaymentStore(settings.payment_table, region=region),
        archive=S3MessageArchive(settings.archive_bucket, kms_key_id=settings.archive_kms_key_id, region=region,
                                 fallback_bucket=settings.peer_archive_bucket if settings.two_regions else None,
                                 fallback_region=settings.peer_region),
        workflow=StepFunctionsWorkflow(settings.state_machine_arn, settings.payment_flow_arn,
                                       split_arn=settings.split_state_machine_arn, region=region),
        release_queue=SqsReleaseQueue(settings.release_queue_url, region=region),
        events=events,
        settings=settings,
        messages=DynamoDbMessageStore(settings.payment_table, region=region),
        gate=gate,
        at_region=at_region,
    )


def default_lifecycle() -> PaymentLifecycle:
    """The lifecycle for the environment this invocation runs in, created on first use."""
    settings = Settings.from_environ()
    lifecycle = _lifecycles.get(settings)
    if lifecycle is None:
        lifecycle = _lifecycles.setdefault(settings, build_lifecycle(settings))
    return lifecycle


def default_queries() -> PaymentQueries:
    """The console's reads (mxflow.queries) on the same store and workflow as the lifecycle."""
    lifecycle = default_lifecycle()
    return PaymentQueries(store=lifecycle.store, workflow=lifecycle.workflow, region=lifecycle.settings.region,
                          clock=lifecycle.clock)


def build_region_service(settings: Settings):
    from mxflow.aws.dynamodb import DynamoDbPaymentStore
    from mxflow.aws.health import AwsHealthProbes
    from mxflow.aws.regions import DynamoDbRegionStore, StepFunctionsRecovery
    from mxflow.regions import RegionService

    region = settings.region
    peer = settings.peer_region if settings.two_regions else None
    peer_settings = settings.in_region(peer) if peer else None
    return RegionService(
        settings=settings,
        regions=DynamoDbRegionStore(settings.payment_table, region=region),
        payments=DynamoDbPaymentStore(settings.payment_table, region=region),
        probes=AwsHealthProbes(settings),
        recovery=StepFunctionsRecovery(settings.recovery_state_machine_arn, settings.state_machine_arn, region=region),
        peer_regions=DynamoDbRegionStore(settings.payment_table, region=peer) if peer else None,
        peer_recovery=(StepFunctionsRecovery(peer_settings.recovery_state_machine_arn, peer_settings.state_machine_arn,
                                             region=peer) if peer else None),
    )


def default_region_service():
    """The Region service (mxflow.regions.RegionService) for this invocation's environment."""
    settings = Settings.from_environ()
    service = _region_services.get(settings)
    if service is None:
        service = _region_services.setdefault(settings, build_region_service(settings))
    return service


def _clear() -> None:
    _lifecycles.clear()
    _region_services.clear()


default_lifecycle.cache_clear = _clear  # forget the lifecycles (tests switching environments)
