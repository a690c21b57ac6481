"""Facts: the small JSON record the workflow keeps about a message, and the payment id.

Pure code: a parsed message in, a `Facts` out; no AWS.

`scan_message(parsed)` is the one structural pass over a message that both the business rules and
the facts read (cached on `parsed.extra`): the AppHdr fields, the group header's children, every
transaction's children by name and the agents' BICs, by positional child access only (lxml's
`find()` costs microseconds per call). On a fresh tree every element touched costs a proxy and a
tag string (~0.2 us each), so the pass touches each element it needs once and nothing else; rules
and facts then read its dictionaries, not the tree. `make bench` reports each stage.
"""
from __future__ import annotations

import hashlib
from json.encoder import encode_basestring_ascii as _json_string
from dataclasses import dataclass, field, fields as dataclass_fields

from .message import HEADER_CHILDREN, ParsedMessage

PAYMENT_BODIES = {"FIToFICstmrCdtTrf": "pacs.008", "FICdtTrf": "pacs.009"}
CANCELLATION_BODY = "FIToFIPmtCxlReq"
PAYMENT_ID_VERSION = "mxflow-payment-id/1"
MESSAGE_ID_VERSION = "mxflow-message-id/1"
_SCAN_KEY = "mxflow.iso20022.scan"


def text_of(element) -> str | None:
    """The stripped text of an element, None for a missing element or an empty one."""
    if element is None:
        return None
    text = element.text
    if not text:
        return None
    return text.strip() or None


def children_by_name(element, n: int) -> dict:
    """The first child of each local name (n = length of the '{namespace}' prefix), in one pass."""
    found: dict = {}
    if element is None:
        return found
    for child in reversed(element):  # later assignments win: the first child of a name is kept
        tag = child.tag
        if tag.__class__ is str:
            found[tag[n:]] = child
    return found


def child(element, tag: str):
    """The first child with this qualified tag, or None (faster than find() for a known tag)."""
    if element is not None:
        for candidate in element:
            if candidate.tag == tag:
                return candidate
    return None


_HEADER_FIELDS = {"BizMsgIdr": "business_message_id", "BizSvc": "business_service", "CreDt": "creation",
                  "CpyDplct": "copy_duplicate"}


class Names:
    """The qualified tags ('{namespace}Name') of one namespace that the scan, the rules and the facts
    compare with, built once per namespace (`names(ns)`): a tag comparison is then one string compare."""

    LOCAL = ("GrpHdr", "CdtTrfTxInf", "Undrlyg", "TxInf", "Assgnmt", "CtrlData", "NbOfTxs", "CtrlSum",
             "FinInstnId", "BICFI", "BIC", "Nm", "FIId", "PmtId", "UETR", "OrgnlUETR", "OrgnlIntrBkSttlmAmt",
             "Agt", "OrgnlGrpInfAndCxl", "Case", "Id", "Rsn", "Cd")

    def __init__(self, ns: str):
        self.ns = ns
        for name in self.LOCAL:
            setattr(self, name, ns + name)
        self.header_fields = {ns + name: attribute for name, attribute in _HEADER_FIELDS.items()}
        self.header_agents = {ns + "Fr": "from_bic", ns + "To": "to_bic"}


_names: dict[str, Names] = {}


def names(ns: str) -> Names:
    """The Names of a '{namespace}' prefix (cached; a few namespaces per process)."""
    found = _names.get(ns)
    if found is None:
        if len(_names) > 1024:  # namespaces come from input: never let the cache grow without bound
            _names.clear()
        found = _names[ns] = Names(ns)
    return found


def agent_bic_element(agent, ns: str):
    """The FinInstnId/BICFI (BIC up to .02) element of a BranchAndFinancialInstitutionIdentification."""
    if agent is None:
        return None
    n = names(ns)
    institution_tag = n.FinInstnId
    for institution in agent:  # FinInstnId comes first in every version
        if institution.tag == institution_tag:
            bicfi, bic = n.BICFI, n.BIC
            for candidate in institution:  # and the BIC first in it
                tag = candidate.tag
                if tag == bicfi or tag == bic:
                    return candidate
            return None
    return None


