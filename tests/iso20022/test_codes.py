"""ISO code lists: the External Code Sets file and ISO 4217, and every code the rules can emit."""
from __future__ import annotations

from lxml import etree

from mxflow.iso20022 import codes
from mxflow.iso20022.rules import RULES
from mxflow.iso20022.parsing import FORMAT_ERROR_CODE


def test_code_sets_come_from_the_installed_iso_file_not_the_repository():
    path = codes.code_sets_file()
    assert path.is_file() and path.suffix == ".json"
    assert "site-packages" in path.parts  # read from the installed wheel, never a copy in the repo
    assert codes.edition() == path.stem


def test_status_reasons_are_the_iso_set():
    reasons = codes.code_set(codes.STATUS_REASON)
    assert len(reasons.codes) > 300
    for code in ("AC01", "AM05", "CH20", "DT01", "FF01", "RC01", "AB06", "DUPL", "NARR", "RR10"):
        assert codes.is_status_reason(code), code
    assert not codes.is_status_reason("TECH")  # a cancellation reason, not a status reason
    assert not codes.is_status_reason("ZZ99")
    assert not codes.is_status_reason(None)
    assert "decimal" in codes.describe_status_reason("CH20").lower()
    assert codes.describe_status_reason("ZZ99") is None


def test_cancellation_reasons_and_rejections():
    for code in ("DUPL", "CUST", "FRAD", "AGNT", "UPAY", "TECH", "CURR", "AM09", "AC03"):
        assert codes.is_cancellation_reason(code), code
    for code in ("LEGL", "AGNT", "CUST", "NOAS", "NOOR", "ARDT"):
        assert codes.is_cancellation_rejection_reason(code), code
    assert not codes.is_cancellation_rejection_reason("DUPL")
    assert "returned" in codes.describe_cancellation_rejection_reason("ARDT").lower()


def test_camt029_v09_types_its_rejection_reason_as_the_external_code_set(xsd_dir):
    """codes.py takes the camt.029 cancellation-rejection reasons from the ISO file because the
    camt.029.001.09 XSD types the element as ExternalPaymentCancellationRejection1Code."""
    tree = etree.parse(str(xsd_dir / "camt.029.001.09.xsd"))
    xs = "{http://www.w3.org/2001/XMLSchema}"
    choice = tree.find(f"{xs}complexType[@name='CancellationStatusReason3Choice']")
    code_element = choice.find(f"{xs}choice/{xs}element[@name='Cd']")
    assert code_element.get("type") == codes.CANCELLATION_REJECTION_REASON


def test_transaction_statuses():
    for code in ("RCVD", "ACTC", "ACCP", "ACSP", "ACSC", "PDNG", "RJCT", "CANC"):
        assert codes.is_transaction_status(code), code
    assert not codes.is_transaction_status("DONE")
    for code in ("CNCL", "RJCR", "PDCR"):
        assert codes.is_investigation_confirmation(code), code


def test_iso4217_minor_units_and_active_codes():
    assert codes.minor_units("JPY") == 0
    assert codes.minor_units("EUR") == 2
    assert codes.minor_units("KWD") == 3
    assert codes.minor_units("XAU") is None  # no minor unit for metals
    assert codes.is_active_currency("EUR") and codes.is_active_currency("XAU")
    assert not codes.is_active_currency("DEM")  # historic
    assert not codes.is_active_currency("XXX") and not codes.is_active_currency("XTS")
    assert not codes.is_active_currency("eur")
    assert {"XAU", "XAG", "XPD", "XPT"} == set(codes.COMMODITY_CURRENCIES)
    assert all(codes.is_commodity_currency(c) for c in codes.COMMODITY_CURRENCIES)


def test_every_code_a_rule_can_emit_is_a_real_status_reason():
    assert RULES
    for rule in RULES.values():
        assert codes.is_status_reason(rule.code), (rule.id, rule.code)
        assert rule.profiles <= {"iso", "cbpr+"}
    assert codes.is_status_reason(FORMAT_ERROR_CODE)
