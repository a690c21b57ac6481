"""Bench section `payments`: real payments through the application's template.yaml on the embedded local
runtime, behind the local HTTP API (keys: local, local_memory, cold_import_ms, layer, cost, capacity,
cold_start_ms, cold_init_and_first_invoke).

- local: STP payments (auto-decision policy on) submitted over HTTP from a few client threads, each polled
  with GET until ACSC; throughput and submit-to-ACSC latency (LOCAL_PAYMENTS from LOCAL_THREADS clients;
  `one_client`: one payment at a time, the latency without queueing); the process's CPU time per payment
  (everything runs in this process, under one interpreter lock: 1000 / it bounds the rate on one core), the
  part of it the cyclic garbage collector took, and the part inside AWS API calls (botocore and moto), by
  operation (`aws_calls`).
- cost: the AWS usage of one payment, counted from what ran (UsageMeter). While COST_PAYMENTS
  straight-through payments, then COST_PAYMENTS payments that wait for a decision (submit, PDNG, approve),
  run one after another:
  * every AWS API call made in the process -- by the handlers, by the state machines' own service
    integrations (startExecution, sendTaskSuccess/Failure, ...) and by the API -- through botocore's
    BaseClient._make_api_call (wrapped and restored), except the bench's own reads (marked `own()`);
  * DynamoDB write units from the whole item before and after each write (a write is billed by the larger,
    per KB, a failed condition too), plus one unit per KEYS_ONLY index entry written or removed (two when
    its key changes); read units from the items returned (per 4 KB, half for eventual reads);
  * Standard state transitions from each anchor execution's history (*StateEntered events);
  * Express requests and billed duration from the PaymentFlow executions that ended (the runtime's record
    of them: moto keeps no Express history, as AWS keeps none), each rounded up to 100 ms at 64 MB;
  * Lambda invocations and durations from LambdaRunner.invoke, each rounded up to the millisecond;
  * API Gateway requests: the HTTP requests a consumer makes (submit; approve).
  Usage is mapped to the price items of bench/prices.json and priced with bench.cost.
- capacity: bench.cost.capacity with the rate-limited actions one payment needs.
- local_memory: the process's RSS after the throughput run and after MEMORY_PAYMENTS payments in all.
- cold_import_ms: per function, median of COLD_IMPORT_RUNS fresh interpreters importing the handler module,
  as Lambda's init would (Lambda's variables, tracing on, only the layer's and the runtime's packages,
  bytecode as the layer ships it: see LAMBDA_SITE_PRELUDE).
- cold_init_and_first_invoke: per function, in the same kind of fresh interpreter, the init and the first
  invoke timed apart, the AWS calls served over HTTP by a local runtime's AWS endpoint: what a late import
  saves at init it adds to the first invoke, and init + first invoke shows it.
  Both cold figures read the schemas as deployed without SchemaLayerArn (COLD_ENV: the layer's built-in
  set, not ../shared's XSDs).
- layer: the built layer's installed size.
- cold_start_ms: per function, in a fresh interpreter, the first invoke on a started LocalRuntime
  (imports the handler module and its dependencies, then runs it once; boto3 and botocore are already
  loaded by the runtime there, so cold_init_and_first_invoke is the figure of a Lambda cold start).
"""
from __future__ import annotations

import contextlib
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

