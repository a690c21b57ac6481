"""The OpenAPI document over the local HTTP API: served at GET /openapi.json without a token (the local
API takes its routes from template.yaml), and every answer of a walk through each route conforms to it:
a status the operation documents (or its default), that response's media type, and a body valid against
its schema. A contract check of the answers; schemathesis fuzzes the same document (issue 8)."""
from __future__ import annotations

import json
import re
import uuid

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mxflow.openapi import openapi_document
from mxflow_local.client import PaymentsClient
from mxflow_local.sample_messages import bulk_credit_transfer, credit_transfer

DOCUMENT_URI = "urn:mxflow:openapi"


@pytest.fixture(scope="module")
def document() -> dict:
    return openapi_document()


def _in_document(schema):
    """A schema of the document with its references (top level or nested, e.g. in a oneOf) resolved
    against the document."""
    if isinstance(schema, dict):
        return {key: DOCUMENT_URI + value if key == "$ref" and value.startswith("#") else _in_document(value)
                for key, value in schema.items()}
    if isinstance(schema, list):
        return [_in_document(value) for value in schema]
    return schema


@pytest.fixture(scope="module")
def conforms(document):
    registry = Registry().with_resource(DOCUMENT_URI, Resource(contents=document, specification=DRAFT202012))
    templates = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path) for path in document["paths"]]
    seen: set[tuple[str, str, str]] = set()

    def check(method: str, url_path: str, reply) -> None:
        (template,) = [path for pattern, path in templates if pattern.match(url_path)]
        operation = document["paths"][template][method.lower()]
        status = str(reply.status)
        response = operation["responses"].get(status) or operation["responses"]["default"]
        while "$ref" in response:
            response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
        media_type = reply.content_type.split(";")[0].strip()
        assert media_type in response["content"], (method, url_path, status, media_type, list(response["content"]))
        schema = response["content"][media_type]["schema"]
        if media_type.endswith("json"):
            Draft202012Validator(_in_document(schema), registry=registry).validate(json.loads(reply.body))
        seen.add((template, method.lower(), status))

    check.seen = seen
    return check


def test_the_document_is_served_to_anyone(api, document):
    anonymous = PaymentsClient(api.url, None)
    reply = anonymous.request("GET", "/openapi.json")
    assert reply.status == 200 and reply.content_type.startswith("application/json")
    assert reply.json == document


def test_every_route_answers_as_the_document_says(api, client, client_for, conforms, document, versions):
    message = credit_transfer(uetr=str(uuid.uuid4()), amount="812.50")
    first = client.submit(message)
    conforms("POST", "/payments", first)
    payment_id = first.json["paymentId"]
    conforms("POST", "/payments", client.submit(message))                                        # 200 resubmission
    conforms("POST", "/payments", client.submit(message.replace(b"Invoice", b"Factura")))        # 409 AM05
    conforms("POST", "/payments", client.submit(b"not xml"))                                     # 400
    conforms("POST", "/payments", client.submit(message, content_type="application/json"))      # 415
    conforms("POST", "/payments", PaymentsClient(api.url, None).submit(message))                 # 401
    conforms("POST", "/payments", client_for(["payments/read"]).submit(message))                 # 403
    client.wait_for_status(payment_id, "PDNG")
    base = f"/payments/{payment_id}"
    conforms("GET", base, client.get(payment_id))
    conforms("GET", "/payments/p-" + "0" * 32, client.get("p-" + "0" * 32))                      # 404
    conforms("GET", base + "/messages/received", client.message(payment_id, "received"))
    conforms("GET", base + "/messages/nothing", client.message(payment_id, "nothing"))           # 404
    conforms("POST", base + "/reject", client.reject(payment_id, "ZZZZ"))                        # 422
    conforms("POST", base + "/cancel", client.cancel(payment_id, "NOPE"))                        # 422
    conforms("POST", base + "/approve", client.request("POST", base + "/approve", body=b"{",
                                                       content_type="application/json"))         # 400
    conforms("POST", base + "/redrive", client.redrive(payment_id))                              # 409
    conforms("POST", base + "/release/confirm", client.confirm_release(payment_id, True))        # 409 not suspended
    conforms("POST", base + "/release/confirm", client.request("POST", base + "/release/confirm", body=b'{"sent": 1}',
                                                               content_type="application/json"))  # 400
    conforms("POST", base + "/approve", client.approve(payment_id))                              # 200
    conforms("POST", base + "/reject", client.reject(payment_id, "AM04"))                        # 409 decided
    client.wait_for_status(payment_id, "ACSC")
    conforms("GET", base, client.get(payment_id))                                                # released
    bulk = bulk_credit_transfer(["10.00", "20.00"])
    receipt = client.submit(bulk)
    conforms("POST", "/payments", receipt)                                                       # 202 several
    conforms("POST", "/payments", client.submit(bulk))                                           # 200 several
    group = f"/messages/{receipt.json['messageId']}"
    conforms("GET", group, client.request("GET", group))
    conforms("GET", "/messages/m-" + "0" * 32, client.request("GET", "/messages/m-" + "0" * 32))  # 404
    conforms("GET", group + "/messages/received", client.request("GET", group + "/messages/received"))
    conforms("GET", group + "/messages/nothing", client.request("GET", group + "/messages/nothing"))  # 404
    # the console's reads (issue 14)
    conforms("GET", "/payments", client.request("GET", "/payments?limit=5"))
    conforms("GET", "/payments", client.request("GET", "/payments?limit=1000"))                # 400
    conforms("GET", base + "/execution", client.request("GET", base + "/execution"))
    conforms("GET", "/payments/p-" + "0" * 32 + "/execution",
             client.request("GET", "/payments/p-" + "0" * 32 + "/execution"))                     # 404
    conforms("GET", "/reason-codes", client.request("GET", "/reason-codes"))
    # the return leg: the engine's answer (its own scope), the suspense list
    from mxflow.iso20022 import build_status_report, extract_facts, parse_message

    engine = client_for(["payments/engine"], client_id="engine")
    settled = build_status_report(extract_facts(parse_message(message)), "ACSC", operator_bic="ENGNGB2LXXX",
                                  versions=versions)
    conforms("POST", "/engine/messages", engine.engine_message(settled))                         # 200
    conforms("POST", "/engine/messages", engine.engine_message(b"<Document>not an answer</Document>"))  # 422
    conforms("POST", "/engine/messages", client.engine_message(settled))                         # 403
    conforms("GET", "/engine/suspense", client.suspense(limit=5))                                # 200
    conforms("GET", "/engine/suspense", client.suspense(limit=0))                                # 400
    conforms("GET", "/health", client.health())
    conforms("GET", "/regions", client.request("GET", "/regions"))                                # 200
    recover = f"/regions/{api.region}/recover"
    conforms("POST", recover, client.request("POST", recover))                                   # 409 never probed
    conforms("POST", "/regions/ap-south-1/recover", client.request("POST", "/regions/ap-south-1/recover"))  # 404
    conforms("GET", "/openapi.json", PaymentsClient(api.url, None).request("GET", "/openapi.json"))
    # Every documented operation was exercised.
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert {(path, method) for path, method, _ in conforms.seen} == operations
    statuses = {status for _, _, status in conforms.seen}
    assert {"200", "202", "400", "401", "403", "404", "409", "415", "422"} <= statuses
