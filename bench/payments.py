"""Bench section `payments`: real payments through the application's template.yaml on the embedded local
runtime, behind the local HTTP API (keys: local, cost, capacity, cold_start_ms).

- local: STP payments (auto-decision policy on) submitted over HTTP from a few client threads, each polled
  with GET until ACSC; throughput and submit-to-observed-ACSC latency.
- cost: the AWS usage of one payment, measured. While a handful of STP payments and of decision payments
  (submit, PDNG, approve) run, every AWS API call a *handler* makes is counted (botocore's
  BaseClient._make_api_call wrapped and restored), attributed to the function it ran in (a context
  variable set around LambdaRunner.invoke, which the handler's worker thread inherits). Calls outside any
  handler (the Step Functions interpreter's own Lambda invokes, this bench's reads) are not counted. State
  transitions come from the execution history; Lambda invocations and durations from LambdaRunner.invoke.
  Usage is mapped to the price items of bench/prices.json and priced with bench.cost.
- capacity: bench.cost.capacity with the rate-limited actions one payment needs.
- cold_start_ms: per function, in a fresh interpreter, the first invoke on a started LocalRuntime
  (imports the handler module and its dependencies, then runs it once).
"""
from __future__ import annotations

import contextvars
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import cost

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "template.yaml"
SHARED = Path(os.environ.get("MXFLOW_SHARED", REPO.parent / "shared"))
XSD_DIR = SHARED / "iso20022" / "xsd"
ENV = {"MXFLOW_SCHEMA_DIR": str(XSD_DIR), "LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
STP_OVERRIDES = {"AutoApproveMaxAmount": "1000000"}
STP_REGION = "ap-southeast-2"       # Regions of their own: never shared with other suites' runtimes
DECISION_REGION = "eu-central-1"
STATE_MACHINE = "PaymentStateMachine"
FUNCTIONS = ["ApiFunction", "ValidateFunction", "ParkFunction", "DecisionTimeoutFunction", "FinaliseFunction",
             "ReleaseFunction"]

LOCAL_PAYMENTS = 60
LOCAL_THREADS = 4
LOCAL_SECONDS = 20.0
COST_PAYMENTS = 10
WAIT_S = 30.0
COLD_START_TIMEOUT_S = 60.0

# ------------------------------------------------------------------------------------------------------
# counting the AWS usage of the handlers

_INVOCATION = contextvars.ContextVar("mxflow_bench_invocation", default=None)


class UsageCounter:
    """Wraps LambdaRunner.invoke and botocore's _make_api_call while active; restores both on exit."""

    def __init__(self, memory_mb: dict[str, int]):
        self.memory_mb = memory_mb                       # physical function name -> MemorySize
        self.lock = threading.Lock()
        self.calls: Counter = Counter()                  # (function, service, operation) -> count
        self.units: Counter = Counter()                  # price item -> quantity
        self.invocations: Counter = Counter()            # function -> invocations
        self.gb_seconds = 0.0
        self.lambda_seconds = 0.0
        self.seconds_by_function: Counter = Counter()
        self.excluded_polling = 0

    def __enter__(self):
        from botocore.client import BaseClient

        from mxflow_local.lambda_runner import LambdaRunner

        self._runner_invoke = LambdaRunner.invoke
        self._api_call = BaseClient._make_api_call
        counter, runner_invoke, api_call = self, LambdaRunner.invoke, BaseClient._make_api_call

        def invoke(runner, name, payload):
            polling = _is_polling(payload)
            token = _INVOCATION.set({"function": name, "polling": polling})
            try:
                outcome = runner_invoke(runner, name, payload)
            finally:
                _INVOCATION.reset(token)
            counter.record_invocation(name, polling, outcome.duration_ms)
            return outcome

        def make_api_call(client, operation_name, api_params):
            response = api_call(client, operation_name, api_params)
            current = _INVOCATION.get()
            if current is not None and not current["polling"]:
                counter.record_call(current["function"], client.meta.service_model.service_name,
                                    operation_name, api_params, response)
            return response

        LambdaRunner.invoke = invoke
        BaseClient._make_api_call = make_api_call
        return self

    def __exit__(self, *exc):
        from botocore.client import BaseClient

        from mxflow_local.lambda_runner import LambdaRunner

        LambdaRunner.invoke = self._runner_invoke
        BaseClient._make_api_call = self._api_call

    def record_invocation(self, name: str, polling: bool, duration_ms: float) -> None:
        with self.lock:
            if polling:
                self.excluded_polling += 1
                return
            self.invocations[name] += 1
            seconds = duration_ms / 1000
            self.lambda_seconds += seconds
            self.seconds_by_function[name] += seconds
            self.gb_seconds += self.memory_mb.get(name, 128) / 1024 * seconds

    def record_call(self, function: str, service: str, operation: str, params: dict, response: dict) -> None:
        units = _price_units(service, operation, params, response)
        with self.lock:
            self.calls[(function, service, operation)] += 1
            self.units.update(units)


def _is_polling(payload: bytes) -> bool:
    """An API Gateway proxy event for GET: the consumer's status polling, which a real consumer can replace
    by the SNS events (not counted as usage of a payment)."""
    try:
        event = json.loads(payload) if payload else {}
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("httpMethod") == "GET"


def _value_size(value: dict) -> int:
    """DynamoDB's item-size rules, approximately (names and values in UTF-8 bytes)."""
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner.lstrip("-").replace(".", "")) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: v}) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_size(v) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    return len(json.dumps(inner))