from bench import cost, journal

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "template.yaml"
SHARED = Path(os.environ.get("MXFLOW_SHARED", REPO.parent / "shared"))
XSD_DIR = SHARED / "iso20022" / "xsd"
ENV = {"MXFLOW_SCHEMA_DIR": str(XSD_DIR), "LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
# The cold starts' functions read their schemas as deployed without SchemaLayerArn: no schema directory
# (template.yaml's /opt/schemas is then empty), the layer's built-in set (mxflow-schemas/builtin.json)
COLD_ENV = {**ENV, "MXFLOW_SCHEMA_DIR": ""}
STP_OVERRIDES = {"AutoApproveMaxAmount": "1000000"}
STP_REGION = "ap-southeast-2"       # Regions of their own: never shared with other suites' runtimes
DECISION_REGION = "eu-central-1"
ANCHOR, FLOW = "PaymentStateMachine", "PaymentFlow"
FUNCTIONS = ["ApiFunction", "ValidateFunction", "ParkFunction", "DecisionTimeoutFunction", "SendFunction",
             "SettleFunction", "SamplerFunction"]

LOCAL_PAYMENTS = 500                   # issue 10: 500 STP payments from several client threads
LOCAL_THREADS = 16
LOCAL_SECONDS = 300.0                  # bound of the throughput run
MEMORY_PAYMENTS = int(os.environ.get("MXFLOW_BENCH_MEMORY_PAYMENTS", "5000"))   # total for the second figure
MEMORY_SECONDS = 1200.0                # bound of the memory run (the payments done are reported)
COLD_IMPORT_RUNS = 10
ONE_CLIENT_PAYMENTS = 30               # one client thread, one payment at a time: latency without queueing
ONE_CLIENT_SECONDS = 60.0
POLL_S = 0.25                          # the clients' GET interval while a payment is in flight
COST_PAYMENTS = 10
WAIT_S = 30.0
COLD_START_TIMEOUT_S = 60.0
# A Step Functions task token is up to 2,048 characters (the API's limit); moto's are short. The payment's
# item carries the token while it waits: its size is counted at the limit, never less.
TASK_TOKEN_BYTES = 2048
EXPRESS_BILLED_MEMORY_GB = 64 / 1024   # 50 MB + definition + payload, billed in 64-MB chunks
EXPRESS_BILLING_STEP_MS = 100
KEYS_ONLY_ENTRY_WRU = 1                 # table key + index key + 100 bytes of overhead: under 1 KB

# ------------------------------------------------------------------------------------------------------
# counting the AWS usage of what runs

_OWN = contextvars.ContextVar("mxflow_bench_own", default=False)


@contextlib.contextmanager
def own():
    """The bench's own AWS calls (waiting, reading what happened): not usage of a payment."""
    token = _OWN.set(True)
    try:
        yield
    finally:
        _OWN.reset(token)


def _value_size(value: dict, name: str = "") -> int:
    """DynamoDB's item-size rules (names and values in UTF-8 bytes; numbers about 1 byte per 2 digits)."""
    (kind, inner), = value.items()
    if kind == "S":
        size = len(inner.encode())
        return max(size, TASK_TOKEN_BYTES) if name == "taskToken" else size
    if kind == "N":
        return len(str(inner).lstrip("-").replace(".", "")) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(_value_size({kind[0]: v}) for v in inner)
    if kind == "M":
        return 3 + sum(len(k.encode()) + 1 + _value_size(v, k) for k, v in inner.items())
    if kind == "L":
        return 3 + sum(1 + _value_size(v) for v in inner)
    return len(json.dumps(inner))


def item_size(item: dict | None) -> int:
    return sum(len(name.encode()) + _value_size(value, name) for name, value in (item or {}).items())


def _chunks(size: int, chunk: int = 64 * 1024) -> int:
    return max(1, math.ceil(size / chunk))


class UsageMeter:
    """Counts what runs while active: wraps BaseClient._make_api_call and LambdaRunner.invoke, and listens
    to the Express executions that end; restores both on exit."""

    def __init__(self, runtime):
        self.runtime = runtime
        self.memory_mb = {spec.name: spec.memory_mb for spec in runtime.runner.functions.values()}
        self.names = {spec.name: spec.logical_id for spec in runtime.runner.functions.values()}
        self.lock = threading.Lock()
        self.calls: Counter = Counter()                  # (caller, service, operation) -> count
        self.units: Counter = Counter()                  # price item -> quantity
        self.invocations: Counter = Counter()            # function -> invocations
        self.seconds_by_function: Counter = Counter()
        self.lambda_seconds = 0.0
        self.item_bytes: list[int] = []                  # the whole item after each write
        self.express: list[dict] = []
        with own():
            table = runtime.client("dynamodb").describe_table(TableName=runtime.physical("PaymentTable"))["Table"]
        self.table = table["TableName"]
        self.indexes = {i["IndexName"]: [k["AttributeName"] for k in i["KeySchema"]]
                        for i in table.get("GlobalSecondaryIndexes", [])}
        self.flow_arn = runtime.state_machine_arn(FLOW)

    def __enter__(self):
        from botocore.client import BaseClient

        from mxflow_local import stepfunctions
        from mxflow_local.lambda_runner import CURRENT_FUNCTION, LambdaRunner

        self._runner_invoke, self._api_call = LambdaRunner.invoke, BaseClient._make_api_call
        meter, runner_invoke, api_call = self, LambdaRunner.invoke, BaseClient._make_api_call

        def invoke(runner, name, payload):
            outcome = runner_invoke(runner, name, payload)
            meter.record_invocation(name, outcome.duration_ms)
            return outcome

        def make_api_call(client, operation_name, api_params):
            if _OWN.get():
                return api_call(client, operation_name, api_params)
            service = client.meta.service_model.service_name
            before = meter.item_before(service, operation_name, api_params)
            try:
                response = api_call(client, operation_name, api_params)
            except Exception as error:  # a failed condition is billed too
                meter.record_call(service, operation_name, api_params, None, before, CURRENT_FUNCTION.get(), error)
                raise
            meter.record_call(service, operation_name, api_params, response, before, CURRENT_FUNCTION.get())
            return response

        LambdaRunner.invoke = invoke
        BaseClient._make_api_call = make_api_call
        stepfunctions.add_express_listener(self.record_express)
        return self

    def __exit__(self, *exc):
        from botocore.client import BaseClient

        from mxflow_local import stepfunctions
        from mxflow_local.lambda_runner import LambdaRunner

        LambdaRunner.invoke = self._runner_invoke
        BaseClient._make_api_call = self._api_call
        stepfunctions.remove_express_listener(self.record_express)

    # -- what is recorded ---------------------------------------------------------------------------
    def record_invocation(self, name: str, duration_ms: float) -> None:
        billed_s = math.ceil(duration_ms) / 1000  # Lambda bills duration rounded up to the millisecond
        with self.lock:
            self.invocations[name] += 1
            self.lambda_seconds += billed_s
            self.seconds_by_function[name] += billed_s
            self.units["lambda_request"] += 1
            self.units["lambda_arm64_gb_second"] += self.memory_mb.get(name, 128) / 1024 * billed_s

    def record_express(self, record: dict) -> None:
        if record["stateMachineArn"] != self.flow_arn:
            return
        duration_ms = (record["stopDate"] - record["startDate"]).total_seconds() * 1000
        billed_s = math.ceil(duration_ms / EXPRESS_BILLING_STEP_MS) * EXPRESS_BILLING_STEP_MS / 1000
        with self.lock:
            self.express.append({**record, "billedSeconds": billed_s})
            self.units["stepfunctions_express_request"] += 1
            self.units["stepfunctions_express_gb_second"] += EXPRESS_BILLED_MEMORY_GB * billed_s

    def _get(self, key: dict) -> dict | None:
        with own():
            return self.runtime.client("dynamodb").get_item(TableName=self.table, Key=key).get("Item")

    def item_before(self, service: str, operation: str, params: dict) -> dict | None:
        if service == "dynamodb" and operation in ("PutItem", "UpdateItem", "DeleteItem") \
                and params.get("TableName") == self.table:
            key = params.get("Key") or {k: params["Item"][k] for k in ("pk", "sk")}
            return self._get(key) or {}
        return None

    def record_call(self, service, operation, params, response, before, function, error=None) -> None:
        caller = self.names.get(function, function) or "state machines"
        units = self._units(service, operation, params, response or {}, before, error)
        with self.lock:
            self.calls[(caller, service, operation)] += 1
            self.units.update(units)

    def _units(self, service, operation, params, response, before, error) -> Counter:
        units: Counter = Counter()
        if service == "dynamodb":
            if before is not None:
                key = params.get("Key") or {k: params["Item"][k] for k in ("pk", "sk")}
                after = before if error is not None else (self._get(key) or {})
                if error is None:
                    self.item_bytes.append(item_size(after))
                units["dynamodb_write_request_unit"] += max(1, math.ceil(max(item_size(before), item_size(after)) / 1024))
                units["dynamodb_write_request_unit"] += self._index_writes(before, after)
            elif operation == "GetItem":
                factor = 1.0 if params.get("ConsistentRead") else 0.5
                units["dynamodb_read_request_unit"] += factor * max(1, math.ceil(item_size(response.get("Item")) / 4096))
            elif operation == "Query":
                factor = 1.0 if params.get("ConsistentRead") else 0.5
                size = sum(item_size(i) for i in response.get("Items") or [])
                units["dynamodb_read_request_unit"] += factor * max(1, math.ceil(size / 4096))
            elif operation == "BatchGetItem":
                for items in (response.get("Responses") or {}).values():
                    for item in items:
                        units["dynamodb_read_request_unit"] += 0.5 * max(1, math.ceil(item_size(item) / 4096))
        elif service == "s3" and error is None:
            if operation in ("PutObject", "CopyObject"):
                units["s3_put"] += 1
                units["cloudtrail_data_event"] += 1  # the archive's access trail (AuditArchiveAccess, default on)
            elif operation in ("GetObject", "HeadObject"):
                units["s3_get"] += 1
                units["cloudtrail_data_event"] += 1
        elif service == "sqs" and operation == "SendMessage":
            units["sqs_fifo_request"] += _chunks(len(params.get("MessageBody", "").encode()))
        elif service == "sns" and operation == "Publish":
            units["sns_publish"] += _chunks(len(params.get("Message", "").encode()))
        elif service == "kms":
            units["kms_request"] += 1
        # stepfunctions: StartExecution of the anchor, SendTask*, DescribeExecution are not billed (the
        # anchor's transitions and PaymentFlow's requests and duration are); lambda Invoke: priced from the
        # invocations themselves.
        return units

    def _index_writes(self, before: dict, after: dict) -> int:
        writes = 0
        for keys in self.indexes.values():
            old = tuple(json.dumps(before.get(k), sort_keys=True) for k in keys) if all(k in before for k in keys) else None
            new = tuple(json.dumps(after.get(k), sort_keys=True) for k in keys) if all(k in after for k in keys) else None
            if old != new:
                writes += KEYS_ONLY_ENTRY_WRU * (2 if old and new else 1)
        return writes


# ------------------------------------------------------------------------------------------------------
# driving payments


def _start_api(overrides: dict, region: str):
    from mxflow_local.http_api import LocalApi

    return LocalApi.start(TEMPLATE, port=0, parameter_overrides=overrides, env_overrides=ENV, region=region)


def _client(api):
    from mxflow_local.client import ALL_SCOPES

    return _keep_alive_client(api.url, api.issue_token(ALL_SCOPES, client_id="bench-client"))


def _keep_alive_client(url: str, token: str):
    """mxflow_local.client.PaymentsClient over one kept-alive HTTP/1.1 connection per client thread, as a
    consumer's connection pool would (urllib opens a connection, and the local server a thread, per
    request: both run in this process and were a part of what the throughput measured)."""
    import http.client
    from urllib.parse import urlsplit

    from mxflow_local.client import PaymentsClient, Reply

    parts = urlsplit(url)

    class KeepAliveClient(PaymentsClient):
        def __init__(self):
            super().__init__(url, token)
            self._connections = threading.local()

        def request(self, method, path, *, body=None, content_type=None, token=..., headers=None):
            all_headers = dict(headers or {})
            token = self.token if token is ... else token
            if token:
                all_headers["Authorization"] = f"Bearer {token}"
            if content_type:
                all_headers["Content-Type"] = content_type
            for attempt in (1, 2):
                connection = getattr(self._connections, "connection", None)
                reused = connection is not None
                if connection is None:
                    connection = self._connections.connection = http.client.HTTPConnection(
                        parts.hostname, parts.port, timeout=self.timeout)
                try:
                    connection.request(method, path, body=body, headers=all_headers)
                    response = connection.getresponse()
                    data = response.read()
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    connection.close()
                    self._connections.connection = None
                    if reused and attempt == 1:   # the server closed an idle kept-alive connection: once more
                        continue
                    raise
                if response.will_close:
                    connection.close()
                    self._connections.connection = None
                return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
            raise OSError("unreachable")

    return KeepAliveClient()


def _submit(client) -> str:
    from mxflow_local.sample_messages import credit_transfer

    reply = client.submit(credit_transfer())
    if reply.status not in (200, 202):
        raise RuntimeError(f"POST /payments answered {reply.status}: {reply.body[:300]!r}")
    return reply.json["paymentId"]


def _rss_mb() -> float | None:
    """This process's resident memory now (the local runtime runs in it), after a full collection."""
    import gc

    gc.collect()
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _local(api, payments: int = LOCAL_PAYMENTS, seconds: float = LOCAL_SECONDS, threads: int = LOCAL_THREADS) -> dict:
    client = _client(api)
    deadline = time.monotonic() + seconds
    latencies: list[float] = []   # submit -> the ACSC recorded on the payment's history (same clock)
    observed: list[float] = []    # submit -> the poll that saw ACSC (adds up to POLL_S)
    failures: list[str] = []
    lock = threading.Lock()
    remaining = [payments]

    def worker() -> None:
        while time.monotonic() < deadline:
            with lock:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            began, submitted_at = time.perf_counter(), time.time()
            try:
                payment_id = _submit(client)
                payment = client.wait_for(payment_id, lambda p: p.get("status") in ("ACSC", "RJCT", "CANC"),
                                          timeout=max(1.0, deadline - time.monotonic() + 5), interval=POLL_S)
                if payment.get("status") != "ACSC":
                    raise RuntimeError(f"ended {payment.get('status')}")
                settled = next(e["time"] for e in payment["history"] if e.get("status") == "ACSC")
            except (RuntimeError, TimeoutError, OSError, KeyError, StopIteration) as exc:
                with lock:
                    failures.append(str(exc)[:200] or type(exc).__name__)
                continue
            with lock:
                observed.append((time.perf_counter() - began) * 1000)
                latencies.append((_epoch(settled) - submitted_at) * 1000)

    began, cpu_began = time.perf_counter(), time.process_time()
    with _collector_time() as collected, _call_time() as calls, ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    settled = len(latencies)
    return {
        "payments_per_s": round(settled / wall, 2) if wall else 0.0,
        "cpu_ms_per_payment": round(cpu * 1000 / settled, 1) if settled else None,
        "gc_ms_per_payment": round(collected["seconds"] * 1000 / settled, 2) if settled else None,
        "aws_calls": _calls_per_payment(calls, settled),
        "cpu_method": "cpu_ms_per_payment: this process's CPU time (runtime, functions, local API and the clients, "
                      "all in this process, bound by one interpreter lock) over the run per payment settled; "
                      "1000 / it is the payments a second one core can carry. gc_ms_per_payment: the time "
                      "inside the cyclic garbage collector (gc.callbacks), part of the CPU time. aws_calls: the "
                      "part of it inside AWS API calls (see _call_time)",
        "latency_ms": _percentiles(latencies),
        "observed_latency_ms": _percentiles(observed),
        "latency_method": "latency_ms: from the client's submit to the time of the ACSC event on the payment's "
                          "history (the runtime runs in this process: one clock); observed_latency_ms: to the "
                          f"GET that saw ACSC, polling every {POLL_S} s",
        "payments": len(latencies), "attempted": payments - remaining[0], "failures": len(failures),
        "failure_samples": failures[:3], "threads": threads, "wall_s": round(wall, 2),
        "bound_s": seconds, "path": "STP (AutoApproveMaxAmount=1000000): POST /payments, GET until ACSC",
        "region": STP_REGION,
    }


@contextlib.contextmanager
def _collector_time():
    """{"seconds": the wall time spent in the cyclic garbage collector while inside} (gc.callbacks; the
    collector holds the interpreter lock, so that time is the process's)."""
    import gc

    spent = {"seconds": 0.0}
    started = [0.0]

    def callback(phase: str, _info: dict) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            spent["seconds"] += time.perf_counter() - started[0]

    gc.callbacks.append(callback)
    try:
        yield spent
    finally:
        gc.callbacks.remove(callback)


@contextlib.contextmanager
def _call_time():
    """{(service, operation): [calls, seconds]} of the AWS API calls made while inside, each call's seconds
    the CPU time of the thread that made it, from botocore's BaseClient._make_api_call entered to returned
    (botocore's request and response handling and moto's backend, both in this thread: the local runtime's
    AWS). A call made inside another on the same thread counts in the outer one only; a Lambda function a
    call invokes runs on its own thread, so its work is not in the Invoke's time (its own calls are counted
    as calls). A call still running on another thread at the exit is not counted: what was yielded does not
    change after it."""
    from botocore.client import BaseClient

    spent: dict = defaultdict(lambda: [0, 0.0])
    lock, inside, counting = threading.Lock(), threading.local(), True
    api_call = BaseClient._make_api_call

    def make_api_call(client, operation_name, api_params):
        if getattr(inside, "call", False):
            return api_call(client, operation_name, api_params)
        inside.call, began = True, time.thread_time()
        try:
            return api_call(client, operation_name, api_params)
        finally:
            seconds = time.thread_time() - began
            inside.call = False
            with lock:
                if counting:
                    entry = spent[(client.meta.service_model.service_name, operation_name)]
                    entry[0] += 1
                    entry[1] += seconds

    BaseClient._make_api_call = make_api_call
    try:
        yield spent
    finally:
        BaseClient._make_api_call = api_call
        with lock:
            counting = False


def _calls_per_payment(spent: dict, payments: int) -> dict | None:
    """What _call_time counted, per payment settled: the CPU ms inside AWS calls, and by operation (busiest
    first) the calls per payment and the CPU ms per call. Includes the clients' status reads (GetItem by
    ApiFunction) and any call the runtime makes through a client of its own."""
    if not payments:
        return None
    by_operation = {f"{service} {operation}": {"calls_per_payment": round(calls / payments, 2),
                                               "cpu_ms_per_call": round(seconds * 1000 / calls, 2)}
                    for (service, operation), (calls, seconds) in sorted(spent.items(), key=lambda kv: -kv[1][1])}
    return {"cpu_ms_per_payment": round(sum(seconds for _, seconds in spent.values()) * 1000 / payments, 1),
            "by_operation": by_operation}


def _percentiles(values: list[float]) -> dict:
    ordered = sorted(values)
    if not ordered:
        return {"p50": None, "p99": None}
    return {"p50": round(statistics.median(ordered), 1),
            "p99": round(ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)], 1)}


