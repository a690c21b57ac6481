"""Patches that close the gaps of moto 5.2.5's Step Functions interpreter (each names its gap).

moto's interpreter (`moto.stepfunctions.parser`, enabled with `execute_state_machine: True`) runs real ASL:
Pass, Choice, Wait, Task (Lambda, DynamoDB, SQS, SNS, .waitForTaskToken, .sync), Retry, Catch, Map,
Parallel, timeouts. What it lacks or gets wrong, fixed here without forking it:

- `patch_redrive`        RedriveExecution is NotImplemented; DescribeExecution has no redrive fields.
- `patch_heartbeat_name` a heartbeat timeout is reported as `States.Timeout`; AWS says `States.HeartbeatTimeout`.
- `patch_unnamed`        executions started without a name all get the ARN `...:None` (the second is
                         ExecutionAlreadyExists); AWS generates a UUID name.
- `patch_jsonata`        the JSONata evaluator is a stub (TypeError: 'NoneType' object is not callable);
                         jsonata-python fills it, and string variables are encoded as JSON strings.
- `patch_lambda_client_errors` a Lambda service error (throttling, Region down) on a Task whose Resource
                         is the function ARN becomes the error name "Exception"; AWS says `Lambda.<Code>`
                         (e.g. `Lambda.TooManyRequestsException`), as moto already does for `lambda:invoke`.
- `patch_task_failure_cause` SendTaskFailure drops its `cause` (the response class passes only `error`).
- `patch_early_callback` a SendTaskSuccess/Failure that arrives before the interpreter has set up the
                         task's heartbeat wait (right after the Lambda that received the token returned) is
                         lost when HeartbeatSeconds is set: the task then waits out its heartbeat and fails
                         with a heartbeat timeout although its outcome is there.
- `patch_client_cache`   speed, not semantics: the interpreter builds a new boto3 client for every service
                         task (~3 ms of CPU each); clients are thread-safe and, in-process, identical for a
                         (Region, service), so they are built once.
- `quiet_logs`           the interpreter logs ERROR tracebacks for ordinary task failures.

These rest on private moto internals, so moto is pinned (`requirements/dev.txt`) and
`tests/local/test_canary.py` fails loudly when their shape changes. `install()` applies all (idempotent).
"""
from __future__ import annotations

import datetime
import json
import logging
import sys
import threading
import uuid
from typing import Any

PINNED_MOTO = "5.2.5"
REDRIVE_WINDOW = datetime.timedelta(days=14)
_INSTALLED = False
_LOCK = threading.Lock()


def patch_unnamed() -> None:
    """Gap: StartExecution without `name` gives every execution the ARN `...:None`. Fix: a UUID name."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution

    def start_execution(self, state_machine_arn, name=None, execution_input=None, trace_header=None):
        return original(self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header)

    StepFunctionsParserBackend.start_execution = start_execution


def patch_heartbeat_name() -> None:
    """Gap: a task whose HeartbeatSeconds elapse fails with `States.Timeout`; AWS: `States.HeartbeatTimeout`."""
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task import StateTask
    from moto.stepfunctions.parser.asl.eval.callback.callback import HeartbeatTimeoutError

    original = StateTask._from_error

    def _from_error(self, env, ex):
        failure = original(self, env, ex)
        if isinstance(ex, HeartbeatTimeoutError):
            name = StatesErrorNameType.StatesHeartbeatTimeout
            failure.error_name = StatesErrorName(typ=name)
            for details in (failure.event_details or {}).values():
                if isinstance(details, dict) and "error" in details:
                    details["error"] = name.to_name()
        return failure

    StateTask._from_error = _from_error


def patch_lambda_client_errors() -> None:
    """Gap: a Lambda service error on a function-ARN Task is named "Exception"; AWS: `Lambda.<Code>`."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.state_task_lambda import StateTaskLambda

    original = StateTaskLambda._from_error

    def _from_error(self, env, ex):
        failure = original(self, env, ex)
        if isinstance(ex, ClientError):
            name = f"Lambda.{ex.response.get('Error', {}).get('Code', 'Unknown')}"
            failure.error_name = CustomErrorName(name)
            for details in (failure.event_details or {}).values():
                if isinstance(details, dict) and "error" in details:
                    details["error"] = name
        return failure

    StateTaskLambda._from_error = _from_error


