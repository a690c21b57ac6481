"""Lambda functions run in-process: the ONE place that replaces moto's Lambda invoke.

moto's Lambda backend without Docker (`moto.awslambda_simple.models.LambdaSimpleBackend.invoke`) only
echoes the payload. `install()` replaces that one method: when the function belongs to a running
`LocalRuntime` (looked up by account, Region and function name), the real handler is imported from its
CodeUri and called; any other function keeps moto's behaviour. Step Functions Lambda tasks, handlers that
call `lambda.invoke` with boto3, and `LocalRuntime.invoke` all come through here.

What a handler sees, as in AWS Lambda:
- execution environments: each function has a pool of them, as Lambda has. An invocation takes an idle
  environment (the most recently used first, so a warm one is reused), or creates one when none is idle,
  up to the function's concurrency: its ReservedConcurrentExecutions, beyond which an invocation is
  throttled as Lambda throttles it (429 TooManyRequestsException, "Rate Exceeded."); without a
  reservation, up to ENVIRONMENTS_PER_FUNCTION environments, beyond which an invocation waits for one
  to be free (the account's 1,000 would only cost memory here). An environment runs one invocation at a
  time (handler code relies on that: Powertools' resolver and logger keep the current event in module
  state); one whose invocation timed out is not reused (Lambda resets it).
- its module imported once per environment, under a unique module name (two functions may both have
  `app.py`, and two environments of one function have their own module globals); the CodeUri directory
  is on `sys.path` only while importing (`sys.path` is rebound, never changed in place, so a thread
  walking it meanwhile cannot skip an entry), and sibling modules it imported are moved out of the way
  afterwards, so the next environment imports its own. Layer content directories (`<ContentUri>/python`
  if present, else `<ContentUri>` for `BuildMethod: python3.x`) stay on `sys.path` (like /opt/python):
  layer modules are shared by every function of the process (the layer's caches are keyed by the
  configuration and Region they serve: mxflow.service, mxflow.aws.clients).
- its environment: the template's variables plus Lambda's reserved ones (AWS_REGION, AWS_DEFAULT_REGION,
  AWS_LAMBDA_FUNCTION_NAME, ...). Functions of two Regions run concurrently on threads of one process,
  so the environment cannot be swapped process-wide. Chosen: `os.environ`'s one instance gets a subclass
  (`_ContextualEnviron`) that first consults a per-invocation overlay held in a contextvar; reads and
  writes inside an invocation see and change only that overlay; outside any invocation it is the
  ordinary process environment. It is lock-free, covers `os.environ[...]`, `os.getenv`, `from os import
  environ` and botocore's own lookups. Limit: threads a handler starts itself begin with an empty
  context and see the process environment; child processes get the process environment.
- its own Powertools metric set. `aws_lambda_powertools.Metrics` keeps its metrics in class attributes
  shared by every instance of the process (one function per process in Lambda); here every function's
  module shares one process, so two functions flushing at once emptied each other's set and one failed
  with "SchemaValidationError: Must contain at least one metric" (a task failed, an execution FAILED).
  Before an environment's module is imported, `Metrics` gets fresh class attributes, so the instances
  that module makes keep a set of their own (`_private_powertools_metrics`).
- its own Powertools logger. `aws_lambda_powertools.Logger` takes `logging.getLogger(service)`, one per
  process, with one handler and formatter: every function's `Logger()` of service `mxflow` shared them,
  so the keys `inject_lambda_context` appends (function name, request id, cold start) were those of
  whichever invocation started last. An environment's module gets loggers of its own (not registered
  with `logging`; same names, levels and output: `_private_powertools_loggers`).
- its own request in Powertools' event handler, which keeps the event being resolved in class
  attributes of `BaseRouter` (`_invocation_local_router_state`: per invocation instead).
- a context object (`function_name`, `aws_request_id`, `invoked_function_arn`, `memory_limit_in_mb`,
  `get_remaining_time_in_millis()`, ...).
- its Timeout: the handler runs on its own thread; past the Timeout the caller gets Lambda's error
  `{"errorType": "Sandbox.Timedout", "errorMessage": "RequestId: ... Error: Task timed out after N.NN
  seconds"}`. Python cannot kill a thread: the late handler finishes in the background, like the
  orphaned Lambda AWS describes, and its result is discarded.
- errors: an exception becomes `x-amz-function-error: Unhandled` with `{"errorType": <class name>,
  "errorMessage", "stackTrace", "requestId"}`, so ASL Retry/Catch match by class name as in AWS.
"""
from __future__ import annotations

