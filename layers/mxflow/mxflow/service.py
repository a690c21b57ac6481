"""The composition root: the payment lifecycle wired to its AWS adapters, one per configuration.

In AWS a process has one function's environment, so this is one lifecycle per process. The embedded
local runtime runs every function (and possibly two Regions) in one process, each invocation with
its own environment: keying by the configuration gives each function and Region its own lifecycle
instead of whichever ran first.
"""
from __future__ import annotations

from mxflow.lifecycle import PaymentLifecycle
from mxflow.queries import PaymentQueries
from mxflow.settings import Settings

_lifecycles: dict[Settings, PaymentLifecycle] = {}


def build_lifecycle(settings: Settings) -> PaymentLifecycle:
    """The lifecycle on DynamoDB, S3, Step Functions, SQS and SNS, as `settings` name them."""
    from mxflow.aws.dynamodb import DynamoDbPaymentStore
    from mxflow.aws.messaging import SnsEventPublisher, SqsReleaseQueue
    from mxflow.aws.s3 import S3MessageArchive
    from mxflow.aws.stepfunctions import StepFunctionsWorkflow

    region = settings.region
    return PaymentLifecycle(
        store=DynamoDbPaymentStore(settings.payment_table, region=region),
        archive=S3MessageArchive(settings.archive_bucket, kms_key_id=settings.archive_kms_key_id, region=region),
        workflow=StepFunctionsWorkflow(settings.state_machine_arn, settings.payment_flow_arn, region=region),
        release_queue=SqsReleaseQueue(settings.release_queue_url, region=region),
        events=SnsEventPublisher(settings.events_topic_arn, region=region) if settings.events_topic_arn else None,
        settings=settings,
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


default_lifecycle.cache_clear = _lifecycles.clear  # forget the lifecycles (tests switching environments)
