"""Patches that close the gaps of moto 5.2.5's Step Functions interpreter (each names its gap).

moto's interpreter (`moto.stepfunctions.parser`, enabled with `execute_state_machine: True`) runs real ASL:
Pass, Choice, Wait, Task (Lambda, DynamoDB, SQS, SNS, .waitForTaskToken, .sync), Retry, Catch, Map,
Parallel, timeouts. What it lacks or gets wrong, fixed here without forking it:

- `patch_redrive`        RedriveExecution is NotImplemented; DescribeExecution has no redrive fields.
- `patch_express`        an EXPRESS state machine runs as a STANDARD one (redrivable, unique names, `.sync` and
                         `.waitForTaskToken` accepted, executions kept for good); AWS keeps no Express history.
- `patch_sdk_casing`     `states:startExecution(.sync:2)` and `aws-sdk:sfn:*` tasks fail: their PascalCase
                         parameters are not turned into Step Functions' camelCase API (nor the answer back).
- `patch_retry_clock`    (tests) Retry backoff sleeps on the wall clock, not the runtime's clock.
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
- `patch_starting_execution` SendTaskSuccess/Failure/Heartbeat (and the map-run look-ups) walk every
                         execution, read its status and its worker's environment; an execution another
                         thread is starting has neither yet, so a callback (or a ListExecutions by status)
                         sent meanwhile failed with AttributeError (a 500 locally). It reads RUNNING from
                         its registration, as StartExecution is atomic in AWS, and the walk skips it.
- `patch_client_cache`   speed, not semantics: the interpreter builds a new boto3 client for every service
                         task (~3 ms of CPU each); clients are thread-safe and, in-process, identical for a
                         (Region, service), so they are built once.
- `patch_program_cache`  speed, not semantics: every execution parsed its state machine's definition again
                         with ANTLR (about a third of the runtime's CPU under load); a definition's parsed
                         program is kept and shared (its components hold no execution state).
- `patch_jsonpath_cache` speed, not semantics: every JSONPath evaluation built a new jsonpath-ng parser (a
                         PLY yacc table) and parsed its path again; a path's parsed expression is kept.
- `patch_execution_names` speed, not semantics: StartExecution looked for an execution of the same name
                         by walking every execution the state machine ever had (every parked payment's
                         anchor, RUNNING for days): the names are indexed as executions are added.
- `patch_thread_list`    memory: the interpreter keeps every thread it ever started (TMP_THREADS, about
                         five per state entered, each holding its evaluation frame) for good.
- `patch_program_thread` threads: every running execution had a thread that only waited for another
                         (Program.eval's, there for an execution-level TimeoutSeconds); without one the
                         states run on the waiting thread.
- `quiet_logs`           the interpreter logs ERROR tracebacks for ordinary task failures.

These rest on private moto internals, so moto is pinned (`requirements/dev.txt`) and
`tests/local/test_canary.py` fails loudly when their shape changes. `install()` applies all (idempotent).
"""
from __future__ import annotations

import datetime
import functools
import json
import logging
import sys
import threading
import uuid
import weakref
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


_OPERATIONS: dict[str, dict[str, Any]] = {}


def _operation_model(task, boto_service_name: str | None, service_action_name: str | None):
    """The botocore operation model of a service task's API action (by its snake_case name)."""
    import botocore.session
    from moto.stepfunctions.parser.utils import camel_to_snake_case

    service = task._get_boto_service_name(boto_service_name)
    action = task._get_boto_service_action(service_action_name)
    operations = _OPERATIONS.get(service)
    if operations is None:
        model = botocore.session.get_session().get_service_model(service)
        operations = _OPERATIONS[service] = {camel_to_snake_case(name): model.operation_model(name)
                                            for name in model.operation_names}
    return operations.get(action)


