"""The ISO 20022 library of mxflow: pure code, bytes in, results out, no AWS.

- parsing: hardened parsing and identification (`parse_message`, `ParseLimits`)
- schemas: official XSDs by exact namespace, compiled once per process (`SchemaRegistry`, `default_registry`)
- validation: the pipeline parse -> XSD -> business rules -> facts (`validate_message`, `ValidationResult`)
- rules: business rules with rule ids and ISO reason codes (`check_rules`)
- facts: the payment's facts and its payment id, the system's idempotency key (`Facts`, `extract_facts`)
- bulk: messages with several transactions: each transaction's single-transaction message and the group
  checks (`iso20022.bulk`, imported as a module)
- builders: pacs.002 status reports, camt.029 answers, outbound messages, forwarded camt.056 recalls and
  pacs.004 returns, from the payment's own data, in the configured versions (`MessageVersions`);
  `check_generated` before a generated message is kept or sent
- answers: what a payment engine answers (pacs.002, camt.029, pacs.004), read (`read_answer`)
- schema_sets: the built-in schema set (official XSDs of pinned wheels) and added schemas, every file checked
- codes: ISO External Code Sets and ISO 4217

The public names below are imported on first use (PEP 562), so `import mxflow.iso20022` costs a
Lambda cold start nothing until a name is used, and a handler that only validates never loads the
builders (lxml.builder) nor one that only builds loads the rules (schwifty, pycountry).
"""
from __future__ import annotations

import importlib

# public name -> the submodule that defines it
_EXPORTS = {
    "BuildError": "builders", "build_cancellation_answer": "builders", "build_outbound_message": "builders",
    "build_status_report": "builders", "build_group_status_report": "builders", "CBPR_PLUS_VERSIONS": "builders", "GeneratedMessageError": "builders",
    "GeneratedMessageInvalid": "builders", "MessageVersions": "builders", "SchemaNotInstalled": "builders",
    "check_generated": "builders", "answer_addressee": "builders", "build_cancellation_request": "builders",
    "build_payment_return": "builders", "next_agent": "builders", "PAYMENT_RETURN_VERSIONS": "builders",
    "EngineAnswer": "answers", "NotAnAnswer": "answers", "OriginalReferences": "answers",
    "answer_family": "answers", "read_answer": "answers", "ANSWER_FAMILIES": "answers",
    "reference_key": "facts",
    "Facts": "facts", "content_hash": "facts", "extract_facts": "facts", "payment_id": "facts",
    "message_identity": "facts", "transaction_payment_ids": "facts",
    "Issue": "message", "MessageError": "message", "ParsedMessage": "message", "element_path": "message",
    "ParseLimits": "parsing", "parse_message": "parsing",
    "check_rules": "rules",
    "SchemaError": "schemas", "SchemaRegistry": "schemas", "default_registry": "schemas",
    "ValidationResult": "validation", "validate_message": "validation", "validate_schema": "validation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