import contextvars
import importlib.util
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ENVIRONMENTS_PER_FUNCTION = 8   # environments of a function without reserved concurrency (see above)
_ORIGINAL_INVOKE: Callable | None = None
_INSTALL_LOCK = threading.Lock()
_IMPORT_LOCK = threading.RLock()
_REGISTRY_LOCK = threading.Lock()
# (account_id, region, function name) -> LambdaRunner
_REGISTRY: dict[tuple[str, str, str], "LambdaRunner"] = {}


# ---------------------------------------------------------------------------------------------------------
# per-invocation environment

_ENV_OVERLAY: contextvars.ContextVar[dict[str, str | None] | None] = contextvars.ContextVar(
    "mxflow_local_env_overlay", default=None)
# The physical name of the function whose handler runs on this thread (None outside any handler): the
# AWS-call faults of mxflow_local.faults target a function's own calls with it.
CURRENT_FUNCTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("mxflow_local_function", default=None)


class _ContextualEnviron(os._Environ):  # type: ignore[name-defined,misc]
    """os.environ whose reads and writes go to the current invocation's overlay when there is one."""

    def __getitem__(self, key):
        overlay = _ENV_OVERLAY.get()
        if overlay is not None and key in overlay:
            value = overlay[key]
            if value is None:
                raise KeyError(key)
            return value
        return super().__getitem__(key)

    def __setitem__(self, key, value):
        overlay = _ENV_OVERLAY.get()
        if overlay is None:
            return super().__setitem__(key, value)
        overlay[key] = str(value)

    def __delitem__(self, key):
        overlay = _ENV_OVERLAY.get()
        if overlay is None:
            return super().__delitem__(key)
        if key not in self:
            raise KeyError(key)
        overlay[key] = None

    def _names(self) -> list[str]:
        overlay = _ENV_OVERLAY.get()
        names = [self.decodekey(k) for k in self._data]
        if overlay is None:
            return names
        merged = [n for n in names if overlay.get(n, "") is not None]
        merged += [n for n, v in overlay.items() if v is not None and n not in merged]
        return merged

    def __iter__(self):
        return iter(self._names())

    def __len__(self):
        return len(self._names())

    def copy(self):
        return {name: self[name] for name in self._names()}


def install_environ() -> None:
    """Give os.environ (the single instance every module holds) the overlay-aware class. Idempotent."""
    if type(os.environ) is os._Environ:  # type: ignore[attr-defined]
        os.environ.__class__ = _ContextualEnviron


def run_with_environment(variables: dict[str, str], fn: Callable, *args: Any) -> Any:
    """Call fn with os.environ showing `variables` over the process environment (this thread only)."""
    token = _ENV_OVERLAY.set(dict(variables))
    try:
        return fn(*args)
    finally:
        _ENV_OVERLAY.reset(token)


# ---------------------------------------------------------------------------------------------------------
# functions

@dataclass
class FunctionSpec:
    logical_id: str
    name: str                       # physical name
    arn: str
    code_dir: Path
    handler: str                    # "module.function" (module may be dotted: "pkg/app.handler" too)
    layer_dirs: list[Path]
    environment: dict[str, str]     # the function's variables, reserved ones included
    timeout_s: float = 3.0
    memory_mb: int = 128
    runtime: str = "python3.13"
    reserved_concurrency: int | None = None   # ReservedConcurrentExecutions: the cap, beyond it a throttle