def agent_bic(agent, ns: str) -> str | None:
    """The BIC of a BranchAndFinancialInstitutionIdentification: FinInstnId/BICFI (BIC up to .02)."""
    return text_of(agent_bic_element(agent, ns))


def institution_bic(value: str | None) -> str | None:
    """The institution a BIC names: BIC11 with branch code XXX and its BIC8 are the same party."""
    if not value:
        return None
    value = value.strip()
    return value[:8] if len(value) == 11 and value.endswith("XXX") else value


def party_name(party, ns: str) -> str | None:
    """Nm of a party (pacs.008), or FinInstnId/Nm of an institution (pacs.009)."""
    if party is None:
        return None
    n = names(ns)
    name = child(party, n.Nm)
    if name is None:
        name = child(child(party, n.FinInstnId), n.Nm)
    return text_of(name)


@dataclass
class HeaderFields:
    """The AppHdr elements the rules and facts use (None when absent)."""

    from_bic: object = None  # the Fr/FIId/FinInstnId/BICFI element
    to_bic: object = None
    business_message_id: object = None
    business_service: object = None
    creation: object = None
    copy_duplicate: object = None


@dataclass
class MessageScan:
    """What one pass over a message found.

    family: "pacs.008", "pacs.009", "camt.056", or None for any other message.
    body: the Document's message element (FIToFICstmrCdtTrf, FICdtTrf, FIToFIPmtCxlReq).
    group: GrpHdr children by local name (camt.056: Assgnmt children).
    transactions: pacs: CdtTrfTxInf elements; camt.056: Undrlyg/TxInf elements.
    """

    ns: str
    family: str | None = None
    body: object = None
    group: dict = field(default_factory=dict)
    transactions: list = field(default_factory=list)
    header: HeaderFields | None = None
    hns: str = ""
    names: Names | None = field(default=None, repr=False)
    _tx_children: dict = field(default_factory=dict, repr=False)
    _tx_ids: dict = field(default_factory=dict, repr=False)
    _bics: dict = field(default_factory=dict, repr=False)
    # The BIC elements read, kept so that their proxies outlive the read: lxml then hands out the
    # same object again (about 100 instructions) instead of a new one (thousands) to the rules' walk.
    _bic_elements: list = field(default_factory=list, repr=False)

    def tx_children(self, index: int = 0) -> dict:
        """A transaction's children by local name (the first of each), computed once."""
        found = self._tx_children.get(index)
        if found is None:
            if index >= len(self.transactions):
                return {}
            found = self._tx_children[index] = children_by_name(self.transactions[index], len(self.ns))
        return found

    def tx_ids(self, index: int = 0) -> dict:
        """A transaction's PmtId children by local name (InstrId, EndToEndId, TxId, UETR), computed once."""
        found = self._tx_ids.get(index)
        if found is None:
            found = self._tx_ids[index] = children_by_name(self.tx_children(index).get("PmtId"), len(self.ns))
        return found

    def group_agent_bic(self, name: str) -> str | None:
        """agent_bic of a group header agent (InstgAgt, InstdAgt), computed once per message."""
        key = (-1, name)
        bics = self._bics
        if key not in bics:
            bics[key] = self._read_bic(self.group.get(name))
        return bics[key]

    def tx_agent_bic(self, index: int, name: str) -> str | None:
        """agent_bic of a transaction's agent (InstgAgt, InstdAgt, DbtrAgt...), computed once."""
        key = (index, name)
        bics = self._bics
        if key not in bics:
            bics[key] = self._read_bic(self.tx_children(index).get(name))
        return bics[key]

    def _read_bic(self, agent) -> str | None:
        element = agent_bic_element(agent, self.ns)
        if element is None:
            return None
        self._bic_elements.append(element)
        return text_of(element)

    def read_payments(self) -> None:
        """pacs.008/pacs.009: every transaction's children, payment identifiers and agents' BICs, and
        the group's agents, read in one go before anything walks the tree again (see _bic_elements)."""
        for name in ("InstgAgt", "InstdAgt"):
            self.group_agent_bic(name)
        for index in range(len(self.transactions)):
            self.tx_ids(index)
            for name in ("InstgAgt", "InstdAgt", "DbtrAgt", "CdtrAgt"):
                self.tx_agent_bic(index, name)


