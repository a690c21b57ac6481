"""`LocalRuntime`: the whole SAM application in one process, on moto, with no AWS account and no Docker.

    rt = LocalRuntime("template.yaml", parameter_overrides={"K": "V"}, region="us-east-1").start()
    rt.invoke("ApiFunction", event)            # InvokeResult(.payload, .error, .status_code)
    rt.client("stepfunctions").start_execution(stateMachineArn=rt.physical("PaymentStateMachine"), ...)
    rt.faults.inject("SendFunction", kind="raise", count=2, error_type="TransientError")
    rt.faults.inject_call("sqs", "SendMessage", function="SendFunction", when="after")
    rt.clock.advance(301)                      # the one clock: functions, the queue's deduplication, Retry
    rt.stop_region(); rt.start_region(); rt.available
    rt.stop()

Moto mode, chosen deliberately: in-process (`mock_aws`, the decorator mode), not `ThreadedMotoServer`.
In decorator mode moto intercepts botocore in the process, and moto's Step Functions interpreter builds
its boto3 clients knowing that (`boto_client_for` in moto.stepfunctions.parser.asl.utils.boto_client: no
endpoint when `botocore_stubber.enabled`), so the interpreter's DynamoDB/SQS/SNS/S3/Lambda calls, the
handlers' own boto3 clients and the runtime's clients all reach the same in-memory backends, with no
port, no HTTP and no `MOTO_PORT`/`AWS_ENDPOINT_URL` plumbing. In server mode the interpreter would
call `localhost:$MOTO_PORT` (one global port) -- awkward for two Regions, slower, and the handlers would
still need the endpoint variable. Consequence: any boto3 client in this process talks to moto while a
runtime is running (this is a development tool; it must never share a process with real AWS calls).

One `mock_aws` is shared by every runtime of the process (reference-counted: the first start enables it,
the last stop disables it and drops moto's data). Runtimes differ by Region (moto keeps backends per
account and Region), and generated physical names carry a per-runtime suffix, so two runtimes (two
Regions, or the same Region twice) live side by side.
"""
from __future__ import annotations

import collections
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mxflow_local import calls, clock, dynamodb, lambda_runner, sqs, stepfunctions
from mxflow_local.faults import FaultInjector, RegionSwitch
from mxflow_local.lambda_runner import FunctionSpec, InvocationOutcome, LambdaRunner, LambdaServiceError
from mxflow_local.resources import StackBuilder, StackRecord, create_resources
from mxflow_local.scheduler import LocalScheduler
from mxflow_local.template import LoadedTemplate, Resolver, TemplateError, load_template

DEFAULT_ACCOUNT_ID = "123456789012"
MOTO_CONFIG = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}


class _MotoSession:
    """One process-wide in-process moto, reference-counted by the runtimes using it."""

    _lock = threading.Lock()
    _users = 0
    _mock = None

    @classmethod
    def acquire(cls) -> None:
        with cls._lock:
            if cls._users == 0:
                from moto import mock_aws

                cls._mock = mock_aws(config=MOTO_CONFIG)
                cls._mock.start()
                lambda_runner.install()
                stepfunctions.install()
                dynamodb.install()
                clock.install()
                sqs.install()
                calls.install()
            cls._users += 1

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._users -= 1
            if cls._users == 0 and cls._mock is not None:
                cls._mock.stop()
                cls._mock = None


_SESSION = None
_SESSION_LOCK = threading.Lock()


def _shared_session():
    """One boto3 session for every runtime's clients: botocore's service models are loaded once."""
    global _SESSION
    with _SESSION_LOCK:
        if _SESSION is None:
            import boto3

            _SESSION = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")
        return _SESSION


@dataclass
class InvokeResult:
    payload: Any                 # the handler's result, parsed JSON (None when there is an error)
    error: dict | None           # {"errorType", "errorMessage", ...} for a function or service error
    status_code: int = 200       # Lambda's HTTP status: 200, 429 throttled, 500 service error, ...
    function_error: str | None = None   # "Unhandled" for a function error, None for a service error
    duration_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


# Where the local runtime's default differs from the template's because one machine is not AWS: a value
# here is used for a parameter the template declares and no override gives (an override still wins).
# - BulkFlowsInFlight: the split of a message keeps this many flows in flight (mxflow.bulk). The
#   template's 0 (its start rate times 10 s: 1,000) fits AWS, where each Lambda call has an environment
#   of its own; here every function's environments (mxflow_local.lambda_runner) share the machine's cores,
#   and a thousand flows at once queue their Validate calls past their Timeout. A window of
#   LOCAL_FLOWS_PER_CORE flows per core keeps the cores busy, so the split runs as fast as this machine
#   carries the flows, and a flow's wait short (docs/flow.md, bench/bulk.py).
LOCAL_FLOWS_PER_CORE = 8
LOCAL_PARAMETER_DEFAULTS = {"BulkFlowsInFlight": str(LOCAL_FLOWS_PER_CORE * (os.cpu_count() or 1))}


