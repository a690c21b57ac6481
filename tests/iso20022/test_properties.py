"""Property-based tests (hypothesis).

- Built messages (pacs.002 for every status, camt.029 both ways, outbound pacs.008) validate against
  the official XSDs for any amount within the XSD limits, any active ISO 4217 currency and any
  XSD-legal Max35Text identifier, in every message version the builders offer whose schema is installed
  (all of them with ../shared; on the built-in set alone, those it has).
- Mutated real messages (element deletions, text replacements, duplications) never crash the
  pipeline, the rules or the facts, and every issue carries a real ExternalStatusReason1Code, a path
  and a message.
"""
from __future__ import annotations

import copy
from datetime import datetime, timezone
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from mxflow.iso20022 import codes
from mxflow.iso20022.builders import (
    CANCELLATION_ANSWER_VERSIONS,
    HEADER_VERSIONS,
    STATUS_REPORT_VERSIONS,
    MessageVersions,
    build_cancellation_answer,
    build_outbound_message,
    build_status_report,
)
from mxflow.iso20022.facts import Facts, extract_facts
from mxflow.iso20022.message import MessageError
from mxflow.iso20022.parsing import parse_message
from mxflow.iso20022.rules import check_rules
from mxflow.iso20022.validation import validate_message, validate_schema

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
PACS008 = "phoughton-cbpr-ur/2025/cbprplus_pacs008_2025.xml"
STATUSES = ["ACTC", "ACCP", "ACSP", "ACSC", "PDNG", "CANC", "RJCT"]
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# XML 1.0 characters (no C0 controls but tab/newline, no surrogates, no U+FFFE/U+FFFF). A carriage
# return is left out: XML parsing turns it into a line feed, so it would not round-trip as itself.
xml_characters = st.characters(
    blacklist_categories=("Cs",),
    blacklist_characters=[chr(c) for c in range(0x20) if c not in (0x09, 0x0A)] + ["\ufffe", "\uffff", "\r"],
)
max35 = st.text(xml_characters, min_size=1, max_size=35).filter(lambda s: s.strip() == s and s)
bics = st.from_regex(r"[A-Z0-9]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?", fullmatch=True)
currencies = st.sampled_from(sorted(codes.active_currencies()))
# xs:decimal, minInclusive 0, totalDigits 18, fractionDigits 5 (ActiveOrHistoricCurrencyAndAmount).
amounts = st.decimals(min_value=Decimal(0), max_value=Decimal("9999999999999.99999"), places=5,
                      allow_nan=False, allow_infinity=False).map(lambda d: format(d.normalize(), "f"))
uetrs = st.uuids(version=4).map(str)


@st.composite
def payment_facts(draw):
    return Facts(
        message_type=draw(st.sampled_from(["pacs.008.001.08", "pacs.009.001.08", "pacs.008.001.13"])),
        payment_id="p-" + "0" * 32,
        msg_id=draw(max35), creation_date_time="2026-11-20T10:00:00+01:00",
        instr_id=draw(st.none() | max35), end_to_end_id=draw(max35), tx_id=draw(st.none() | max35),
        uetr=draw(st.none() | uetrs), amount=draw(amounts), currency=draw(currencies),
        settlement_date="2026-11-20", header_from=draw(st.none() | bics), instructing_agent_bic=draw(bics),
        business_service=draw(st.sampled_from([None, "swift.cbprplus.02", "other.service"])),
    )


def assert_valid(data: bytes, registry, message_id: str, header_id: str = "head.001.001.02"):
    parsed = parse_message(data)
    assert parsed.message_id == message_id
    assert parsed.header_namespace.endswith(":" + header_id)
    assert validate_schema(parsed, registry) == []


def installed_versions(data, registry, family_versions) -> MessageVersions:
    """Draw a document version of `family_versions` and a head.001 version, both with installed schemas."""
    document = data.draw(st.sampled_from([v for v in family_versions if registry.has_schema(v)]))
    header = data.draw(st.sampled_from([v for v in HEADER_VERSIONS if registry.has_schema(v)]))
    return MessageVersions().with_version(document).with_version(header)


@SETTINGS
@given(facts=payment_facts(), status=st.sampled_from(STATUSES), operator=bics,
       reason=st.sampled_from(["AM05", "AB06", "FF01", "NARR", "CH20"]), info=st.none() | st.text(xml_characters, max_size=300),
       data=st.data())
def test_status_reports_validate(registry, facts, status, operator, reason, info, data):
    versions = installed_versions(data, registry, STATUS_REPORT_VERSIONS)
    built = build_status_report(facts, status, reason_code=reason if status == "RJCT" else None,
                                additional_info=info, operator_bic=operator, now=NOW, versions=versions)
    assert_valid(built, registry, versions.status_report, versions.app_header)


@SETTINGS
@given(facts=payment_facts(), accepted=st.booleans(), operator=bics, case=st.none() | max35,
       reason=st.sampled_from(sorted(codes.code_set(codes.CANCELLATION_REJECTION_REASON).codes)),
       info=st.none() | st.text(xml_characters, max_size=200), data=st.data())
def test_cancellation_answers_validate(registry, facts, accepted, operator, case, reason, info, data):
    versions = installed_versions(data, registry, CANCELLATION_ANSWER_VERSIONS)
    built = build_cancellation_answer(facts, accepted=accepted, reason_code=None if accepted else reason,
                                      additional_info=info, operator_bic=operator, case_id=case, now=NOW,
                                      versions=versions)
    assert_valid(built, registry, versions.cancellation_answer, versions.app_header)


