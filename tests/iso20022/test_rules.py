"""Business rules, one at a time: a real sample passes; the same sample mutated with lxml (still
XSD-valid where the rule is about what the XSD cannot say) fails with the rule's id, its ISO code
and the path of the offending element, in the profiles that run the rule."""
from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest
from lxml import etree

from mxflow.iso20022 import codes
from mxflow.iso20022.facts import forget_scan
from mxflow.iso20022.parsing import parse_message
from mxflow.iso20022.rules import RULES, check_rules
from mxflow.iso20022.validation import validate_schema

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
PACS008 = "phoughton-cbpr-ur/2025/cbprplus_pacs008_2025.xml"  # 2022-10-20, prefixed, BICs agree
PACS009 = "phoughton-cbpr-ur/2026/pacs009_fi_transfer_sample.xml"  # JPY
P8 = "/Document/FIToFICstmrCdtTrf"
TX = P8 + "/CdtTrfTxInf"
GRP = P8 + "/GrpHdr"
P9TX = "/Document/FICdtTrf/CdtTrfTxInf"
BOTH = ("iso", "cbpr+")

C56 = "/Document/FIToFIPmtCxlReq"


def find(parsed, path: str):
    """The element at a path of local names, e.g. 'GrpHdr/NbOfTxs' under the Document's message."""
    root = parsed.app_header if path.startswith("AppHdr/") else parsed.document[0]
    steps = path.split("/")[1:] if path.startswith("AppHdr/") else path.split("/")
    element = root.find("/".join("{*}" + step for step in steps))
    assert element is not None, path
    return element


def new(parent, name: str, text: str | None = None, *, after: str | None = None, **attrib):
    """A new child in the parent's namespace, appended or placed right after the child `after`."""
    ns = etree.QName(parent).namespace
    element = etree.Element(f"{{{ns}}}{name}", **attrib)
    element.text = text
    if after is None:
        parent.append(element)
    else:
        parent.find("{*}" + after).addnext(element)
    return element


def outcome(parsed, profile: str) -> list[tuple[str, str, str]]:
    forget_scan(parsed)  # these tests edit the tree between checks
    issues = check_rules(parsed, profile=profile, now=NOW)
    for issue in issues:
        assert issue.code == RULES[issue.rule].code and codes.is_status_reason(issue.code)
        assert issue.message and issue.path.startswith("/")
    return [(i.rule, i.code, i.path) for i in issues]


@pytest.fixture
def pacs008(parsed_sample):
    return parsed_sample(PACS008)


@pytest.fixture
def pacs009(parsed_sample):
    return parsed_sample(PACS009)


@pytest.fixture
def camt056(camt056_bytes):
    return parse_message(camt056_bytes)


def assert_xsd_valid(parsed, registry):
    assert validate_schema(parsed, registry) == []


# --- clean messages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("profile", BOTH)
def test_real_samples_and_the_camt056_pass(pacs008, pacs009, camt056, registry, profile):
    for parsed in (pacs008, pacs009, camt056):
        assert_xsd_valid(parsed, registry)
        assert outcome(parsed, profile) == []


def test_unknown_profile_is_a_usage_error(pacs008):
    with pytest.raises(ValueError, match="profile"):
        check_rules(pacs008, profile="swift")


# --- group header against the transactions ----------------------------------------------------------


@pytest.mark.parametrize("profile", BOTH)
def test_number_of_transactions(pacs008, registry, profile):
    find(pacs008, "GrpHdr/NbOfTxs").text = "2"
    assert_xsd_valid(pacs008, registry)
    assert ("ISO-NBOFTXS", "AM19", GRP + "/NbOfTxs") in outcome(pacs008, profile)


@pytest.mark.parametrize("total, currency, ok", [("12000000", "RON", True), ("12000000.00", "RON", True),
                                                 ("12000001", "RON", False), ("12000000", "EUR", False)])