def _epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _memory(api, first: dict, started_mb: float | None) -> dict:
    """RSS of the process after the throughput run's payments and after MEMORY_PAYMENTS in all (more STP
    payments through the same running API, bounded by MEMORY_SECONDS: the payments done are reported)."""
    after_first = _rss_mb()
    first_count = first["payments"] + first.get("one_client", {}).get("payments", 0)
    more = _local(api, max(0, MEMORY_PAYMENTS - first_count), MEMORY_SECONDS)
    done = first_count + more["payments"]
    after_all = _rss_mb()
    growth = None
    if after_first is not None and after_all is not None and more["payments"]:
        growth = round((after_all - after_first) * 1024 / more["payments"], 2)
    return {
        "rss_mb_started": started_mb,
        f"rss_mb_after_{first_count}": after_first,
        f"rss_mb_after_{done}": after_all,
        "payments": done, "target_payments": MEMORY_PAYMENTS, "failures": more["failures"],
        "growth_kb_per_payment_after_first": growth,
        "payments_per_s_later_run": more["payments_per_s"],
        "method": "VmRSS of the bench process (the local runtime, its API and the clients run in it) after "
                  "gc.collect(), once the API is up, after the throughput run and after the later payments "
                  "through the same runtime; finished Express executions are dropped after "
                  "EXPRESS_RETENTION_SECONDS as AWS keeps none; the payments' items stay in the table",
    }