def item_size(item: dict) -> int:
    return sum(len(name.encode()) + _value_size(value) for name, value in (item or {}).items())


_ITEM_SIZES: dict[str, int] = {}   # "table/pk/sk" -> last size seen, for UpdateItem (whole item is billed)


def _key_id(table: str, key: dict) -> str:
    return f"{table}/{json.dumps(key, sort_keys=True)}"


def _write_units(table: str, key: dict, item: dict | None) -> float:
    """1 WRU per KB of the (whole) item; UpdateItem bills the larger of old/new item: the last size seen."""
    if item is not None:
        _ITEM_SIZES[_key_id(table, key)] = item_size(item)
    size = _ITEM_SIZES.get(_key_id(table, key), 1)
    return max(1, math.ceil(size / 1024))


def _gsi_units(params: dict) -> float:
    """The sparse GSI InFlightByStatus is written when a write touches inflightShard: counted as 1 WRU
    (a lower bound: a key change is a delete plus a put, 2 WRU)."""
    return 1.0 if "inflightShard" in json.dumps(params) else 0.0


def _price_units(service: str, operation: str, params: dict, response: dict) -> Counter:
    units: Counter = Counter()
    if service == "dynamodb":
        table = params.get("TableName", "")
        if operation == "PutItem":
            item = params.get("Item") or {}
            key = {k: item[k] for k in ("pk", "sk") if k in item}
            units["dynamodb_write_request_unit"] += _write_units(table, key, item) + _gsi_units(params)
        elif operation in ("UpdateItem", "DeleteItem"):
            units["dynamodb_write_request_unit"] += _write_units(table, params.get("Key") or {}, None) + _gsi_units(params)
        elif operation == "TransactWriteItems":
            for entry in params.get("TransactItems") or []:
                (kind, body), = entry.items()
                item = body.get("Item")
                key = body.get("Key") or {k: item[k] for k in ("pk", "sk") if item and k in item}
                units["dynamodb_write_request_unit"] += 2 * _write_units(body.get("TableName", table), key, item)
                units["dynamodb_write_request_unit"] += _gsi_units(body)
        elif operation == "GetItem":
            size = item_size(response.get("Item") or {})
            factor = 1.0 if params.get("ConsistentRead") else 0.5
            units["dynamodb_read_request_unit"] += factor * max(1, math.ceil(size / 4096))
        elif operation == "Query":
            size = sum(item_size(i) for i in response.get("Items") or [])
            factor = 1.0 if params.get("ConsistentRead") else 0.5
            units["dynamodb_read_request_unit"] += factor * max(1, math.ceil(size / 4096))
        elif operation == "TransactGetItems":
            for entry in response.get("Responses") or []:
                units["dynamodb_read_request_unit"] += 2 * max(1, math.ceil(item_size(entry.get("Item")) / 4096))
    elif service == "s3":
        if operation in ("PutObject", "CopyObject", "ListObjectsV2", "ListObjects"):
            units["s3_put"] += 1
        elif operation in ("GetObject", "HeadObject"):
            units["s3_get"] += 1
        if operation in ("PutObject", "CopyObject", "GetObject", "HeadObject"):
            units["cloudtrail_data_event"] += 1  # the archive's access trail (AuditArchiveAccess, on by default)
    elif service == "sqs" and operation.startswith("SendMessage"):
        units["sqs_fifo_request"] += 1
    elif service == "sns" and operation.startswith("Publish"):
        units["sns_publish"] += 1
    elif service == "kms":
        units["kms_request"] += 1
    # stepfunctions StartExecution / SendTask*: not billed (the transitions are); lambda: counted by invoke
    return units