class LambdaContext:
    """The context object a Python handler receives."""

    def __init__(self, spec: FunctionSpec, request_id: str, deadline: float):
        self.function_name = spec.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = spec.arn
        self.memory_limit_in_mb = int(spec.memory_mb)
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{spec.name}"
        self.log_stream_name = f"local/{request_id}"
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class InvocationOutcome:
    payload: bytes                  # what Lambda returns (result JSON or the error JSON)
    function_error: str | None = None   # "Unhandled" when the handler failed
    status_code: int = 200
    duration_ms: float = 0.0
    extra: dict = field(default_factory=dict)


class _HandlerLoadError(Exception):
    """The handler cannot be loaded; error_type is the Python runtime's (Runtime.ImportModuleError, ...)."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


class LambdaServiceError(Exception):
    """An error of the Lambda service itself (throttling, Region down), not of the function."""

    def __init__(self, code: str, message: str, status: int):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def error_payload(error_type: str, message: str, request_id: str, stack: list[str] | None = None) -> bytes:
    body = {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": stack or []}
    return json.dumps(body).encode()


class _Environment:
    """One execution environment of a function: its handler module (None until initialised)."""

    def __init__(self, number: int):
        self.number = number
        self.module: Any = None
        self.invocations = 0


class _EnvironmentPool:
    """The environments of one function: idle ones reused most recent first, new ones created on demand
    up to `limit`; beyond it an invocation is throttled (`throttle`, reserved concurrency) or waits."""

    def __init__(self, limit: int, throttle: bool):
        self.limit = limit
        self.throttle = throttle
        self._idle: list[_Environment] = []
        self._busy = 0
        self._created = 0
        self._condition = threading.Condition()

    def acquire(self, deadline: float) -> _Environment:
        with self._condition:
            while True:
                if self._idle:
                    self._busy += 1
                    return self._idle.pop()
                if self._busy < self.limit:
                    self._busy += 1
                    self._created += 1
                    return _Environment(self._created)
                if self.throttle:
                    raise LambdaServiceError("TooManyRequestsException", "Rate Exceeded.", 429)
                remaining = deadline - time.monotonic()
                if remaining <= 0:   # waited a whole Timeout for an environment: as Lambda, a throttle
                    raise LambdaServiceError("TooManyRequestsException", "Rate Exceeded.", 429)
                self._condition.wait(remaining)

    def release(self, environment: _Environment, *, reusable: bool) -> None:
        with self._condition:
            self._busy -= 1
            if reusable and environment.module is not None:
                self._idle.append(environment)
            self._condition.notify()

    def stats(self) -> dict:
        with self._condition:
            return {"created": self._created, "busy": self._busy, "idle": len(self._idle), "limit": self.limit}


class LambdaRunner:
    """Runs the handlers of one LocalRuntime's functions, each in a pool of execution environments."""

    def __init__(self, account_id: str, region: str, gate: Callable[[FunctionSpec], Any] | None = None):
        self.account_id = account_id
        self.region = region
        self.functions: dict[str, FunctionSpec] = {}   # physical name -> spec
        self._pools: dict[str, _EnvironmentPool] = {}
        self._gate = gate   # called before each invocation: may raise LambdaServiceError or return a fault

    # registry
    def add(self, spec: FunctionSpec) -> None:
        self.functions[spec.name] = spec
        reserved = spec.reserved_concurrency
        self._pools[spec.name] = _EnvironmentPool(reserved if reserved is not None else ENVIRONMENTS_PER_FUNCTION,
                                                  throttle=reserved is not None)
        with _REGISTRY_LOCK:
            _REGISTRY[(self.account_id, self.region, spec.name)] = self

    def close(self) -> None:
        with _REGISTRY_LOCK:
            for name in self.functions:
                if _REGISTRY.get((self.account_id, self.region, name)) is self:
                    del _REGISTRY[(self.account_id, self.region, name)]

    def environments(self, name: str) -> dict:
        """How many environments the function has: created, busy, idle, and its limit."""
        return self._pools[name].stats()

    # running
    def invoke(self, name: str, payload: bytes) -> InvocationOutcome:
        """Invoke a function synchronously (RequestResponse). Raises LambdaServiceError for service errors."""
        spec = self.functions[name]
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        fault = self._gate(spec) if self._gate else None
        if fault is not None:
            outcome = fault.apply(spec, request_id)
            if outcome is not None:
                outcome.duration_ms = (time.monotonic() - started) * 1000
                return outcome
        try:
            event = json.loads(payload) if payload else {}
        except (ValueError, UnicodeDecodeError) as exc:
            raise LambdaServiceError("InvalidRequestContentException",
                                     f"Could not parse request body into json: {exc}", 400) from None
        deadline = started + float(spec.timeout_s)
        pool = self._pools[name]
        environment = pool.acquire(deadline)
        box: dict[str, Any] = {}
        ended = threading.Lock()   # the handler's end and the caller's timeout decide under it
        variables = dict(spec.environment, AWS_LAMBDA_LOG_STREAM_NAME=f"local/{request_id}")

        def call() -> None:
            CURRENT_FUNCTION.set(spec.name)
            try:
                try:
                    handler = self._handler(spec, environment)
                except _HandlerLoadError as exc:   # as the Python runtime reports it (Runtime.* errors)
                    box["error"] = (exc.error_type, str(exc), [])
                    return
                try:
                    result = handler(event, LambdaContext(spec, request_id, deadline))
                    try:
                        box["payload"] = json.dumps(result).encode()
                    except (TypeError, ValueError) as exc:
                        box["error"] = ("Runtime.MarshalError", f"Unable to marshal response: {exc}", [])
                except BaseException as exc:  # noqa: BLE001 - a handler's failure is data, as in Lambda
                    stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
                    box["error"] = (type(exc).__name__, str(exc), stack)
            finally:
                environment.invocations += 1
                with ended:
                    box["ended"] = True
                    timed_out = box.get("timed_out", False)
                # an environment whose invocation timed out is reset by Lambda: not reused
                pool.release(environment, reusable=not timed_out)

        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(run_with_environment, variables, call),
                                  name=f"lambda-{spec.name}-{environment.number}", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        duration = (time.monotonic() - started) * 1000
        with ended:
            if not box.get("ended"):
                box["timed_out"] = True
        if box.get("timed_out"):
            message = f"RequestId: {request_id} Error: Task timed out after {float(spec.timeout_s):.2f} seconds"
            return InvocationOutcome(error_payload("Sandbox.Timedout", message, request_id), "Unhandled",
                                     duration_ms=duration)
        worker.join()   # ended: only its last statements remain
        if "error" in box:
            error_type, message, stack = box["error"]
            return InvocationOutcome(error_payload(error_type, message, request_id, stack), "Unhandled",
                                     duration_ms=duration)
        return InvocationOutcome(box["payload"], None, duration_ms=duration)

    def invoke_async(self, name: str, payload: bytes) -> None:
        """Invocation type Event: run in the background, the result is dropped (as with no destination)."""
        threading.Thread(target=self.invoke, args=(name, payload), daemon=True,
                         name=f"lambda-event-{name}").start()

    def _handler(self, spec: FunctionSpec, environment: _Environment) -> Callable:
        module_path, _, attribute = spec.handler.rpartition(".")
        if not module_path:
            raise _HandlerLoadError("Runtime.MalformedHandlerName",
                                    f"Bad handler '{spec.handler}': not enough values to unpack (expected 2, got 1)")
        if environment.module is None:   # the environment's init: its own copy of the handler module
            try:
                environment.module = self._import(spec, module_path, environment.number)
            except (ImportError, SyntaxError) as exc:   # a failed init is tried again by the next environment
                raise _HandlerLoadError("Runtime.ImportModuleError",
                                        f"Unable to import module '{module_path}': {exc}") from None
        handler = getattr(environment.module, attribute, None)
        if not callable(handler):
            raise _HandlerLoadError("Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_path}'")
        return handler

    def _import(self, spec: FunctionSpec, module_path: str, number: int):
        relative = Path(*module_path.replace(".", "/").split("/"))
        file = spec.code_dir / relative.with_suffix(".py")
        if not file.is_file():
            file = spec.code_dir / relative / "__init__.py"
        if not file.is_file():
            raise ModuleNotFoundError(f"No module named '{module_path}' (no {relative}.py in {spec.code_dir})")
        unique = f"_mxflow_local_fn_{self.region.replace('-', '_')}_{id(self):x}_{spec.logical_id}_{number}"
        code_dir = str(spec.code_dir)
        with _IMPORT_LOCK:
            # sys.path is rebound, never changed in place: other threads may be walking it meanwhile (an
            # import, importlib.metadata's discovery), and a list shrinking under a walk skips an entry
            missing = [str(layer_dir) for layer_dir in spec.layer_dirs if str(layer_dir) not in sys.path]
            if missing:
                sys.path = [*sys.path, *dict.fromkeys(missing)]
            before = set(sys.modules)
            _private_powertools_loggers()
            _invocation_local_router_state()
            _private_powertools_metrics()
            sys.path = [code_dir, *sys.path]
            token = _ENVIRONMENT_LOGGERS.set({})
            try:
                module_spec = importlib.util.spec_from_file_location(unique, file)
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[unique] = module
                try:
                    module_spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[unique]
                    raise
            finally:
                _ENVIRONMENT_LOGGERS.reset(token)
                sys.path = _without_first(sys.path, code_dir)
                # sibling modules of this function's code: keep them private to this environment
                for name in set(sys.modules) - before - {unique}:
                    origin = getattr(sys.modules[name], "__file__", None) or ""
                    if origin.startswith(code_dir + os.sep):
                        sys.modules[f"{unique}.{name}"] = sys.modules.pop(name)
        return module