def _record(api, payment_id: str) -> dict:
    from mxflow.aws.dynamodb import RECORD_SK

    with own():
        return api.runtime.client("dynamodb").get_item(
            TableName=api.runtime.physical("PaymentTable"),
            Key={"pk": {"S": payment_id}, "sk": {"S": RECORD_SK}}, ConsistentRead=True).get("Item") or {}


def _wait_record(api, payment_id: str, status: str) -> None:
    """Wait for the stored status without the API (a GET would be usage of its own)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if (_record(api, payment_id).get("status") or {}).get("S") == status:
            return
        time.sleep(0.02)
    raise TimeoutError(f"payment {payment_id} not {status} after {WAIT_S:.0f}s")


def _wait_flows(meter: UsageMeter, count: int) -> None:
    """Until `count` PaymentFlow executions have ended (the last one answers the anchor after Settle)."""
    deadline = time.monotonic() + WAIT_S
    while len(meter.express) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def _transitions(api, execution_arn: str) -> list[str]:
    sfn = api.runtime.client("stepfunctions")
    events, kwargs = [], {"executionArn": execution_arn, "maxResults": 1000}
    with own():
        while True:
            page = sfn.get_execution_history(**kwargs)
            events.extend(page["events"])
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]


def _measure_path(api, decision: bool) -> dict:
    """Run COST_PAYMENTS payments of one path, one after another, with the meter on; usage per payment.
    One at a time: the handler durations (Lambda GB-seconds) are then not inflated by other payments'
    handlers competing for the same interpreter."""
    from mxflow.aws.stepfunctions import execution_arn

    runtime = api.runtime
    client = _client(api)
    anchor_machine = runtime.state_machine_arn(ANCHOR)
    api_requests = 0
    ids: list[str] = []
    anchors: list[list[str]] = []
    flows_per_payment = 2 if decision else 1
    with UsageMeter(runtime) as meter, journal.JournalRecords(runtime) as journaled:
        for n in range(COST_PAYMENTS):
            payment_id = _submit(client)
            ids.append(payment_id)
            api_requests += 1
            if decision:
                _wait_record(api, payment_id, "PDNG")
                reply = client.approve(payment_id)
                if reply.status != 200:
                    raise RuntimeError(f"approve answered {reply.status}: {reply.body[:300]!r}")
                api_requests += 1
            _wait_record(api, payment_id, "ACSC")
            _wait_flows(meter, flows_per_payment * (n + 1))
            if decision:
                with own():
                    described = runtime.wait_execution(execution_arn(anchor_machine, payment_id), timeout=WAIT_S)
                if described["status"] != "SUCCEEDED":
                    raise RuntimeError(f"payment {payment_id}: anchor {described['status']}")
                anchors.append(_transitions(api, described["executionArn"]))
    n = len(ids)
    usage = {item: qty / n for item, qty in meter.units.items()}
    usage["stepfunctions_standard_transition"] = sum(len(a) for a in anchors) / n
    usage["apigateway_rest_request"] = api_requests / n
    usage.setdefault("kms_request", 0.0)
    usage = {k: round(v, 6) for k, v in sorted(usage.items())}
    usage, journal_batch_model = journal.price_batches(usage, meter, runtime, journaled.records, n,
                                                       cost.usd_per_million)
    calls = defaultdict(dict)
    for (caller, service, operation), count in sorted(meter.calls.items()):
        calls[caller][f"{service}:{operation}"] = round(count / n, 3)
    names = meter.names
    return {
        "payments": n,
        "usage_per_payment": usage,
        "usd_per_million": cost.usd_per_million(usage),
        "breakdown_usd_per_million": cost.breakdown_per_million(usage),
        "by_component_usd_per_million": cost.by_component_per_million(usage),
        "api_calls_per_payment": dict(calls),
        "invocations_per_payment": {names.get(k, k): round(v / n, 3) for k, v in sorted(meter.invocations.items())},
        "lambda_seconds_per_payment": round(meter.lambda_seconds / n, 5),
        "handler_ms_per_payment": {names.get(k, k): round(v / n * 1000, 1)
                                   for k, v in sorted(meter.seconds_by_function.items())},
        "standard_states_per_payment": sorted({" > ".join(a) for a in anchors}) if anchors else [],
        "express_executions_per_payment": round(len(meter.express) / n, 3),
        "express_billed_ms_per_payment": round(sum(r["billedSeconds"] for r in meter.express) / n * 1000, 1),
        "dynamodb_item_bytes": {"largest": max(meter.item_bytes, default=0),
                                "median": statistics.median(meter.item_bytes) if meter.item_bytes else 0,
                                "writes_per_payment": round(len(meter.item_bytes) / n, 2)},
        "sequential": True,
        "journal_batch_model": journal_batch_model,
    }


def _capacity(path: dict, decision: bool) -> tuple[float, str, dict]:
    usage = path["usage_per_payment"]
    per_payment = {
        "stepfunctions_standard_transitions_per_s": usage.get("stepfunctions_standard_transition", 0.0),
        "stepfunctions_start_execution_per_s": 1 if decision else 0,   # the anchor (STANDARD)
        "stepfunctions_express_start_execution_per_s": usage.get("stepfunctions_express_request", 0.0),
        "stepfunctions_send_task_per_s": 1 if decision else 0,          # the answer to the anchor's wait
        "apigateway_requests_per_s": usage["apigateway_rest_request"],
        "dynamodb_table_write_units_per_s": usage.get("dynamodb_write_request_unit", 0.0),
        "dynamodb_table_read_units_per_s": usage.get("dynamodb_read_request_unit", 0.0),
        "sqs_fifo_high_throughput_per_s": usage.get("sqs_fifo_request", 0.0),
        "sns_publish_per_s": usage.get("sns_publish", 0.0),
    }
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
    "SendFunction": "send/send.json",
    "SettleFunction": "settle/settle.json",
    "SamplerFunction": "sampler/scheduled.json",
}


def _cold_one(function: str) -> dict:
    event = REPO / "events" / COLD_EVENTS[function]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in [str(REPO), os.environ.get("PYTHONPATH", "")] if p))
    try:
        done = subprocess.run(
            [sys.executable, "-c", COLD_SCRIPT, str(TEMPLATE), function, str(event), json.dumps(COLD_ENV), "us-west-1"],
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


# A handler's cold start in a fresh interpreter, as Lambda runs it: the function's code directory and
# the layer's directory on sys.path, Lambda's variables (LAMBDA_TASK_ROOT included: Powertools takes another
# path outside Lambda) and the template's, tracing on as deployed, and only the packages a Lambda
# execution environment has: the layer's (layers/mxflow/requirements.txt and what they require) and the
# runtime's boto3 with its dependencies. What else the bench's venv holds (awscrt, pyOpenSSL,
# jsonschema's optional format checkers, ...) cannot be imported there, so it cannot be here: the
# child's LAMBDA_SITE_PRELUDE refuses those top-level names before the clock starts. Bytecode: the
# layer ships .pyc files (layers/mxflow/Makefile), so the children read theirs from a bytecode cache
# (PYTHONPYCACHEPREFIX) that one unmeasured run writes first.
LAMBDA_SITE_PRELUDE = r"""
import os, sys   # loaded at start-up anyway: the prelude imports nothing the handler might import itself
_ABSENT = frozenset(os.environ.pop("MXFLOW_BENCH_ABSENT_MODULES", "").split(","))
class _NotInLambda:   # a meta path finder (importlib.abc would load importlib.resources, inspect, ...)
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the layer or the runtime)", name=name)
        return None