def _to_json_value(value: Any) -> Any:
    """jsonata-python's result as plain JSON values (integral floats as ints, as JavaScript prints them)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    if isinstance(value, dict):
        return {str(k): _to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json_value(v) for v in value]
    return value


def evaluate_jsonata(expression: str) -> Any:
    """Evaluate a self-contained JSONata expression (moto inlines $states and variables as declarations)."""
    import jsonata
    from moto.stepfunctions.parser.asl.jsonata.jsonata import JSONataException

    try:
        result = jsonata.Jsonata(expression).evaluate(None)
    except Exception as exc:  # noqa: BLE001 - surfaced as States.QueryEvaluationError by moto
        raise JSONataException("UNKNOWN", str(exc)) from None
    return _to_json_value(result)


def patch_jsonata() -> None:
    """Gap: moto ships the JSONata evaluator stubbed (it needs a JVM); jsonata-python 0.7.1 fills it."""
    from moto.stepfunctions.parser.asl.jsonata import jsonata as module
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    stub = module.eval_jsonata_expression
    module._eval_jsonata = evaluate_jsonata
    module.eval_jsonata_expression = evaluate_jsonata
    original_encode = module.encode_jsonata_variable_declarations

    def encode_jsonata_variable_declarations(bindings: dict) -> str:
        # moto writes string values as f'"{value}"' (no escaping); JSON-encode every value instead
        parts = []
        for reference, value in bindings.items():
            parts += [reference, ":=", to_json_str(value, separators=(",", ":")), ";"]
        return "".join(parts)

    module.encode_jsonata_variable_declarations = encode_jsonata_variable_declarations
    for name, loaded in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and loaded is not None:
            if getattr(loaded, "eval_jsonata_expression", None) is stub:
                loaded.eval_jsonata_expression = evaluate_jsonata
            if getattr(loaded, "encode_jsonata_variable_declarations", None) is original_encode:
                loaded.encode_jsonata_variable_declarations = encode_jsonata_variable_declarations


def patch_task_failure_cause() -> None:
    """Gap: SendTaskFailure's `cause` never reaches the task (moto's response passes only `error`)."""
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def send_task_failure(self):
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause"))
        return EmptyResult()

    StepFunctionResponse.send_task_failure = send_task_failure


def patch_early_callback() -> None:
    """Gap: an outcome delivered before the heartbeat endpoint exists never wakes the heartbeat wait."""
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

    original = CallbackEndpoint.setup_heartbeat_endpoint

    def setup_heartbeat_endpoint(self, heartbeat_seconds: int):
        endpoint = original(self, heartbeat_seconds)
        if self.get_outcome() is not None:   # notify() came first: it found no heartbeat endpoint to wake
            endpoint.notify()
        return endpoint

    CallbackEndpoint.setup_heartbeat_endpoint = setup_heartbeat_endpoint


def patch_client_cache() -> None:
    """Speed: one interpreter boto3 client per (Region, service) instead of one per task.

    Sound because moto's `boto_client_for` ignores the state credentials and always passes the same
    config; the endpoint choice depends only on whether moto intercepts botocore in-process, which is
    the only mode the local runtime uses (the cache is dropped whenever that is not the case)."""
    from moto.core.models import botocore_stubber
    from moto.stepfunctions.parser.asl.utils import boto_client as module

    original = module.boto_client_for
    cache: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def boto_client_for(region: str, service: str, state_credentials: Any = None):
        if not botocore_stubber.enabled:
            cache.clear()
            return original(region, service, state_credentials)
        key = (region, service)
        client = cache.get(key)
        if client is None:
            with lock:
                client = cache.get(key)
                if client is None:
                    client = cache[key] = original(region, service, state_credentials)
        return client

    module.boto_client_for = boto_client_for
    for name, loaded in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and loaded is not None:
            if getattr(loaded, "boto_client_for", None) is original:
                loaded.boto_client_for = boto_client_for


def quiet_logs() -> None:
    """Gap: the interpreter logs ERROR tracebacks for task failures that ASL handles (Retry/Catch)."""
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)


# ---------------------------------------------------------------------------------------------------------
# RedriveExecution

def _not_redrivable(message: str) -> Exception:
    """AWS's ExecutionNotRedrivable (HTTP 400). moto's own class in parser.api sets `code`, which its
    serializer ignores (the client would see an empty error code), so the error is built on AWSError."""
    from moto.core.exceptions import AWSError

    class ExecutionNotRedrivable(AWSError):
        TYPE = "ExecutionNotRedrivable"
        STATUS = 400

    return ExecutionNotRedrivable(message)


def _redrive_point(events: list[dict], top_level: set[str]) -> tuple[str, Any] | None:
    """AWS's rule: the last top-level state entered and not exited; returns (name, its raw input)."""
    open_state: tuple[str, Any] | None = None
    for event in events:
        kind = event.get("type", "")
        if kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails") or {}
            if details.get("name") in top_level:
                raw = details.get("input")
                open_state = (details["name"], json.loads(raw) if isinstance(raw, str) else raw)
        elif kind.endswith("StateExited"):
            details = event.get("stateExitedEventDetails") or {}
            if open_state and details.get("name") == open_state[0]:
                open_state = None
    return open_state


