"""Business rules: what the XSD cannot say, checked after the message passed its schema.

Pure code: a parsed message in, a list of `Issue`s out; no AWS, no I/O.

Every rule has an id, one ISO ExternalStatusReason1Code (the code a pacs.002 RJCT carries, a real
code of the ISO External Code Sets: see `RULES` and tests/iso20022/test_codes.py) and reports the
path of the offending element (`element_path`). Messages never appear in an issue's text: a message
says what is wrong, not what the value was (no payment data in logs).

Messages: pacs.008 (FIToFICstmrCdtTrf), pacs.009 (FICdtTrf) and camt.056 (FIToFIPmtCxlReq), any
version; what a payment engine answers (pacs.002, camt.029, pacs.004): their status and reason codes. Element names that changed between versions are handled (BIC in .01-.02, BICFI later; UETR
from .08); a rule whose elements a version lacks is skipped. Element-level rules (identifiers, BIC,
IBAN, UETR, currency and amount) apply to any ISO message, structural rules to those three.

Profiles:
- "iso": the message definitions' cross-element rules, the data-type algorithms, and no amount in
  an ISO 4217 code that has no minor unit (precious metals, XDR, XTS, XXX...: not payable).
- "cbpr+": "iso" plus the SWIFT CBPR+ usage rules (one transaction per message, UETR mandatory,
  BizMsgIdr carries MsgId, X character set outside name, address and remittance fields).

Speed (`make bench`, validation.stage_us): on a fresh tree every element touched costs lxml a proxy
and a tag string, so each is touched once: the shared scan of facts.py reads the structure (the
payments' identifiers and agents first), then one C-level `iter()` over '{*}' local names finds the
identifier, BIC, IBAN, UETR and amount elements anywhere; the BIC and IBAN algorithms are cached
per value; amounts are checked on their text (a Decimal only when a sum is checked). The CBPR+
character set is told from the raw bytes when validate_message vouches that the tree is their parse
(raw_may_leave_x_characters), and read from the tree otherwise.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING

from lxml import etree

from . import codes
from .facts import MessageScan, agent_bic, child, institution_bic, scan_message, text_of
from .message import UETR_PATTERN, Issue, ParsedMessage, element_path

if TYPE_CHECKING:
    from decimal import Decimal

PROFILES = ("iso", "cbpr+")

# Date plausibility (rules ISO-CREDTTM and ISO-SETTLEMENT-DATE). A message is never decades old:
# anything older than MAX_AGE is refused. A creation time may be ahead of our clock by CLOCK_SKEW
# only; a time written without a UTC offset is local time somewhere, so it may be ahead by up to
# 14 hours more (UTC+14). Settlement dates may be forward-dated (value dating) by MAX_VALUE_DATING.
MAX_AGE = timedelta(days=3653)  # ten years
CLOCK_SKEW = timedelta(minutes=5)
LOCAL_TIME_ALLOWANCE = timedelta(hours=14)
MAX_VALUE_DATING = timedelta(days=366)

ISO = frozenset({"iso", "cbpr+"})
CBPR = frozenset({"cbpr+"})


@dataclass(frozen=True)
class Rule:
    """A business rule: its id, the ISO ExternalStatusReason1Code it reports, what it checks, and the
    profiles that run it."""

    id: str
    code: str
    summary: str
    profiles: frozenset = ISO


RULES: dict[str, Rule] = {
    rule.id: rule
    for rule in (
        Rule("ISO-NBOFTXS", "AM19", "GrpHdr/NbOfTxs (camt.056 CtrlData/NbOfTxs) equals the number of transactions"),
        Rule("ISO-TOTAL", "AM10", "GrpHdr/TtlIntrBkSttlmAmt equals the sum of the IntrBkSttlmAmt, in the same currency"),
        Rule("ISO-CTRLSUM", "AM16", "the group control sum equals the sum of the transaction amounts"),
        Rule("ISO-AMOUNT", "AM12", "an amount is a decimal number"),
        Rule("ISO-CCY", "AM11", "a settlement or instructed amount is in an active ISO 4217 currency"),
        # AM03 "NotAllowedCurrency": "Specified message amount is an non processable currency outside of
        # existing agreement". XAU or XDR are valid ISO 4217 codes, so AM11 ("Transaction currency is
        # invalid or missing", kept for codes ISO 4217 does not know) and CURR ("Currency of the payment
        # is incorrect", about the payment's terms) would misstate the problem: the code is a real one
        # that no payment can be processed in.
        Rule("ISO-CCY-NOT-PAYABLE", "AM03",
             "an amount is not in an ISO 4217 code without a minor unit (metals, XDR, XTS, XXX, XBA-XBD, XSU, XUA)"),
        Rule("ISO-CCY-DECIMALS", "CH20", "an amount has no more decimals than its currency's ISO 4217 minor unit"),
        Rule("ISO-IBAN", "AC01", "an IBAN has valid check digits and its country's length and format"),
        Rule("ISO-BIC", "RC01", "a BIC is well formed with a real ISO 3166 country code"),
        Rule("ISO-UETR", "FF01", "a UETR is a lowercase UUID version 4"),
        Rule("ISO-HDR-AGENTS", "RC02", "AppHdr From/To agree with the instructing/instructed agents (assigner/assignee)"),
        Rule("ISO-ID-SLASH", "CH16", "MsgId, InstrId, TxId do not start or end with '/' nor contain '//'"),
        Rule("ISO-E2E-SLASH", "FF08", "EndToEndId does not start or end with '/' nor contain '//'"),
        Rule("ISO-CREDTTM", "DT02", "a creation date-time is neither decades old nor in the future"),
        Rule("ISO-SETTLEMENT-DATE", "DT01", "the interbank settlement date is plausible"),
        Rule("ISO-CHRGBR-CRED", "BE19", "ChrgBr CRED needs ChrgsInf"),
        Rule("ISO-CHRGSINF-INSTDAMT", "CH21", "ChrgsInf needs InstdAmt"),
        Rule("ISO-XCHGRATE-MISSING", "CH21", "XchgRate is present when InstdAmt and IntrBkSttlmAmt currencies differ"),
        Rule("ISO-XCHGRATE-NOT-ALLOWED", "CH17", "XchgRate is absent when InstdAmt and IntrBkSttlmAmt share a currency"),
        # What a payment engine answers (pacs.002, camt.029, pacs.004): codes the XSD types as text but
        # ISO defines as external code sets, and the reason a refusal must carry.
        Rule("ISO-ANSWER-STATUS", "CH16", "a pacs.002 TxSts/GrpSts is an ExternalPaymentTransactionStatus1Code and "
             "a camt.029 Sts/Conf an ExternalInvestigationExecutionConfirmation1Code"),
        Rule("ISO-ANSWER-REASON", "CH16", "a reason code is of its ISO set: pacs.002 ExternalStatusReason1Code, "
             "camt.029 ExternalPaymentCancellationRejection1Code, pacs.004 ExternalReturnReason1Code"),
        Rule("ISO-REFUSAL-REASON", "CH21", "a pacs.002 RJCT and a camt.029 RJCR carry a reason (Rsn/Cd or AddtlInf)"),
        Rule("ISO-GRPSTS-RJCT", "CH16", "a pacs.002 whose group status is RJCT has every TxSts RJCT"),
        Rule("CBPR-ONE-TX", "AM18", "exactly one transaction per message", CBPR),
        Rule("CBPR-UETR", "CH21", "the UETR (camt.056: OrgnlUETR) is present", CBPR),
        Rule("CBPR-BIZMSGIDR", "CH16", "AppHdr BizMsgIdr equals the message identification (GrpHdr/MsgId, camt.056 Assgnmt/Id)", CBPR),
        Rule("CBPR-CHARSET", "RR10", "the SWIFT X character set outside name, address and remittance fields", CBPR),
    )
}

_UETR = UETR_PATTERN
_ID_TAGS = ("MsgId", "InstrId", "TxId", "EndToEndId")
_BIC_TAGS = ("BICFI", "BIC", "AnyBIC")
_ELEMENT_TAGS = _ID_TAGS + _BIC_TAGS + ("IBAN", "UETR", "OrgnlUETR")
# Every element typed *CurrencyAndAmount in pacs.008, pacs.009 and camt.056 (all versions in
# ../shared/iso20022/xsd); other messages are searched with an XPath for any Ccy attribute.
_AMOUNT_TAGS = ("Amt", "CdtNoteAmt", "ChrgsAmt", "DscntApldAmt", "DuePyblAmt", "InstdAmt", "IntrBkSttlmAmt",
                "OrgnlIntrBkSttlmAmt", "RmtdAmt", "TaxAmt", "TaxblBaseAmt", "TtlAmt", "TtlIntrBkSttlmAmt",
                "TtlTaxAmt", "TtlTaxblBaseAmt")
# Amounts typed ActiveCurrencyAndAmount in pacs.008/pacs.009, and the instructed amount (historic
# currencies are not payable); other amounts may carry historic currencies (ActiveOrHistoric...).
_ACTIVE_CURRENCY_AMOUNTS = frozenset({"IntrBkSttlmAmt", "TtlIntrBkSttlmAmt", "InstdAmt"})
_COPY_CODES = frozenset({"COPY", "CODU"})
# What the element-level rules do with an element, by local name.
_ID, _END_TO_END, _BIC_KIND, _IBAN_KIND, _UETR_KIND, _AMOUNT = range(6)
_KIND_OF = {**{name: _ID for name in ("MsgId", "InstrId", "TxId")}, "EndToEndId": _END_TO_END,
            **{name: _BIC_KIND for name in _BIC_TAGS}, "IBAN": _IBAN_KIND, "UETR": _UETR_KIND,
            "OrgnlUETR": _UETR_KIND, **{name: _AMOUNT for name in _AMOUNT_TAGS}}
# Tag filters for iter(): '{*}Name' is matched on the interned local name, about half the cost of a
# namespaced tag (libxml2 compares every namespace URI as a string); the namespace is checked by the
# kind table, which is keyed by the qualified tag.
_ELEMENT_FILTER = tuple("{*}" + name for name in _ELEMENT_TAGS)
_kinds_by_namespace: dict[str, dict] = {}


def _kinds(ns: str) -> dict:
    """{qualified tag: (kind, local name)} of the element-level rules for one '{namespace}'."""
    kinds = _kinds_by_namespace.get(ns)
    if kinds is None:
        if len(_kinds_by_namespace) > 1024:  # namespaces come from input: bounded
            _kinds_by_namespace.clear()
        kinds = _kinds_by_namespace[ns] = {ns + name: (kind, name) for name, kind in _KIND_OF.items()}
    return kinds
_ELEMENT_AND_AMOUNT_FILTER = _ELEMENT_FILTER + tuple("{*}" + name for name in _AMOUNT_TAGS)

_ANY_AMOUNT = etree.XPath("descendant::*[@Ccy]")
# CBPR+ X character set (CR and LF included).
X_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/-?:().,'+ \r\n"
_OUTSIDE_X_CHARACTER = re.compile("[^" + re.escape(X_CHARACTERS) + "]")
_LEAF_TEXTS = etree.XPath("descendant::*[not(*)]/text()", smart_strings=False)
_LEAF_TEXT_NODES = etree.XPath("descendant::*[not(*)]/text()")  # strings that know their element
_FREE_TEXT = ("Nm", "PstlAdr", "RmtInf")
# The character-set pre-check on the raw bytes (see raw_may_leave_x_characters).
_X_BYTES = set(X_CHARACTERS.encode("ascii"))
_RAW_DELETE_X_AND_TAB = bytes(sorted(_X_BYTES | {0x09}))  # left: markup and characters outside X
_RAW_DELETE_X_BUT_SLASHES = bytes(sorted(_X_BYTES - set(b"/'")))  # left: markup, '/', "'" and tabs
_RAW_TAB_IN_LEAF = re.compile(rb">[^<\t]*+\t[^<]*+</")  # a start tag's '>' ... a tab ... an end tag


def raw_may_leave_x_characters(raw: bytes) -> bool:
    """False only when no leaf text of the tree parsed from `raw` can hold a character outside the
    SWIFT X character set; True means "look at the tree". About half the work of reading every leaf
    text from the tree (`make bench`, validation.stage_us.rules).

    The bytes between a '>' and the next '<' are the only source of element text when the input is
    ASCII-compatible (no NUL byte: UTF-16 always has one) and has no comment, CDATA section or
    declaration (no '!') and no processing instruction (no '?' after the XML declaration, a '?' in
    a text only costs a look at the tree), since the tree joins the texts around a removed comment or
    processing instruction. Character references and entities start with '&', outside X, so they are
    caught like any other character outside X: with the X characters and tabs deleted, every '>' left
    must be followed by a '<' (or end the input), else a text holds a character outside X: True.
    A tab is in X only as indentation: with the X characters but '/' and "'" deleted and every '/>'
    (all that is left of an end tag or an empty element) turned into '/', a '>' left ends a start
    tag, and a tab between it and the next '</' is a tab in a leaf's text: True. Attribute values
    are never looked at by the rule; a '>' or quote inside one can only add a True (a look at the
    tree), never hide text.
    """
    declaration_end = raw.find(b"?>") + 2 if raw.startswith((b"<?xml", b"\xef\xbb\xbf<?xml")) else 0
    if b"\x00" in raw or b"!" in raw or raw.find(b"?", declaration_end) >= 0:
        return True
    tabs = b"\t" in raw
    structure = raw.translate(None, _RAW_DELETE_X_BUT_SLASHES) if tabs else None
    # (deleting '/', "'" and tabs from `structure`, a third of the bytes, equals deleting X and tabs)
    left = structure.translate(None, b"/'\t") if tabs else raw.translate(None, _RAW_DELETE_X_AND_TAB)
    if left.count(b">") != left.count(b"><") + left.endswith(b">"):
        return True
    return tabs and _RAW_TAB_IN_LEAF.search(structure.replace(b"/>", b"/")) is not None


def _issue(rule_id: str, element, message: str) -> Issue:
    path = element if isinstance(element, str) else element_path(element)
    return Issue(code=RULES[rule_id].code, path=path, message=message, rule=rule_id)


@lru_cache(maxsize=4096)
def bic_problem(value: str) -> str | None:
    """Why a BIC is not acceptable (structure, ISO 3166 country), None when it is."""
    from schwifty import BIC  # schwifty and pycountry: ~30 ms of imports, paid at the first BIC
    from schwifty.exceptions import SchwiftyException

    try:
        BIC(value)
    except SchwiftyException as exc:
        return f"BIC is not valid ({exc.__class__.__name__})"
    return None


@lru_cache(maxsize=4096)
def iban_problem(value: str) -> str | None:
    """Why an IBAN is not acceptable (check digits, country length and format), None when it is."""
    from schwifty import IBAN  # its IBAN registry (~9 ms) loads at the first IBAN
    from schwifty.exceptions import SchwiftyException

    try:
        IBAN(value)
    except SchwiftyException as exc:
        return f"IBAN is not valid ({exc.__class__.__name__})"
    return None


_AMOUNT_TEXT = re.compile(r"[+-]?(?:([0-9]+)(?:\.([0-9]*))?|\.([0-9]+))\Z")  # xs:decimal (no exponent)
_MAX_AMOUNT_TEXT = 40  # ISO amounts have at most 18 digits; longer text is not an amount


def fraction_digits(text: str | None) -> int | None:
    """The significant fraction digits of an xs:decimal text (value semantics: '1000.00' has none,
    '12.340' two), read from the text without building a Decimal; None when it is not an xs:decimal."""
    text = (text or "").strip()
    if len(text) > _MAX_AMOUNT_TEXT:
        return None
    match = _AMOUNT_TEXT.match(text)
    if match is None:
        return None
    fraction = match.group(2) or match.group(3) or ""
    return len(fraction.rstrip("0"))


def parse_amount(text: str | None) -> Decimal | None:
    """An xs:decimal as an exact Decimal; None for anything else (exponents, NaN, absurd lengths)."""
    from decimal import Decimal, InvalidOperation  # only sums need one: not loaded at import

    text = (text or "").strip()
    if len(text) > _MAX_AMOUNT_TEXT or not _AMOUNT_TEXT.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def parse_datetime(text: str | None) -> datetime | None:
    """An xs:dateTime; naive when it carries no UTC offset; None when unreadable."""
    try:
        return datetime.fromisoformat((text or "").strip())
    except ValueError:
        return None


def parse_date(text: str | None) -> date | None:
    """An xs:date (a trailing time zone, allowed by XSD, is ignored); None when unreadable."""
    text = (text or "").strip()
    try:
        return date.fromisoformat(text[:10]) if len(text) >= 10 else None
    except ValueError:
        return None


def _utc_now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)


class _Checker:
    """One run of the rules over one message."""

    def __init__(self, parsed: ParsedMessage, profile: str, now: datetime, raw_is_tree: bool = False):
        self.parsed = parsed
        self.scan: MessageScan = scan_message(parsed)
        self.ns = self.scan.ns
        self.cbpr = profile == "cbpr+"
        self.now = now
        self.raw_is_tree = raw_is_tree
        self.issues: list[Issue] = []

    def add(self, rule_id: str, element, message: str) -> None:
        self.issues.append(_issue(rule_id, element, message))

    # element-level rules: one C-level iter() over the Document -----------------------------------

    def check_elements(self) -> None:
        known = self.scan.family is not None
        kinds = _kinds(self.ns)
        for element in self.parsed.document.iter(*(_ELEMENT_AND_AMOUNT_FILTER if known else _ELEMENT_FILTER)):
            found = kinds.get(element.tag)
            if found is None:
                continue  # the same local name in another namespace: not an element of this message
            kind, name = found
            if kind == _AMOUNT:
                self.check_amount(element, name)
                continue
            value = element.text
            if value:
                value = value.strip() or None
            if kind == _BIC_KIND:
                problem = bic_problem(value or "")
                if problem:
                    self.add("ISO-BIC", element, problem)
            elif kind == _IBAN_KIND:
                problem = iban_problem(value or "")
                if problem:
                    self.add("ISO-IBAN", element, problem)
            elif kind == _UETR_KIND:
                if not _UETR.match(value or ""):
                    self.add("ISO-UETR", element, f"{name} is not a lowercase UUID version 4")
            elif value is not None and (value[0] == "/" or value[-1] == "/" or "//" in value):
                rule = "ISO-E2E-SLASH" if kind == _END_TO_END else "ISO-ID-SLASH"
                self.add(rule, element, f"{name} must not start or end with '/' nor contain '//'")
        if not known:
            for element in _ANY_AMOUNT(self.parsed.document):
                tag = element.tag
                self.check_amount(element, tag[tag.rfind("}") + 1:])
        header = self.scan.header
        if header is not None:
            for element in (header.from_bic, header.to_bic):
                if element is not None:
                    self.check_bic(element, text_of(element))

    def check_bic(self, element, value: str | None) -> None:
        problem = bic_problem(value or "")
        if problem:
            self.add("ISO-BIC", element, problem)

    def check_amount(self, element, name: str) -> None:
        currency = element.get("Ccy")
        if currency is None:
            return
        places = fraction_digits(element.text)
        if places is None:
            self.add("ISO-AMOUNT", element, f"{name} is not a decimal amount")
            return
        units = codes.minor_units(currency)
        if units is None:
            if currency in codes.non_payable_currencies():
                self.add("ISO-CCY-NOT-PAYABLE", element, f"{name}: the currency is not one a payment can settle in")
            elif name in _ACTIVE_CURRENCY_AMOUNTS and self.scan.family in ("pacs.008", "pacs.009"):
                self.add("ISO-CCY", element, f"{name}: currency is not an active ISO 4217 code")
            return
        if not codes.is_active_currency(currency):
            # an active code with a minor unit that names no money (none today: XXX and XTS have none)
            if name in _ACTIVE_CURRENCY_AMOUNTS and self.scan.family in ("pacs.008", "pacs.009"):
                self.add("ISO-CCY", element, f"{name}: currency is not an active ISO 4217 code")
            return
        if places > units:
            self.add("ISO-CCY-DECIMALS", element, f"{name}: more decimals than the currency's minor unit ({units})")

    # dates ---------------------------------------------------------------------------------------

    def check_creation(self, element) -> None:
        if element is None:
            return
        tag = element.tag
        name = tag[tag.rfind("}") + 1:]
        moment = parse_datetime(element.text)
        if moment is None:
            self.add("ISO-CREDTTM", element, f"{name} is not a readable date and time")
            return
        ahead = CLOCK_SKEW
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
            ahead += LOCAL_TIME_ALLOWANCE
        if moment > self.now + ahead:
            self.add("ISO-CREDTTM", element, f"{name} is in the future")
        elif moment < self.now - MAX_AGE:
            self.add("ISO-CREDTTM", element, f"{name} is more than ten years in the past")

    def check_settlement_date(self, element) -> None:
        if element is None:
            return
        day = parse_date(element.text)
        today = self.now.date()
        if day is None:
            self.add("ISO-SETTLEMENT-DATE", element, "IntrBkSttlmDt is not a readable date")
        elif day < today - MAX_AGE:
            self.add("ISO-SETTLEMENT-DATE", element, "IntrBkSttlmDt is more than ten years in the past")
        elif day > today + MAX_VALUE_DATING:
            self.add("ISO-SETTLEMENT-DATE", element, "IntrBkSttlmDt is more than a year ahead")

    # header --------------------------------------------------------------------------------------

    def check_header_agents(self, sender: str | None, receiver: str | None, what: str, place: str) -> None:
        """AppHdr Fr/To BICs against the message's own sending and receiving agents (skipped for a
        copy or a copy-duplicate, as CBPR+ does)."""
        header = self.scan.header
        if header is None or text_of(header.copy_duplicate) in _COPY_CODES:
            return
        for side, element, agent, role in (("Fr", header.from_bic, sender, "sending"),
                                           ("To", header.to_bic, receiver, "receiving")):
            header_bic = text_of(element)
            if agent and header_bic and institution_bic(header_bic) != institution_bic(agent):
                self.add("ISO-HDR-AGENTS", element,
                         f"AppHdr {side} does not name the {role} {what} of the message ({place})")

    def check_business_message_id(self, message_id_element) -> None:
        header = self.scan.header
        if not self.cbpr or header is None or header.business_message_id is None or message_id_element is None:
            return
        if text_of(header.business_message_id) != text_of(message_id_element):
            self.add("CBPR-BIZMSGIDR", header.business_message_id, "BizMsgIdr differs from the message identification")

    # CBPR+ character set --------------------------------------------------------------------------

    def check_character_set(self) -> None:
        if self.raw_is_tree and not raw_may_leave_x_characters(self.parsed.raw):
            return  # the usual case, told by the raw bytes (see raw_may_leave_x_characters)
        for part in (self.parsed.document, self.parsed.app_header):
            if part is None:
                continue
            if not _OUTSIDE_X_CHARACTER.search("\n".join(_LEAF_TEXTS(part))):
                continue
            prefix = "{" + (etree.QName(part).namespace or "") + "}"
            free_text = [prefix + name for name in _FREE_TEXT]
            for text in _LEAF_TEXT_NODES(part):
                if not _OUTSIDE_X_CHARACTER.search(text):
                    continue
                element = text.getparent()
                if element.tag in free_text or next(element.iterancestors(*free_text), None) is not None:
                    continue
                self.add("CBPR-CHARSET", element, "character outside the SWIFT X character set")


def _count(element) -> int | None:
    """A Max15NumericText count ('01' is 1), None when unreadable."""
    text = text_of(element)
    return int(text) if text and text.isascii() and text.isdigit() else None


def _version(message_id: str) -> int:
    try:
        return int(message_id.rsplit(".", 1)[-1])
    except ValueError:
        return 0


def _check_payment(c: _Checker) -> None:
    """pacs.008 / pacs.009: group header against the transactions, per-transaction rules."""
    scan = c.scan
    g = scan.group
    transactions = scan.transactions
    number = g.get("NbOfTxs")
    if number is not None and _count(number) != len(transactions):
        c.add("ISO-NBOFTXS", number, "NbOfTxs differs from the number of CdtTrfTxInf")
    if c.cbpr and len(transactions) != 1:
        c.add("CBPR-ONE-TX", scan.body, "CBPR+ allows exactly one CdtTrfTxInf per message")
    c.check_creation(g.get("CreDtTm"))
    c.check_settlement_date(g.get("IntrBkSttlmDt"))
    c.check_business_message_id(g.get("MsgId"))

    group_sender = scan.group_agent_bic("InstgAgt")
    group_receiver = scan.group_agent_bic("InstdAgt")
    total = g.get("TtlIntrBkSttlmAmt")
    control = g.get("CtrlSum")
    summed = total is not None or control is not None
    amounts: list[tuple[Decimal, str | None]] = []
    uetr_expected = c.cbpr and _version(c.parsed.message_id) >= 8
    pacs008 = scan.family == "pacs.008"
    for index in range(len(transactions)):
        t = scan.tx_children(index)
        settlement = t.get("IntrBkSttlmAmt")
        if summed and settlement is not None:
            amount = parse_amount(settlement.text)
            if amount is not None:
                amounts.append((amount, settlement.get("Ccy")))
        c.check_settlement_date(t.get("IntrBkSttlmDt"))
        if uetr_expected and "PmtId" in t and "UETR" not in scan.tx_ids(index):
            c.add("CBPR-UETR", t["PmtId"], "UETR is mandatory in CBPR+")
        c.check_header_agents(scan.tx_agent_bic(index, "InstgAgt") or group_sender,
                              scan.tx_agent_bic(index, "InstdAgt") or group_receiver,
                              "agent", "InstgAgt/InstdAgt")
        if pacs008:
            _check_charges_and_rate(c, t, settlement)

    if total is not None and amounts:
        total_amount = parse_amount(total.text)
        currency = total.get("Ccy")
        if any(ccy != currency for _, ccy in amounts):
            c.add("ISO-TOTAL", total, "TtlIntrBkSttlmAmt currency differs from a transaction's settlement currency")
        elif total_amount is not None and total_amount != sum(a for a, _ in amounts):
            c.add("ISO-TOTAL", total, "TtlIntrBkSttlmAmt differs from the sum of IntrBkSttlmAmt")
    if control is not None and amounts:
        control_sum = parse_amount(control.text)
        if control_sum is not None and control_sum != sum(a for a, _ in amounts):
            c.add("ISO-CTRLSUM", control, "CtrlSum differs from the sum of IntrBkSttlmAmt")


def _check_charges_and_rate(c: _Checker, t: dict, settlement) -> None:
    charges = t.get("ChrgsInf")
    instructed = t.get("InstdAmt")
    bearer = t.get("ChrgBr")
    if charges is None and bearer is not None and text_of(bearer) == "CRED":
        c.add("ISO-CHRGBR-CRED", bearer, "ChrgBr CRED requires ChrgsInf")
    if charges is not None and instructed is None:
        c.add("ISO-CHRGSINF-INSTDAMT", charges, "ChrgsInf requires InstdAmt")
    if instructed is None or settlement is None:
        return
    rate = t.get("XchgRate")
    if instructed.get("Ccy") != settlement.get("Ccy"):
        if rate is None:
            c.add("ISO-XCHGRATE-MISSING", instructed,
                  "XchgRate is required when InstdAmt and IntrBkSttlmAmt currencies differ")
    elif rate is not None:
        c.add("ISO-XCHGRATE-NOT-ALLOWED", rate,
              "XchgRate is not allowed when InstdAmt and IntrBkSttlmAmt share a currency")


def _check_cancellation(c: _Checker) -> None:
    """camt.056: control data against the transactions, header against assigner and assignee."""
    scan = c.scan
    ns = c.ns
    a = scan.group
    c.check_creation(a.get("CreDtTm"))
    c.check_business_message_id(a.get("Id"))
    c.check_header_agents(agent_bic(child(a.get("Assgnr"), ns + "Agt"), ns),
                          agent_bic(child(a.get("Assgne"), ns + "Agt"), ns), "party", "Assgnmt/Assgnr, Assgne")
    transactions = scan.transactions
    control = child(scan.body, ns + "CtrlData")
    if control is not None and transactions:
        number = child(control, ns + "NbOfTxs")
        if number is not None and _count(number) != len(transactions):
            c.add("ISO-NBOFTXS", number, "CtrlData/NbOfTxs differs from the number of TxInf")
        control_sum = child(control, ns + "CtrlSum")
        if control_sum is not None:
            originals = [child(tx, ns + "OrgnlIntrBkSttlmAmt") for tx in transactions]
            values = [parse_amount(o.text) for o in originals if o is not None]
            expected = parse_amount(control_sum.text)
            if values and None not in values and expected is not None and expected != sum(values):
                c.add("ISO-CTRLSUM", control_sum, "CtrlSum differs from the sum of OrgnlIntrBkSttlmAmt")
    if c.cbpr:
        if len(transactions) != 1:
            c.add("CBPR-ONE-TX", scan.body, "CBPR+ allows exactly one TxInf per cancellation request")
        if _version(c.parsed.message_id) >= 8:
            for tx in transactions:
                if child(tx, ns + "OrgnlUETR") is None:
                    c.add("CBPR-UETR", tx, "OrgnlUETR is mandatory in CBPR+")


def check_rules(parsed: ParsedMessage, *, profile: str = "iso", now: datetime | None = None) -> list[Issue]:
    """The business-rule issues of an XSD-valid message (empty when it is clean).

    profile: "iso" or "cbpr+" (see the module docstring). now: the clock for date plausibility
    (default: the current UTC time; a naive value is taken as UTC). Never raises on the message's
    content: anything unreadable becomes an issue; only an unknown profile is a ValueError.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    return run_rules(parsed, profile, _utc_now(now))


