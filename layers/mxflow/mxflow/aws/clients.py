"""boto3 clients, one per service and Region, and the translation of AWS errors into the domain's.

In AWS a Lambda process lives in one Region, so the cache holds one client per service; the
embedded local runtime runs several Regions' functions in one process, and keying by Region keeps
each Region's calls in that Region.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError

from mxflow.errors import ServiceError, TransientError
from mxflow.settings import current_region

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
# Error codes of throttling and service-side failures: worth retrying (as are 5xx and connection errors).
TRANSIENT_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "RequestLimitExceeded",
    "ProvisionedThroughputExceededException", "RequestThrottled", "SlowDown", "ServiceUnavailable",
    "InternalError", "InternalServerError", "InternalFailure", "ServiceException",
    "KMSThrottlingException", "TransactionInProgressException", "RequestTimeout",
    # A strongly consistent (MRSC) global table refuses a write to an item another Region is changing at
    # that moment; AWS documents it as retryable (docs/regions.md).
    "ReplicatedWriteConflictException",
})

_clients: dict[tuple[str, str], Any] = {}


def aws_client(service: str, region: str | None = None):
    """The process's boto3 client for `service` in `region` (the invocation's Region by default)."""
    region = region or current_region()
    client = _clients.get((service, region))
    if client is None:
        client = _clients[(service, region)] = boto3.client(service, region_name=region, config=CLIENT_CONFIG)
    return client


def reset_clients() -> None:
    """Forget the cached clients (tests that switch between mocked environments)."""
    _clients.clear()


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def put_unless_condition_fails(client: Any, **request: Any) -> bool:
    """A conditional DynamoDB PutItem: True when written, False when its ConditionExpression did not hold
    (the item that is there stays); every other error is raised."""
    try:
        client.put_item(**request)
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def put_new_item(client: Any, **request: Any) -> dict | None:
    """A PutItem of an item whose key must not exist yet: None when written, else the item that is there
    (DynamoDB's ALL_OLD image; {} when none came back, and the caller reads it)."""
    try:
        client.put_item(**request, ConditionExpression="attribute_not_exists(pk)",
                        ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as error:
        if error_code(error) == "ConditionalCheckFailedException":
            return error.response.get("Item") or {}
        raise
    return None


def as_service_error(error: Exception) -> ServiceError:
    """The domain's error for a failed AWS call: TransientError for throttling, 5xx and connection
    failures (the state machine retries them), ServiceError for every other failure."""
    if isinstance(error, ClientError):
        code = error_code(error)
        http = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        what = f"{error.operation_name}: {code or http}"
        return TransientError(what) if code in TRANSIENT_CODES or http >= 500 else ServiceError(what)
    if isinstance(error, BotoConnectionError):
        return TransientError(type(error).__name__)
    return ServiceError(type(error).__name__)


def service_errors(method):
    """Decorate an adapter method: AWS errors it does not handle itself leave as the domain's."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        try:
            return method(*args, **kwargs)
        except (ClientError, BotoCoreError) as error:
            raise as_service_error(error) from error

    return wrapper


@dataclass(kw_only=True)
class AwsAdapter:
    """Base of the adapters: the boto3 client of `service` in `region` (the invocation's by default),
    given as `boto_client` or created on first use."""

    service: ClassVar[str]
    region: str | None = None
    boto_client: Any = field(default=None, repr=False)

    @property
    def client(self):
        if self.boto_client is None:
            self.boto_client = aws_client(self.service, self.region)
        return self.boto_client