def _transitions(sfn, execution_arn: str) -> int:
    events, kwargs = [], {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        events.extend(page["events"])
        if not page.get("nextToken"):
            break
        kwargs["nextToken"] = page["nextToken"]
    return sum(1 for event in events if event["type"].endswith("StateEntered"))


# ------------------------------------------------------------------------------------------------------
# driving payments


def _start_api(overrides: dict, region: str):
    from mxflow_local.http_api import LocalApi

    return LocalApi.start(TEMPLATE, port=0, parameter_overrides=overrides, env_overrides=ENV, region=region)


def _client(api):
    from mxflow_local.client import ALL_SCOPES, PaymentsClient

    return PaymentsClient(api.url, api.issue_token(ALL_SCOPES, client_id="bench-client"))


def _submit(client) -> str:
    from mxflow_local.sample_messages import credit_transfer

    reply = client.submit(credit_transfer())
    if reply.status not in (200, 202):
        raise RuntimeError(f"POST /payments answered {reply.status}: {reply.body[:300]!r}")
    return reply.json["paymentId"]


def _local(api) -> dict:
    client = _client(api)
    deadline = time.monotonic() + LOCAL_SECONDS
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    remaining = [LOCAL_PAYMENTS]

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            began = time.perf_counter()
            try:
                payment_id = _submit(client)
                client.wait_for_status(payment_id, "ACSC", "RJCT", "CANC",
                                       timeout=max(1.0, deadline - time.monotonic() + 5))
                payment = client.get(payment_id).json
                if payment.get("status") != "ACSC":
                    raise RuntimeError(f"ended {payment.get('status')}")
            except (RuntimeError, TimeoutError, OSError) as exc:
                with lock:
                    failures.append(str(exc)[:200])
                continue
            with lock:
                latencies.append((time.perf_counter() - began) * 1000)

    began = time.perf_counter()
    with ThreadPoolExecutor(LOCAL_THREADS) as pool:
        for future in [pool.submit(worker) for _ in range(LOCAL_THREADS)]:
            future.result()
    wall = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "payments_per_s": round(len(latencies) / wall, 2) if wall else 0.0,
        "latency_ms": {"p50": round(statistics.median(ordered), 1) if ordered else None,
                       "p99": round(ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)], 1)
                       if ordered else None},
        "payments": len(latencies), "attempted": LOCAL_PAYMENTS - remaining[0], "failures": len(failures),
        "failure_samples": failures[:3], "threads": LOCAL_THREADS, "wall_s": round(wall, 2),
        "bound_s": LOCAL_SECONDS, "path": "STP (AutoApproveMaxAmount=1000000): POST /payments, GET until ACSC",
        "region": STP_REGION,
    }


def _record_status(api, payment_id: str) -> str | None:
    from mxflow.aws.dynamodb import RECORD_SK

    item = api.runtime.client("dynamodb").get_item(
        TableName=api.runtime.physical("PaymentTable"),
        Key={"pk": {"S": payment_id}, "sk": {"S": RECORD_SK}}, ConsistentRead=True).get("Item") or {}
    return (item.get("status") or {}).get("S")


