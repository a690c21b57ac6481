"""Fuzzing through the running API (issue 8, figure 4), on a real `mxflow local up` in its own process.

- Hypothesis mutates valid messages from the library's sample builder (bytes flipped, inserted, deleted
  and duplicated, truncation, elements dropped, duplicated and rewritten, text and attribute values
  replaced) and posts each one: never a 5xx; a refusal is a 4xx problem+json (FF01 and the like where
  an ISO reason applies); an accepted one ends PDNG or RJCT with a reason, never stuck. (The library's
  own mutation test of validate_message lives in tests/iso20022.)
- schemathesis reads the OpenAPI document the server serves at /openapi.json and runs its generated
  cases (examples, coverage, fuzzing and stateful phases) with a token carrying every scope, with the
  checks not_a_server_error, status_code_conformance, content_type_conformance,
  response_headers_conformance, response_schema_conformance and ignored_auth; half of the generated
  payment ids are real ones, so the cases reach the payments, not only 404.
- Scopes: every route of the document with a token lacking its scope is 403, with no token 401.

`make test` runs bounded numbers of cases; `make reliability` runs many more. The numbers of cases run
are in the figures printed at the end of the run.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from local_up import local_up  # beside this file
from mxflow.openapi import openapi_document
from mxflow_local.client import ALL_SCOPES
from mxflow_local.sample_messages import credit_transfer

FULL = os.environ.get("MXFLOW_RELIABILITY") == "full"
MUTATIONS = 1000 if FULL else 120
SCHEMATHESIS_EXAMPLES = 100 if FULL else 10
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,"
          "response_schema_conformance,ignored_auth")


@pytest.fixture(scope="module")
def server(schema_dirs, tmp_path_factory):
    state, logs = tmp_path_factory.mktemp("state"), tmp_path_factory.mktemp("logs")
    with local_up(state, logs, "DecisionTimeoutSeconds=3600", "LogLevel=WARNING", schema_dirs=schema_dirs) as running:
        yield running


# --- hypothesis: mutated messages ---------------------------------------------------------------------
BASE = credit_transfer(uetr="3f1c2b4a-5d6e-4f70-8a9b-0c1d2e3f4a5b", msg_id="MSGFUZZBASE0001", end_to_end_id="E2EFUZZ0001")
ELEMENTS = len(etree.fromstring(BASE).xpath("//*"))


def _byte_mutation(data: bytes, kind: str, position: int, value: bytes) -> bytes:
    position %= max(1, len(data))
    if kind == "flip":
        return data[:position] + bytes([data[position] ^ (value[0] or 1)]) + data[position + 1:]
    if kind == "insert":
        return data[:position] + value + data[position:]
    if kind == "delete":
        return data[:position] + data[position + len(value):]
    if kind == "duplicate":
        return data[:position] + data[position:position + len(value) * 8] * 2 + data[position + len(value) * 8:]
    return data[:position]                                                   # truncate


def _tree_mutation(data: bytes, kind: str, index: int, text: str) -> bytes:
    root = etree.fromstring(data)
    elements = root.xpath("//*")
    element = elements[index % len(elements)]
    parent = element.getparent()
    if kind == "drop" and parent is not None:
        parent.remove(element)
    elif kind == "duplicate" and parent is not None:
        element.addnext(etree.fromstring(etree.tostring(element)))
    elif kind == "text":
        element.text = text
    elif kind == "attribute":
        element.set("Ccy" if len(element) == 0 else "x", text[:8] or "Q")
    elif kind == "rename":
        namespace = etree.QName(element).namespace
        element.tag = f"{{{namespace}}}Zz" if namespace else "Zz"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


mutated_messages = st.one_of(
    st.builds(_byte_mutation, st.just(BASE), st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate"]),
              st.integers(0, len(BASE)), st.binary(min_size=1, max_size=16)),
    st.builds(_tree_mutation, st.just(BASE), st.sampled_from(["drop", "duplicate", "text", "attribute", "rename"]),
              st.integers(0, ELEMENTS),
              st.text(st.characters(min_codepoint=0x20, max_codepoint=0xD7FF), max_size=40)),   # XML characters
)


def test_mutated_messages_through_the_api_get_4xx_or_an_iso_outcome(server, figures):
    client = server.client()
    outcomes: Counter = Counter()
    accepted: list[str] = []

    @settings(max_examples=MUTATIONS, deadline=None, derandomize=not FULL, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(data=mutated_messages)
    def post(data):
        reply = client.submit(data)
        outcome = f"{reply.status} {reply.json.get('code', '-') if reply.body else '-'}"
        outcomes[outcome] += 1
        assert reply.status in (200, 202, 400, 409, 413), (reply.status, reply.body[:300])
        if reply.status in (200, 202):
            accepted.append(reply.json["paymentId"])
        else:
            assert reply.content_type.startswith("application/problem+json"), reply.content_type
            assert {"type", "title", "status", "detail"} <= set(reply.json)
            if reply.status == 400:
                assert reply.json.get("code"), reply.json   # a refused message says its ISO reason

    post()
    settled = Counter()
    for payment_id in dict.fromkeys(accepted):
        payment = client.wait_for_status(payment_id, "PDNG", "RJCT", timeout=60)
        if payment["status"] == "RJCT":
            assert payment["reason"]["code"], payment
        settled[f"then {payment['status']}"] += 1
    assert server.client().health().status == 200 and server.process.poll() is None
    figures.setdefault("fuzzing", {})["hypothesis_mutations_through_api"] = {
        "cases": sum(outcomes.values()), "answers": dict(outcomes), "accepted_then": dict(settled),
        "server_errors": sum(n for o, n in outcomes.items() if o.startswith("5"))}


def test_a_malformed_sender_bic_is_rejected_not_stuck(server):
    """Found by the mutation test above: one lowercase letter in AppHdr/Fr BICFI. No answer could be
    addressed to that sender, so the API refuses it (400 FF01) instead of accepting a payment that
    could never get its pacs.002."""
    data = credit_transfer(uetr=str(uuid.uuid4())).replace(b"<Fr><FIId><FinInstnId><BICFI>DEUTDEFFXXX",
                                                           b"<Fr><FIId><FinInstnId><BICFI>DEUTbEFFXXX")
    client = server.client()
    reply = client.submit(data)
    assert reply.status == 400, reply.body
    assert reply.json["code"] == "FF01" and "cannot be answered" in reply.json["detail"], reply.json


# --- scopes ---------------------------------------------------------------------------------------------
def test_every_route_wants_its_scope(server, figures):
    document = openapi_document()
    checked = Counter()
    payment_id = "p-" + uuid.uuid4().hex
    for path, item in document["paths"].items():
        for method, operation in item.items():
            scopes = {scope for requirement in operation.get("security", document.get("security", []))
                      for scopes in requirement.values() for scope in scopes}
            url = path.replace("{id}", payment_id).replace("{name}", "received")
            body = b"{}" if method == "post" else None
            if not scopes:
                continue
            for scope in ALL_SCOPES:
                reply = server.client([scope]).request(method.upper(), url, body=body,
                                                       content_type="application/json" if body else None)
                if scope in scopes:
                    assert reply.status not in (401, 403), (method, path, scope, reply.status)
                else:
                    assert reply.status == 403, (method, path, scope, reply.status, reply.body[:200])
                    assert reply.content_type.startswith("application/problem+json")
                checked[f"{reply.status if reply.status in (401, 403) else 'allowed'}"] += 1
            anonymous = server.client(()).request(method.upper(), url, body=body, token=None)
            assert anonymous.status == 401, (method, path, anonymous.status)
            checked["401"] += 1
    assert checked["403"] and checked["401"] and checked["allowed"]
    figures.setdefault("fuzzing", {})["scope_checks"] = dict(checked)


# --- schemathesis against the served document ---------------------------------------------------------
def test_schemathesis_finds_no_server_error_and_no_nonconforming_answer(server, tmp_path, figures):
    client = server.client()
    real_ids = []
    for amount in ("101.00", "202.00", "303.00"):
        reply = client.submit(credit_transfer(uetr=str(uuid.uuid4()), amount=amount))
        assert reply.status == 202
        real_ids.append(reply.json["paymentId"])
    for payment_id in real_ids:
        client.wait_for_status(payment_id, "PDNG", timeout=60)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[dictionaries.payments]\n"
        f"values = {json.dumps(real_ids)}\n\n"
        "[parameters]\n"
        '"path.id" = { dictionary = "payments", probability = 0.5 }\n')
    token = server.issuer.issue_token(list(ALL_SCOPES), "e2e-client")
    report = tmp_path / "report.json"
    done = subprocess.run(
        [str(SCHEMATHESIS), "--config-file", str(config), "run", f"{server.url}/openapi.json",
         "-H", f"Authorization: Bearer {token}", "--checks", CHECKS, "--max-examples", str(SCHEMATHESIS_EXAMPLES),
         "--generation-database", "none", "--no-color", "--workers", "2", "--request-timeout", "30",
         "--report", "json", "--report-json-path", str(report), *([] if FULL else ["--seed", "20261201"])],
        capture_output=True, text=True, timeout=1500, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    cases = _cases_run(output)
    assert cases > 0, output[-3000:]
    assert server.client().health().status == 200 and server.process.poll() is None
    figures.setdefault("fuzzing", {})["schemathesis"] = {"cases": cases, "max_examples_per_operation":
                                                         SCHEMATHESIS_EXAMPLES, "failures": 0, "server_errors": 0}


def _cases_run(output: str) -> int:
    """The number of test cases from schemathesis's summary line ("N generated, N passed")."""
    found = re.search(r"(\d+) generated", output)
    return int(found.group(1)) if found else 0