sys.meta_path.insert(0, _NotInLambda())
"""

COLD_IMPORT_SCRIPT = LAMBDA_SITE_PRELUDE + r"""
import time
began = time.perf_counter()
import app
print((time.perf_counter() - began) * 1000)
"""

RUNTIME_PACKAGES = ["boto3"]   # the Lambda Python runtime's own (with botocore, s3transfer, jmespath, ...)


def _absent_in_lambda() -> list[str]:
    """Top-level module names of the venv's distributions that neither the layer (its requirements.txt,
    recursively, extras included) nor the Lambda runtime (RUNTIME_PACKAGES) installs."""
    import importlib.metadata as metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    wanted: dict[str, metadata.Distribution] = {}

    def need(text: str) -> None:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name in wanted:
            return
        try:
            wanted[name] = distribution = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            return
        for sub in distribution.requires or []:
            marker = Requirement(sub).marker
            if marker is None or any(marker.evaluate({"extra": e}) for e in {"", *requirement.extras}):
                need(sub)

    layer_requirements = REPO / "layers" / "mxflow" / "requirements.txt"
    for line in [*layer_requirements.read_text().splitlines(), *RUNTIME_PACKAGES]:
        if line.split("#")[0].strip():
            need(line.split("#")[0].strip())

    def top_level(distribution) -> set[str]:
        names = set((distribution.read_text("top_level.txt") or "").split())
        for file in distribution.files or []:
            first = file.parts[0]
            if len(file.parts) > 1 and not first.endswith((".dist-info", ".data")) and first != "..":
                names.add(first)
            elif len(file.parts) == 1 and first.endswith((".py", ".so")):
                names.add(first.split(".")[0])
        return names

    keep = set().union(*(top_level(d) for d in wanted.values())) | {"mxflow", "app"}
    absent = set()
    for distribution in metadata.distributions():
        if canonicalize_name(distribution.metadata["Name"] or "") not in wanted:
            absent |= top_level(distribution)
    return sorted(absent - keep - set(sys.stdlib_module_names) - {"__pycache__", "_distutils_hack"})


def _lambda_env(base: dict, code_dir: Path, layer_dirs: list[Path], pycache: Path, absent: list[str]) -> dict:
    """A child's environment for COLD_IMPORT_SCRIPT / COLD_INVOKE_SCRIPT (see the notes above)."""
    env = {**base, "PYTHONPATH": os.pathsep.join(map(str, [code_dir, *layer_dirs])), "LAMBDA_TASK_ROOT": str(code_dir),
           "_HANDLER": "app.lambda_handler", "PYTHONPYCACHEPREFIX": str(pycache),
           "MXFLOW_BENCH_ABSENT_MODULES": ",".join(absent)}
    # Tracing as deployed (Tracing: Active): the variables Lambda sets for a sampled trace (no function
    # imports an X-Ray SDK, README "Cold starts and tracing"; one that did would send to a port nobody reads)
    env.update(_X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
               AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:2000", AWS_XRAY_CONTEXT_MISSING="LOG_ERROR",
               AWS_EXECUTION_ENV="AWS_Lambda_python3.13")
    for local_only in ("PYTHONSTARTUP", "PYTHONDONTWRITEBYTECODE", "POWERTOOLS_TRACE_DISABLED"):
        env.pop(local_only, None)
    return env


