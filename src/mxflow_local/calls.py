"""Costs every in-process AWS call of the local runtime paid, cut without changing what the calls do.

Every call of a handler, of the state machines and of the runtime goes through a botocore client and moto's
in-process stub (mxflow_local/runtime.py: decorator mode). About twenty calls make an STP payment, so what
each call pays in that plumbing is paid twenty times (`bench/payments.py` `_local` measures the whole):

- moto's `BaseResponse.call_action` (moto/core/responses.py) listed every function of the handler's class
  with `inspect.getmembers` (about 200 names, a getattr each) to test whether the action is one of them
  (`method_names_from_class`). `_FunctionNames` answers that `in` test for the one name asked: a name is
  among getmembers' functions exactly when getattr of it on the class is a function.
- botocore's user agent (botocore/useragent.py) is written twice per request from about 36 components,
  each sanitised character by character (`sanitize_user_agent_string_component`, a pure function of its
  string and flag); here it is kept per (string, flag).
- botocore signs SigV4 with awscrt's signer when awscrt is importable (botocore/auth.py, AUTH_TYPE_MAPS),
  as it is in the development venv (requirements/dev.txt) but not in Lambda's Python runtime (the layer
  does not ship it either: bench/payments.py measures cold starts without it). Here the four SigV4 names
  map to botocore's own signers, as they do without awscrt (`PYTHON_SIGNERS`): what the functions do in
  Lambda, and about 0.2 ms less per call (crt's signer copies each request into a CRT request first).

tests/local/test_canary.py compares each with botocore's and moto's own.
"""
from __future__ import annotations

import functools
import inspect
import threading

_INSTALL_LOCK = threading.Lock()
_INSTALLED = False


class _FunctionNames:
    """The `in` test of the list `method_names_from_class(cls)` returns (moto/core/utils.py: the names
    inspect.getmembers(cls, inspect.isfunction) gives), for one name at a time."""

    __slots__ = ("cls",)

    def __init__(self, cls):
        self.cls = cls

    def __contains__(self, name) -> bool:
        try:
            return type(name) is str and inspect.isfunction(getattr(self.cls, name))
        except AttributeError:
            return False


def _method_names(cls) -> _FunctionNames:
    return _FunctionNames(cls)


def _sanitiser(original):
    kept = functools.lru_cache(maxsize=1024)(original)

    @functools.wraps(original)
    def sanitize_user_agent_string_component(raw_str, allow_hash):
        if type(raw_str) is str and type(allow_hash) is bool:
            return kept(raw_str, allow_hash)
        return original(raw_str, allow_hash)

    return sanitize_user_agent_string_component


# botocore/auth.py's AUTH_TYPE_MAPS entries when awscrt is absent (its `else` branch)
PYTHON_SIGNERS = {"v4": "SigV4Auth", "v4-query": "SigV4QueryAuth", "s3v4": "S3SigV4Auth", "s3v4-query": "S3SigV4QueryAuth"}


def install() -> None:
    """Patch the three (once per process; see the module's docstring)."""
    global _INSTALLED
    with _INSTALL_LOCK:
        if _INSTALLED:
            return
        from botocore import auth, useragent
        from moto.core import responses

        _method_names.__wrapped__ = responses.method_names_from_class
        responses.method_names_from_class = _method_names
        useragent.sanitize_user_agent_string_component = _sanitiser(useragent.sanitize_user_agent_string_component)
        auth.AUTH_TYPE_MAPS.update({name: getattr(auth, signer) for name, signer in PYTHON_SIGNERS.items()})
        _INSTALLED = True