def test_total_interbank_settlement_amount(pacs008, registry, total, currency, ok):
    new(find(pacs008, "GrpHdr"), "TtlIntrBkSttlmAmt", total, after="NbOfTxs", Ccy=currency)
    assert_xsd_valid(pacs008, registry)
    expected = [] if ok else [("ISO-TOTAL", "AM10", GRP + "/TtlIntrBkSttlmAmt")]
    assert outcome(pacs008, "iso") == expected


def test_total_is_the_sum_of_several_transactions(pacs008, registry):
    group = find(pacs008, "GrpHdr")
    group.find("{*}NbOfTxs").text = "2"
    transaction = find(pacs008, "CdtTrfTxInf")
    second = copy.deepcopy(transaction)
    second.find("{*}IntrBkSttlmAmt").text = "0.5"
    transaction.addnext(second)
    new(group, "TtlIntrBkSttlmAmt", "12000000.50", after="NbOfTxs", Ccy="RON")
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "iso") == []
    group.find("{*}TtlIntrBkSttlmAmt").text = "12000000.51"
    assert outcome(pacs008, "iso") == [("ISO-TOTAL", "AM10", GRP + "/TtlIntrBkSttlmAmt")]


def test_control_sum(pacs008, registry):
    new(find(pacs008, "GrpHdr"), "CtrlSum", "12000000.01", after="NbOfTxs")
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "iso") == [("ISO-CTRLSUM", "AM16", GRP + "/CtrlSum")]


# --- currencies and amounts -------------------------------------------------------------------------


@pytest.mark.parametrize("profile", BOTH)
def test_unknown_currency(pacs008, registry, profile):
    find(pacs008, "CdtTrfTxInf/IntrBkSttlmAmt").set("Ccy", "ABC")
    assert_xsd_valid(pacs008, registry)  # the XSD only asks for three capital letters
    assert outcome(pacs008, profile) == [("ISO-CCY", "AM11", TX + "/IntrBkSttlmAmt")]


@pytest.mark.parametrize("currency, amount, ok", [
    ("JPY", "45000000", True), ("JPY", "45000000.00", True), ("JPY", "45000000.5", False),
    ("EUR", "12.34", True), ("EUR", "12.345", False), ("KWD", "1.234", True), ("KWD", "1.2345", False),
])
def test_decimals_against_the_currency_minor_unit(pacs009, registry, currency, amount, ok):
    element = find(pacs009, "CdtTrfTxInf/IntrBkSttlmAmt")
    element.set("Ccy", currency)
    element.text = amount
    assert_xsd_valid(pacs009, registry)
    expected = [] if ok else [("ISO-CCY-DECIMALS", "CH20", P9TX + "/IntrBkSttlmAmt")]
    for profile in BOTH:
        assert outcome(pacs009, profile) == expected


# Issue 8: ISO 4217 codes without a minor unit are not payable, in any profile.
NON_PAYABLE = ["XAU", "XAG", "XPT", "XPD", "XDR", "XTS", "XXX", "XBA", "XBB", "XBC", "XBD", "XSU", "XUA"]


def test_the_non_payable_codes_are_those_iso_4217_gives_no_minor_unit():
    assert codes.non_payable_currencies() == set(NON_PAYABLE)
    assert all(codes.minor_units(code) is None for code in NON_PAYABLE)
    assert codes.COMMODITY_CURRENCIES <= codes.non_payable_currencies()


@pytest.mark.parametrize("currency", NON_PAYABLE)
def test_non_payable_currency_is_refused_in_every_profile(pacs008, registry, currency):
    find(pacs008, "CdtTrfTxInf/IntrBkSttlmAmt").set("Ccy", currency)
    new(find(pacs008, "CdtTrfTxInf"), "InstdAmt", "12000000", after="IntrBkSttlmDt", Ccy=currency)
    assert_xsd_valid(pacs008, registry)  # the XSD only asks for three capital letters
    expected = [("ISO-CCY-NOT-PAYABLE", "AM03", TX + "/IntrBkSttlmAmt"),
                ("ISO-CCY-NOT-PAYABLE", "AM03", TX + "/InstdAmt")]
    for profile in BOTH:
        assert outcome(pacs008, profile) == expected


