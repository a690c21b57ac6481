"""Costs every in-process AWS call of the local runtime paid, cut without changing what the calls do.

Every call of a handler, of the state machines and of the runtime goes through a botocore client and moto's
in-process stub (mxflow_local/runtime.py: decorator mode). About twenty calls make an STP payment, so what
each call pays in that plumbing is paid twenty times (`bench/payments.py` `_local` measures the whole):

- moto's `BaseResponse.call_action` (moto/core/responses.py) listed every function of the handler's class
  with `inspect.getmembers` (about 200 names, a getattr each) to test whether the action is one of them
  (`method_names_from_class`). `_FunctionNames` answers that `in` test for the one name asked: a name is
  among getmembers' functions exactly when getattr of it on the class is a function.
- botocore writes the whole user agent string twice per request (`UserAgentString.to_string`: about 15
  components built and joined, 25 us a time): `_user_agent` keeps the string per everything it is made of
  (the instance's fields, the client config's user agent settings, the request context's features in the
  order botocore joins them, and the module's `modify_components` and sanitiser).
- botocore signs SigV4 with awscrt's signer when awscrt is importable (botocore/auth.py, AUTH_TYPE_MAPS),
  as it is in the development venv (requirements/dev.txt) but not in Lambda's Python runtime (the layer
  does not ship it either: bench/payments.py measures cold starts without it). Here the four SigV4 names
  map to botocore's own signers, as they do without awscrt (`PYTHON_SIGNERS`): what the functions do in
  Lambda, and about 0.2 ms less per call (crt's signer copies each request into a CRT request first).
- moto's stub (`BotocoreStubber.process_request`, moto/core/botocore_stubber.py) finds a call's handler by
  matching its URL against every service's pattern, then builds the service backend's `urls` (a property:
  its urls module's paths formatted with each url base, and for S3 a `reload` of moto/s3/urls.py, about
  0.1 ms a call) and compiles them again. `_process_request` is that method with the two lookups kept: the
  services whose patterns match a URL, per URL (`_services`), and a backend's `urls` compiled, per backend
  class and the two settings the property reads (`_routes`: ISO regions; S3's custom endpoints).

tests/local/test_canary.py compares each with botocore's and moto's own.
"""
from __future__ import annotations

import functools
import inspect
import re
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


# what UserAgentString.to_string reads (botocore/useragent.py; tests/local/test_canary.py checks the list)
USER_AGENT_FIELDS = ("_platform_name", "_platform_version", "_platform_machine", "_python_version",
                     "_python_implementation", "_execution_env", "_crt_version", "_session_user_agent_name",
                     "_session_user_agent_version", "_session_user_agent_extra")
USER_AGENT_CONFIG = ("user_agent", "endpoint_discovery_enabled", "user_agent_appid", "user_agent_extra")
_NO_VALUE = object()


def _user_agent(original):
    from botocore import useragent

    kept: dict = {}

    @functools.wraps(original)
    def to_string(self):
        try:
            config = self._client_config
            if config:
                retries = config.retries
                settings = (getattr(config, "_supplied_user_agent", _NO_VALUE), bool(retries),
                            retries.get("mode") if retries else None,
                            *(getattr(config, name) for name in USER_AGENT_CONFIG))
            else:
                settings = (config,)
            context = useragent.get_context()
            features = (self._client_features or set()).union(set() if context is None else context.features)
            key = (*(getattr(self, name) for name in USER_AGENT_FIELDS), settings, tuple(features),
                   useragent.modify_components, useragent.sanitize_user_agent_string_component)
            answer = kept.get(key)
        except Exception:   # noqa: BLE001 - an unhashable setting: botocore's own answers (or raises)
            return original(self)
        if answer is None:
            if len(kept) > 1024:
                kept.clear()
            answer = kept[key] = original(self)
        return answer

    return to_string


