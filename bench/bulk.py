"""Messages with several transactions (issue 13): how long a pacs.008 of 1,000 and of 10,000 transactions
takes on the local runtime from POST /payments until every one of its payments is PDNG (waiting for a
decision: validated, parked), and the memory of the process that runs it all (API, split, flows).

Each size runs in a fresh interpreter (`python -m bench.bulk SIZE`), so its peak RSS is its own; the
message is `bulk_credit_transfer(..., compact=True)` (the smallest valid transactions: 10,000 fit the
4 MiB MaxMessageBytes), on the template's defaults except MaxMessageBytes=4194304, with the local
runtime's BulkFlowsInFlight (mxflow_local.runtime.LOCAL_PARAMETER_DEFAULTS: the split keeps that many
flows in flight and starts the next as the runtime carries them; the template's start rate stays). Bounded:
each size stops waiting after BOUND_S and reports how many payments were PDNG by then; a child that does
not end within its bound plus a margin is killed and its last progress line is reported.

The PaymentFlow runs that ended, by status (a Validate call that queued past its Timeout for good shows as
a FAILED run, handed over to the payment's anchor). Memory: peak RSS (ru_maxrss), the RSS once the message is accepted and at the end, their difference per
parked payment, the process's threads at the end (moto's interpreter keeps three threads per running
execution: every parked payment's anchor waits for its decision), and the records left in moto's stream
shard (the journal's poller trims what it delivered).
"""
from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections import Counter

from bench.payments import ENV, TEMPLATE, XSD_DIR

SIZES = (1000, 10000)
BOUND_S = {1000: 600.0, 10000: 1800.0}
REGION = "sa-east-1"  # a Region of its own
OVERRIDES = {"MaxMessageBytes": "4194304"}


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _stream_records(runtime) -> int:
    """Records moto's shard of the payment table's stream holds now."""
    from moto.dynamodb.models import dynamodb_backends

    table = dynamodb_backends[runtime.account_id][runtime.region].get_table(runtime.physical("PaymentTable"))
    return len(table.stream_shard.items) if table.stream_shard is not None else 0


def _through(runtime, pending: list[str], counts: dict) -> list[str]:
    """`pending` without the payments at its front that are PDNG or RJCT (added to `counts`), read 100 at a
    time (one BatchGetItem) up to the first batch with one that is not. Payments get through about in the
    order the split starts them, so a look reads about what got through since the last one: a Scan reads
    every item (moto takes about 0.7 ms an item, holding the runtime's DynamoDB lock: seconds a look at
    10,000 payments, which slowed the flows it measured)."""
    client = runtime.client("dynamodb")
    table = runtime.physical("PaymentTable")
    while pending:
        batch, statuses = pending[:100], {}
        request = {table: {"Keys": [{"pk": {"S": payment_id}, "sk": {"S": "PAYMENT"}} for payment_id in batch],
                           "ProjectionExpression": "pk, #s", "ExpressionAttributeNames": {"#s": "status"}}}
        while request:
            response = client.batch_get_item(RequestItems=request)
            statuses.update((item["pk"]["S"], item["status"]["S"]) for item in response["Responses"].get(table, []))
            request = response.get("UnprocessedKeys") or None
        waiting = [payment_id for payment_id in batch if statuses.get(payment_id) not in ("PDNG", "RJCT")]
        for payment_id in batch:
            if payment_id not in waiting:
                counts[statuses[payment_id]] = counts.get(statuses[payment_id], 0) + 1
        pending = waiting + pending[100:]
        if waiting:
            break
    return pending


def _statuses(runtime) -> dict:
    """Every payment's status, counted (one Scan: once, at the end)."""
    counts: dict = {}
    client = runtime.client("dynamodb")
    for page in client.get_paginator("scan").paginate(TableName=runtime.physical("PaymentTable"),
                                                      ProjectionExpression="sk, #s",
                                                      ExpressionAttributeNames={"#s": "status"}):
        for item in page["Items"]:
            if item["sk"]["S"] == "PAYMENT":
                status = item["status"]["S"]
                counts[status] = counts.get(status, 0) + 1
    return counts