def test_non_payable_currency_in_any_amount_the_rules_read(camt056, registry):
    find(camt056, "Undrlyg/TxInf/OrgnlIntrBkSttlmAmt").set("Ccy", "XDR")
    assert_xsd_valid(camt056, registry)
    for profile in BOTH:
        assert outcome(camt056, profile) == [("ISO-CCY-NOT-PAYABLE", "AM03", C56 + "/Undrlyg/TxInf/OrgnlIntrBkSttlmAmt")]


# --- accounts and agents ----------------------------------------------------------------------------


@pytest.mark.parametrize("iban, ok", [("GB29NWBK60161331926819", True), ("GB29NWBK60161331926818", False),
                                      ("DE8937040044053201300", False)])
def test_iban_check_digits_and_country_length(pacs008, registry, iban, ok):
    account_id = find(pacs008, "CdtTrfTxInf/CdtrAcct/Id")
    account_id.remove(account_id[0])
    new(account_id, "IBAN", iban)
    assert_xsd_valid(pacs008, registry)
    expected = [] if ok else [("ISO-IBAN", "AC01", TX + "/CdtrAcct/Id/IBAN")]
    for profile in BOTH:
        assert outcome(pacs008, profile) == expected


@pytest.mark.parametrize("profile", BOTH)
def test_bic_with_an_unknown_country(pacs008, registry, profile):
    find(pacs008, "CdtTrfTxInf/IntrmyAgt1/FinInstnId/BICFI").text = "MINDXXBU"
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, profile) == [("ISO-BIC", "RC01", TX + "/IntrmyAgt1/FinInstnId/BICFI")]


@pytest.mark.parametrize("profile", BOTH)
def test_header_to_must_name_the_instructed_agent(pacs008, registry, profile):
    find(pacs008, "AppHdr/To/FIId/FinInstnId/BICFI").text = "RZBRROBU"
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, profile) == [("ISO-HDR-AGENTS", "RC02", "/AppHdr/To/FIId/FinInstnId/BICFI")]


def test_header_from_bic11_xxx_is_the_same_institution_and_copies_are_exempt(pacs008, registry):
    find(pacs008, "AppHdr/Fr/FIId/FinInstnId/BICFI").text = "BRDEROBUXXX"
    assert outcome(pacs008, "iso") == []
    find(pacs008, "CdtTrfTxInf/InstgAgt/FinInstnId/BICFI").text = "RZBRROBU"
    assert outcome(pacs008, "iso") == [("ISO-HDR-AGENTS", "RC02", "/AppHdr/Fr/FIId/FinInstnId/BICFI")]
    new(pacs008.app_header, "CpyDplct", "COPY", after="CreDt")
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "iso") == []


def test_uetr_must_be_a_lowercase_uuid4(pacs008):
    uetr = find(pacs008, "CdtTrfTxInf/PmtId/UETR")
    uetr.text = uetr.text.upper()  # the .08 XSD refuses it too; the rule covers any version
    assert outcome(pacs008, "iso") == [("ISO-UETR", "FF01", TX + "/PmtId/UETR")]


# --- identifiers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("element, value, rule, code", [
    ("CdtTrfTxInf/PmtId/InstrId", "/INSTR1", "ISO-ID-SLASH", "CH16"),
    ("CdtTrfTxInf/PmtId/InstrId", "INSTR1/", "ISO-ID-SLASH", "CH16"),
    ("CdtTrfTxInf/PmtId/InstrId", "IN//STR1", "ISO-ID-SLASH", "CH16"),
    ("GrpHdr/MsgId", "MSG//1", "ISO-ID-SLASH", "CH16"),
    ("CdtTrfTxInf/PmtId/EndToEndId", "/E2E1", "ISO-E2E-SLASH", "FF08"),
])
def test_identifiers_without_leading_trailing_or_double_slash(pacs008, registry, element, value, rule, code):
    find(pacs008, element).text = value
    assert_xsd_valid(pacs008, registry)
    found = outcome(pacs008, "iso")
    assert found == [(rule, code, P8 + "/" + element)]
    assert all(value not in issue.message for issue in check_rules(pacs008, now=NOW))  # no payment data in text


