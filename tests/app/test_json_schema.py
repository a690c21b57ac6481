"""The layer's JSON Schema check (mxflow/json_schema.py, jsonschema-rs) gives jsonschema's verdict on every
schema it is used with: the task events (mxflow/task_events.py) and the API's bodies (openapi.json via
mxflow/lifecycle.py). jsonschema, the reference implementation of Draft 2020-12, is the judge; the
instances are generated around each schema's own names, values and limits so that both verdicts occur."""
from __future__ import annotations

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxflow import lifecycle
from mxflow.errors import InvalidRequest
from mxflow.json_schema import SchemaCheck
from mxflow.task_events import TASK_EVENT_SCHEMAS, InvalidTaskEvent, task_event

SCHEMAS = {**{f"event:{kind}": schema for kind, schema in TASK_EVENT_SCHEMAS.items()},
           **{f"body:{action}": schema for action, schema in lifecycle.DECISION_REQUEST_SCHEMAS.items()},
           "body:confirmRelease": lifecycle.CONFIRM_RELEASE_SCHEMA}


def _walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _names_and_values(schema: dict) -> tuple[list[str], list]:
    """Every property name, enum and const value of a schema, and strings just inside and outside its
    length limits."""
    names, values = ["unexpected"], []
    for node in _walk(schema):
        names += list(node.get("properties", {}))
        values += list(node.get("enum", []))
        if "const" in node:
            values.append(node["const"])
        for limit in ("minLength", "maxLength"):
            if limit in node:
                values += ["x" * max(node[limit] - 1, 0), "x" * node[limit], "x" * (node[limit] + 1)]
    values += ["eu-west-1", "us-east-2", "EU-west-1", "07", "7", "AM04", "", "p-1", "tok"]
    return sorted(set(names)), values


# A valid instance of each schema, which the generated instances edit (a key dropped, added or changed)
SEEDS = {
    "event:validate": {"paymentId": "p-1", "message": None},
    "event:park": {"paymentId": "p-1", "taskToken": "tok", "anchor": "a-1", "resume": None},
    "event:decision_timeout": {"paymentId": "p-1", "anchor": "a-1"},
    "event:send": {"paymentId": "p-1"},
    "event:split": {"messageId": "m-1", "next": 0},
    "event:recovery": {"action": "takeOver", "from": "eu-west-1", "to": "us-east-2", "epoch": 2, "shard": "07"},
    "event:settle": {"paymentId": "p-1", "messageId": None, "outbound": "PA=="},
    "event:recall": {"paymentId": "p-1"},
    "body:approve": {},
    "body:reject": {"reasonCode": "AM04"},
    "body:cancel": {"reasonCode": "DUPL", "additionalInfo": "x"},
    "body:confirmRelease": {"sent": True},
}
_DROP = object()


def _instances(name: str, schema: dict):
    names, values = _names_and_values(schema)
    scalars = st.one_of(st.sampled_from(values), st.none(), st.booleans(), st.integers(-2, 5),
                        st.integers(min_value=2**64), st.floats(allow_nan=False, allow_infinity=False),
                        st.text(max_size=5))
    json_values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(names), inner, max_size=3)), max_leaves=6)
    edits = st.dictionaries(st.sampled_from(names), st.one_of(st.just(_DROP), json_values), max_size=3)
    edited = edits.map(lambda edit: {key: value for key, value in {**SEEDS[name], **edit}.items() if value is not _DROP})
    return st.one_of(edited, json_values)


def test_every_schema_has_a_valid_seed():
    assert set(SEEDS) == set(SCHEMAS)
    for name, seed in SEEDS.items():
        jsonschema.validate(seed, SCHEMAS[name])


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_check_gives_jsonschemas_verdict(name):
    schema = SCHEMAS[name]
    check = SchemaCheck(schema)
    reference = jsonschema.Draft202012Validator(schema)
    verdicts = set()

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_instances(name, schema))
    def agrees(instance):
        valid = reference.is_valid(instance)
        verdicts.add(valid)
        problem = check.problem(instance, "whole")
        assert (problem is None) == valid, (json.dumps(instance), problem)

    agrees()
    assert verdicts == {True, False}, f"{name}: the instances gave one verdict only: {verdicts}"


def test_a_problem_says_where_and_what():
    check = SchemaCheck(TASK_EVENT_SCHEMAS["recovery"])
    assert check.problem({"action": "takeOver", "from": "eu-west-1", "epoch": 1}, "event") == (
        'event: "to" is a required property')
    assert check.problem({"action": "finish", "from": "eu-west-1", "epoch": 0}, "event") == (
        "epoch: 0 is less than the minimum of 1")
    assert check.problem({1: "not a JSON object key"}, "event").startswith("event: not JSON")


def test_a_schema_that_is_not_valid_is_refused_when_made():
    with pytest.raises(Exception, match="type"):
        SchemaCheck({"type": "no such type"})


@pytest.mark.parametrize(("kind", "event", "said"), [
    ("validate", {}, 'validate event: event: "paymentId" is a required property'),
    ("validate", {"paymentId": ""}, "validate event: paymentId: "),
    ("park", {"paymentId": "p-1", "taskToken": "t", "resume": {"stage": "decide"}}, "park event: resume: "),
    ("split", {"messageId": "m-1", "next": -1}, "split event: next: -1 is less than the minimum of 0"),
    ("settle", {"paymentId": "p-1", "message": 7}, "settle event: message: 7 is not of type"),
])
def test_task_event_refuses_what_its_task_never_sends(kind, event, said):
    with pytest.raises(InvalidTaskEvent) as refused:
        task_event(kind, event)
    assert str(refused.value).startswith(said)


def test_task_event_returns_a_valid_event():
    event = {"paymentId": "p-1", "taskToken": "t", "resume": {"stage": "send", "carried": {}}}
    assert task_event("park", event) is event


@pytest.mark.parametrize(("action", "body", "said"), [
    ("reject", {"reasonCode": "AM04", "extra": 1}, "body: Additional properties are not allowed ('extra' was unexpected)"),
    ("reject", {}, 'body: "reasonCode" is a required property'),
    ("approve", {"additionalInfo": "x" * 106}, "additionalInfo: "),
])
def test_a_decision_body_is_checked_against_the_published_schema(action, body, said):
    with pytest.raises(InvalidRequest) as refused:
        lifecycle._check(body, action)
    assert str(refused.value).startswith(said)


def test_the_release_confirmation_body_is_checked():
    lifecycle._check({"sent": True, "messageId": "m-1"}, lifecycle.CONFIRM_RELEASE)
    with pytest.raises(InvalidRequest, match="sent"):
        lifecycle._check({}, lifecycle.CONFIRM_RELEASE)