def _cold_imports() -> dict:
    """Median over COLD_IMPORT_RUNS fresh interpreters of each handler's `import app` (the init phase's
    imports: the handler module and all it imports at module level), ms."""
    import tempfile

    out: dict = {"runs": COLD_IMPORT_RUNS, "method": "median of fresh `python -c 'import app'` with the function's "
                 "CodeUri and the layer's directory on sys.path, Lambda's variables set, only the layer's and the "
                 "runtime's packages importable, bytecode compiled beforehand as the layer ships it (python3.13 "
                 "here, this machine's CPU; Lambda's init on arm64 differs)", "functions": {}}
    layer = REPO / "layers" / "mxflow"
    absent = _absent_in_lambda()
    with tempfile.TemporaryDirectory(prefix="mxflow-bench-pyc-") as pycache:
        for function in FUNCTIONS:
            code_dir = REPO / "functions" / _CODE_DIRS[function]
            env = _lambda_env(dict(os.environ, **ENV, AWS_LAMBDA_FUNCTION_NAME=function, AWS_REGION="us-west-1",
                                   AWS_DEFAULT_REGION="us-west-1", POWERTOOLS_SERVICE_NAME="mxflow",
                                   POWERTOOLS_METRICS_NAMESPACE="mxflow"),
                              code_dir, [layer], Path(pycache), absent)
            times: list[float] | None = []
            for _ in range(COLD_IMPORT_RUNS + 1):   # the first writes the bytecode, unmeasured
                done = subprocess.run([sys.executable, "-c", COLD_IMPORT_SCRIPT], cwd=str(code_dir), env=env,
                                      capture_output=True, text=True, timeout=COLD_START_TIMEOUT_S)
                if done.returncode != 0:
                    times = None
                    out["functions"][function] = {"error": (done.stderr.strip().splitlines() or ["?"])[-1][:300]}
                    break
                times.append(float(done.stdout.strip().splitlines()[-1]))
            if times:
                out["functions"][function] = round(statistics.median(times[1:]), 1)
    measured = [v for v in out["functions"].values() if isinstance(v, float)]
    out["slowest_ms"] = max(measured) if measured else None
    out["goal_ms"] = 150
    return out