def redrive(backend, execution_arn: str):
    """RedriveExecution: restart a FAILED / TIMED_OUT / ABORTED Standard execution from the state that
    did not finish, with the input that state received; earlier states do not run again. Same ARN,
    history continued with an `ExecutionRedriven` event. Inside Map/Parallel the whole state re-runs
    (AWS re-runs only the failed branches or iterations)."""
    from moto.stepfunctions.parser.api import (
        ExecutionRedrivenEventDetails,
        ExecutionStatus,
        HistoryEventType,
        StateMachineType,
    )
    from moto.stepfunctions.parser.asl.component.common.flow.start_at import StartAt
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramRunning
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser
    from moto.stepfunctions.parser.utils import TMP_THREADS

    execution = backend.describe_execution(execution_arn)
    with _LOCK:
        status = execution.exec_status
        if execution.sm_type != StateMachineType.STANDARD:
            raise _not_redrivable(f"Execution {execution_arn} is an EXPRESS execution; only STANDARD can be redriven")
        if status not in (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED):
            raise _not_redrivable(f"Execution {execution_arn} is {status.value if status else 'not started'}; "
                                         "only FAILED, TIMED_OUT or ABORTED executions can be redriven")
        stop_date = execution.stop_date or datetime.datetime.now(tz=datetime.timezone.utc)
        if datetime.datetime.now(tz=datetime.timezone.utc) - stop_date > REDRIVE_WINDOW:
            raise _not_redrivable(f"Execution {execution_arn} stopped more than 14 days ago")
        worker = execution.exec_worker
        env = worker.env
        program = AmazonStateLanguageParser.parse(execution.state_machine.definition)[0]
        point = _redrive_point(env.event_manager.get_event_history(), set(program.states.states))
        if point is None:
            raise _not_redrivable(f"Execution {execution_arn} has no failed state to redrive from")
        state_name, state_input = point
        program.start_at = StartAt(start_at_name=state_name)
        count = getattr(execution, "redrive_count", 0) + 1
        execution.redrive_count = count
        execution.redrive_date = datetime.datetime.now(tz=datetime.timezone.utc)
        execution.exec_status = ExecutionStatus.RUNNING
        execution.stop_date = None
        execution.error = None
        execution.cause = None
        with env._state_mutex:
            env._program_state = ProgramRunning()
        env.states.reset(state_input)
        execution_data = env.states.context_object.context_object_data.get("Execution")
        if isinstance(execution_data, dict):
            execution_data["RedriveCount"] = count
        env.event_manager.add_event(
            context=env.event_history_context,
            event_type=HistoryEventType.ExecutionRedriven,
            event_details=EventDetails(executionRedrivenEventDetails=ExecutionRedrivenEventDetails(redriveCount=count)),
        )

    def run() -> None:
        program.eval(env)
        worker._execution_communication.terminated()

    thread = threading.Thread(target=run, daemon=True, name=f"redrive-{execution.name}")
    TMP_THREADS.append(thread)
    thread.start()
    return execution


def redrive_fields(execution) -> dict:
    """redriveCount / redriveStatus / redriveStatusReason / redriveDate as DescribeExecution gives them."""
    from moto.stepfunctions.parser.api import ExecutionStatus, StateMachineType

    fields: dict[str, Any] = {"redriveCount": getattr(execution, "redrive_count", 0)}
    if getattr(execution, "redrive_date", None):
        fields["redriveDate"] = execution.redrive_date
    status = execution.exec_status
    if getattr(execution, "sm_type", None) == StateMachineType.EXPRESS:
        fields["redriveStatus"], fields["redriveStatusReason"] = "NOT_REDRIVABLE", "Execution is an EXPRESS execution"
    elif status in (ExecutionStatus.FAILED, ExecutionStatus.TIMED_OUT, ExecutionStatus.ABORTED):
        fields["redriveStatus"] = "REDRIVABLE"
    else:
        state = status.value if status else "RUNNING"
        fields["redriveStatus"], fields["redriveStatusReason"] = "NOT_REDRIVABLE", f"Execution is {state}"
    return fields


def patch_redrive() -> None:
    """Gap: `redrive_execution` raises NotImplementedError and DescribeExecution lacks the redrive fields."""
    from moto.core.responses import ActionResult
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    StepFunctionsParserBackend.redrive_execution = redrive

    def redrive_execution(self) -> ActionResult:
        arn = self._get_param("executionArn")
        execution = self.stepfunction_backend.redrive_execution(arn)
        return ActionResult({"redriveDate": execution.redrive_date})

    StepFunctionResponse.redrive_execution = redrive_execution
    original_describe = StepFunctionResponse.describe_execution

    def describe_execution(self) -> ActionResult:
        result = original_describe(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        if isinstance(result.result, dict) and hasattr(execution, "exec_worker"):
            result.result.update(redrive_fields(execution))
        return result

    StepFunctionResponse.describe_execution = describe_execution


def install() -> None:
    """Apply every patch once per process."""
    global _INSTALLED
    with _LOCK:
        if _INSTALLED:
            return
        patch_unnamed()
        patch_heartbeat_name()
        patch_lambda_client_errors()
        patch_jsonata()
        patch_redrive()
        patch_task_failure_cause()
        patch_early_callback()
        patch_client_cache()
        quiet_logs()
        _INSTALLED = True
