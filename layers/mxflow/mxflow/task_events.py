"""The events the state machine's tasks send the functions (statemachines/payment.asl.json), as JSON
Schemas, and the check each task handler runs first."""
from __future__ import annotations

from typing import Any

import jsonschema

_ID = {"type": "string", "minLength": 1, "maxLength": 80}
_DECISION = {"type": "object", "required": ["action"],
             "properties": {"action": {"enum": ["approve", "reject", "cancel", "timeout"]}}}
TASK_EVENT_SCHEMAS: dict[str, dict] = {
    "validate": {"type": "object", "required": ["paymentId"], "properties": {"paymentId": _ID}},
    "park": {"type": "object", "required": ["paymentId", "taskToken"],
             "properties": {"paymentId": _ID, "taskToken": {"type": "string", "minLength": 1}}},
    "decision_timeout": {"type": "object", "required": ["paymentId"], "properties": {"paymentId": _ID}},
    "finalise": {"type": "object", "required": ["paymentId", "decision"],
                 "properties": {"paymentId": _ID, "decision": _DECISION}},
    "release": {"type": "object", "required": ["paymentId"], "properties": {"paymentId": _ID}},
}


class InvalidTaskEvent(Exception):
    """A function was invoked with an event its task never sends (fails the execution clearly)."""


def task_event(kind: str, event: Any) -> dict:
    """The event of a state-machine task, checked against its JSON Schema."""
    try:
        jsonschema.validate(event, TASK_EVENT_SCHEMAS[kind])
    except jsonschema.ValidationError as error:
        where = "/".join(str(p) for p in error.absolute_path) or "event"
        raise InvalidTaskEvent(f"{kind} event: {where}: {error.message}") from None
    return event