def _header_bic(part, n: Names):
    """Fr or To: the FIId/FinInstnId/BICFI element, or None."""
    return child(child(child(part, n.FIId), n.FinInstnId), n.BICFI)


def _scan_header(header, children=None) -> tuple[HeaderFields, str]:
    """children: the AppHdr's [(tag, child)] as parse_message read them (HEADER_CHILDREN), if known."""
    tag = header.tag
    hns = tag[: tag.index("}") + 1] if tag[0] == "{" else ""
    n = names(hns)
    fields, agents = n.header_fields, n.header_agents
    found = HeaderFields()
    for tag, part in children if children is not None else ((part.tag, part) for part in header):
        if tag.__class__ is not str:
            continue
        attribute = fields.get(tag)
        if attribute is not None:
            setattr(found, attribute, part)
            continue
        attribute = agents.get(tag)
        if attribute is not None:
            setattr(found, attribute, _header_bic(part, n))
    return found, hns


def forget_scan(parsed: ParsedMessage) -> None:
    """Drop the cached scan: for a caller that edits the tree after rules or facts looked at it."""
    parsed.extra.pop(_SCAN_KEY, None)
    parsed.extra.pop(HEADER_CHILDREN, None)


def scan_message(parsed: ParsedMessage) -> MessageScan:
    """The shared scan of a message, computed once and cached on parsed.extra: the tree of a parsed
    message is not expected to change (a caller that edits it calls forget_scan)."""
    cached = parsed.extra.get(_SCAN_KEY)
    if cached is not None:
        return cached
    ns = "{" + parsed.namespace + "}"
    n = len(ns)
    scan = MessageScan(ns=ns, names=names(ns))
    tags = scan.names
    if parsed.app_header is not None:
        scan.header, scan.hns = _scan_header(parsed.app_header, parsed.extra.get(HEADER_CHILDREN))
    body = None
    for candidate in parsed.document:
        if candidate.tag.__class__ is str:
            body = candidate
            break
    if body is not None and body.tag.startswith(ns):
        name = body.tag[n:]
        scan.body = body
        family = scan.family = PAYMENT_BODIES.get(name)
        if family is not None:
            transaction_tag, group_tag = tags.CdtTrfTxInf, tags.GrpHdr
            transactions = scan.transactions
            group = None
            for part in body:
                tag = part.tag
                if tag == transaction_tag:
                    transactions.append(part)
                elif tag == group_tag and group is None:
                    group = part
            scan.group = children_by_name(group, n)
        elif name == CANCELLATION_BODY:
            scan.family = "camt.056"
            underlying_tag, assignment_tag, transaction_tag = tags.Undrlyg, tags.Assgnmt, tags.TxInf
            for part in body:
                tag = part.tag
                if tag == underlying_tag:
                    scan.transactions.extend(tx for tx in part if tx.tag == transaction_tag)
                elif tag == assignment_tag:
                    scan.group = children_by_name(part, n)
        else:  # any other message: its group header, if it has one
            scan.group = children_by_name(child(body, tags.GrpHdr), n)
    parsed.extra[_SCAN_KEY] = scan
    return scan


def payment_id(*, message_family: str, sender: str | None, msg_id: str | None,
               end_to_end_id: str | None, uetr: str | None) -> str:
    """The payment id: the idempotency key of the whole system and the Step Functions execution name.

    Deterministic from the message's identity only: the message type family (e.g. "pacs.008", so a
    resubmission in another version of the same message is the same payment), the sender (AppHdr
    From BIC, else the instructing agent's BIC; camt.056: the assigner's), the MsgId (camt.056:
    Assgnmt/Id), the EndToEndId and the UETR (camt.056: the original ones). BICs are compared as
    institutions (BIC11 "...XXX" and its BIC8 are the same sender).

    Form: "p-" + 32 lowercase hex digits of SHA-256 over a canonical JSON encoding (a version tag
    and the five parts, null for a missing part). That is a valid execution name (34 characters,
    no whitespace or special characters) and reveals no payment data.
    """
    sender = institution_bic(sender)
    # The canonical JSON of json.dumps([...], separators=(",", ":"), ensure_ascii=True), built from
    # the C string encoder json.dumps itself uses (a third of the cost on the validation path).
    canonical = "[" + ",".join("null" if part is None else _json_string(part) for part in (
        PAYMENT_ID_VERSION, message_family, sender, msg_id, end_to_end_id, uetr)) + "]"
    return "p-" + hashlib.sha256(canonical.encode("ascii")).hexdigest()[:32]