class LocalRuntime:
    def __init__(self, template_path: str | Path, parameter_overrides: dict[str, str] | None = None,
                 region: str = "us-east-1", env_overrides: dict[str, Any] | None = None, *,
                 account_id: str = DEFAULT_ACCOUNT_ID, stack_name: str = "mxflow", scheduler: bool = True):
        self.template_path = Path(template_path)
        self.parameter_overrides = {k: str(v) for k, v in (parameter_overrides or {}).items()}
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.env_overrides = env_overrides or {}
        self._run_scheduler = scheduler
        self.template: LoadedTemplate | None = None
        self.resolver: Resolver | None = None  # after start(): intrinsic functions against the created stack
        self.record = StackRecord()
        self.region_switch = RegionSwitch(region)
        self.faults = FaultInjector(self._function_name)
        self.runner = LambdaRunner(account_id, region, gate=self._gate)
        self.scheduler: LocalScheduler | None = None
        # DynamoDB-stream event source mappings (the archive journal's), polled as Lambda polls them
        self.stream_events = None
        self.trim_streams = True   # False where another reader shares the streams (two Regions' replicator)
        self.event_sources: list = []  # mxflow_local.event_sources pollers (with the scheduler)
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._started = False
        self.start_seconds: float | None = None
        self.clock = clock.CLOCK  # process-wide (see mxflow_local.clock)
        # The EXPRESS executions of this runtime that ended, newest last (AWS would have them in CloudWatch
        # Logs only: moto drops them shortly after they end, see mxflow_local.stepfunctions).
        self.express_executions: collections.deque = collections.deque(maxlen=20_000)

    # ---------------------------------------------------------------------------------------- life cycle
    def start(self) -> "LocalRuntime":
        """Load the template and create every resource in moto. Raises TemplateError with a clear message."""
        if self._started:
            return self
        began = time.perf_counter()
        self.template = load_template(self.template_path, parameter_overrides=self.parameter_overrides,
                                      parameter_defaults=LOCAL_PARAMETER_DEFAULTS, region=self.region,
                                      account_id=self.account_id, stack_name=self.stack_name)
        _MotoSession.acquire()
        self._started = True
        try:
            self._create_stack()
        except BaseException:
            self.stop()
            raise
        stepfunctions.add_express_listener(self._express_ended)
        self.scheduler = LocalScheduler(self.record.schedules, self._invoke_arn, lambda: self.available,
                                        self.region, self.account_id)
        if self._run_scheduler:
            self.scheduler.start()
            # SQS event source mappings (the engine's inbound queue): polled like Lambda's pollers
            from mxflow_local.event_sources import start_event_sources

            self.event_sources = start_event_sources(self)
        self._start_stream_events()
        self.start_seconds = time.perf_counter() - began
        return self

    # A stream mapping's batching window (MaximumBatchingWindowInSeconds, up to 300 s in AWS: cost) is
    # capped locally, so what is written reaches its function within a second (the journal, docs/flow.md).
    STREAM_WINDOW_CAP_S = 1.0

    def _start_stream_events(self) -> None:
        from mxflow_local.stream_events import StreamEventSources

        self.stream_events = StreamEventSources(
            self.record.event_source_mappings, invoke=self.invoke, client=self.client, region=self.region,
            account_id=self.account_id, available=lambda: self.available,
            window_cap=self.STREAM_WINDOW_CAP_S, trim=self.trim_streams).start()

    def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.stream_events is not None:
            self.stream_events.stop()
        for poller in self.event_sources:
            poller.stop()
        self.event_sources = []
        stepfunctions.remove_express_listener(self._express_ended)
        self.runner.close()
        _MotoSession.release()

    def __enter__(self) -> "LocalRuntime":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _create_stack(self) -> None:
        builder = StackBuilder(self.template, region=self.region, account_id=self.account_id,
                               stack_name=self.stack_name, client=self.client)
        self.record = builder.record
        self.resolver = create_resources(builder)
        for logical_id, props in self.record.functions.items():
            self.runner.add(self._function_spec(logical_id, props))
        for name, output in (self.template.cfn.get("Outputs") or {}).items():
            if output.get("Condition") and not self.resolver.condition(output["Condition"]):
                continue
            try:
                self.record.outputs[name] = self.resolver.resolve(output.get("Value"))
            except TemplateError as exc:
                builder.note(f"output {name}: {exc}")

    def _function_spec(self, logical_id: str, props: dict) -> FunctionSpec:
        layer_dirs = []
        for layer_arn in props.get("Layers") or []:
            owner = next((lid for lid, c in self.record.resources.items() if c.ref == layer_arn), None)
            if owner in self.record.layers:
                layer_dirs.append(self.record.layers[owner])
        name = props["FunctionName"]
        memory = int(props.get("MemorySize", 128))
        variables = {
            "AWS_REGION": self.region, "AWS_DEFAULT_REGION": self.region,
            "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{props.get('Runtime', 'python3.13')}",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "LAMBDA_TASK_ROOT": props["CodeDir"], "TZ": ":UTC",
        }
        variables.update({k: str(v) for k, v in ((props.get("Environment") or {}).get("Variables") or {}).items()})
        for key, value in self.env_overrides.items():
            if isinstance(value, dict):
                if key in ("Parameters", logical_id):
                    variables.update({k: str(v) for k, v in value.items()})
            else:
                variables[key] = str(value)
        reserved = props.get("ReservedConcurrentExecutions")
        return FunctionSpec(logical_id=logical_id, name=name, arn=props["Arn"], code_dir=Path(props["CodeDir"]),
                            handler=props["Handler"], layer_dirs=layer_dirs, environment=variables,
                            timeout_s=float(props.get("Timeout", 3)), memory_mb=memory,
                            runtime=props.get("Runtime", "python3.13"),
                            reserved_concurrency=int(reserved) if reserved not in (None, "") else None)

    # ---------------------------------------------------------------------------------------- lookups
    @property
    def sam_template(self) -> dict:
        """The template as written (short tags as long-form dicts)."""
        self._require_loaded()
        return self.template.sam

    @property
    def cfn_template(self) -> dict:
        """The template after the SAM transform."""
        self._require_loaded()
        return self.template.cfn

    @property
    def parameters(self) -> dict:
        self._require_loaded()
        return self.template.parameters

    @property
    def function_names(self) -> list[str]:
        return list(self.record.functions)

    @property
    def notes(self) -> list[str]:
        return list(self.record.notes)

    @property
    def outputs(self) -> dict:
        return dict(self.record.outputs)

    def physical(self, logical_id: str) -> Any:
        """What Ref gives: table name, queue URL, topic ARN, function name, state machine ARN, ..."""
        if logical_id not in self.record.resources:
            raise KeyError(f"no resource {logical_id} in this runtime")
        return self.record.resources[logical_id].ref

    def attribute(self, logical_id: str, name: str) -> Any:
        """What Fn::GetAtt gives."""
        if logical_id not in self.record.resources:
            raise KeyError(f"no resource {logical_id} in this runtime")
        return self.record.resources[logical_id].attrs[name]

    def client(self, service: str):
        """A boto3 client for this runtime's Region, answered by moto."""
        with self._clients_lock:
            if service not in self._clients:
                from botocore.config import Config

                self._clients[service] = _shared_session().client(
                    service, region_name=self.region,
                    config=Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=64))
            return self._clients[service]

    def _require_loaded(self) -> None:
        if self.template is None:
            raise RuntimeError("LocalRuntime.start() has not been called")

    def _function_name(self, function: str) -> str:
        if function in self.record.functions:
            return self.record.functions[function]["FunctionName"]
        if function in self.runner.functions:
            return function
        raise KeyError(f"no function {function}; functions: {', '.join(self.function_names) or 'none'}")

    # ---------------------------------------------------------------------------------------- running
    @property
    def available(self) -> bool:
        """False while the Region is stopped (stop_region)."""
        return self.region_switch.available

    def stop_region(self) -> None:
        self.region_switch.stop()

    def start_region(self) -> None:
        self.region_switch.start()

    def _gate(self, spec: FunctionSpec):
        self.region_switch.check()
        return self.faults.take(spec.name)

    def invoke(self, function: str, event: Any) -> InvokeResult:
        """Invoke a function (logical id or physical name) synchronously with a JSON-serialisable event."""
        name = self._function_name(function)
        try:
            payload = json.dumps(event).encode()
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the event is not JSON-serialisable: {exc}") from None
        try:
            outcome: InvocationOutcome = self.runner.invoke(name, payload)
        except LambdaServiceError as exc:
            return InvokeResult(None, {"errorType": exc.code, "errorMessage": exc.message}, exc.status)
        body = json.loads(outcome.payload) if outcome.payload else None
        if outcome.function_error:
            return InvokeResult(None, body, outcome.status_code, outcome.function_error, outcome.duration_ms)
        return InvokeResult(body, None, outcome.status_code, None, outcome.duration_ms)

    def _invoke_arn(self, arn: str, event: dict) -> InvokeResult:
        return self.invoke(lambda_runner._function_key(arn), event)

    def _express_ended(self, record: dict) -> None:
        if f":states:{self.region}:{self.account_id}:" in record["executionArn"]:
            self.express_executions.append(record)

    def express_records(self, logical_id: str) -> list[dict]:
        """The ended executions of one EXPRESS state machine of this runtime, oldest first."""
        arn = self.state_machine_arn(logical_id)
        return [r for r in list(self.express_executions) if r["stateMachineArn"] == arn]

    def state_machine_arn(self, logical_id: str) -> str:
        return self.record.state_machines[logical_id]

    def wait_execution(self, execution_arn: str, timeout: float = 30.0, poll: float = 0.02) -> dict:
        """DescribeExecution once the execution is no longer RUNNING (bounded: TimeoutError after `timeout`)."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while True:
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                return described
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still RUNNING after {timeout} s")
            time.sleep(poll)
