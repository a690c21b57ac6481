"""The JSON Schema check of what the layer is handed as JSON: the state machines' task events
(task_events.py) and the API's request bodies (lifecycle.py: components.schemas of openapi.json).

One validator for both, jsonschema-rs (layers/mxflow/requirements.txt): JSON Schema Draft 2020-12, the
dialect of OpenAPI 3.1 and the one a schema without `$schema` gets. Chosen for its import: every step
function checks its event on every invoke, so the validator is part of its init, where jsonschema's
import (with referencing, rpds and attrs) was about a third of the handler's (`make bench`:
cold_import_ms); jsonschema-rs's is a single compiled module. tests/app/test_json_schema.py checks its
verdicts against jsonschema's (the reference implementation, a development dependency).
"""
from __future__ import annotations

from typing import Any, Mapping

import jsonschema_rs


class SchemaCheck:
    """A JSON Schema, checked against its meta-schema and compiled once (a schema that is not valid
    raises jsonschema_rs.ValidationError here, when the schema is made, never on an instance)."""

    __slots__ = ("_validator",)

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._validator = jsonschema_rs.validator_for(schema)

    def problem(self, instance: Any, whole: str) -> str | None:
        """None when `instance` is valid; otherwise where its first error is ("a/0/b", or `whole` for the
        instance itself) and what it is, as "where: message"."""
        try:
            self._validator.validate(instance)
        except jsonschema_rs.ValidationError as error:
            where = "/".join(str(part) for part in error.instance_path) or whole
            return f"{where}: {error.message}"
        except ValueError as error:   # not JSON at all (a key that is not a string, bytes, ...)
            return f"{whole}: not JSON ({error})"
        return None