def test_slash_inside_an_identifier_is_fine(pacs008):
    find(pacs008, "CdtTrfTxInf/PmtId/InstrId").text = "IN/STR/1"
    assert outcome(pacs008, "iso") == []


# --- dates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value, ok", [
    ("2026-11-24T12:04:00+00:00", True),  # within the clock skew
    ("2026-11-24T12:10:00+00:00", False),  # ahead of the clock
    ("2026-11-25T01:00:00", True),  # no offset: local time somewhere up to UTC+14
    ("2026-11-25T03:00:00", False),
    ("2017-01-01T00:00:00Z", True),
    ("1990-01-01T00:00:00Z", False),  # decades in the past
])
def test_creation_date_time_is_plausible(pacs008, registry, value, ok):
    find(pacs008, "GrpHdr/CreDtTm").text = value
    assert_xsd_valid(pacs008, registry)
    expected = [] if ok else [("ISO-CREDTTM", "DT02", GRP + "/CreDtTm")]
    assert outcome(pacs008, "iso") == expected


def test_header_creation_date_is_checked_too(pacs008):
    find(pacs008, "AppHdr/CreDt").text = "2027-01-01T00:00:00+00:00"
    assert outcome(pacs008, "cbpr+") == [("ISO-CREDTTM", "DT02", "/AppHdr/CreDt")]


@pytest.mark.parametrize("value, ok", [("2026-12-01", True), ("2027-06-01", True), ("2028-01-02", False),
                                       ("1995-05-05", False)])
def test_settlement_date_is_plausible(pacs008, registry, value, ok):
    find(pacs008, "CdtTrfTxInf/IntrBkSttlmDt").text = value
    assert_xsd_valid(pacs008, registry)
    expected = [] if ok else [("ISO-SETTLEMENT-DATE", "DT01", TX + "/IntrBkSttlmDt")]
    assert outcome(pacs008, "iso") == expected


def test_now_defaults_to_the_clock(pacs008):
    find(pacs008, "GrpHdr/CreDtTm").text = "2999-01-01T00:00:00Z"
    forget_scan(pacs008)
    assert [i.rule for i in check_rules(pacs008)] == ["ISO-CREDTTM"]


# --- charges and exchange rate (pacs.008) -----------------------------------------------------------


def charges(transaction, amount="10.00", currency="RON"):
    info = new(transaction, "ChrgsInf", after="ChrgBr")
    new(info, "Amt", amount, Ccy=currency)
    agent = new(info, "Agt")
    new(new(agent, "FinInstnId"), "BICFI", "BTRLRO22")
    return info


def test_charge_bearer_cred_needs_charges_information(pacs008, registry):
    transaction = find(pacs008, "CdtTrfTxInf")
    transaction.find("{*}ChrgBr").text = "CRED"
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "iso") == [("ISO-CHRGBR-CRED", "BE19", TX + "/ChrgBr")]
    charges(transaction)
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "iso") == [("ISO-CHRGSINF-INSTDAMT", "CH21", TX + "/ChrgsInf")]
    new(transaction, "InstdAmt", "12000010", after="IntrBkSttlmDt", Ccy="RON")
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "iso") == []


def test_exchange_rate_exactly_when_currencies_differ(pacs008, registry):
    transaction = find(pacs008, "CdtTrfTxInf")
    instructed = new(transaction, "InstdAmt", "2400000", after="IntrBkSttlmDt", Ccy="EUR")
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "iso") == [("ISO-XCHGRATE-MISSING", "CH21", TX + "/InstdAmt")]
    new(transaction, "XchgRate", "5", after="InstdAmt")
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "iso") == []
    instructed.set("Ccy", "RON")
    assert outcome(pacs008, "iso") == [("ISO-XCHGRATE-NOT-ALLOWED", "CH17", TX + "/XchgRate")]