# A Lambda cold start in a fresh interpreter: the init (`import app`) and the first invoke, timed apart,
# the function's AWS calls going over HTTP to a started local runtime's AWS endpoint (AwsEndpoint), so
# what a handler leaves to its first invoke (a late import, a client made on first use) is counted there.
COLD_INVOKE_SCRIPT = LAMBDA_SITE_PRELUDE + r"""
import json, sys, time, types
began = time.perf_counter()
import app
init_ms = (time.perf_counter() - began) * 1000
event, name, arn = json.loads(open(sys.argv[1]).read()), sys.argv[2], sys.argv[3]
def context(n):
    return types.SimpleNamespace(function_name=name, function_version="$LATEST", invoked_function_arn=arn,
                                 memory_limit_in_mb=512, aws_request_id=f"cold-{n}", log_group_name="/aws/lambda/x",
                                 log_stream_name="x", identity=None, client_context=None,
                                 get_remaining_time_in_millis=lambda: 30000)
times, errors = [], []
for n in range(2):
    began = time.perf_counter()
    try:
        app.lambda_handler(event, context(n))
        errors.append(None)
    except Exception as exc:   # the event may name a payment that does not exist: still the cold path
        errors.append(type(exc).__name__)
    times.append((time.perf_counter() - began) * 1000)
print(json.dumps({"init_ms": init_ms, "first_invoke_ms": times[0], "warm_invoke_ms": times[1],
                  "error": errors[0]}))
"""


