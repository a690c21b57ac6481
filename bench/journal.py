"""The archive journal's share of a payment's cost, at the template's batching and a stated load.

The journal (JournalFunction, fed by the payment table's stream through JournalEventSourceMapping) costs
per BATCH: one Lambda request, one S3 PUT of the batch's object, one CloudTrail data event for that PUT.
A batch closes at the mapping's BatchSize records or after its MaximumBatchingWindowInSeconds. Locally
the window is capped at 1 s and the bench's payments run one at a time, so each payment's records end up
in a batch or two of their own: counted as they ran, the journal would cost what it costs at one payment
a minute, not at the volume a cost per million payments describes.

So bench.payments measures what is per RECORD (the stream records a payment makes, the journal's Lambda
seconds) and `price_batches` replaces the per-batch items of the journal's local batches with the batches
AWS would bill at LOAD_PAYMENTS_PER_MONTH: records per batch = min(BatchSize, records per payment x
payments per second x window). The model, the figures it uses and what it replaced are in the JSON
(`journal_batch_model`). The journal's Lambda duration is kept as measured per record (each local batch's
fixed part counted for each of its few records: more than a full batch would take).
"""
from __future__ import annotations

import math
from collections import Counter

# The load the journal's batches are priced at: a million payments a month (the unit the cost is stated in),
# evenly spread. Less traffic than that makes batches smaller (at most one payment per window: see
# `one_payment_per_window_usd_per_million` in the model); more makes them fuller, down to BatchSize.
LOAD_PAYMENTS_PER_MONTH = 1_000_000
SECONDS_PER_MONTH = 30 * 24 * 3600
JOURNAL_FUNCTION = "JournalFunction"
JOURNAL_MAPPING = "JournalEventSourceMapping"
PER_BATCH = ("lambda_request", "s3_put", "cloudtrail_data_event")   # a batch's invocation, its PUT, its trail


class JournalRecords:
    """While active: the stream records the journal received (delivered by the runtime's stream poller);
    on exit every record written so far is delivered first (no batching window), so the journal's usage of
    the measured payments is all counted by the meter still active around it."""

    def __init__(self, runtime):
        self.sources = runtime.stream_events
        self.records = 0

    def __enter__(self) -> "JournalRecords":
        self._before = self.sources.delivered
        return self

    def __exit__(self, *exc) -> None:
        self.sources.flush()
        self.records = self.sources.delivered - self._before


def _mapping(runtime) -> dict:
    for mapping in runtime.record.event_source_mappings:
        if mapping.get("LogicalId") == JOURNAL_MAPPING:
            return mapping
    raise LookupError(f"{JOURNAL_MAPPING} not in the template")


def price_batches(usage: dict, meter, runtime, records: int, payments: int, price) -> tuple[dict, dict]:
    """`usage` (per payment, as measured) with the journal's per-batch items at the modelled batches.

    `meter` is bench.payments' UsageMeter of the run (the journal's invocations and its calls by caller),
    `records` the stream records delivered for the `payments` measured, `price` bench.cost.usd_per_million.
    Returns the new usage and the model (for the JSON)."""
    mapping = _mapping(runtime)
    batch_size = int(mapping.get("BatchSize") or 100)
    window_s = float(mapping.get("MaximumBatchingWindowInSeconds") or 0)
    function = next(name for name, logical in meter.names.items() if logical == JOURNAL_FUNCTION)
    local = Counter({
        "lambda_request": meter.invocations.get(function, 0),
        "s3_put": meter.calls.get((JOURNAL_FUNCTION, "s3", "PutObject"), 0),
        "cloudtrail_data_event": meter.calls.get((JOURNAL_FUNCTION, "s3", "PutObject"), 0)})
    records_per_payment = records / payments
    payments_per_s = LOAD_PAYMENTS_PER_MONTH / SECONDS_PER_MONTH
    records_per_batch = max(1.0, min(batch_size, records_per_payment * payments_per_s * window_s))
    batches_per_payment = records_per_payment / records_per_batch if records_per_payment else 0.0

    def with_batches(per_payment: float) -> dict:
        new = dict(usage)
        for item in PER_BATCH:
            new[item] = round(max(0.0, new.get(item, 0.0) - local[item] / payments) + per_payment, 6)
        return new

    modelled = with_batches(batches_per_payment)
    journal_only = {item: batches_per_payment for item in PER_BATCH}
    journal_only["lambda_arm64_gb_second"] = (meter.seconds_by_function.get(function, 0.0) * meter.memory_mb[function]
                                              / 1024 / payments)
    # one payment per window (a quiet system): the most a payment's journal share can be
    one_per_window = with_batches(math.ceil(records_per_payment / batch_size) if records_per_payment else 0)
    model = {
        "load_payments_per_month": LOAD_PAYMENTS_PER_MONTH,
        "load_payments_per_s": round(payments_per_s, 3),
        "batch_size": batch_size, "batching_window_s": window_s,
        "records_per_payment": round(records_per_payment, 3),
        "records_per_batch": round(records_per_batch, 1),
        "batches_per_payment": round(batches_per_payment, 6),
        "per_batch_items": list(PER_BATCH),
        "local_batches_per_payment": round(local["lambda_request"] / payments, 3),
        "journal_usd_per_million": price(journal_only),
        "as_run_usd_per_million": price(usage),
        "one_payment_per_window_usd_per_million": price(one_per_window),
        "note": "per batch: one JournalFunction request, one S3 PUT, one CloudTrail data event; records per "
                "batch = min(BatchSize, records per payment x payments per second x window) at the stated "
                "monthly volume evenly spread; the local batches (window capped at 1 s, payments one at a "
                "time) are replaced by these; the journal's Lambda duration is as measured per record",
    }
    return modelled, model