def _without_first(path: list[str], entry: str) -> list[str]:
    """A copy of `path` without the first occurrence of `entry` (list.remove, on a new list)."""
    index = path.index(entry)
    return path[:index] + path[index + 1:]


# While an environment's module is imported: its private loggers by name (see _private_powertools_loggers).
_ENVIRONMENT_LOGGERS: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "mxflow_local_environment_loggers", default=None)


def _private_powertools_loggers() -> None:
    """Make Powertools' Logger take a logging.Logger of the environment being imported instead of the
    process-wide one of its name (once per process; outside an environment's import nothing changes).
    The private logger has the same name and parent (the root logger, or the environment's own logger
    of the service for a child logger), so records look and go where they would."""
    try:
        from aws_lambda_powertools.logging import logger as powertools_logger
    except ImportError:
        return
    original = powertools_logger.Logger._get_logger
    if getattr(original, "_mxflow_private", False):
        return

    def _get_logger(self):
        shared = original(self)
        private = _ENVIRONMENT_LOGGERS.get()
        if private is None:
            return shared
        own = private.get(shared.name)
        if own is None:
            own = private[shared.name] = logging.Logger(shared.name)
            parent_name = shared.name.rpartition(".")[0] if getattr(self, "child", False) else ""
            own.parent = (private.get(parent_name) or logging.getLogger(parent_name)) if parent_name else logging.root
        return own

    _get_logger._mxflow_private = True
    powertools_logger.Logger._get_logger = _get_logger