def run_rules(parsed: ParsedMessage, profile: str, now: datetime, *, raw_is_tree: bool = False) -> list[Issue]:
    """check_rules without its argument checks. raw_is_tree: the caller parsed `parsed.raw` itself
    and nothing changed the tree since, so checks may read the raw bytes (validate_message)."""
    c = _Checker(parsed, profile, now, raw_is_tree)
    family = c.scan.family
    if family == "pacs.008" or family == "pacs.009":
        c.scan.read_payments()  # first: the element walk below then meets elements already read
    c.check_elements()
    if family == "pacs.008" or family == "pacs.009":
        _check_payment(c)
    elif family == "camt.056":
        _check_cancellation(c)
    else:
        c.check_business_message_id(c.scan.group.get("MsgId"))
        if c.scan.body is not None and c.scan.body.tag[len(c.ns):] in _ANSWER_CHECKS:
            _ANSWER_CHECKS[c.scan.body.tag[len(c.ns):]](c)
    if c.scan.header is not None:
        c.check_creation(c.scan.header.creation)
    if c.cbpr:
        c.check_character_set()
    return c.issues


# -- what a payment engine answers --------------------------------------------------------------------

def _reason_code(c: _Checker, information):
    """The Rsn/Cd element of a StsRsnInf / CxlStsRsnInf / RtrRsnInf, or None."""
    return child(child(information, c.ns + "Rsn"), c.ns + "Cd")