# botocore/auth.py's AUTH_TYPE_MAPS entries when awscrt is absent (its `else` branch)
PYTHON_SIGNERS = {"v4": "SigV4Auth", "v4-query": "SigV4QueryAuth", "s3v4": "S3SigV4Auth", "s3v4-query": "S3SigV4QueryAuth"}


@functools.lru_cache(maxsize=4096)
def _services(clean_url: str) -> tuple:
    """The services of moto's URL patterns (moto/backend_index.py) that match a URL, in their order."""
    from moto import backend_index

    return tuple(service for service, pattern in backend_index.backend_url_patterns if pattern.match(clean_url))


_ROUTES: dict = {}


def _routes(backend) -> tuple:
    """`backend.urls` (moto/core/base_backend.py) as (compiled pattern, handler) pairs, in its order. The
    property reads the backend's class (its urls module), `enable_iso_regions()` and, for S3 (whose
    `_url_module` reloads moto/s3/urls.py), `get_s3_custom_endpoints()`: those make the key."""
    from moto import settings

    key = (type(backend), settings.enable_iso_regions(), tuple(settings.get_s3_custom_endpoints()))
    routes = _ROUTES.get(key)
    if routes is None:
        routes = _ROUTES[key] = tuple((re.compile(url), handler) for url, handler in backend.urls.items())
    return routes


def _process_request(self, request):
    """moto's BotocoreStubber.process_request (moto/core/botocore_stubber.py) with `_services` and `_routes`
    in place of its loop and its `backend.urls`."""
    from moto.core import DEFAULT_ACCOUNT_ID, botocore_stubber as stub
    from moto.core.base_backend import BackendDict
    from moto.core.exceptions import HTTPException
    from moto.core.request import normalize_request

    parsed_url, _ = stub.get_equivalent_url_in_aws_domain(request.url)
    clean_url = f"{parsed_url.scheme}://{parsed_url.netloc}{parsed_url.path}"
    if stub.passthrough_url(clean_url):
        return None
    for service in _services(clean_url):
        if stub.passthrough_service(service):
            return None
        if not stub.service_whitelisted(service):
            raise stub.ServiceNotWhitelisted(service)
        import moto.backends as backends

        backend_dict = backends.get_backend(service)
        if isinstance(backend_dict, BackendDict):
            if "us-east-1" in backend_dict[DEFAULT_ACCOUNT_ID]:
                backend = backend_dict[DEFAULT_ACCOUNT_ID]["us-east-1"]
            else:
                backend = backend_dict[DEFAULT_ACCOUNT_ID]["aws"]
        else:
            backend = backend_dict["global"]
        for pattern, method_to_execute in _routes(backend):
            if pattern.match(clean_url):
                from moto.moto_api import recorder

                normalized_request = normalize_request(request)
                try:
                    recorder._record_request(normalized_request)
                    status, headers, body = method_to_execute(
                        normalized_request, normalized_request.raw_url, normalized_request.headers)
                except HTTPException as e:
                    status = e.code
                    headers = e.get_headers()
                    body = e.get_body()
                return status, headers, body
    if _AMAZONAWS.match(clean_url):
        return 404, {}, "Not yet implemented"
    return None


_AMAZONAWS = re.compile(r"https?://.+\.amazonaws.com/.*")


def install() -> None:
    """Patch them (once per process; see the module's docstring)."""
    global _INSTALLED
    with _INSTALL_LOCK:
        if _INSTALLED:
            return
        from botocore import auth, useragent
        from moto.core import botocore_stubber, responses

        _method_names.__wrapped__ = responses.method_names_from_class
        responses.method_names_from_class = _method_names
        useragent.UserAgentString.to_string = _user_agent(useragent.UserAgentString.to_string)
        auth.AUTH_TYPE_MAPS.update({name: getattr(auth, signer) for name, signer in PYTHON_SIGNERS.items()})
        _process_request.__wrapped__ = botocore_stubber.BotocoreStubber.process_request
        botocore_stubber.BotocoreStubber.process_request = _process_request
        _INSTALLED = True