def message_identity(*, message_family: str, sender: str | None, msg_id: str | None) -> str:
    """The id of a message with several transactions (the record that groups its payments): "m-" + 32
    lowercase hex digits of SHA-256 over the canonical JSON of a version tag, the family, the sender (as
    an institution) and the MsgId, the identity ISO gives a message. Deterministic, like payment_id: the
    same message again is the same message; the same identity with other bytes is a conflict."""
    canonical = "[" + ",".join("null" if part is None else _json_string(part) for part in (
        MESSAGE_ID_VERSION, message_family, institution_bic(sender), msg_id)) + "]"
    return "m-" + hashlib.sha256(canonical.encode("ascii")).hexdigest()[:32]


def transaction_payment_ids(parsed: ParsedMessage) -> list[str]:
    """The payment id of each transaction of a pacs.008/pacs.009, in order: what extract_facts gives the
    transaction message of each (iso20022.bulk), computed from the message's own scan (the same sender,
    MsgId and the transaction's EndToEndId and UETR)."""
    scan = scan_message(parsed)
    if scan.family not in PAYMENT_BODIES.values():
        return []
    scan.read_payments()
    family = ".".join(parsed.message_id.split(".")[:2])
    header_from = text_of(scan.header.from_bic) if scan.header is not None else None
    msg_id = text_of(scan.group.get("MsgId"))
    return [payment_id(message_family=family, sender=header_from or _instructing_agent(scan, index),
                       msg_id=msg_id, end_to_end_id=text_of(scan.tx_ids(index).get("EndToEndId")),
                       uetr=text_of(scan.tx_ids(index).get("UETR")))
            for index in range(len(scan.transactions))]


def _instructing_agent(scan: MessageScan, index: int) -> str | None:
    """The instructing agent of a transaction: its own InstgAgt, else the group header's."""
    return scan.tx_agent_bic(index, "InstgAgt") or scan.group_agent_bic("InstgAgt")


REFERENCE_KEY_VERSION = "mxflow-reference/1"


def reference_key(*, uetr: str | None, msg_id: str | None, end_to_end_id: str | None,
                  instr_id: str | None) -> str | None:
    """How a payment is found again from what an answer or a recall says of it (the payment table's
    ByReference index, written once when the payment is created): its UETR ("u:" + the UETR), else its
    message id, end-to-end id and instruction id ("r:" + 32 hex digits of SHA-256 over them, no payment
    data in the key). None when neither can be formed (no UETR, no message or end-to-end id).

    The payment and whatever refers to it compute the key from the same references: a pacs.008's own
    UETR, MsgId, EndToEndId and InstrId; a camt.056's, pacs.002's, camt.029's or pacs.004's OrgnlUETR,
    OrgnlMsgId, OrgnlEndToEndId and OrgnlInstrId. A reference that omits the UETR of a payment that has
    one does not find it by this key (CBPR+ makes the UETR mandatory in every one of these messages)."""
    if uetr:
        return "u:" + uetr.strip()
    if not msg_id or not end_to_end_id:
        return None
    canonical = "[" + ",".join("null" if part is None else _json_string(part) for part in (
        REFERENCE_KEY_VERSION, msg_id, end_to_end_id, instr_id)) + "]"
    return "r:" + hashlib.sha256(canonical.encode("ascii")).hexdigest()[:32]


def content_hash(data: bytes) -> str:
    """SHA-256 (hex) of the raw bytes: same payment id and another content hash is "same identity,
    different bytes" (HTTP 409, AM05), the same hash an identical resubmission."""
    return hashlib.sha256(data).hexdigest()


