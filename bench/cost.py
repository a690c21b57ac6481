"""Cost and capacity model: prices (bench/prices.json) times the AWS usage of one payment.

The usage of mxflow's own paths is measured by bench.payments (AWS API calls counted while real payments
run through the local runtime, state transitions read from the execution history); the usage of AWS's
reference sample is modelled from its architecture (REFERENCE_USAGE below). This module only
prices usage; it measures nothing itself.
"""
from __future__ import annotations

import json
from pathlib import Path

PRICES = json.loads((Path(__file__).with_name("prices.json")).read_text())

# AWS's sample for this guidance, per transaction: API Gateway -> SQS FIFO inbox ->
# Lambda -> SQS FIFO process -> Lambda -> SQS FIFO release -> Lambda -> S3 + SNS, an outbox Lambda for
# retrieval; about seven DynamoDB writes plus queries; two S3 object-lock writes; 128 MB x86 Lambdas.
# Its assumptions are stated here (REFERENCE_ASSUMPTIONS, printed by the bench), not measured.
REFERENCE_ASSUMPTIONS = {
    "apigateway": "one REST request per transaction (the submission)",
    "sqs": "three FIFO hops, each send + receive + delete (3 requests, unbatched: its handlers read Records[0] only)",
    "lambda": "4 invocations (inbox, process, release, outbox) of 200 ms at 128 MB, x86",
    "dynamodb": "about seven writes (status rows and a sentinel) of items under 1 KB, three 1-RRU queries",
    "s3": "two object-lock PUTs (the message and its answer)",
    "sns": "one publish",
    "kms": "S3 SSE-KMS without a bucket key: one KMS request per PUT",
    "not_counted": "no Step Functions, no CloudTrail data events: the sample has neither",
}
REFERENCE_USAGE = {
    "apigateway_rest_request": 1,
    "sqs_fifo_request": 9,
    "lambda_request": 4,
    "lambda_x86_gb_second": 4 * 0.125 * 0.200,
    "dynamodb_write_request_unit": 7,
    "dynamodb_read_request_unit": 3,
    "s3_put": 2,
    "sns_publish": 1,
    "kms_request": 2,
}


def usd_per_payment(usage: dict[str, float]) -> float:
    """Price a usage record {price item: quantity per payment}; unknown items are an error."""
    items = PRICES["items"]
    unknown = set(usage) - set(items)
    if unknown:
        raise KeyError(f"no price for {sorted(unknown)}")
    return sum(items[name]["usd"] * quantity for name, quantity in usage.items())


def usd_per_million(usage: dict[str, float]) -> float:
    return round(usd_per_payment(usage) * 1_000_000, 2)


# What each price item is a cost of (the components of the cost tables).
COMPONENTS = {
    "stepfunctions_standard_transition": "Step Functions Standard",
    "stepfunctions_express_request": "Step Functions Express", "stepfunctions_express_gb_second": "Step Functions Express",
    "lambda_request": "Lambda", "lambda_arm64_gb_second": "Lambda", "lambda_x86_gb_second": "Lambda",
    "apigateway_rest_request": "API Gateway",
    "dynamodb_write_request_unit": "DynamoDB", "dynamodb_read_request_unit": "DynamoDB",
    "sqs_fifo_request": "SQS", "sns_publish": "SNS", "s3_put": "S3", "s3_get": "S3",
    "kms_request": "KMS", "cloudtrail_data_event": "CloudTrail",
}


def by_component_per_million(usage: dict[str, float]) -> dict[str, float]:
    """$ per million payments per service (every component listed, zero where unused)."""
    items = PRICES["items"]
    totals = {component: 0.0 for component in dict.fromkeys(COMPONENTS.values())}
    for name, quantity in usage.items():
        totals[COMPONENTS[name]] += items[name]["usd"] * quantity * 1_000_000
    return {component: round(total, 2) for component, total in totals.items()}


def breakdown_per_million(usage: dict[str, float]) -> dict[str, float]:
    items = PRICES["items"]
    return {name: round(items[name]["usd"] * qty * 1_000_000, 2) for name, qty in sorted(usage.items()) if qty}


def capacity(per_payment: dict[str, float], lambda_seconds_per_payment: float) -> tuple[float, str]:
    """Sustained payments per second one Region allows, and the quota that binds first.

    per_payment holds the rate-limited actions one payment needs: keys of PRICES["quotas"] mapped to how
    many of that action one payment uses (lambda concurrency is derived from Lambda seconds per payment).
    """
    quotas = PRICES["quotas"]
    limits = {}
    for name, used in per_payment.items():
        if used:
            limits[name] = quotas[name]["value"] / used
    if lambda_seconds_per_payment:
        limits["lambda_concurrent_executions"] = quotas["lambda_concurrent_executions"]["value"] / lambda_seconds_per_payment
    binding = min(limits, key=limits.get)
    return round(limits[binding], 1), binding