def _epoch_millis(value: Any) -> None:
    """Timestamps in a service task's result as Step Functions gives them: epoch milliseconds."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in list(items):
        if isinstance(inner, datetime.datetime):
            value[key] = int(inner.timestamp() * 1000)
        else:
            _epoch_millis(inner)


def patch_sdk_casing() -> None:
    """Gap: the interpreter passes a service task's parameters to boto3 as the ASL writes them and
    returns boto3's answer as it is (StateTaskService._normalise_parameters/_normalise_response are
    stubs). That is right for PascalCase APIs (DynamoDB, SQS, SNS, Lambda), but Step Functions' own
    API is camelCase: `states:startExecution` (StateMachineArn, Name, Input; ExecutionArn read back by
    `.sync:2`) and `aws-sdk:sfn:sendTaskSuccess`/`sendTaskFailure` (TaskToken, Output, Error, Cause)
    fail with a KeyError. Filled for the `states` and `aws-sdk` integrations with the stubs' intended
    conversion (moto's own _to_boto_request / _from_boto_response over the botocore shapes), and the
    result's timestamps as epoch milliseconds (AWS's form; boto3's datetimes are not JSON)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    for cls in (StateTaskServiceSfn, StateTaskServiceAwsSdk):
        own_parameters = cls.__dict__.get("_normalise_parameters")
        own_response = cls.__dict__.get("_normalise_response")

        def _normalise_parameters(self, parameters, boto_service_name=None, service_action_name=None,
                                  __own=own_parameters):
            if __own is not None:
                __own(self, parameters, boto_service_name=boto_service_name, service_action_name=service_action_name)
            operation = _operation_model(self, boto_service_name, service_action_name)
            if operation is not None and operation.input_shape is not None:
                self._to_boto_request(parameters, operation.input_shape)

        def _normalise_response(self, response, boto_service_name=None, service_action_name=None,
                                __own=own_response):
            if __own is not None:
                __own(self, response, boto_service_name=boto_service_name, service_action_name=service_action_name)
            operation = _operation_model(self, boto_service_name, service_action_name)
            if operation is not None and operation.output_shape is not None:
                self._from_boto_response(response, operation.output_shape)
            _epoch_millis(response)

        cls._normalise_parameters = _normalise_parameters
        cls._normalise_response = _normalise_response


# ---------------------------------------------------------------------------------------------------------
# EXPRESS state machines

EXPRESS_RETENTION_SECONDS = 30.0  # how long a finished Express execution stays describable locally
_EXPRESS_LOCK = threading.Lock()
_express_listeners: list = []
_purged_at: dict[str, float] = {}


def add_express_listener(listener) -> None:
    """Call `listener(record)` whenever an EXPRESS execution ends; record: executionArn,
    stateMachineArn, name, status, startDate, stopDate (datetimes), error, cause. (What AWS would log to
    CloudWatch Logs for an Express workflow: the bench prices Express duration from it.)"""
    with _EXPRESS_LOCK:
        _express_listeners.append(listener)


def remove_express_listener(listener) -> None:
    with _EXPRESS_LOCK:
        if listener in _express_listeners:
            _express_listeners.remove(listener)


def _invalid_definition(message: str) -> Exception:
    from moto.core.exceptions import AWSError

    class InvalidDefinition(AWSError):
        TYPE = "InvalidDefinition"
        STATUS = 400

    return InvalidDefinition(message)


def _express_refusals(states: dict, where: str = "/States") -> list[str]:
    """Task resources an Express state machine may not use (.sync, .sync:2, .waitForTaskToken)."""
    refused = []
    for name, state in (states or {}).items():
        resource = state.get("Resource")
        if isinstance(resource, str) and (resource.endswith(".waitForTaskToken") or ".sync" in resource):
            refused.append(f"{where}/{name}/Resource ({resource.rsplit(':::', 1)[-1]})")
        for branch in state.get("Branches") or []:
            refused += _express_refusals(branch.get("States"), f"{where}/{name}/Branches")
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                refused += _express_refusals(state[key].get("States"), f"{where}/{name}/{key}")
    return refused


def _purge_express(machine) -> None:
    """Drop this machine's EXPRESS executions that ended more than EXPRESS_RETENTION_SECONDS ago (at most
    once a second). Called under _EXPRESS_LOCK, the only place executions are added to the machine."""
    import time as _time

    now = _time.monotonic()
    if now - _purged_at.get(machine.arn, 0.0) < 1.0:
        return
    _purged_at[machine.arn] = now
    horizon = datetime.datetime.now(tz=datetime.timezone.utc) - datetime.timedelta(seconds=EXPRESS_RETENTION_SECONDS)
    machine.executions = [e for e in machine.executions
                          if getattr(e, "stop_date", None) is None or e.stop_date > horizon]


def patch_express() -> None:
    """Gap: moto runs an EXPRESS state machine as a STANDARD one (StateMachine.sm_type is always
    STANDARD): its executions are redrivable (AWS: not), its execution names must be unique (AWS:
    they may repeat), `.waitForTaskToken` and `.sync` are accepted in its definition (AWS refuses
    them), and every execution stays in the store for good (AWS keeps no Express history). Fixed: the
    type is EXPRESS (redrive refuses it), such definitions are refused with InvalidDefinition, each
    start is a new execution, and a finished execution is reported to the express listeners, then
    dropped EXPRESS_RETENTION_SECONDS later (until then DescribeExecution answers, which the
    interpreter's own `.sync:2` needs)."""
    from moto.stepfunctions.parser.api import StateMachineType
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original_create = StepFunctionsParserBackend.create_state_machine

    def create_state_machine(self, name, definition, roleArn, *args, sm_type=None, **kwargs):
        if (sm_type or "STANDARD") == StateMachineType.EXPRESS.value:
            refused = _express_refusals(json.loads(definition).get("States"))
            if refused:
                raise _invalid_definition(
                    "Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: Express state machines do not "
                    f"support the .sync or .waitForTaskToken integration patterns at {', '.join(refused)}'")
        machine = original_create(self, name, definition, roleArn, *args, sm_type=sm_type, **kwargs)
        if machine.type == StateMachineType.EXPRESS.value:
            machine.sm_type = StateMachineType.EXPRESS
        return machine

    StepFunctionsParserBackend.create_state_machine = create_state_machine
    original_start = StepFunctionsParserBackend.start_execution

    def start_execution(self, state_machine_arn, name=None, execution_input=None, trace_header=None):
        machine = self.describe_state_machine(state_machine_arn)
        if machine.sm_type != StateMachineType.EXPRESS:
            return original_start(self, state_machine_arn, name, execution_input, trace_header)
        with _EXPRESS_LOCK:
            _purge_express(machine)
            # A new execution each time, whatever its name: the name gets a unique suffix in the ARN.
            unique = f"{name}:{uuid.uuid4()}" if name else str(uuid.uuid4())
            execution = original_start(self, state_machine_arn, unique, execution_input, trace_header)
        if name:
            execution.name = name
        return execution

    StepFunctionsParserBackend.start_execution = start_execution
    original_terminated = BaseExecutionWorkerCommunication.terminated

    def terminated(self) -> None:
        original_terminated(self)
        execution = self.execution
        if execution.sm_type == StateMachineType.EXPRESS:
            record = {"executionArn": execution.exec_arn, "stateMachineArn": execution.state_machine_arn,
                      "name": execution.name, "status": execution.exec_status.value,
                      "startDate": execution.start_date, "stopDate": execution.stop_date,
                      "error": execution.error, "cause": execution.cause}
            with _EXPRESS_LOCK:
                listeners = list(_express_listeners)
            for listener in listeners:
                listener(record)

    BaseExecutionWorkerCommunication.terminated = terminated


def patch_retry_clock() -> None:
    """Gap (for tests): a Retry's backoff sleeps on the wall clock. It sleeps on the runtime's clock
    (mxflow_local.clock) instead: the wall clock by default, advanced without sleeping when a test
    turns on virtual sleeps, so failure paths with their full retries run at once."""
    import time as _time

    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

    from mxflow_local.clock import CLOCK

    class _ClockTime:
        @staticmethod
        def sleep(seconds: float) -> None:
            CLOCK.sleep(seconds)

        def __getattr__(self, name):
            return getattr(_time, name)

    retrier_decl.time = _ClockTime()


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


def patch_retry_token() -> None:
    """Gap: a retried callback-capable service task (`.waitForTaskToken`, `.sync`) keeps the task token
    of its first attempt, whose callback endpoint that attempt interrupted when it failed: the retry
    then ends at once with States.Timeout (the wait finds the endpoint already signalled, with no
    outcome). AWS schedules each attempt as a new task with its own token. Each retry gets a new token
    and endpoint here, before its parameters are evaluated."""
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_callback import (
        StateTaskServiceCallback,
    )

    original = ExecutionState._evaluate_with_timeout

    def _evaluate_with_timeout(self, env):
        context = env.states.context_object.context_object_data
        if (isinstance(self, StateTaskServiceCallback) and self._is_integration_pattern()
                and ResourceCondition.WaitForTaskToken in self._supported_integration_patterns
                and (context.get("State") or {}).get("RetryCount", 0) > 0 and context.get("Task")):
            env.callback_pool_manager.add(env.states.context_object.update_task_token())
        return original(self, env)

    ExecutionState._evaluate_with_timeout = _evaluate_with_timeout


def patch_starting_execution() -> None:
    """Gaps while another thread is starting an execution: `start_execution` registers the execution
    with its state machine before `Execution.start` gives it a status, a worker, and (on the worker's
    own thread) the worker's environment.

    - Every reader of `Execution.status` (the callbacks' walk, ListExecutions' status filter, the
      name-idempotency check) fails on the missing status with an AttributeError: a 500 to whoever
      sent a task token at that moment. StartExecution is atomic in AWS, so a registered execution is
      RUNNING from the start.
    - The backend's execution walk (`_get_executions`, used only by the look-ups that then read
      `exec_worker.env`: task callbacks and map runs) includes such an execution although it holds no
      callback and no map run yet, so the walk skips it."""
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend.execution import Execution
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original_init = Execution.__init__

    @functools.wraps(original_init)
    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.exec_status = ExecutionStatus.RUNNING

    Execution.__init__ = __init__
    original = StepFunctionsParserBackend._get_executions

    def _get_executions(self, execution_status=None):
        return [execution for execution in original(self, execution_status)
                if getattr(getattr(execution, "exec_worker", None), "env", None) is not None]

    StepFunctionsParserBackend._get_executions = _get_executions


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


PROGRAM_CACHE_SIZE = 256   # parsed definitions kept (tests create many state machines; a runtime has two)


def _prime_heap_keys(program) -> None:
    """Give every component of a parsed program its heap key now. The key is made lazily on first use
    (EvalComponent.heap_key); two executions sharing the program could otherwise both make one, and a
    Retry's attempt counter (env.heap[key]) would be written under one key and read under another."""
    from moto.stepfunctions.parser.asl.component.component import Component
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    seen: set[int] = set()
    stack: list = [program]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, EvalComponent):
            _ = node.heap_key
        if isinstance(node, (list, tuple, set, frozenset)):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, Component):
            stack.extend(vars(node).values())