# The invocation's Powertools router state (see _invocation_local_router_state): a dict, replaced on each write.
_ROUTER_STATE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("mxflow_local_router_state", default=None)
ROUTER_FIELDS = ("current_event", "lambda_context")


class _InvocationField:
    """A Powertools router field read from the current invocation's state (class or instance access)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, instance, owner=None):
        state = _ROUTER_STATE.get()
        if state is None or self.name not in state:
            raise AttributeError(self.name)
        return state[self.name]


def _invocation_local_router_state() -> None:
    """Powertools' event handler keeps the event being resolved in a class attribute of BaseRouter
    (`BaseRouter.current_event = ...`, `BaseRouter.lambda_context = ...` in ApiGatewayResolver.resolve),
    one per process in Lambda. Two environments resolving requests at once here read each other's
    event (a POST's content type seen as another request's: a 415). Those two fields are kept per
    invocation instead (a context variable; each invocation runs in its own context), read and written
    exactly as before. Once per process; a no-op without Powertools."""
    try:
        from aws_lambda_powertools.event_handler import api_gateway
    except ImportError:
        return
    router = api_gateway.BaseRouter
    meta = type(router)
    if getattr(meta, "_mxflow_invocation_local", False):
        return

    class _InvocationLocalMeta(meta):
        _mxflow_invocation_local = True

        def __setattr__(cls, name, value):
            if name in ROUTER_FIELDS and cls is router:
                _ROUTER_STATE.set({**(_ROUTER_STATE.get() or {}), name: value})
            else:
                super().__setattr__(name, value)

    router.__class__ = _InvocationLocalMeta
    for name in ROUTER_FIELDS:
        type.__setattr__(router, name, _InvocationField(name))


def _private_powertools_metrics() -> None:
    """Fresh class-level stores for Powertools' Metrics: instances made from now on (the next function's
    module-level `Metrics()`) share them with each other only. A no-op when Powertools is not installed."""
    try:
        from aws_lambda_powertools.metrics.metrics import Metrics
    except ImportError:
        return
    Metrics._metrics, Metrics._dimensions, Metrics._metadata, Metrics._default_dimensions = {}, {}, {}, {}


# ---------------------------------------------------------------------------------------------------------
# the moto patch

def _function_key(function_name: str) -> str:
    """'name', 'name:qualifier', or an ARN -> the function's name."""
    if function_name.startswith("arn:"):
        parts = function_name.split(":")
        return parts[6] if len(parts) > 6 else function_name
    return function_name.split(":", 1)[0]