def _has_reason(c: _Checker, information) -> bool:
    return information is not None and (_reason_code(c, information) is not None
                                        or child(information, c.ns + "AddtlInf") is not None)


def _check_reason_code(c: _Checker, information, known) -> None:
    code = _reason_code(c, information)
    if code is not None and not known(text_of(code)):
        c.add("ISO-ANSWER-REASON", code, "the reason code is not in its ISO code set")


def _check_status_report(c: _Checker) -> None:
    """pacs.002: statuses and reasons of ISO's code sets; a refusal says why."""
    ns = c.ns
    group_statuses = []
    for original in c.scan.body.iter(ns + "OrgnlGrpInfAndSts"):
        status = child(original, ns + "GrpSts")
        if status is not None:
            group_statuses.append(text_of(status))
            if not codes.is_transaction_status(text_of(status)):
                c.add("ISO-ANSWER-STATUS", status, "GrpSts is not an ISO transaction status code")
        for information in original.iter(ns + "StsRsnInf"):
            _check_reason_code(c, information, codes.is_status_reason)
    for transaction in c.scan.body.iter(ns + "TxInfAndSts"):
        status = child(transaction, ns + "TxSts")
        information = [e for e in transaction if e.tag == ns + "StsRsnInf"]
        for info in information:
            _check_reason_code(c, info, codes.is_status_reason)
        if status is None:
            continue
        value = text_of(status)
        if not codes.is_transaction_status(value):
            c.add("ISO-ANSWER-STATUS", status, "TxSts is not an ISO transaction status code")
        if value == "RJCT" and not any(_has_reason(c, info) for info in information):
            c.add("ISO-REFUSAL-REASON", status, "a rejected transaction carries no status reason")
        if "RJCT" in group_statuses and value != "RJCT":
            c.add("ISO-GRPSTS-RJCT", status, "the group status is RJCT but this transaction is not")


