"""The types every part of the ISO 20022 library shares: a parsed message and a validation issue.

Pure code: bytes in, results out, no AWS.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from lxml import etree

ISO_NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
# UUIDv4Identifier, the XSD pattern of a UETR (pacs.008 UETR, pacs.002 and camt.056 OrgnlUETR)
UETR_PATTERN = re.compile(r"[a-f0-9]{8}-[a-f0-9]{4}-4[a-f0-9]{3}-[89ab][a-f0-9]{3}-[a-f0-9]{12}\Z")
# ParsedMessage.extra key: the AppHdr's children as [(tag, element)], as parse_message read them, so
# that the scan of facts.py reuses the same proxies and tag strings (facts.forget_scan drops it).
HEADER_CHILDREN = "mxflow.iso20022.header_children"


@dataclass(frozen=True)
class Issue:
    """One reason a message is not acceptable.

    code: an ISO ExternalStatusReason1Code (for example FF01 invalid file format, AM05 duplication,
          CH20 decimals not compatible with currency, RC01 BIC, AC01 account format, DT01 date).
    path: where, as a simple absolute path of local element names with 1-based positions where an
          element repeats, for example /Document/FIToFICstmrCdtTrf/CdtTrfTxInf[1]/IntrBkSttlmAmt;
          "" when the problem is the input as a whole (empty, too large, not XML).
    message: a sentence for a human; never the value of a payment field (no payment data in logs).
    rule: the business rule id (for example "ISO-NBOFTXS"); None for parse and XSD errors.
    """

    code: str
    path: str
    message: str
    rule: str | None = None

    def to_dict(self) -> dict:
        out = {"code": self.code, "path": self.path, "message": self.message}
        if self.rule:
            out["rule"] = self.rule
        return out


class MessageError(Exception):
    """Input that cannot be processed at all (hostile, not XML, unknown namespace, no schema).

    Raised inside the library only; public entry points turn it into a result carrying `issue`.
    """

    def __init__(self, issue: Issue):
        super().__init__(issue.message)
        self.issue = issue


@dataclass
class ParsedMessage:
    """A message after hardened parsing and identification.

    raw: the bytes as received.
    root: the root element as received (an envelope, a bare Document, or a bare AppHdr).
    document: the ISO Document element (namespace urn:iso:std:iso:20022:tech:xsd:<message_id>).
    app_header: the head.001 AppHdr element, or None.
    message_id: the exact message identifier from the Document namespace, e.g. "pacs.008.001.08".
    header_message_id: MsgDefIdr of the AppHdr (None without a header).
    """

    raw: bytes
    root: etree._Element
    document: etree._Element
    app_header: etree._Element | None
    message_id: str
    header_message_id: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def namespace(self) -> str:
        return ISO_NAMESPACE_PREFIX + self.message_id

    @property
    def header_namespace(self) -> str | None:
        if self.app_header is None:
            return None
        tag = self.app_header.tag
        return tag[1 : tag.index("}")] if tag[0] == "{" else None

    @property
    def business_area(self) -> str:
        """"pacs.008" for "pacs.008.001.08"."""
        return ".".join(self.message_id.split(".")[:2])


def element_path(element: etree._Element) -> str:
    """The Issue.path of an element: local names from the Document or AppHdr down, 1-based positions
    where a sibling of the same name exists, e.g. /Document/FIToFICstmrCdtTrf/CdtTrfTxInf[2]/Amt."""
    parts = []
    node = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        if parent is not None:
            same = [c for c in parent if isinstance(c.tag, str) and c.tag == node.tag]
            if len(same) > 1:
                name = f"{name}[{same.index(node) + 1}]"
        parts.append(name)
        if etree.QName(node).localname in ("Document", "AppHdr"):
            break
        node = parent
    return "/" + "/".join(reversed(parts))
