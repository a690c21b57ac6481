"""Builders: every generated message validates against the official XSDs (AppHdr head.001.001.02
and the Document) and carries the original message's own references."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from lxml import etree

from mxflow.iso20022.builders import (
    BuildError,
    build_cancellation_answer,
    build_outbound_message,
    build_status_report,
)
from mxflow.iso20022.facts import extract_facts
from mxflow.iso20022.parsing import parse_message
from mxflow.iso20022.validation import validate_message, validate_schema

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
OPERATOR = "MXFLGB2LXXX"
PACS008 = "phoughton-cbpr-ur/2025/cbprplus_pacs008_2025.xml"
PACS009 = "phoughton-cbpr-ur/2026/pacs009_fi_transfer_sample.xml"
ENVELOPE = "{urn:swift:xsd:envelope}Envelope"


def text(parsed, path: str) -> str | None:
    root = parsed.app_header if path.startswith("AppHdr/") else parsed.document
    steps = path.split("/")[1:]
    element = root.find("/".join("{*}" + step for step in steps))
    return None if element is None else element.text


def built(data: bytes, registry, message_id: str):
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")
    parsed = parse_message(data)
    assert parsed.root.tag == ENVELOPE
    assert [etree.QName(child).localname for child in parsed.root] == ["AppHdr", "Document"]
    assert parsed.message_id == message_id and parsed.header_message_id == message_id
    assert validate_schema(parsed, registry) == []
    assert text(parsed, "AppHdr/Fr/FIId/FinInstnId/BICFI") == OPERATOR
    return parsed


@pytest.fixture
def facts008(parsed_sample):
    return extract_facts(parsed_sample(PACS008))


@pytest.mark.parametrize("status", ["ACTC", "ACCP", "ACSP", "ACSC", "PDNG", "CANC"])
def test_status_report_for_every_status(facts008, registry, status):
    parsed = built(build_status_report(facts008, status, operator_bic=OPERATOR, now=NOW), registry, "pacs.002.001.10")
    assert text(parsed, "AppHdr/To/FIId/FinInstnId/BICFI") == "BRDEROBU"  # the original sender
    assert text(parsed, "AppHdr/BizSvc") == "swift.cbprplus.02"
    assert text(parsed, "AppHdr/CreDt") == "2026-11-24T12:00:00.000+00:00"
    message_id = text(parsed, "Document/FIToFIPmtStsRpt/GrpHdr/MsgId")
    assert message_id == text(parsed, "AppHdr/BizMsgIdr") and len(message_id) <= 35
    tx = "Document/FIToFIPmtStsRpt/TxInfAndSts/"
    assert text(parsed, tx + "TxSts") == status
    assert text(parsed, tx + "OrgnlGrpInf/OrgnlMsgId") == "pcs008bzmsgidr-1"
    assert text(parsed, tx + "OrgnlGrpInf/OrgnlMsgNmId") == "pacs.008.001.08"
    assert text(parsed, tx + "OrgnlGrpInf/OrgnlCreDtTm") == "2022-10-20T09:05:00+01:00"
    assert text(parsed, tx + "OrgnlInstrId") == "pcs008bzmsgidr-1"
    assert text(parsed, tx + "OrgnlEndToEndId") == "E2E04044506271305"
    assert text(parsed, tx + "OrgnlUETR") == "174c245f-2682-4291-ad67-2a41e530cd27"
    assert text(parsed, tx + "StsRsnInf/Rsn/Cd") is None
    result = validate_message(build_status_report(facts008, status, operator_bic=OPERATOR, now=NOW),
                              profile="cbpr+", registry=registry, now=NOW)
    assert result.valid, result.errors


def test_rejection_carries_reason_and_escaped_text(facts008, registry):
    info = "Amount <above> limit & " + "x" * 300
    data = build_status_report(facts008, "RJCT", reason_code="AM02", additional_info=info, operator_bic=OPERATOR, now=NOW)
    parsed = built(data, registry, "pacs.002.001.10")
    reason = parsed.document.find("{*}FIToFIPmtStsRpt/{*}TxInfAndSts/{*}StsRsnInf")
    assert reason.find("{*}Rsn/{*}Cd").text == "AM02"
    lines = [e.text for e in reason.findall("{*}AddtlInf")]
    assert 1 < len(lines) <= 2 and all(len(line) <= 105 for line in lines)
    assert lines[0].startswith("Amount <above> limit & x")  # escaped in the bytes, intact when read


def test_status_report_is_deterministic_and_distinct_per_outcome(facts008):
    first = build_status_report(facts008, "ACSC", operator_bic=OPERATOR, now=NOW)
    assert build_status_report(facts008, "ACSC", operator_bic=OPERATOR, now=NOW) == first
    ids = {parse_message(build_status_report(facts008, status, reason_code=reason, operator_bic=OPERATOR, now=NOW))
           .app_header.find("{*}BizMsgIdr").text
           for status, reason in [("ACSC", None), ("ACTC", None), ("RJCT", "AM05"), ("RJCT", "AB06")]}
    assert len(ids) == 4


@pytest.mark.parametrize("kwargs, error", [
    (dict(status="RJCT"), "reason"),
    (dict(status="DONE"), "ExternalPaymentTransactionStatus1Code"),
    (dict(status="RJCT", reason_code="TECH"), "ExternalStatusReason1Code"),
    (dict(status="ACSC", operator_bic="not a bic"), "BIC"),
])
def test_status_report_refuses_bad_inputs(facts008, kwargs, error):
    arguments = {"operator_bic": OPERATOR, **kwargs}
    status = arguments.pop("status")
    with pytest.raises(BuildError, match=error):
        build_status_report(facts008, status, **arguments)


def test_status_report_needs_someone_to_address(facts008):
    facts008.header_from = facts008.instructing_agent_bic = facts008.debtor_agent_bic = None
    with pytest.raises(BuildError, match="original sender"):
        build_status_report(facts008, "ACSC", operator_bic=OPERATOR)


@pytest.mark.parametrize("field, value", [("uetr", "not-a-uetr"), ("end_to_end_id", "E" * 36),
                                          ("msg_id", "M" * 36), ("creation_date_time", "yesterday")])
def test_a_malformed_original_reference_is_left_out_not_altered(facts008, registry, field, value):
    """The RJCT of a message refused for a malformed reference still validates: the reference it got
    wrong is not echoed (every echo is optional), and no other reference is altered."""
    setattr(facts008, field, value)
    parsed = built(build_status_report(facts008, "RJCT", reason_code="FF01", operator_bic=OPERATOR, now=NOW),
                   registry, "pacs.002.001.10")
    echoed = etree.tostring(parsed.document)
    assert value.encode() not in echoed
    if field != "uetr":
        assert text(parsed, "Document/FIToFIPmtStsRpt/TxInfAndSts/OrgnlUETR") == facts008.uetr


def test_status_report_for_a_pacs009(parsed_sample, registry):
    facts = extract_facts(parsed_sample(PACS009))
    parsed = built(build_status_report(facts, "ACSC", operator_bic=OPERATOR, now=NOW), registry, "pacs.002.001.10")
    assert text(parsed, "Document/FIToFIPmtStsRpt/TxInfAndSts/OrgnlGrpInf/OrgnlMsgNmId") == "pacs.009.001.08"


# --- camt.029 ---------------------------------------------------------------------------------------


def test_cancellation_accepted_from_the_payment_itself(facts008, registry):
    data = build_cancellation_answer(facts008, accepted=True, operator_bic=OPERATOR,
                                     case_id=facts008.payment_id, now=NOW)
    parsed = built(data, registry, "camt.029.001.09")
    body = "Document/RsltnOfInvstgtn/"
    assert text(parsed, body + "Sts/Conf") == "CNCL"
    assert text(parsed, body + "RslvdCase/Id") == facts008.payment_id
    assert text(parsed, body + "Assgnmt/Assgne/Agt/FinInstnId/BICFI") == "BRDEROBU"
    assert text(parsed, body + "Assgnmt/Id") == text(parsed, "AppHdr/BizMsgIdr")
    tx = body + "CxlDtls/TxInfAndSts/"
    assert text(parsed, tx + "TxCxlSts") == "ACCR"
    assert text(parsed, tx + "OrgnlEndToEndId") == "E2E04044506271305"
    assert text(parsed, tx + "OrgnlUETR") == "174c245f-2682-4291-ad67-2a41e530cd27"
    assert text(parsed, tx + "OrgnlIntrBkSttlmAmt") == "12000000"
    assert text(parsed, tx + "CxlStsRsnInf/Rsn/Cd") is None


def test_cancellation_rejected_answers_the_camt056(camt056_bytes, registry):
    facts = extract_facts(parse_message(camt056_bytes))
    data = build_cancellation_answer(facts, accepted=False, reason_code="ARDT", additional_info="already returned",
                                     operator_bic=OPERATOR, now=NOW)
    parsed = built(data, registry, "camt.029.001.09")
    body = "Document/RsltnOfInvstgtn/"
    assert text(parsed, body + "Sts/Conf") == "RJCR"
    assert text(parsed, body + "RslvdCase/Id") == "CASE-0001"
    tx = body + "CxlDtls/TxInfAndSts/"
    assert text(parsed, tx + "TxCxlSts") == "RJCR"
    assert text(parsed, tx + "CxlStsRsnInf/Rsn/Cd") == "ARDT"
    assert text(parsed, tx + "CxlStsRsnInf/AddtlInf") == "already returned"
    assert text(parsed, tx + "OrgnlGrpInf/OrgnlMsgId") == "pcs008bzmsgidr-1"
    assert text(parsed, tx + "OrgnlGrpInf/OrgnlMsgNmId") == "pacs.008.001.08"
    assert text(parsed, tx + "OrgnlIntrBkSttlmDt") == "2026-11-19"


@pytest.mark.parametrize("accepted, reason, error", [
    (False, None, "reason"), (False, "DUPL", "ExternalPaymentCancellationRejection1Code"),
    (True, "ZZZZ", "ExternalCancellationReason1Code"),
])
def test_cancellation_answer_refuses_bad_reasons(facts008, accepted, reason, error):
    with pytest.raises(BuildError, match=error):
        build_cancellation_answer(facts008, accepted=accepted, reason_code=reason, operator_bic=OPERATOR)


# --- outbound ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, family, receiver", [(PACS008, "pacs.008.001.08", "BTRLRO22"),
                                                    (PACS009, "pacs.009.001.08", "PLNFSGSX")])
def test_outbound_message_keeps_the_document_under_a_new_header(parsed_sample, registry, name, family, receiver):
    original = parsed_sample(name)
    data = build_outbound_message(original, operator_bic=OPERATOR, now=NOW)
    parsed = built(data, registry, family)
    assert text(parsed, "AppHdr/To/FIId/FinInstnId/BICFI") == receiver
    assert text(parsed, "AppHdr/MsgDefIdr") == family
    assert text(parsed, "AppHdr/BizMsgIdr") != text(original, "AppHdr/BizMsgIdr")
    assert etree.tostring(parsed.document, method="c14n", exclusive=True) == \
        etree.tostring(original.document, method="c14n", exclusive=True)
    assert extract_facts(parsed).payment_id != extract_facts(original).payment_id  # new sender: the operator
    assert build_outbound_message(parsed_sample(name), operator_bic=OPERATOR, now=NOW) == data


def test_outbound_message_is_for_payments_only(camt056_bytes):
    with pytest.raises(BuildError, match="pacs.008 or pacs.009"):
        build_outbound_message(parse_message(camt056_bytes), operator_bic=OPERATOR)


# --- message versions and the check before a generated message is kept or sent -----------------------

from mxflow.iso20022 import (  # noqa: E402
    CBPR_PLUS_VERSIONS,
    GeneratedMessageInvalid,
    MessageVersions,
    SchemaNotInstalled,
    SchemaRegistry,
    check_generated,
)
from mxflow.iso20022 import build_cancellation_request, build_payment_return, read_answer  # noqa: E402
from mxflow.iso20022.builders import (  # noqa: E402
    CANCELLATION_ANSWER_VERSIONS,
    CANCELLATION_REQUEST_VERSIONS,
    PAYMENT_RETURN_VERSIONS,
    HEADER_VERSIONS,
    STATUS_REPORT_VERSIONS,
)
from mxflow.iso20022.schema_sets import builtin_entries  # noqa: E402


@pytest.fixture
def own_facts():
    """Facts of a pacs.008.001.08 generated for the test (no ../shared needed)."""
    from mxflow_local.sample_messages import credit_transfer

    return extract_facts(parse_message(credit_transfer(sender_bic="BRDEROBU", operator_bic=OPERATOR)))


def _namespaces(data: bytes) -> tuple[str, str]:
    parsed = parse_message(data)
    return parsed.header_namespace.rpartition(":")[2], parsed.message_id


def test_cbpr_plus_versions_are_the_default(own_facts):
    assert CBPR_PLUS_VERSIONS.message_ids() == ("pacs.002.001.10", "camt.029.001.09", "head.001.001.02",
                                                "camt.056.001.08")
    assert _namespaces(build_status_report(own_facts, "ACSC", operator_bic=OPERATOR)) == (
        "head.001.001.02", "pacs.002.001.10")
    assert _namespaces(build_cancellation_answer(own_facts, accepted=True, operator_bic=OPERATOR)) == (
        "head.001.001.02", "camt.029.001.09")


def _installed(registry, offered):
    return next(v for v in offered if registry.has_schema(v))


@pytest.mark.parametrize("version", [*STATUS_REPORT_VERSIONS, *CANCELLATION_ANSWER_VERSIONS, *HEADER_VERSIONS])
def test_every_version_the_builders_offer_validates(own_facts, registry, require_schemas, version):
    """Each offered version builds messages that pass check_generated against the official XSD of that
    exact version: a pacs.002 or camt.029 version under an installed head.001; a head.001 version over
    an installed pacs.002, camt.029 and the outbound pacs.008."""
    require_schemas(version)
    versions = (CBPR_PLUS_VERSIONS.with_version(_installed(registry, HEADER_VERSIONS))
                .with_version(_installed(registry, STATUS_REPORT_VERSIONS))
                .with_version(_installed(registry, CANCELLATION_ANSWER_VERSIONS))
                .with_version(version))
    report = build_status_report(own_facts, "RJCT", reason_code="AM04", additional_info="no cover",
                                 operator_bic=OPERATOR, now=NOW, versions=versions)
    assert check_generated(report, registry) == report
    assert _namespaces(report) == (versions.app_header, versions.status_report)
    parsed = parse_message(report)
    assert text(parsed, "AppHdr/MsgDefIdr") == versions.status_report
    assert text(parsed, "Document/FIToFIPmtStsRpt/TxInfAndSts/StsRsnInf/Rsn/Cd") == "AM04"
    for accepted in (True, False):
        answer = build_cancellation_answer(own_facts, accepted=accepted, reason_code=None if accepted else "LEGL",
                                           additional_info="text", operator_bic=OPERATOR, now=NOW, versions=versions)
        assert check_generated(answer, registry) == answer
        assert _namespaces(answer) == (versions.app_header, versions.cancellation_answer)
    from mxflow_local.sample_messages import credit_transfer

    outbound = build_outbound_message(parse_message(credit_transfer()), operator_bic=OPERATOR, now=NOW,
                                      versions=versions)
    assert check_generated(outbound, registry) == outbound
    assert _namespaces(outbound) == (versions.app_header, "pacs.008.001.08")
    assert version in versions.message_ids()


def test_message_versions_setting(monkeypatch):
    env = {"MXFLOW_STATUS_REPORT_VERSION": "pacs.002.001.12", "MXFLOW_CANCELLATION_ANSWER_VERSION": "",
           "MXFLOW_APP_HEADER_VERSION": "head.001.001.03"}
    assert MessageVersions.from_environ(env).message_ids() == ("pacs.002.001.12", "camt.029.001.09", "head.001.001.03",
                                                               "camt.056.001.08")
    assert MessageVersions.from_environ({"MXFLOW_CANCELLATION_REQUEST_VERSION": "camt.056.001.12"}
                                        ).cancellation_request == "camt.056.001.12"
    assert MessageVersions.from_environ({}) == CBPR_PLUS_VERSIONS
    with pytest.raises(ValueError, match="MXFLOW_CANCELLATION_ANSWER_VERSION='camt.029.001.08'"):
        MessageVersions.from_environ({"MXFLOW_CANCELLATION_ANSWER_VERSION": "camt.029.001.08"})
    with pytest.raises(ValueError, match="not a version of a message mxflow generates"):
        CBPR_PLUS_VERSIONS.with_version("pacs.008.001.08")
    assert CBPR_PLUS_VERSIONS.with_version("camt.029.001.14").cancellation_answer == "camt.029.001.14"


def test_installed_versions_replace_those_without_a_schema():
    builtin_only = SchemaRegistry()  # no schema directory: the built-in set (camt.029.001.14, no .09)
    chosen, changes = CBPR_PLUS_VERSIONS.installed(builtin_only)
    assert CBPR_PLUS_VERSIONS.missing(builtin_only) == ["camt.029.001.09", "camt.056.001.08"]
    assert chosen.message_ids() == ("pacs.002.001.10", "camt.029.001.14", "head.001.001.02", "camt.056.001.12")
    assert changes == {"camt.029.001.09": "camt.029.001.14", "camt.056.001.08": "camt.056.001.12"}
    nothing = SchemaRegistry(builtin=False)
    with pytest.raises(ValueError, match="no schema for any pacs.002 version"):
        CBPR_PLUS_VERSIONS.installed(nothing)


def test_a_generated_message_whose_schema_is_not_installed_is_refused(own_facts):
    without_camt029 = SchemaRegistry(builtin=[e for e in builtin_entries() if e.message_id != "camt.029.001.14"])
    answer = build_cancellation_answer(own_facts, accepted=True, operator_bic=OPERATOR,
                                       versions=CBPR_PLUS_VERSIONS.with_version("camt.029.001.14"))
    with pytest.raises(SchemaNotInstalled) as caught:
        check_generated(answer, without_camt029)
    assert caught.value.message_id == "camt.029.001.14" and "mxflow schemas add" in str(caught.value)
    assert type(caught.value).__name__ == "SchemaNotInstalled"  # the error name Step Functions sees
    header_missing = build_status_report(own_facts, "ACSC", operator_bic=OPERATOR,
                                         versions=CBPR_PLUS_VERSIONS.with_version("head.001.001.04"))
    with pytest.raises(SchemaNotInstalled, match="head.001.001.04"):
        check_generated(header_missing, SchemaRegistry())  # the built-in set has head.001.001.02 only


def test_a_generated_message_that_fails_its_schema_is_refused(own_facts):
    registry = SchemaRegistry()
    report = build_status_report(own_facts, "ACSC", operator_bic=OPERATOR)
    broken = report.replace(b"<TxSts>ACSC</TxSts>", b"<TxSts>ACSCX</TxSts>")  # Max4Text code: too long
    assert broken != report
    with pytest.raises(GeneratedMessageInvalid, match="pacs.002.001.10 fails its schema"):
        check_generated(broken, registry)
    with pytest.raises(GeneratedMessageInvalid, match="cannot be parsed"):
        check_generated(b"<not-xml", registry)


# -- the return leg (issue 12): the camt.056 mxflow forwards, the pacs.004 the engine (simulator) returns ------

@pytest.mark.parametrize("version", CANCELLATION_REQUEST_VERSIONS)
def test_every_recall_version_validates_and_names_its_payment(own_facts, registry, require_schemas, version):
    require_schemas(version)
    versions = CBPR_PLUS_VERSIONS.with_version(version)
    recall = build_cancellation_request(own_facts, case_id="p-0123456789abcdef0123456789abcdef",
                                        case_creator_bic="BRDEROBUXXX", operator_bic=OPERATOR, reason_code="FRAD",
                                        now=NOW, versions=versions)
    assert check_generated(recall, registry) == recall
    parsed = parse_message(recall)
    assert parsed.message_id == version
    facts = extract_facts(parsed)
    assert (facts.original_uetr, facts.original_end_to_end_id, facts.original_msg_id) == (
        own_facts.uetr, own_facts.end_to_end_id, own_facts.msg_id)
    assert facts.case_id == "p-0123456789abcdef0123456789abcdef" and facts.cancellation_reason == "FRAD"
    assert facts.reference_key() == own_facts.reference_key() and own_facts.reference_key().startswith("u:")


@pytest.mark.parametrize("version", PAYMENT_RETURN_VERSIONS)
def test_every_return_version_validates_and_is_read_as_the_engines_answer(own_facts, registry, require_schemas,
                                                                          version):
    require_schemas(version)
    returned = build_payment_return(own_facts, reason_code="FOCR", operator_bic="ENGNGB2LXXX", version=version,
                                    now=NOW)
    assert check_generated(returned, registry) == returned
    answer = read_answer(parse_message(returned))
    assert (answer.family, answer.transactions, answer.reason_code) == ("pacs.004", 1, "FOCR")
    assert (answer.returned_amount, answer.returned_currency) == (own_facts.amount, own_facts.currency)
    assert answer.original.uetr == own_facts.uetr and answer.original.key == own_facts.reference_key()
