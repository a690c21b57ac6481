"""The business-rule outcome of the shared samples, written out (not recomputed), through the whole
pipeline (parse, XSD, rules, facts) for the pacs.008/pacs.009 samples, and through check_rules alone
for the deliberately broken camt.054 (no camt.054 XSD here, so the pipeline stops before rules).

The clock is fixed (NOW): the samples are dated 2022-2026, all plausible on that day.

Why each non-clean outcome is right:
- *_bic_mismatch: AppHdr Fr/To name other banks than InstgAgt/InstdAgt (CBPR+ R2/R3).
- *_dodgy_IBAN_*: the debtor IBAN GB29NWBK60161331926818 has wrong check digits (...819 is right).
- *_slash_in_instrid (camt.054): InstrId "/bad//instrId"; its BizMsgIdr is not its MsgId either
  (the sample's own comment lists both).
- *_tag_mismatch_issue: rule-clean. It is the clean cbprplus_pacs008_2025 sample without the two
  LEIs, with CRLF line ends and namespace prefixes: a regression input for a tool's handling of
  prefixed tags, not a broken payment; no ISO or CBPR+ rule is broken by dropping optional LEIs.
- y2025/y2026 pacs.008.max and pacs.008_stp.max: the generator fills every field, including an
  XchgRate while InstdAmt and IntrBkSttlmAmt are both EUR, which the pacs.008 rule
  InstructedAmountAndExchangeRate2Rule forbids: flagged (CH17).
- FedNow pacs.008 under cbpr+: a FedNow message, not CBPR+; its MktPrctc/Regy (a URL with '_' and
  '#') is outside the SWIFT X character set, so the CBPR+ profile rightly refuses it.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from mxflow.iso20022 import codes
from mxflow.iso20022.rules import check_rules
from mxflow.iso20022.validation import validate_message

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
HDR_FR = ("ISO-HDR-AGENTS", "RC02", "/AppHdr/Fr/FIId/FinInstnId/BICFI")
HDR_TO = ("ISO-HDR-AGENTS", "RC02", "/AppHdr/To/FIId/FinInstnId/BICFI")
XCHG_SAME_CCY = ("ISO-XCHGRATE-NOT-ALLOWED", "CH17", "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/XchgRate")
CLEAN: list = []

# sample -> (issues under "iso", issues under "cbpr+")
EXPECTED = {
    "phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_bic_mismatch.xml": ([HDR_FR, HDR_TO], [HDR_FR, HDR_TO]),
    "phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_dodgy_IBAN_and_bic_mismatch.xml": (
        [("ISO-IBAN", "AC01", "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/DbtrAcct/Id/IBAN"), HDR_FR, HDR_TO],
        [("ISO-IBAN", "AC01", "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/DbtrAcct/Id/IBAN"), HDR_FR, HDR_TO],
    ),
    "phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_tag_mismatch_issue.xml": (CLEAN, CLEAN),
    "phoughton-cbpr-ur/2025/CBPR2025.PACS008-MinMax-0023.xml": (CLEAN, CLEAN),
    "phoughton-cbpr-ur/2025/cbprplus_pacs008_2025.xml": (CLEAN, CLEAN),
    "phoughton-cbpr-ur/2026/cbprplus_pacs008_2026.xml": (CLEAN, CLEAN),
    "phoughton-cbpr-ur/2025/pacs008_credit_transfer_sample.xml": (CLEAN, CLEAN),
    "phoughton-cbpr-ur/2026/pacs008_credit_transfer_sample.xml": (CLEAN, CLEAN),
    "phoughton-cbpr-ur/2025/pacs009_fi_transfer_sample.xml": (CLEAN, CLEAN),
    "phoughton-cbpr-ur/2026/pacs009_fi_transfer_sample.xml": (CLEAN, CLEAN),
    "moov-fednow20022/testdata/sample-participant-to-fednow-message.xml": (
        CLEAN, [("CBPR-CHARSET", "RR10", "/AppHdr/MktPrctc/Regy")]),
}
for year in ("y2025", "y2026"):
    for kind in ("pacs.008", "pacs.008_stp"):
        EXPECTED[f"phoughton-cbpr-ur/{year}/{kind}.max.xml"] = ([XCHG_SAME_CCY], [XCHG_SAME_CCY])
        EXPECTED[f"phoughton-cbpr-ur/{year}/{kind}.min.xml"] = (CLEAN, CLEAN)
    for kind in ("pacs.009", "pacs.009_adv", "pacs.009_cov"):
        for size in ("min", "max"):
            EXPECTED[f"phoughton-cbpr-ur/{year}/{kind}.{size}.xml"] = (CLEAN, CLEAN)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("profile", ["iso", "cbpr+"])
def test_sample_rule_outcome_through_the_pipeline(name, profile, sample_bytes, registry):
    result = validate_message(sample_bytes(name), profile=profile, registry=registry, now=NOW)
    schema_errors = [issue for issue in result.errors if issue.rule is None]
    assert schema_errors == []  # XSD-valid, so the rules ran
    found = [(issue.rule, issue.code, issue.path) for issue in result.errors]
    expected = EXPECTED[name][0 if profile == "iso" else 1]
    assert sorted(found) == sorted(expected)
    assert result.valid is (not expected)
    assert all(codes.is_status_reason(issue.code) for issue in result.errors)
    assert result.facts is not None and result.facts.payment_id.startswith("p-")


@pytest.mark.parametrize("profile", ["iso", "cbpr+"])
def test_camt054_slash_in_instruction_id(profile, parsed_sample):
    parsed = parsed_sample("phoughton-cbpr-ur/2025/cbprplus_camt054_slash_in_instrid.xml")
    found = [(i.rule, i.code, i.path) for i in check_rules(parsed, profile=profile, now=NOW)]
    expected = [("ISO-ID-SLASH", "CH16", "/Document/BkToCstmrDbtCdtNtfctn/Ntfctn/Ntry/NtryDtls/TxDtls/Refs/InstrId")]
    if profile == "cbpr+":
        expected.append(("CBPR-BIZMSGIDR", "CH16", "/AppHdr/BizMsgIdr"))
    assert found == expected


@pytest.mark.parametrize("name", [
    "phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_xsd_issue.xml",
    "phoughton-cbpr-ur/2025/CBPR2025.PACS008-MinMax-0023_diff_wrapper_missing_bic_xsd_issue.xml",
])
def test_xsd_invalid_samples_stop_before_the_rules(name, sample_bytes, registry):
    result = validate_message(sample_bytes(name), profile="cbpr+", registry=registry, now=NOW)
    assert not result.valid
    assert result.errors and all(issue.rule is None and issue.code == "FF01" for issue in result.errors)
