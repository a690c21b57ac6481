"""Lambda functions run in-process: the ONE place that replaces moto's Lambda invoke.

moto's Lambda backend without Docker (`moto.awslambda_simple.models.LambdaSimpleBackend.invoke`) only
echoes the payload. `install()` replaces that one method: when the function belongs to a running
`LocalRuntime` (looked up by account, Region and function name), the real handler is imported from its
CodeUri and called; any other function keeps moto's behaviour. Step Functions Lambda tasks, handlers that
call `lambda.invoke` with boto3, and `LocalRuntime.invoke` all come through here.

What a handler sees, as in AWS Lambda:
- its module imported once per function and runtime, under a unique module name (two functions may both
  have `app.py`); the CodeUri directory is on `sys.path` only while importing, and sibling modules it
  imported are moved out of the way afterwards, so the next function imports its own. Layer content
  directories (`<ContentUri>/python` if present, else `<ContentUri>` for `BuildMethod: python3.x`) stay
  on `sys.path` (like /opt/python): layer modules are shared by every function of the process.
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
  Before a function's module is imported, `Metrics` gets fresh class attributes, so the instances that
  module makes keep a set of their own (`_private_powertools_metrics`).
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
import os
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

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


class LambdaRunner:
    """Runs the handlers of one LocalRuntime's functions."""

    def __init__(self, account_id: str, region: str, gate: Callable[[FunctionSpec], Any] | None = None):
        self.account_id = account_id
        self.region = region
        self.functions: dict[str, FunctionSpec] = {}   # physical name -> spec
        self._modules: dict[str, Any] = {}
        self._module_locks: dict[str, threading.Lock] = {}
        # One execution environment per function: Lambda gives an environment one request at a time, and
        # handler code relies on it (Powertools' resolver and logger keep the current event in module
        # state). Invocations of one function therefore run one after another; different functions run
        # concurrently. (AWS would start more environments; locally there is one copy of each module.)
        self._environment_locks: dict[str, threading.Lock] = {}
        self._gate = gate   # called before each invocation: may raise LambdaServiceError or return a fault

    # registry
    def add(self, spec: FunctionSpec) -> None:
        self.functions[spec.name] = spec
        self._module_locks[spec.name] = threading.Lock()
        self._environment_locks[spec.name] = threading.Lock()
        with _REGISTRY_LOCK:
            _REGISTRY[(self.account_id, self.region, spec.name)] = self

    def close(self) -> None:
        with _REGISTRY_LOCK:
            for name in self.functions:
                if _REGISTRY.get((self.account_id, self.region, name)) is self:
                    del _REGISTRY[(self.account_id, self.region, name)]

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
        box: dict[str, Any] = {}
        variables = dict(spec.environment, AWS_LAMBDA_LOG_STREAM_NAME=f"local/{request_id}")

        def call() -> None:
            CURRENT_FUNCTION.set(spec.name)
            try:
                handler = self._handler(spec)
            except _HandlerLoadError as exc:   # as the Python runtime reports it (Runtime.* errors)
                box["error"] = (exc.error_type, str(exc), [])
                return
            try:
                with self._environment_locks[spec.name]:
                    result = handler(event, LambdaContext(spec, request_id, deadline))
                try:
                    box["payload"] = json.dumps(result).encode()
                except (TypeError, ValueError) as exc:
                    box["error"] = ("Runtime.MarshalError", f"Unable to marshal response: {exc}", [])
            except BaseException as exc:  # noqa: BLE001 - a handler's failure is data, as in Lambda
                stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
                box["error"] = (type(exc).__name__, str(exc), stack)

        context = contextvars.copy_context()
        worker = threading.Thread(target=context.run, args=(run_with_environment, variables, call),
                                  name=f"lambda-{spec.name}", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        duration = (time.monotonic() - started) * 1000
        if worker.is_alive():
            message = f"RequestId: {request_id} Error: Task timed out after {float(spec.timeout_s):.2f} seconds"
            return InvocationOutcome(error_payload("Sandbox.Timedout", message, request_id), "Unhandled",
                                     duration_ms=duration)
        if "error" in box:
            error_type, message, stack = box["error"]
            return InvocationOutcome(error_payload(error_type, message, request_id, stack), "Unhandled",
                                     duration_ms=duration)
        return InvocationOutcome(box["payload"], None, duration_ms=duration)

    def invoke_async(self, name: str, payload: bytes) -> None:
        """Invocation type Event: run in the background, the result is dropped (as with no destination)."""
        threading.Thread(target=self.invoke, args=(name, payload), daemon=True,
                         name=f"lambda-event-{name}").start()

    def _handler(self, spec: FunctionSpec) -> Callable:
        module_path, _, attribute = spec.handler.rpartition(".")
        if not module_path:
            raise _HandlerLoadError("Runtime.MalformedHandlerName",
                                    f"Bad handler '{spec.handler}': not enough values to unpack (expected 2, got 1)")
        with self._module_locks[spec.name]:
            module = self._modules.get(spec.name)
            if module is None:
                try:
                    module = self._import(spec, module_path)
                except (ImportError, SyntaxError) as exc:
                    raise _HandlerLoadError("Runtime.ImportModuleError",
                                            f"Unable to import module '{module_path}': {exc}") from None
                self._modules[spec.name] = module   # a failed import is tried again on the next call
        handler = getattr(module, attribute, None)
        if not callable(handler):
            raise _HandlerLoadError("Runtime.HandlerNotFound", f"Handler '{attribute}' missing on module '{module_path}'")
        return handler

    def _import(self, spec: FunctionSpec, module_path: str):
        relative = Path(*module_path.replace(".", "/").split("/"))
        file = spec.code_dir / relative.with_suffix(".py")
        if not file.is_file():
            file = spec.code_dir / relative / "__init__.py"
        if not file.is_file():
            raise ModuleNotFoundError(f"No module named '{module_path}' (no {relative}.py in {spec.code_dir})")
        unique = f"_mxflow_local_fn_{self.region.replace('-', '_')}_{id(self):x}_{spec.logical_id}"
        code_dir = str(spec.code_dir)
        with _IMPORT_LOCK:
            for layer_dir in spec.layer_dirs:
                if str(layer_dir) not in sys.path:
                    sys.path.append(str(layer_dir))
            before = set(sys.modules)
            _private_powertools_metrics()
            sys.path.insert(0, code_dir)
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
                sys.path.remove(code_dir)
                # sibling modules of this function's code: keep them private to it
                for name in set(sys.modules) - before - {unique}:
                    origin = getattr(sys.modules[name], "__file__", None) or ""
                    if origin.startswith(code_dir + os.sep):
                        sys.modules[f"{unique}.{name}"] = sys.modules.pop(name)
        return module


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