def measure(size: int, report=None) -> dict:
    """Run one size; `report` (if given) gets a progress line (JSON) at each look (the payments through
    validation so far, PDNG or RJCT, counted as they are seen in message order) and the result last."""
    report = report or (lambda line: None)
    from mxflow_local.client import ALL_SCOPES, PaymentsClient
    from mxflow_local.http_api import LocalApi
    from mxflow_local.sample_messages import bulk_credit_transfer

    message = bulk_credit_transfer([f"{1 + i % 997}.00" for i in range(size)], compact=True)
    with LocalApi.start(TEMPLATE, port=0, parameter_overrides=OVERRIDES, env_overrides=ENV, region=REGION) as api:
        runtime = api.runtime
        client = PaymentsClient(api.url, api.issue_token(ALL_SCOPES, client_id="bench-bulk"), timeout=300)
        began = time.perf_counter()
        reply = client.submit(message)
        accepted = time.perf_counter() - began
        if reply.status != 202:
            refused = {"transactions": size, "error": f"POST /payments answered {reply.status}: {reply.body[:300]!r}"}
            report(json.dumps(refused))
            return refused
        rss_accepted = _rss_mb()
        pending = [payment["paymentId"] for payment in reply.json["payments"]]
        through: dict = {}
        while time.perf_counter() - began < BOUND_S.get(size, 600.0):
            pending = _through(runtime, pending, through)
            report(json.dumps({"transactions": size, "progress_s": round(time.perf_counter() - began, 1),
                               "through": through, "rss_mb": round(_rss_mb(), 1),
                               "load_1m": round(os.getloadavg()[0], 2)}))
            if not pending:
                break
            time.sleep(1.0)
        elapsed = time.perf_counter() - began
        rss_end = _rss_mb()
        counts = _statuses(runtime)   # every payment's status, after the time is taken
        parked = counts.get("PDNG", 0)
        result = {"transactions": size, "message_bytes": len(message), "accepted_s": round(accepted, 2),
                  "to_pdng_s": round(elapsed, 1), "statuses": counts, "complete": parked == size,
                  "payments_per_s": round(parked / elapsed, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "rss_accepted_mb": round(rss_accepted, 1), "rss_end_mb": round(rss_end, 1),
                  "rss_growth_kb_per_payment": round((rss_end - rss_accepted) * 1024 / max(1, parked), 1),
                  "flows_ended": dict(sorted(Counter(r["status"] for r in runtime.express_records("PaymentFlow")).items())),
                  "threads_end": threading.active_count(), "stream_records_end": _stream_records(runtime),
                  "bulk_flows_in_flight": int(runtime.parameters["BulkFlowsInFlight"]),
                  "load_1m_end": round(os.getloadavg()[0], 2), "bound_s": BOUND_S.get(size, 600.0)}
        report(json.dumps(result))   # before the runtime stops: its result stands whatever the stop does
    return result


def _last_line(stdout) -> dict | None:
    """The child's last report line (its stdout carries nothing else, see __main__)."""
    lines = (stdout.decode() if isinstance(stdout, bytes) else stdout or "").strip().splitlines()
    return json.loads(lines[-1]) if lines else None


def run() -> dict:
    if not XSD_DIR.is_dir():
        raise FileNotFoundError(f"official XSDs not found at {XSD_DIR} (set MXFLOW_SHARED)")
    results = []
    for size in SIZES:
        try:
            done = subprocess.run([sys.executable, "-m", "bench.bulk", str(size)], capture_output=True, text=True,
                                  timeout=BOUND_S.get(size, 600.0) + 300, cwd=str(TEMPLATE.parent), env=os.environ.copy())
        except subprocess.TimeoutExpired as expired:   # how far it got: its last progress line
            results.append({**(_last_line(expired.stdout) or {"transactions": size}),
                            "error": f"killed after {BOUND_S.get(size, 600.0) + 300:.0f} s"})
            continue
        last = _last_line(done.stdout)
        if last is None or (done.returncode != 0 and "to_pdng_s" not in last):
            last = {**(last or {"transactions": size}),
                    "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
        results.append(last)
    return {"bulk": {"sizes": results, "path": "POST /payments (pacs.008, compact transactions), until every "
                     "payment is PDNG; template defaults but MaxMessageBytes, the local BulkFlowsInFlight, split "
                     "batches of 100",
                     "region": REGION}}


def _main(size: int) -> None:
    """The child: its report lines on stdout; whatever the functions print (Powertools' EMF metrics, as in
    Lambda) goes to stderr meanwhile, as in bench/__main__.py."""
    out = sys.stdout

    def report(line: str) -> None:
        out.write(line + "\n")
        out.flush()

    with contextlib.redirect_stdout(sys.stderr):
        measure(size, report=report)


if __name__ == "__main__":
    _main(int(sys.argv[1]))