def _wait_record(api, payment_id: str, status: str) -> None:
    """Wait for the stored status without the API (a GET would be usage of its own)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if _record_status(api, payment_id) == status:
            return
        time.sleep(0.02)
    raise TimeoutError(f"payment {payment_id} not {status} after {WAIT_S:.0f}s")


def _measure_path(api, decision: bool) -> dict:
    """Run COST_PAYMENTS payments of one path with the counter on; usage per payment."""
    from mxflow.aws.stepfunctions import execution_arn

    runtime = api.runtime
    memory = {spec.name: spec.memory_mb for spec in runtime.runner.functions.values()}
    client = _client(api)
    sfn = runtime.client("stepfunctions")
    machine = runtime.state_machine_arn(STATE_MACHINE)
    api_requests = 0
    ids: list[str] = []
    transitions = 0
    # One payment at a time: the handler durations (Lambda GB-seconds) are then not inflated by other
    # payments' handlers competing for the same interpreter.
    with UsageCounter(memory) as counter:
        for _ in range(COST_PAYMENTS):
            payment_id = _submit(client)
            ids.append(payment_id)
            api_requests += 1
            if decision:
                _wait_record(api, payment_id, "PDNG")
                reply = client.approve(payment_id)
                if reply.status != 200:
                    raise RuntimeError(f"approve answered {reply.status}: {reply.body[:300]!r}")
                api_requests += 1
            described = runtime.wait_execution(execution_arn(machine, payment_id), timeout=WAIT_S)
            if described["status"] != "SUCCEEDED" or _record_status(api, payment_id) != "ACSC":
                raise RuntimeError(f"payment {payment_id}: execution {described['status']}, "
                                   f"status {_record_status(api, payment_id)}")
            transitions += _transitions(sfn, described["executionArn"])
    n = len(ids)
    names = {spec.name: spec.logical_id for spec in runtime.runner.functions.values()}
    usage = {item: qty / n for item, qty in counter.units.items()}
    usage["stepfunctions_standard_transition"] = transitions / n
    usage["lambda_request"] = sum(counter.invocations.values()) / n
    usage["lambda_arm64_gb_second"] = counter.gb_seconds / n
    usage["apigateway_rest_request"] = api_requests / n
    usage.setdefault("kms_request", 0.0)
    usage = {k: round(v, 6) for k, v in sorted(usage.items())}
    calls = defaultdict(dict)
    for (function, service, operation), count in sorted(counter.calls.items()):
        calls[names.get(function, function)][f"{service}:{operation}"] = round(count / n, 3)
    return {
        "payments": n,
        "usage_per_payment": usage,
        "usd_per_million": cost.usd_per_million(usage),
        "breakdown_usd_per_million": cost.breakdown_per_million(usage),
        "api_calls_per_payment": dict(calls),
        "invocations_per_payment": {names.get(k, k): round(v / n, 3) for k, v in sorted(counter.invocations.items())},
        "lambda_seconds_per_payment": round(counter.lambda_seconds / n, 5),
        "handler_ms_per_payment": {names.get(k, k): round(v / n * 1000, 1)
                                   for k, v in sorted(counter.seconds_by_function.items())},
        "sqs_requests_per_payment": usage.get("sqs_fifo_request", 0.0),
        "excluded_polling_invocations": counter.excluded_polling,
        "largest_item_bytes": max(_ITEM_SIZES.values(), default=0),
        "sequential": True,
    }


def _capacity(path: dict, decision: bool) -> tuple[float, str, dict]:
    usage = path["usage_per_payment"]
    per_payment = {
        "stepfunctions_standard_transitions_per_s": usage["stepfunctions_standard_transition"],
        "stepfunctions_start_execution_per_s": 1,
        "apigateway_requests_per_s": usage["apigateway_rest_request"],
        "dynamodb_table_write_units_per_s": usage.get("dynamodb_write_request_unit", 0.0),
        "sqs_fifo_high_throughput_per_s": usage.get("sqs_fifo_request", 0.0),
    }
    if decision:
        per_payment["stepfunctions_send_task_per_s"] = 1
    rate, binding = cost.capacity(per_payment, path["lambda_seconds_per_payment"])
    return rate, binding, per_payment


# ------------------------------------------------------------------------------------------------------
# cold starts

COLD_SCRIPT = r"""
import json, sys, time
from mxflow_local.runtime import LocalRuntime
template, function, event_file, env, region = sys.argv[1:6]
rt = LocalRuntime(template, region=region, env_overrides=json.loads(env), scheduler=False)
rt.start()
try:
    event = json.loads(open(event_file).read())
    began = time.perf_counter()
    result = rt.invoke(function, event)
    ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    rt.invoke(function, event)
    warm = (time.perf_counter() - began) * 1000
    print(json.dumps({"ms": ms, "warm_ms": warm, "ok": result.ok,
                      "error": (result.error or {}).get("errorType")}))
finally:
    rt.stop()
