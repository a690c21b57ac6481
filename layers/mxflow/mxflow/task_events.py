"""The events the state machines' tasks send the functions (statemachines/payment_flow.asl.json,
statemachines/payment.asl.json), as JSON Schemas, and the check each task handler runs first."""
from __future__ import annotations

import base64
import binascii
import functools
from typing import Any

from mxflow.json_schema import SchemaCheck

_ID = {"type": "string", "minLength": 1, "maxLength": 80}
# The received bytes, base64, when the flow carries them (small messages); null otherwise.
_MESSAGE = {"type": ["string", "null"]}
_STAGE = {"enum": ["validate", "send", "settle", "recall"]}
TASK_EVENT_SCHEMAS: dict[str, dict] = {
    "validate": {"type": "object", "required": ["paymentId"],
                 "properties": {"paymentId": _ID, "message": _MESSAGE}},
    "park": {"type": "object", "required": ["paymentId", "taskToken"],
             "properties": {"paymentId": _ID, "taskToken": {"type": "string", "minLength": 1}, "anchor": _ID,
                            "resume": {"oneOf": [{"type": "null"}, {
                                "type": "object", "required": ["stage"],
                                "properties": {"stage": _STAGE, "carried": {"type": "object"}}}]}}},
    # anchor: the anchor execution's name ($$.Execution.Name), checked against the payment's (lifecycle.park)
    "decision_timeout": {"type": "object", "required": ["paymentId"], "properties": {"paymentId": _ID, "anchor": _ID}},
    "send": {"type": "object", "required": ["paymentId"],
             "properties": {"paymentId": _ID, "message": _MESSAGE}},
    "split": {"type": "object", "required": ["messageId", "next"],
              "properties": {"messageId": _ID, "next": {"type": "integer", "minimum": 0}}},
    # The recovery workflow's tasks (statemachines/recovery.asl.json, docs/regions.md).
    "recovery": {"type": "object", "required": ["action", "from", "epoch"],
                 "properties": {"action": {"enum": ["takeOver", "resumeSweep", "finish"]},
                                "from": {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]$"},
                                "to": {"type": "string", "pattern": "^[a-z]{2}(-[a-z]+)+-[0-9]$"},
                                "epoch": {"type": "integer", "minimum": 1},
                                "shard": {"type": "string", "pattern": "^[0-9]{2}$"},
                                "cursor": {"type": ["object", "null"]}, "reconcile": {"type": "boolean"}},
                 "allOf": [{"if": {"properties": {"action": {"const": "takeOver"}}},
                            "then": {"required": ["to", "shard"]}},
                           {"if": {"properties": {"action": {"const": "resumeSweep"}}},
                            "then": {"required": ["shard"]}}]},
    "settle": {"type": "object", "required": ["paymentId"],
               "properties": {"paymentId": _ID, "messageId": {"type": ["string", "null"]}, "message": _MESSAGE,
                              "outbound": _MESSAGE}},
    "recall": {"type": "object", "required": ["paymentId"], "properties": {"paymentId": _ID}},
}


class InvalidTaskEvent(Exception):
    """A function was invoked with an event its task never sends (fails the execution clearly)."""


@functools.cache
def _event_check(kind: str) -> SchemaCheck:
    """The kind's schema, checked and compiled once per process."""
    return SchemaCheck(TASK_EVENT_SCHEMAS[kind])


def task_event(kind: str, event: Any) -> dict:
    """The event of a state-machine task, checked against its JSON Schema."""
    problem = _event_check(kind).problem(event, "event")
    if problem is not None:
        raise InvalidTaskEvent(f"{kind} event: {problem}")
    return event


def carried_message(event: dict, field: str = "message") -> bytes | None:
    """A message the flow carries (base64 in the event: the received one, or the outbound one as
    sent), or None."""
    encoded = event.get(field)
    if not encoded:
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidTaskEvent(f"{field}: not base64") from None
