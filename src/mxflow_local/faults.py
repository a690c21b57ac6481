"""Fault injection for the embedded local runtime: failing functions and a dead Region, on demand.

- `FaultInjector.inject(function, kind, count, error_type)` makes the next `count` invocations of one
  function (logical id or physical name) fail, whoever invokes it (a state machine task, a handler's
  boto3 call, `LocalRuntime.invoke`):
  * `raise`: the handler is not run; the caller gets the function error `error_type` (Lambda's
    `Unhandled` shape, as if the handler had raised an exception of that class), so ASL Retry/Catch
    match it by name;
  * `throttle`: the Lambda service refuses the call with HTTP 429 `TooManyRequestsException` (Step
    Functions reports `Lambda.TooManyRequestsException`);
  * `timeout`: the call takes the function's Timeout (or `after_seconds`) and ends with Lambda's
    `Sandbox.Timedout` error; the handler is not run.
- `FaultInjector.inject_call(service, operation, ...)` makes the next `count` AWS API calls of that
  service and operation fail, made by one function (logical id or physical name) or by anyone (the
  state machines' own service integrations included), as the caller sees it after the SDK's retries:
  * `when="before"`: the call is not made; the caller gets a ClientError (`error_code`, HTTP `status`:
    a 4xx is a refusal, a 5xx a service failure) or, with `error_code="ReadTimeout"`, botocore's
    ReadTimeoutError;
  * `when="after"`: the call is made (the message is on the queue, the item written), then the caller
    gets that error: an outcome it cannot know.
  `race` is a callable run just before the call is made (a competing write, for a conditional-write
  race), the call itself going ahead.
- `RegionSwitch`: while a Region is stopped, every invocation of its functions fails with Lambda's
  `ServiceException` (HTTP 500), its scheduler fires nothing, and `available` is False (the local API
  answers from that). Data already in the Region stays, as it would in AWS after an outage.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from mxflow_local.clock import CLOCK
from mxflow_local.lambda_runner import (
    CURRENT_FUNCTION,
    FunctionSpec,
    InvocationOutcome,
    LambdaServiceError,
    error_payload,
)

FAULT_KINDS = ("raise", "throttle", "timeout")


@dataclass
class Fault:
    kind: str
    remaining: int
    error_type: str = "InjectedFault"
    message: str = "fault injected by mxflow local"
    after_seconds: float | None = None

    def apply(self, spec: FunctionSpec, request_id: str) -> InvocationOutcome | None:
        if self.kind == "raise":
            return InvocationOutcome(error_payload(self.error_type, self.message, request_id), "Unhandled")
        if self.kind == "throttle":
            raise LambdaServiceError("TooManyRequestsException", "Rate Exceeded.", 429)
        wait = float(spec.timeout_s if self.after_seconds is None else self.after_seconds)
        CLOCK.sleep(wait)  # the runtime's clock: a test with virtual sleeps does not wait
        message = f"RequestId: {request_id} Error: Task timed out after {float(spec.timeout_s):.2f} seconds"
        return InvocationOutcome(error_payload("Sandbox.Timedout", message, request_id), "Unhandled")


@dataclass
class CallFault:
    """A fault of AWS API calls (FaultInjector.inject_call)."""

    service: str                     # botocore's service name: sqs, s3, dynamodb, stepfunctions, sns, ...
    operation: str                   # the API operation: SendMessage, PutObject, UpdateItem, ...
    function: str | None             # physical name of the calling function; None: any caller
    remaining: int
    when: str = "before"
    error_code: str = "InternalError"
    status: int = 500
    race: Callable[[], None] | None = None
    fired: int = 0
    params: list = field(default_factory=list)   # the parameters of each call it failed

    def matches(self, service: str, operation: str, function: str | None) -> bool:
        return (self.remaining > 0 and self.service == service and self.operation == operation
                and (self.function is None or self.function == function))

    def error(self) -> Exception:
        if self.error_code == "ReadTimeout":
            from botocore.exceptions import ReadTimeoutError

            return ReadTimeoutError(endpoint_url=f"https://{self.service}.amazonaws.com/")
        from botocore.exceptions import ClientError

        return ClientError({"Error": {"Code": self.error_code, "Message": "fault injected by mxflow local"},
                            "ResponseMetadata": {"HTTPStatusCode": self.status}}, self.operation)


CALL_FAULT_MOMENTS = ("before", "after")
_CALL_FAULTS: list[CallFault] = []
_CALL_LOCK = threading.Lock()
_CALLS_PATCHED = False


def _take_call_fault(service: str, operation: str) -> CallFault | None:
    if not _CALL_FAULTS:
        return None
    function = CURRENT_FUNCTION.get()
    with _CALL_LOCK:
        for fault in _CALL_FAULTS:
            if fault.matches(service, operation, function):
                fault.remaining -= 1
                fault.fired += 1
                if fault.remaining <= 0:
                    _CALL_FAULTS.remove(fault)
                return fault
    return None


def _patch_calls() -> None:
    """Wrap botocore's BaseClient._make_api_call once per process: every boto3 call in the process (the
    handlers', the state machines' service integrations', the runtime's) passes here, after the
    SDK's own retries. Without a pending call fault it is a plain pass-through."""
    global _CALLS_PATCHED
    from botocore.client import BaseClient

    with _CALL_LOCK:
        if _CALLS_PATCHED:
            return
        original = BaseClient._make_api_call

        def _make_api_call(client, operation_name, api_params):
            fault = _take_call_fault(client.meta.service_model.service_name, operation_name) if _CALL_FAULTS else None
            if fault is None:
                return original(client, operation_name, api_params)
            fault.params.append(api_params)
            if fault.race is not None:
                fault.race()
                return original(client, operation_name, api_params)
            if fault.when == "after":
                original(client, operation_name, api_params)
            raise fault.error()

        _make_api_call.__wrapped__ = original
        BaseClient._make_api_call = _make_api_call
        _CALLS_PATCHED = True


