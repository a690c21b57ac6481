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
- `RegionSwitch`: while a Region is stopped, every invocation of its functions fails with Lambda's
  `ServiceException` (HTTP 500), its scheduler fires nothing, and `available` is False (the local API
  answers from that). Data already in the Region stays, as it would in AWS after an outage.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from mxflow_local.lambda_runner import FunctionSpec, InvocationOutcome, LambdaServiceError, error_payload

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
        time.sleep(wait)
        message = f"RequestId: {request_id} Error: Task timed out after {float(spec.timeout_s):.2f} seconds"
        return InvocationOutcome(error_payload("Sandbox.Timedout", message, request_id), "Unhandled")


class FaultInjector:
    """Pending faults per function (thread-safe)."""

    def __init__(self, resolve_name):
        self._resolve_name = resolve_name   # logical id or physical name -> physical name (KeyError if unknown)
        self._lock = threading.Lock()
        self._pending: dict[str, list[Fault]] = {}
        self.fired: dict[str, int] = {}

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
