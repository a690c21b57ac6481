"""A small client of mxflow's HTTP API (README.md, "Run the API locally"), used by the demo, the end-to-end tests and
the bench. Standard library only; it talks to any base URL (the local API or a deployed stage).
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

ALL_SCOPES = ("payments/submit", "payments/read", "payments/decide", "payments/operate")
ENGINE_SCOPE = "payments/engine"  # the payment engine's own client: POST /engine/messages only
TERMINAL = ("ACSC", "RJCT", "CANC")

# An opener that speaks http and https only: urllib's default one also opens file:, ftp: and data: URLs,
# so a mistyped or hostile base URL could read local files. Proxies from the environment still apply.
_HTTP_ONLY = urllib.request.OpenerDirector()
for _handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(),
                 urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
    _HTTP_ONLY.add_handler(_handler)


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class PaymentsClient:
    def __init__(self, base_url: str, token: str | None, *, timeout: float = 30.0):
        if urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError(f"the API base URL must be http:// or https://, not {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def request(self, method: str, path: str, *, body: bytes | None = None, content_type: str | None = None,
                token: str | None = ..., headers: dict | None = None) -> Reply:
        all_headers = dict(headers or {})
        token = self.token if token is ... else token
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if content_type:
            all_headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base_url + path, data=body, method=method, headers=all_headers)
        try:
            with _HTTP_ONLY.open(request, timeout=self.timeout) as response:
                return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())

    def _json(self, method: str, path: str, payload=None) -> Reply:
        body = None if payload is None else json.dumps(payload).encode()
        return self.request(method, path, body=body, content_type="application/json" if body else None)

    # --- the routes -------------------------------------------------------------------------------------
    def submit(self, message: bytes, content_type: str = "application/xml") -> Reply:
        return self.request("POST", "/payments", body=message, content_type=content_type)

    def get(self, payment_id: str) -> Reply:
        return self.request("GET", f"/payments/{payment_id}")

    def message(self, payment_id: str, name: str) -> Reply:
        return self.request("GET", f"/payments/{payment_id}/messages/{name}")

    def approve(self, payment_id: str) -> Reply:
        return self._json("POST", f"/payments/{payment_id}/approve", {})

    def reject(self, payment_id: str, reason_code: str, additional_info: str | None = None) -> Reply:
        payload = {"reasonCode": reason_code}
        if additional_info:
            payload["additionalInfo"] = additional_info
        return self._json("POST", f"/payments/{payment_id}/reject", payload)

    def cancel(self, payment_id: str, reason_code: str) -> Reply:
        return self._json("POST", f"/payments/{payment_id}/cancel", {"reasonCode": reason_code})

    def redrive(self, payment_id: str) -> Reply:
        return self._json("POST", f"/payments/{payment_id}/redrive", {})

    def confirm_release(self, payment_id: str, sent: bool, message_id: str | None = None) -> Reply:
        payload = {"sent": sent, **({"messageId": message_id} if message_id else {})}
        return self._json("POST", f"/payments/{payment_id}/release/confirm", payload)

    def engine_message(self, message: bytes) -> Reply:
        """POST /engine/messages: an answer of the payment engine (a token with scope payments/engine)."""
        return self.request("POST", "/engine/messages", body=message, content_type="application/xml")

    def suspense(self, limit: int | None = None, cursor: str | None = None) -> Reply:
        query = urllib.parse.urlencode({k: v for k, v in (("limit", limit), ("cursor", cursor)) if v is not None})
        return self.request("GET", "/engine/suspense" + (f"?{query}" if query else ""))

    def health(self) -> Reply:
        return self.request("GET", "/health", token=None)

    # --- waiting ----------------------------------------------------------------------------------------
    def wait_for(self, payment_id: str, predicate, *, timeout: float = 60.0, interval: float = 0.1) -> dict:
        """Poll GET /payments/{id} until predicate(payment) is true; bounded by `timeout` seconds."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            reply = self.get(payment_id)
            if reply.status == 200:
                last = reply.json
                if predicate(last):
                    return last
            time.sleep(interval)
        raise TimeoutError(f"payment {payment_id} did not reach the expected state in {timeout:.0f}s "
                           f"(last status {last and last.get('status')})")

    def wait_for_status(self, payment_id: str, *statuses: str, timeout: float = 60.0) -> dict:
        return self.wait_for(payment_id, lambda p: p.get("status") in statuses, timeout=timeout)