def patch_program_cache() -> None:
    """Speed: ExecutionWorker._get_evaluation_entrypoint parses the definition (ANTLR lexer, parser and
    preprocessor: tens of milliseconds of CPU) for every execution. The parsed program is a tree of
    components that keep no execution state (the state lives in each execution's Environment: its
    stack, heap, context object, event history), so one parsed program per definition is shared by
    its executions. Redrive (below) parses its own copy, since it changes the program's StartAt."""
    import collections

    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    original = ExecutionWorker._get_evaluation_entrypoint
    cache: collections.OrderedDict = collections.OrderedDict()
    lock = threading.Lock()

    parsing: dict[str, threading.Lock] = {}   # a definition being parsed: executions started meanwhile wait

    def _get_evaluation_entrypoint(self):
        definition = self._evaluation_details.state_machine_details.definition
        with lock:
            program = cache.get(definition)
            if program is not None:
                cache.move_to_end(definition)
                return program
            once = parsing.setdefault(definition, threading.Lock())
        with once:   # executions started together parse the definition once, not once each
            with lock:
                program = cache.get(definition)
            if program is None:
                program = original(self)
                _prime_heap_keys(program)
                with lock:
                    cache[definition] = program
                    while len(cache) > PROGRAM_CACHE_SIZE:
                        cache.popitem(last=False)
            with lock:
                parsing.pop(definition, None)
        return program

    ExecutionWorker._get_evaluation_entrypoint = _get_evaluation_entrypoint