def _snake_to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass
class Facts:
    """What the workflow keeps about a message (no XML). `to_dict()` is JSON with camelCase keys.

    amount/originalAmount are exact decimal strings as written in the message (never floats).
    For pacs.008/pacs.009 the transaction fields are those of the first transaction (CBPR+ carries
    one); numberOfTransactions tells how many there are. For camt.056, msgId/creationDateTime are
    Assgnmt/Id and Assgnmt/CreDtTm, instructingAgentBic/instructedAgentBic the assigner and
    assignee agents, and the original* fields those of the first TxInf (group values as fallback).
    """

    message_type: str
    payment_id: str = ""
    msg_id: str | None = None
    creation_date_time: str | None = None
    instr_id: str | None = None
    end_to_end_id: str | None = None
    tx_id: str | None = None
    uetr: str | None = None
    amount: str | None = None
    currency: str | None = None
    settlement_date: str | None = None
    debtor_name: str | None = None
    creditor_name: str | None = None
    debtor_agent_bic: str | None = None
    creditor_agent_bic: str | None = None
    instructing_agent_bic: str | None = None
    instructed_agent_bic: str | None = None
    charge_bearer: str | None = None
    number_of_transactions: int | None = None
    header_from: str | None = None
    header_to: str | None = None
    business_message_id: str | None = None
    business_service: str | None = None
    original_msg_id: str | None = None
    original_msg_nm_id: str | None = None
    original_creation_date_time: str | None = None
    original_instr_id: str | None = None
    original_end_to_end_id: str | None = None
    original_tx_id: str | None = None
    original_uetr: str | None = None
    original_amount: str | None = None
    original_currency: str | None = None
    original_settlement_date: str | None = None
    case_id: str | None = None
    cancellation_reason: str | None = None
    original_payment_id: str | None = None

    @property
    def message_family(self) -> str:
        return ".".join(self.message_type.split(".")[:2])

    @property
    def sender_bic(self) -> str | None:
        """Who sent the message: AppHdr From, else the instructing agent (camt.056: the assigner)."""
        return self.header_from or self.instructing_agent_bic

    def reference_key(self) -> str | None:
        """The payment's reference key (`reference_key`): of its own references for a payment, of the
        original's for a camt.056."""
        if self.message_family == "camt.056":
            return reference_key(uetr=self.original_uetr, msg_id=self.original_msg_id,
                                 end_to_end_id=self.original_end_to_end_id, instr_id=self.original_instr_id)
        return reference_key(uetr=self.uetr, msg_id=self.msg_id, end_to_end_id=self.end_to_end_id,
                             instr_id=self.instr_id)

    def to_dict(self) -> dict:
        return {_snake_to_camel(f.name): getattr(self, f.name) for f in dataclass_fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "Facts":
        """The inverse of to_dict (unknown keys are ignored, missing ones take their defaults)."""
        names = {_snake_to_camel(f.name): f.name for f in dataclass_fields(cls)}
        return cls(**{names[key]: value for key, value in data.items() if key in names})


def _amount(element) -> tuple[str | None, str | None]:
    if element is None:
        return None, None
    return text_of(element), element.get("Ccy")


def extract_facts(parsed: ParsedMessage) -> Facts:
    """The facts of a parsed message (any ISO message: fields a message type lacks stay None)."""
    scan = scan_message(parsed)
    ns = scan.ns
    facts = Facts(message_type=parsed.message_id)
    header = scan.header
    if header is not None:
        facts.header_from = text_of(header.from_bic)
        facts.header_to = text_of(header.to_bic)
        facts.business_message_id = text_of(header.business_message_id)
        facts.business_service = text_of(header.business_service)
    group = scan.group
    facts.msg_id = text_of(group.get("MsgId") if scan.family != "camt.056" else group.get("Id"))
    facts.creation_date_time = text_of(group.get("CreDtTm"))
    if scan.family in ("pacs.008", "pacs.009"):
        _payment_facts(facts, scan, ns)
        identity = (facts.msg_id, facts.end_to_end_id, facts.uetr)
    elif scan.family == "camt.056":
        _cancellation_facts(facts, scan, ns)
        identity = (facts.msg_id, facts.original_end_to_end_id, facts.original_uetr)
    else:
        identity = (facts.msg_id, None, None)
    facts.payment_id = payment_id(message_family=facts.message_family, sender=facts.sender_bic,
                                  msg_id=identity[0], end_to_end_id=identity[1], uetr=identity[2])
    return facts


def _payment_facts(facts: Facts, scan: MessageScan, ns: str) -> None:
    group = scan.group
    number = text_of(group.get("NbOfTxs"))
    declared = number is not None and number.isascii() and number.isdigit()
    facts.number_of_transactions = int(number) if declared else len(scan.transactions)
    t = scan.tx_children(0)
    ids = scan.tx_ids(0)
    facts.instr_id = text_of(ids.get("InstrId"))
    facts.end_to_end_id = text_of(ids.get("EndToEndId"))
    facts.tx_id = text_of(ids.get("TxId"))
    facts.uetr = text_of(ids.get("UETR"))
    facts.amount, facts.currency = _amount(t.get("IntrBkSttlmAmt"))
    if facts.amount is None:
        facts.amount, facts.currency = _amount(group.get("TtlIntrBkSttlmAmt"))
    facts.settlement_date = text_of(t.get("IntrBkSttlmDt") if "IntrBkSttlmDt" in t else group.get("IntrBkSttlmDt"))
    facts.charge_bearer = text_of(t.get("ChrgBr"))
    facts.debtor_name = party_name(t.get("Dbtr"), ns)
    facts.creditor_name = party_name(t.get("Cdtr"), ns)
    facts.debtor_agent_bic = scan.tx_agent_bic(0, "DbtrAgt")
    facts.creditor_agent_bic = scan.tx_agent_bic(0, "CdtrAgt")
    facts.instructing_agent_bic = _instructing_agent(scan, 0)
    facts.instructed_agent_bic = scan.tx_agent_bic(0, "InstdAgt") or scan.group_agent_bic("InstdAgt")


def _assignment_agent(party, ns: str) -> str | None:
    return agent_bic(child(party, ns + "Agt"), ns)


def _cancellation_facts(facts: Facts, scan: MessageScan, ns: str) -> None:
    n = len(ns)
    group = scan.group
    facts.instructing_agent_bic = _assignment_agent(group.get("Assgnr"), ns)
    facts.instructed_agent_bic = _assignment_agent(group.get("Assgne"), ns)
    facts.number_of_transactions = len(scan.transactions)
    body = children_by_name(scan.body, n)
    case = body.get("Case")
    underlying = body.get("Undrlyg")
    group_info = children_by_name(child(underlying, ns + "OrgnlGrpInfAndCxl"), n)
    t = scan.tx_children(0)
    if case is None:
        case = t.get("Case")
    if case is None:
        case = group_info.get("Case")
    facts.case_id = text_of(child(case, ns + "Id"))
    original_group = children_by_name(t.get("OrgnlGrpInf"), n) or group_info
    facts.original_msg_id = text_of(original_group.get("OrgnlMsgId"))
    facts.original_msg_nm_id = text_of(original_group.get("OrgnlMsgNmId"))
    facts.original_creation_date_time = text_of(original_group.get("OrgnlCreDtTm"))
    facts.original_instr_id = text_of(t.get("OrgnlInstrId"))
    facts.original_end_to_end_id = text_of(t.get("OrgnlEndToEndId"))
    facts.original_tx_id = text_of(t.get("OrgnlTxId"))
    facts.original_uetr = text_of(t.get("OrgnlUETR"))
    facts.original_amount, facts.original_currency = _amount(t.get("OrgnlIntrBkSttlmAmt"))
    facts.original_settlement_date = text_of(t.get("OrgnlIntrBkSttlmDt"))
    reason_info = t.get("CxlRsnInf")
    if reason_info is None:
        reason_info = group_info.get("CxlRsnInf")
    facts.cancellation_reason = text_of(child(child(reason_info, ns + "Rsn"), ns + "Cd"))
    if facts.original_msg_nm_id:
        # Best-effort link to the payment being cancelled, assuming the cancellation comes from the
        # party that sent the original (CBPR+: the instructing agent). Match on UETR as well.
        facts.original_payment_id = payment_id(
            message_family=".".join(facts.original_msg_nm_id.split(".")[:2]), sender=facts.sender_bic,
            msg_id=facts.original_msg_id, end_to_end_id=facts.original_end_to_end_id, uetr=facts.original_uetr)