# --- CBPR+ usage rules ------------------------------------------------------------------------------


def test_one_transaction_per_message_in_cbpr_plus(pacs008, registry):
    find(pacs008, "GrpHdr/NbOfTxs").text = "2"
    transaction = find(pacs008, "CdtTrfTxInf")
    transaction.addnext(copy.deepcopy(transaction))
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "iso") == []
    assert outcome(pacs008, "cbpr+") == [("CBPR-ONE-TX", "AM18", P8)]


def test_uetr_is_mandatory_in_cbpr_plus(pacs008, registry):
    identification = find(pacs008, "CdtTrfTxInf/PmtId")
    identification.remove(identification.find("{*}UETR"))
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "iso") == []
    assert outcome(pacs008, "cbpr+") == [("CBPR-UETR", "CH21", TX + "/PmtId")]


def test_business_message_identifier_carries_the_msgid_in_cbpr_plus(pacs008, registry):
    find(pacs008, "AppHdr/BizMsgIdr").text = "OTHER-ID"
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "iso") == []
    assert outcome(pacs008, "cbpr+") == [("CBPR-BIZMSGIDR", "CH16", "/AppHdr/BizMsgIdr")]


def test_x_character_set_outside_names_addresses_and_remittance(pacs008, registry):
    find(pacs008, "CdtTrfTxInf/Dbtr/Nm").text = "Zoë & Cie"
    find(pacs008, "CdtTrfTxInf/Cdtr/PstlAdr/TwnNm").text = "Zürich"
    assert_xsd_valid(pacs008, registry)
    assert outcome(pacs008, "cbpr+") == []
    find(pacs008, "CdtTrfTxInf/PmtId/InstrId").text = "INSTR_1"
    assert outcome(pacs008, "iso") == []
    assert outcome(pacs008, "cbpr+") == [("CBPR-CHARSET", "RR10", TX + "/PmtId/InstrId")]


# --- other versions ---------------------------------------------------------------------------------


def test_a_version_without_uetr_skips_the_uetr_rules(sample_bytes, registry):
    """pacs.008.001.07 has no UETR element: the same payment in .07 passes both profiles."""
    data = sample_bytes("phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_tag_mismatch_issue.xml")  # no LEI
    data = data.replace(b"pacs.008.001.08", b"pacs.008.001.07")
    parsed = parse_message(data)
    identification = find(parsed, "CdtTrfTxInf/PmtId")
    identification.remove(identification.find("{*}UETR"))
    new(identification, "TxId", "TX-1")  # mandatory before .08
    assert_xsd_valid(parsed, registry)
    assert outcome(parsed, "cbpr+") == []


def test_old_bic_element_is_read_for_the_header_agreement(pacs008):
    """Up to .02 the agent BIC element is BIC, not BICFI: the header check reads either."""
    bic = find(pacs008, "CdtTrfTxInf/InstdAgt/FinInstnId/BICFI")
    bic.tag = etree.QName(bic).namespace and "{%s}BIC" % etree.QName(bic).namespace
    bic.text = "RZBRROBU"
    assert outcome(pacs008, "iso") == [("ISO-HDR-AGENTS", "RC02", "/AppHdr/To/FIId/FinInstnId/BICFI")]


# --- camt.056 ---------------------------------------------------------------------------------------


def test_camt056_rules(camt056, registry):
    find(camt056, "CtrlData/NbOfTxs").text = "3"
    find(camt056, "Undrlyg/TxInf/OrgnlIntrBkSttlmAmt").text = "12000000.555"
    find(camt056, "AppHdr/To/FIId/FinInstnId/BICFI").text = "RZBRROBU"
    assert_xsd_valid(camt056, registry)
    assert sorted(outcome(camt056, "iso")) == sorted([
        ("ISO-NBOFTXS", "AM19", C56 + "/CtrlData/NbOfTxs"),
        ("ISO-CCY-DECIMALS", "CH20", C56 + "/Undrlyg/TxInf/OrgnlIntrBkSttlmAmt"),
        ("ISO-HDR-AGENTS", "RC02", "/AppHdr/To/FIId/FinInstnId/BICFI"),
    ])