def patch_jsonpath_cache() -> None:
    """Speed: moto's JSONPath helpers call jsonpath-ng's `parse` for every evaluation, and the extended
    parser builds its PLY tables anew each time. Parsed expressions are immutable (find/update take the
    data), so one per path string is kept (bounded)."""
    import functools

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    for module in (json_path, result_path):
        parse = module.parse
        if not hasattr(parse, "cache_info"):
            module.parse = functools.lru_cache(maxsize=4096)(parse)


_NAMES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # state machine -> [executions, indexed, names]
_NAMES_LOCK = threading.Lock()


def patch_execution_names() -> None:
    """Speed: StateMachine._handle_name_input_idempotency (moto/stepfunctions/models.py, called by every
    StartExecution) walks the state machine's executions for one of the same name: the first found is
    returned when its input is the same and it is RUNNING, else ExecutionAlreadyExists. Every payment
    waiting for a decision has a RUNNING anchor, so a start cost time in proportion to the payments
    parked (bench/bulk.py, 10,000 transactions). Here the names are indexed per state machine (the
    first execution of each name, as the walk finds it), the executions appended since the last start
    added on the next; a list replaced or shortened (patch_express's purge) is indexed again."""
    from moto.stepfunctions.exceptions import ExecutionAlreadyExists
    from moto.stepfunctions.models import StateMachine

    def _handle_name_input_idempotency(self, name, execution_input):
        executions = self.executions
        with _NAMES_LOCK:
            index = _NAMES.get(self)
            if index is None or index[0] is not executions or index[1] > len(executions):
                index = _NAMES[self] = [executions, 0, {}]
            count = len(executions)
            for execution in executions[index[1]:count]:
                index[2].setdefault(execution.name, execution)
            index[1] = count
            execution = index[2].get(name)
        if execution is None:
            return None
        if execution_input == execution.execution_input and execution.status == "RUNNING":
            return execution
        raise ExecutionAlreadyExists("Execution Already Exists: '" + execution.execution_arn + "'")

    _handle_name_input_idempotency._mxflow_original = StateMachine._handle_name_input_idempotency
    StateMachine._handle_name_input_idempotency = _handle_name_input_idempotency