"""

COLD_EVENTS = {
    "ApiFunction": "api/health.json",
    "ValidateFunction": "validate/valid.json",
    "ParkFunction": "park/park.json",
    "DecisionTimeoutFunction": "decision_timeout/timeout.json",
    "FinaliseFunction": "finalise/reject.json",
    "ReleaseFunction": "release/release.json",
}


def _cold_one(function: str) -> dict:
    event = REPO / "events" / COLD_EVENTS[function]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p))
    try:
        done = subprocess.run(
            [sys.executable, "-c", COLD_SCRIPT, str(TEMPLATE), function, str(event), json.dumps(ENV), "us-west-1"],
            cwd=str(REPO), capture_output=True, text=True, timeout=COLD_START_TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return {"ms": None, "error": f"timed out after {COLD_START_TIMEOUT_S:.0f}s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"ms": None, "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    result = json.loads(lines[-1])
    result["event"] = f"events/{COLD_EVENTS[function]}"
    return result


def _cold_starts() -> tuple[dict, dict]:
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(FUNCTIONS, pool.map(_cold_one, FUNCTIONS)))
    cold = {name: (round(r["ms"], 1) if r.get("ms") is not None else None) for name, r in results.items()}
    detail = {name: {k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items() if k != "ms"}
              for name, r in results.items()}
    return cold, detail


# ------------------------------------------------------------------------------------------------------


def run() -> dict:
    if not XSD_DIR.is_dir():
        raise FileNotFoundError(f"official XSDs not found at {XSD_DIR} (set MXFLOW_SHARED)")
    _ITEM_SIZES.clear()
    with _start_api(STP_OVERRIDES, STP_REGION) as api:
        stp = _measure_path(api, decision=False)
        local = _local(api)
    with _start_api({}, DECISION_REGION) as api:
        decision = _measure_path(api, decision=True)
    stp_rate, stp_binding, stp_actions = _capacity(stp, decision=False)
    decision_rate, decision_binding, decision_actions = _capacity(decision, decision=True)
    cold, cold_detail = _cold_starts()
    return {
        "local": local,
        "cost": {
            "stp_usd_per_million": stp["usd_per_million"],
            "decision_usd_per_million": decision["usd_per_million"],
            "reference_usd_per_million": cost.usd_per_million(cost.REFERENCE_USAGE),
            "reference_usage_per_payment": cost.REFERENCE_USAGE,
            "reference_breakdown_usd_per_million": cost.breakdown_per_million(cost.REFERENCE_USAGE),
            "stp": stp,
            "decision": decision,
            "prices_as_of": cost.PRICES["as_of"],
            "assumptions": {
                "api_requests": "API Gateway requests and ApiFunction invocations count the consumer's submit "
                                "and decision requests only; status polling (GET) is excluded (a consumer can "
                                "follow the SNS events instead) and its handler calls are not counted",
                "dynamodb": "WRU = ceil(item KB) per PutItem/UpdateItem/DeleteItem (UpdateItem sized by the "
                            "last full item written for that key), 2x per TransactWriteItems item; +1 WRU when "
                            "a write touches the sparse GSI InFlightByStatus (a lower bound: a key change is "
                            "2); RRU = ceil(4 KB) for consistent reads, half for eventual; streams not priced",
                "cloudtrail": "AuditArchiveAccess=true (the template's default): one data event per object-level "
                              "read or write of the archive; the trail's own log-file PUTs (a few per 5 minutes) "
                              "are not per payment",
                "kms": "the archive bucket has BucketKeyEnabled (template.yaml), so S3 SSE-KMS calls to KMS are "
                       "amortised to ~0 per object; DynamoDB's KMS use is cached by the service; only the "
                       "handlers' explicit KMS API calls are counted",
                "lambda": "GB-seconds = each function's MemorySize x the handler duration measured locally "
                          "(in-process on this machine, not an AWS duration; excludes AWS init and billing "
                          "rounding to 1 ms)",
                "stepfunctions": "state transitions = *StateEntered events in each execution's history; "
                                 "StartExecution and SendTaskSuccess are not billed separately",
                "sqs": "only mxflow's own SendMessage requests; the consumer's receive/delete are the consumer's",
            },
        },
        "capacity": {
            "stp_payments_per_s": stp_rate,
            "binding_quota": stp_binding,
            "stp_actions_per_payment": stp_actions,
            "decision_payments_per_s": decision_rate,
            "decision_binding_quota": decision_binding,
            "decision_actions_per_payment": decision_actions,
            "stp_lambda_seconds_per_payment": stp["lambda_seconds_per_payment"],
            "decision_lambda_seconds_per_payment": decision["lambda_seconds_per_payment"],
            "note": "Region default quotas (bench/prices.json); Lambda concurrency from local handler seconds",
        },
        "cold_start_ms": cold,
        "cold_start": {
            "method": "fresh interpreter per function: LocalRuntime(template.yaml).start(), then the first "
                      "invoke timed (handler module import + dependencies + one call); warm_ms is the second "
                      "invoke. Events from events/; those naming a payment that does not exist return an "
                      "error payload (ok false) - the import and first call are still what is timed",
            "functions": cold_detail,
        },
    }
