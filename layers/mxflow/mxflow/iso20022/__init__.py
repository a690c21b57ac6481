"""The ISO 20022 library of mxflow: pure code, bytes in, results out, no AWS.

- parsing: hardened parsing and identification (`parse_message`, `ParseLimits`)
- schemas: official XSDs by exact namespace, compiled once per process (`SchemaRegistry`, `default_registry`)
- validation: the pipeline parse -> XSD -> business rules -> facts (`validate_message`, `ValidationResult`)
- rules: business rules with rule ids and ISO reason codes (`check_rules`)
- facts: the payment's facts and its payment id, the system's idempotency key (`Facts`, `extract_facts`)
- builders: pacs.002 status reports, camt.029 answers, outbound messages, from the payment's own data, in
  the configured versions (`MessageVersions`); `check_generated` before a generated message is kept or sent
- schema_sets: the built-in schema set (official XSDs of pinned wheels) and added schemas, every file checked
- codes: ISO External Code Sets and ISO 4217
"""
from .builders import (
    CBPR_PLUS_VERSIONS,
    BuildError,
    GeneratedMessageError,
    GeneratedMessageInvalid,
    MessageVersions,
    SchemaNotInstalled,
    build_cancellation_answer,
    build_outbound_message,
    build_status_report,
    check_generated,
)
from .facts import Facts, content_hash, extract_facts, payment_id
from .message import Issue, MessageError, ParsedMessage, element_path
from .parsing import ParseLimits, parse_message
from .rules import check_rules
from .schemas import SchemaError, SchemaRegistry, default_registry
from .validation import ValidationResult, validate_message, validate_schema

__all__ = [
    "BuildError", "CBPR_PLUS_VERSIONS", "GeneratedMessageError", "GeneratedMessageInvalid", "MessageVersions",
    "SchemaNotInstalled", "check_generated", "Facts", "Issue", "MessageError", "ParseLimits", "ParsedMessage", "SchemaError",
    "SchemaRegistry", "ValidationResult", "build_cancellation_answer", "build_outbound_message",
    "build_status_report", "check_rules", "content_hash", "default_registry", "element_path",
    "extract_facts", "parse_message", "payment_id", "validate_message", "validate_schema",
]