def _cold_invokes(runs: int = COLD_IMPORT_RUNS) -> dict:
    """Per function, medians over `runs` fresh interpreters of the init (`import app`), the first invoke
    and the second (warm) one, with the function's template environment and its AWS calls served by a
    local runtime's AWS endpoint (see COLD_INVOKE_SCRIPT). init + first invoke is the cold start a caller
    waits for (without AWS's own latency): a late import moves time from one to the other."""
    from mxflow_local.aws_endpoint import AwsEndpoint
    from mxflow_local.runtime import LocalRuntime

    out: dict = {"runs": runs, "method": "fresh `python -c` per run: `import app` (init), then two invokes of "
                 "the event in cold_start.functions (the first is the cold invoke), AWS calls over HTTP to the "
                 "local runtime's AWS endpoint; the same Lambda-like interpreter as cold_import_ms; medians", "functions": {}}
    import tempfile

    absent = _absent_in_lambda()
    runtime = LocalRuntime(str(TEMPLATE), region="us-west-2", env_overrides=COLD_ENV, scheduler=False)
    runtime.start()
    try:
        with AwsEndpoint.start(runtime) as endpoint, tempfile.TemporaryDirectory(prefix="mxflow-bench-pyc-") as pycache:
            specs = {spec.logical_id: spec for spec in runtime.runner.functions.values()}
            for function in FUNCTIONS:
                spec = specs[function]
                env = _lambda_env({**os.environ, **spec.environment, **endpoint.environment(),
                                   "AWS_CONFIG_FILE": os.devnull}, spec.code_dir, spec.layer_dirs, Path(pycache), absent)
                samples = []
                for _ in range(runs + 1):   # the first writes the bytecode, unmeasured
                    done = subprocess.run(
                        [sys.executable, "-c", COLD_INVOKE_SCRIPT, str(REPO / "events" / COLD_EVENTS[function]),
                         spec.name, spec.arn], cwd=str(spec.code_dir), env=env, capture_output=True, text=True,
                        timeout=COLD_START_TIMEOUT_S)
                    lines = done.stdout.strip().splitlines()
                    if done.returncode != 0 or not lines:
                        samples = [{"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}]
                        break
                    samples.append(json.loads(lines[-1]))
                samples = samples[1:] if len(samples) > 1 else samples
                if "init_ms" not in samples[0]:
                    out["functions"][function] = samples[0]
                    continue
                medians = {key: round(statistics.median(s[key] for s in samples), 1)
                           for key in ("init_ms", "first_invoke_ms", "warm_invoke_ms")}
                medians["init_plus_first_invoke_ms"] = round(statistics.median(
                    s["init_ms"] + s["first_invoke_ms"] for s in samples), 1)
                medians["first_invoke_error"] = samples[0]["error"]
                out["functions"][function] = medians
    finally:
        runtime.stop()
    return out


_CODE_DIRS = {"ApiFunction": "api", "ValidateFunction": "validate", "ParkFunction": "park",
              "DecisionTimeoutFunction": "decision_timeout", "SendFunction": "send", "SettleFunction": "settle",
              "SamplerFunction": "sampler"}


def _layer_size() -> dict:
    """Installed size of the built layer (`sam build`'s .aws-sam/build/MxflowLayer, made by `make lint`),
    with its largest top-level entries; null when it has not been built."""
    built = REPO / ".aws-sam" / "build" / "MxflowLayer"
    if not built.is_dir():
        return {"bytes": None, "reason": "not built: run `make lint` (sam build) first"}
    root = built / "python" if (built / "python").is_dir() else built
    sizes: dict[str, int] = {}
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            size = path.stat().st_size
            total += size
            top = path.relative_to(root).parts[0]
            sizes[top] = sizes.get(top, 0) + size
    largest = dict(sorted(((k, round(v / 2**20, 2)) for k, v in sizes.items()), key=lambda kv: -kv[1])[:8])
    return {"bytes": total, "mb": round(total / 2**20, 2), "largest_mb": largest,
            "path": ".aws-sam/build/MxflowLayer", "limit_unzipped_mb": 250}


# ------------------------------------------------------------------------------------------------------


def run() -> dict:
    if not XSD_DIR.is_dir():
        raise FileNotFoundError(f"official XSDs not found at {XSD_DIR} (set MXFLOW_SHARED)")
    with _start_api(STP_OVERRIDES, STP_REGION) as api:
        stp = _measure_path(api, decision=False)
        started_mb = _rss_mb()
        local = _local(api)
        local["one_client"] = _local(api, ONE_CLIENT_PAYMENTS, ONE_CLIENT_SECONDS, threads=1)
        memory = _memory(api, local, started_mb)
    with _start_api({}, DECISION_REGION) as api:
        decision = _measure_path(api, decision=True)
    stp_rate, stp_binding, stp_actions = _capacity(stp, decision=False)
    decision_rate, decision_binding, decision_actions = _capacity(decision, decision=True)
    cold, cold_detail = _cold_starts()
    cold_import = _cold_imports()
    cold_invoke = _cold_invokes()
    return {
        "local": local,
        "local_memory": memory,
        "cold_import_ms": cold_import,
        "layer": _layer_size(),
        "cost": {
            "stp_usd_per_million": stp["usd_per_million"],
            "decision_usd_per_million": decision["usd_per_million"],
            "reference_usd_per_million": cost.usd_per_million(cost.REFERENCE_USAGE),
            "by_component_usd_per_million": {
                "stp": stp["by_component_usd_per_million"],
                "decision": decision["by_component_usd_per_million"],
                "reference": cost.by_component_per_million(cost.REFERENCE_USAGE)},
            "reference_usage_per_payment": cost.REFERENCE_USAGE,
            "reference_assumptions": cost.REFERENCE_ASSUMPTIONS,
            "reference_breakdown_usd_per_million": cost.breakdown_per_million(cost.REFERENCE_USAGE),
            "stp": stp,
            "decision": decision,
            "prices_as_of": cost.PRICES["as_of"],
            "assumptions": {
                "api_requests": "API Gateway requests: the consumer's submit and approve; status reads are the "
                                "consumer's choice (it can follow the SNS events) and not counted",
                "dynamodb": "WRU = ceil(KB) of the larger of the whole item before and after each write (a failed "
                            "condition is billed too) + 1 WRU per KEYS_ONLY index entry added or removed (2 when "
                            "its key changes); RRU = ceil(4 KB) of the items read, half for eventual reads; a "
                            "task token counted at 2,048 bytes (the API's limit; moto's are shorter); the stream "
                            "(NEW_IMAGE) is read by Lambda at no request charge",
                "cloudtrail": "AuditArchiveAccess=true (the template's default): one data event per object-level "
                              "read or write of the archive",
                "kms": "the archive bucket has BucketKeyEnabled, the queues reuse data keys for 300 s and "
                       "DynamoDB caches its table key: no KMS request per payment; explicit KMS API calls "
                       "would be counted (none are made)",
                "lambda": "each invocation's duration measured locally (in-process on this machine, with moto "
                          "behind every AWS call; not an AWS duration), rounded up to 1 ms as Lambda bills, x "
                          "the function's MemorySize, arm64 price",
                "stepfunctions": "Standard: one transition per state entered in the anchor's history; Express: one "
                                 "request per PaymentFlow execution and its duration (start to end, measured "
                                 "locally) rounded up to 100 ms at 64 MB (50 MB + definition + payload); "
                                 "StartExecution of the anchor and SendTask* are not billed",
                "sqs": "mxflow's own SendMessage requests per 64 KB chunk; the consumer's receive/delete are "
                       "the consumer's",
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
            "note": "Region default quotas (bench/prices.json, each with its source); Lambda concurrency from "
                    "the locally measured handler seconds (an upper bound of what AWS would take)",
        },
        "cold_start_ms": cold,
        "cold_init_and_first_invoke": cold_invoke,
        "cold_start": {
            "method": "fresh interpreter per function: LocalRuntime(template.yaml).start(), then the first "
                      "invoke timed (handler module import + dependencies + one call); warm_ms is the second "
                      "invoke. Events from events/; those naming a payment that does not exist return an "
                      "error payload (ok false) - the import and first call are still what is timed",
            "functions": cold_detail,
        },
    }