def test_camt056_cbpr_plus_rules(camt056, registry):
    transaction = find(camt056, "Undrlyg/TxInf")
    transaction.remove(transaction.find("{*}OrgnlUETR"))
    find(camt056, "AppHdr/BizMsgIdr").text = "ANOTHER"
    assert_xsd_valid(camt056, registry)
    assert outcome(camt056, "iso") == []
    assert sorted(outcome(camt056, "cbpr+")) == sorted([
        ("CBPR-UETR", "CH21", C56 + "/Undrlyg/TxInf"),
        ("CBPR-BIZMSGIDR", "CH16", "/AppHdr/BizMsgIdr"),
    ])


@pytest.mark.parametrize("name", [PACS008, "phoughton-cbpr-ur/2025/CBPR2025.PACS008-MinMax-0023.xml"])
def test_x_character_set_with_tab_or_space_indentation(parsed_sample, name):
    """Tabs of indentation are not content; a tab inside a value is outside the X set."""
    parsed = parsed_sample(name)
    assert outcome(parsed, "cbpr+") == []
    find(parsed, "CdtTrfTxInf/PmtId/EndToEndId").text = "E2E\t1"
    assert outcome(parsed, "cbpr+") == [("CBPR-CHARSET", "RR10", TX + "/PmtId/EndToEndId")]
    find(parsed, "CdtTrfTxInf/PmtId/EndToEndId").text = "E2E@1"
    assert outcome(parsed, "cbpr+") == [("CBPR-CHARSET", "RR10", TX + "/PmtId/EndToEndId")]


@pytest.mark.parametrize("profile", BOTH)
def test_a_pacs008_in_gold_is_refused_through_the_pipeline(pacs008, registry, profile):
    from mxflow.iso20022.validation import validate_message

    find(pacs008, "CdtTrfTxInf/IntrBkSttlmAmt").set("Ccy", "XAU")
    new(find(pacs008, "CdtTrfTxInf"), "InstdAmt", "12000000", after="IntrBkSttlmDt", Ccy="XAU")
    result = validate_message(etree.tostring(pacs008.root), profile=profile, registry=registry, now=NOW)
    assert not result.valid and result.message_type == "pacs.008.001.08"
    assert [(i.code, i.path, i.rule) for i in result.errors] == [
        ("AM03", TX + "/IntrBkSttlmAmt", "ISO-CCY-NOT-PAYABLE"), ("AM03", TX + "/InstdAmt", "ISO-CCY-NOT-PAYABLE")]
    assert all("XAU" not in i.message for i in result.errors)  # no payment data in the message
    assert result.facts.currency == "XAU"


@pytest.mark.parametrize("name", [PACS008, "phoughton-cbpr-ur/2025/CBPR2025.PACS008-MinMax-0023.xml"])
def test_x_character_set_through_the_pipeline_agrees_with_the_tree(parsed_sample, registry, name):
    """validate_message tells the character set from the raw bytes when they cannot leave X
    (rules.raw_may_leave_x_characters): the same cases as above, as bytes, give the same issues."""
    from mxflow.iso20022.validation import validate_message

    def pipeline(parsed):
        result = validate_message(etree.tostring(parsed.root), profile="cbpr+", registry=registry, now=NOW)
        return [(i.rule, i.code, i.path) for i in result.errors]

    parsed = parsed_sample(name)
    assert pipeline(parsed) == []
    find(parsed, "CdtTrfTxInf/Dbtr/Nm").text = "Zoë & Cie\tLtd"  # free text: any character
    assert pipeline(parsed) == []
    for value in ("E2E\t1", "E2E@1", "E2E&1", "E2Eé1", 'E2E"1', "E2E>1"):
        find(parsed, "CdtTrfTxInf/PmtId/EndToEndId").text = value
        assert pipeline(parsed) == [("CBPR-CHARSET", "RR10", TX + "/PmtId/EndToEndId")], value