def _patched_invoke(self, function_name, qualifier, body, headers, response_headers):
    """LambdaSimpleBackend.invoke replacement: run the real handler for functions of a LocalRuntime."""
    name = _function_key(function_name)
    with _REGISTRY_LOCK:
        runner = _REGISTRY.get((self.account_id, self.region_name, name))
    if runner is None:
        return _ORIGINAL_INVOKE(self, function_name, qualifier, body, headers, response_headers)
    from moto.core.exceptions import JsonRESTError

    payload = body.encode() if isinstance(body, str) else (body or b"")
    invocation_type = (headers or {}).get("X-Amz-Invocation-Type", "RequestResponse")
    try:
        if invocation_type == "Event":
            runner.invoke_async(name, payload)
            return b""
        if invocation_type == "DryRun":
            return b""
        outcome = runner.invoke(name, payload)
    except LambdaServiceError as exc:
        error = JsonRESTError(exc.code, exc.message)
        error.code = exc.status
        raise error from None
    if outcome.function_error:
        response_headers["x-amz-function-error"] = outcome.function_error
    response_headers["x-amz-executed-version"] = "$LATEST"
    return outcome.payload


def install() -> None:
    """Patch moto's simple Lambda backend (idempotent) and the environment class."""
    global _ORIGINAL_INVOKE
    from moto.awslambda_simple.models import LambdaSimpleBackend

    with _INSTALL_LOCK:
        install_environ()
        if _ORIGINAL_INVOKE is None:
            _ORIGINAL_INVOKE = LambdaSimpleBackend.invoke
            LambdaSimpleBackend.invoke = _patched_invoke