@SETTINGS
@given(amount=amounts, currency=currencies, msg_id=max35, end_to_end=max35, operator=bics)
def test_outbound_messages_validate(registry, sample_bytes, amount, currency, msg_id, end_to_end, operator):
    parsed = parse_message(sample_bytes(PACS008))
    document = parsed.document
    settlement = document.find("{*}FIToFICstmrCdtTrf/{*}CdtTrfTxInf/{*}IntrBkSttlmAmt")
    settlement.text, settlement.attrib["Ccy"] = amount, currency
    document.find("{*}FIToFICstmrCdtTrf/{*}GrpHdr/{*}MsgId").text = msg_id
    document.find("{*}FIToFICstmrCdtTrf/{*}CdtTrfTxInf/{*}PmtId/{*}EndToEndId").text = end_to_end
    data = build_outbound_message(parsed, operator_bic=operator, now=NOW)
    assert_valid(data, registry, "pacs.008.001.08")
    rebuilt = extract_facts(parse_message(data))
    assert (rebuilt.amount, rebuilt.currency, rebuilt.msg_id, rebuilt.end_to_end_id) == (
        amount, currency, msg_id, end_to_end)


@st.composite
def mutations(draw):
    """A list of (operation, element index, text) applied in order to a real sample."""
    operation = st.sampled_from(["delete", "text", "duplicate", "attribute"])
    text = st.text(xml_characters, max_size=40) | st.sampled_from(
        ["", "/", "a//b", "2099-01-01", "1.234567", "-1", "XAU", "BRDEXXBU", "0", "99", "not a date"])
    return draw(st.lists(st.tuples(operation, st.integers(min_value=0, max_value=10_000), text), min_size=1, max_size=4))


def mutate(data: bytes, steps) -> bytes:
    root = etree.fromstring(data)
    for operation, index, text in steps:
        elements = [e for e in root.iter(etree.Element) if e.getparent() is not None]
        if not elements:
            break
        element = elements[index % len(elements)]
        if operation == "delete":
            element.getparent().remove(element)
        elif operation == "text":
            element.text = text
        elif operation == "duplicate":
            element.addnext(copy.deepcopy(element))
        else:
            element.set("Ccy", text)
    return etree.tostring(root)


def assert_issues_well_formed(issues):
    for issue in issues:
        assert codes.is_status_reason(issue.code), issue
        assert isinstance(issue.path, str) and issue.message
        if issue.rule is not None:
            assert issue.path.startswith("/")


@SETTINGS
@given(steps=mutations(), profile=st.sampled_from(["iso", "cbpr+"]))
def test_mutated_messages_never_crash_the_pipeline(registry, sample_bytes, camt056_bytes, steps, profile):
    for original in (sample_bytes(PACS008), camt056_bytes):
        data = mutate(original, steps)
        result = validate_message(data, profile=profile, registry=registry, now=NOW)
        assert_issues_well_formed(result.errors)
        assert result.valid is (not result.errors)
        if result.facts is not None:
            result.facts.to_dict()
        # the rules and facts on their own, without the XSD gate in front of them
        try:
            parsed = parse_message(data)
        except MessageError:  # the mutation broke the message itself; the pipeline said so
            continue
        assert_issues_well_formed(check_rules(parsed, profile=profile, now=NOW))
        assert extract_facts(parsed).payment_id.startswith("p-")


@settings(max_examples=300, deadline=None)
@given(amount=st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: len(d.as_tuple().digits) <= 18), sign=st.sampled_from(["", "+"]), zeros=st.integers(0, 3))
def test_fraction_digits_read_from_the_text_are_the_decimal_value_s(amount, sign, zeros):
    """rules.fraction_digits counts on the text what Decimal.normalize() tells of the value (any
    xs:decimal of at most 18 digits, the ISO amounts' totalDigits), trailing zeros included or not."""
    from mxflow.iso20022.rules import fraction_digits, parse_amount

    text = sign + format(amount, "f") if not format(amount, "f").startswith("-") else format(amount, "f")
    if "." in text:
        text += "0" * zeros
    exponent = amount.normalize().as_tuple().exponent
    assert fraction_digits(text) == max(0, -exponent)
    assert parse_amount(text) == amount
    assert fraction_digits(text + "e1") is None and fraction_digits("1,5") is None and fraction_digits("") is None


@settings(max_examples=300, deadline=None)
@given(family=st.sampled_from(["pacs.008", "pacs.009", "camt.056"]), sender=st.none() | st.text(max_size=12),
       msg_id=st.none() | st.text(max_size=40), end_to_end=st.none() | st.text(max_size=40), uetr=st.none() | uetrs)
def test_payment_id_is_the_hash_of_the_canonical_json(family, sender, msg_id, end_to_end, uetr):
    """The payment id (the system's idempotency key) is built without json.dumps on the hot path: it
    must stay the documented hash of json.dumps([...], separators=(",", ":"), ensure_ascii=True)."""
    import hashlib
    import json

    from mxflow.iso20022.facts import PAYMENT_ID_VERSION, institution_bic, payment_id

    canonical = json.dumps([PAYMENT_ID_VERSION, family, institution_bic(sender), msg_id, end_to_end, uetr],
                           separators=(",", ":"), ensure_ascii=True)
    expected = "p-" + hashlib.sha256(canonical.encode("ascii")).hexdigest()[:32]
    assert payment_id(message_family=family, sender=sender, msg_id=msg_id, end_to_end_id=end_to_end, uetr=uetr) == expected
