"""The events the state machines' tasks send the functions (statemachines/payment_flow.asl.json,
statemachines/payment.asl.json), as JSON Schemas, and the check each task handler runs first."""
from __future__ import annotations

import base64
import binascii
import functools
from typing import Any

import jsonschema

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
def _validator(kind: str):
    """The schema's validator, its schema checked once per process (jsonschema.validate checks the
    schema again at every call)."""
    schema = TASK_EVENT_SCHEMAS[kind]
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def task_event(kind: str, event: Any) -> dict:
    """The event of a state-machine task, checked against its JSON Schema (the error jsonschema.validate
    would raise: the best match)."""
    error = jsonschema.exceptions.best_match(_validator(kind).iter_errors(event))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "event"
        raise InvalidTaskEvent(f"{kind} event: {where}: {error.message}")
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