class FaultInjector:
    """Pending faults per function (thread-safe), and AWS-call faults."""

    def __init__(self, resolve_name):
        self._resolve_name = resolve_name   # logical id or physical name -> physical name (KeyError if unknown)
        self._lock = threading.Lock()
        self._pending: dict[str, list[Fault]] = {}
        self.fired: dict[str, int] = {}
        self._calls: list[CallFault] = []   # this injector's call faults (the process-wide list holds all)

    def inject_call(self, service: str, operation: str, *, function: str | None = None, count: int = 1,
                    when: str = "before", error_code: str = "InternalError", status: int = 500,
                    race: Callable[[], None] | None = None) -> CallFault:
        """Fail the next `count` calls of `service`.`operation` (by `function`, else by anyone)."""
        if when not in CALL_FAULT_MOMENTS:
            raise ValueError(f"when must be one of {CALL_FAULT_MOMENTS}, not {when!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        fault = CallFault(service, operation, self._resolve_name(function) if function else None, count,
                          when, error_code, status, race)
        _patch_calls()
        with _CALL_LOCK:
            _CALL_FAULTS.append(fault)
            self._calls.append(fault)
        return fault

    def inject(self, function: str, kind: str = "raise", count: int = 1, error_type: str = "InjectedFault",
               message: str | None = None, after_seconds: float | None = None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, not {kind!r}")
        if count < 1:
            raise ValueError("count must be at least 1")
        name = self._resolve_name(function)
        fault = Fault(kind, count, error_type, message or f"{error_type} injected by mxflow local", after_seconds)
        with self._lock:
            self._pending.setdefault(name, []).append(fault)

    def clear(self, function: str | None = None) -> None:
        with self._lock:
            if function is None:
                self._pending.clear()
            else:
                self._pending.pop(self._resolve_name(function), None)
        if function is None:
            with _CALL_LOCK:
                for fault in self._calls:
                    if fault in _CALL_FAULTS:
                        _CALL_FAULTS.remove(fault)
                self._calls.clear()

    def pending(self, function: str) -> int:
        with self._lock:
            return sum(f.remaining for f in self._pending.get(self._resolve_name(function), []))

    def take(self, name: str) -> Fault | None:
        """The fault for this invocation of `name` (physical), consuming one count; None when none is due."""
        with self._lock:
            queue = self._pending.get(name)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            self.fired[name] = self.fired.get(name, 0) + 1
            return fault


class RegionSwitch:
    """The whole-Region kill switch."""

    def __init__(self, region: str):
        self.region = region
        self._up = threading.Event()
        self._up.set()

    @property
    def available(self) -> bool:
        return self._up.is_set()

    def stop(self) -> None:
        self._up.clear()

    def start(self) -> None:
        self._up.set()

    def check(self) -> None:
        if not self._up.is_set():
            raise LambdaServiceError("ServiceException",
                                     f"Region {self.region} is unavailable (stopped by mxflow local)", 500)