def _check_resolution(c: _Checker) -> None:
    """camt.029: the confirmation of ISO's code set; a rejected cancellation says why."""
    ns = c.ns
    confirmation = child(child(c.scan.body, ns + "Sts"), ns + "Conf")
    if confirmation is not None and not codes.is_investigation_confirmation(text_of(confirmation)):
        c.add("ISO-ANSWER-STATUS", confirmation, "Sts/Conf is not an ISO investigation confirmation code")
    for transaction in c.scan.body.iter(ns + "TxInfAndSts"):
        information = [e for e in transaction if e.tag == ns + "CxlStsRsnInf"]
        for info in information:
            _check_reason_code(c, info, codes.is_cancellation_rejection_reason)
        status = child(transaction, ns + "TxCxlSts")
        if status is not None and text_of(status) == "RJCR" and not any(_has_reason(c, i) for i in information):
            c.add("ISO-REFUSAL-REASON", status, "a rejected cancellation carries no reason")


def _check_payment_return(c: _Checker) -> None:
    """pacs.004: return reasons of ISO's code set."""
    for information in c.scan.body.iter(c.ns + "RtrRsnInf"):
        _check_reason_code(c, information, codes.is_return_reason)


_ANSWER_CHECKS = {"FIToFIPmtStsRpt": _check_status_report, "RsltnOfInvstgtn": _check_resolution,
                  "PmtRtr": _check_payment_return}