class _NotKept(list):
    """A thread list that keeps nothing (moto's TMP_THREADS is only ever appended to)."""

    def append(self, _thread) -> None:
        return None


def patch_thread_list() -> None:
    """Memory: moto.stepfunctions.parser.utils.TMP_THREADS is appended to for every execution, program,
    state with a timeout and callback wait, and nothing reads or clears it: each finished thread, with
    the closure holding its evaluation frame, stayed in memory for good. The list is replaced, in the
    module and in every module that imported it, by one that keeps nothing."""
    from moto.stepfunctions.parser import utils

    original = utils.TMP_THREADS
    replacement = _NotKept()
    utils.TMP_THREADS = replacement
    for name, loaded in list(sys.modules.items()):
        if name.startswith("moto.stepfunctions.parser") and loaded is not None:
            if getattr(loaded, "TMP_THREADS", None) is original:
                loaded.TMP_THREADS = replacement
    original.clear()


def patch_program_thread() -> None:
    """Threads: Program.eval runs the execution's states on a thread of its own and joins it, so that an
    execution-level TimeoutSeconds can end it; the execution worker's thread meanwhile only waits. With no
    such timeout the join waits for good: the states run on the worker's thread instead (the same
    evaluation, one thread fewer per running execution). Every payment waiting for a decision is a running
    anchor execution (three threads each before, two now): a message of 10,000 transactions parks 10,000."""
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
    from moto.stepfunctions.parser.asl.component.program.program import Program

    original = Program.eval

    def eval(self, env) -> None:
        if self.timeout_seconds is not None:
            return original(self, env)
        env.next_state_name = self.start_at.start_at_name
        try:
            EvalComponent.eval(self, env)
        except Exception:  # noqa: BLE001 - on its own thread it ended that thread only, and the worker
            # went on to report the execution's end: so here too (the states record their failure first)
            logging.getLogger(__name__).exception("a state machine's evaluation raised")

    eval._mxflow_original = original
    Program.eval = eval


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
        patch_express()
        patch_retry_clock()
        patch_sdk_casing()
        patch_heartbeat_name()
        patch_lambda_client_errors()
        patch_jsonata()
        patch_redrive()
        patch_task_failure_cause()
        patch_early_callback()
        patch_retry_token()
        patch_starting_execution()
        patch_client_cache()
        patch_program_cache()
        patch_jsonpath_cache()
        patch_execution_names()
        patch_thread_list()
        patch_program_thread()
        quiet_logs()
        _INSTALLED = True
