"""The validation pipeline: parse -> identify -> XSD (AppHdr and Document) -> business rules -> facts.

`validate_message(data, profile=..., registry=..., now=..., limits=...)` never raises on bad input: every
problem is an `Issue` in the result. Business rules (rules.py) run only when the XSD step passed; facts
(facts.py) are extracted whenever the message could be parsed and identified.

Pure code: bytes in, results out, no AWS.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from lxml import etree

from .message import Issue, MessageError, ParsedMessage, element_path
from .parsing import (
    FORMAT_ERROR_CODE,
    MESSAGE_ID_PATTERN,
    MissingDocumentError,
    ParseLimits,
    parse_message,
    redact_libxml2_message,
)
from .schemas import SchemaRegistry, default_registry

__all__ = ["PROFILES", "ValidationResult", "validate_message", "validate_schema", "validate_part", "check_header"]

PROFILES = ("iso", "cbpr+")
MAX_SCHEMA_ISSUES = 20  # per part; libxml2 can report one error per element of a broken message


@dataclass
class ValidationResult:
    """valid: no errors. message_type: the Document's message id ("pacs.008.001.08") or None when the
    input could not be identified. errors: every Issue, in pipeline order. facts: the Facts (with
    to_dict()) or None. parsed: the ParsedMessage or None."""

    valid: bool
    message_type: str | None
    errors: list[Issue] = field(default_factory=list)
    facts: object | None = None
    parsed: ParsedMessage | None = None
    profile: str = "iso"

    def to_dict(self, file: str | None = None) -> dict:
        """The `mxflow validate --json` object: {"file", "valid", "messageType", "errors"}."""
        out: dict = {} if file is None else {"file": file}
        out["valid"] = self.valid
        out["messageType"] = self.message_type
        out["errors"] = [issue.to_dict() for issue in self.errors]
        return out


# --- XSD step -----------------------------------------------------------------------------------------

_ELEMENT_IN_MESSAGE = re.compile(r"^Element '(\{[^}]*\}[^']+|[^'{}]+)'")
_PATH_STEP = re.compile(r"^(?:[A-Za-z_][\w.-]*:)?(?:\*|[A-Za-z_][\w.-]*)(?:\[\d+\])?$")


def _error_element(part: etree._Element, entry) -> etree._Element | None:
    """The element an XSD error is about: from libxml2's node path (relative to the validated part),
    checked against the element named in the message, else the element with that name on the error's
    line."""
    match = _ELEMENT_IN_MESSAGE.match(entry.message or "")
    tag = match.group(1) if match else None
    path = entry.path or ""
    steps = path.split("/")[2:] if path.startswith("/") else None
    if steps is not None and all(_PATH_STEP.match(step) for step in steps):
        try:
            found = part.xpath("/".join(["."] + steps), namespaces={k: v for k, v in part.nsmap.items() if k})
        except etree.XPathError:
            found = None
        if isinstance(found, list) and len(found) == 1 and isinstance(found[0], etree._Element):
            if tag is None or found[0].tag == tag:
                return found[0]
    if tag is not None:
        candidates = [e for e in part.iter(tag) if e.sourceline == entry.line]
        if candidates:
            return candidates[0]
    return None


def _schema_issues(part: etree._Element, error_log) -> list[Issue]:
    issues = []
    for entry in error_log:
        if entry.level < etree.ErrorLevels.ERROR:
            continue
        if len(issues) == MAX_SCHEMA_ISSUES:
            issues.append(Issue(FORMAT_ERROR_CODE, element_path(part), "more schema errors not shown"))
            break
        target = _error_element(part, entry)
        values = ()
        if target is not None:
            values = [target.text or "", (target.text or "").strip(), " ".join((target.text or "").split())]
            values += list(target.attrib.values())
        message = redact_libxml2_message(entry.message, values)
        issues.append(Issue(FORMAT_ERROR_CODE, element_path(target if target is not None else part), message))
    if not issues:  # invalid without an error-level entry: never a silent pass
        issues.append(Issue(FORMAT_ERROR_CODE, element_path(part), "the message does not conform to its XML Schema"))
    return issues


def validate_part(part: etree._Element, message_id: str, registry: SchemaRegistry) -> list[Issue]:
    """XSD-validate one part (a Document or an AppHdr element, in place in its envelope) against the
    schema of its exact namespace. [] when valid; FF01 Issues otherwise, including a missing schema."""
    try:
        schema = registry.acquire(message_id)
    except MessageError as exc:
        return [dataclasses.replace(exc.issue, path=element_path(part))]
    try:
        if schema.validate(part):
            return []
        return _schema_issues(part, schema.error_log)
    finally:
        registry.release(message_id, schema)


def validate_schema(parsed: ParsedMessage, registry: SchemaRegistry | None = None) -> list[Issue]:
    """The XSD step: the AppHdr (head.001.*) when there is one, then the Document."""
    registry = registry or default_registry()
    issues = []
    if parsed.app_header is not None:
        header_id = parsed.header_namespace.rpartition(":")[2]
        issues += validate_part(parsed.app_header, header_id, registry)
    issues += validate_part(parsed.document, parsed.message_id, registry)
    return issues


def check_header(parsed: ParsedMessage) -> list[Issue]:
    """The AppHdr's MsgDefIdr must name the Document's message id exactly."""
    declared = parsed.header_message_id
    if parsed.app_header is None or declared == parsed.message_id:
        return []
    if declared is None:
        return []  # a missing MsgDefIdr is the header XSD's finding, not a second one here
    path = element_path(parsed.app_header) + "/MsgDefIdr"
    shown = repr(declared) if MESSAGE_ID_PATTERN.fullmatch(declared) else "a value that is not a message identifier"
    return [
        Issue(
            FORMAT_ERROR_CODE,
            path,
            f"the AppHdr MsgDefIdr is {shown} but the Document is {parsed.message_id}",
        )
    ]


# --- pipeline -----------------------------------------------------------------------------------------

_stages: tuple | None = None


def _later_stages():
    """rules.run_rules, rules._utc_now and facts.extract_facts, imported on first use (not at import
    time, so the parse and XSD steps stand on their own)."""
    global _stages
    if _stages is None:
        from .facts import extract_facts
        from .rules import _utc_now, run_rules

        _stages = (run_rules, _utc_now, extract_facts)
    return _stages


def validate_message(
    data: bytes,
    *,
    profile: str = "iso",
    registry: SchemaRegistry | None = None,
    now=None,
    limits: ParseLimits | None = None,
) -> ValidationResult:
    """Parse, identify, XSD-validate (AppHdr and Document), check business rules (only after a clean
    XSD step) and extract facts. Never raises on bad input."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    registry = registry or default_registry()
    try:
        parsed = parse_message(data, limits)
    except MissingDocumentError as exc:
        errors = [exc.issue]
        if exc.app_header is not None:  # still tell what is wrong with the header on its own
            header_id = etree.QName(exc.app_header).namespace.rpartition(":")[2]
            errors += validate_part(exc.app_header, header_id, registry)
        return ValidationResult(False, None, errors, profile=profile)
    except MessageError as exc:
        return ValidationResult(False, None, [exc.issue], profile=profile)

    errors = check_header(parsed)
    schema_issues = validate_schema(parsed, registry)
    errors += schema_issues
    run_rules, utc_now, extract_facts = _later_stages()
    if not schema_issues:  # the tree is the parse of parsed.raw: the rules may read the bytes
        errors += run_rules(parsed, profile, utc_now(now), raw_is_tree=True)
    if errors:
        # An invalid message may lack what facts need; facts are then best effort.
        try:
            facts = extract_facts(parsed)
        except Exception:  # noqa: BLE001 - documented: facts are None when extraction fails
            facts = None
    else:
        facts = extract_facts(parsed)
    return ValidationResult(not errors, parsed.message_id, errors, facts, parsed, profile)
