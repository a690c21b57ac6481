"""Messages with several transactions (pacs.008, pacs.009): where each transaction lies in the bytes, the
single-transaction message each one becomes, and the checks of the group as a whole.

Pure code: bytes in, results out, no AWS.

A message of N transactions becomes N payments (docs/flow.md, "Messages with several transactions").
Each payment is the **transaction message** of its transaction: the message's own bytes up to its first
CdtTrfTxInf (the envelope, the AppHdr and the group header), then that transaction's bytes exactly as
received, then the message's bytes after its last transaction; in the group header NbOfTxs says 1, and
TtlIntrBkSttlmAmt and CtrlSum (both optional: controls of the group, checked here before the split) are
left out. So the transaction message is a valid single-transaction message of the same version: the
existing flow validates, sends and answers it as any other, and its payment id (facts.payment_id: the
family, the sender, MsgId, the transaction's EndToEndId and UETR) is the id the transaction has.

`BulkLayout` holds the constant part (head and tail) and each transaction's byte range, so a payment
needs to keep only its range: its bytes are `head + message[start:end] + tail`.

Finding the ranges: libxml2 gives no byte offsets, so `layout_of` tokenizes the bytes itself. The input
has passed the hardened parser (well-formed, no DTD, no entities but the predefined ones), so every `<`
outside a comment, CDATA section or processing instruction starts a tag, and a `>` ends one unless it is
inside a quoted attribute value. Inside a transaction only its end tag is looked for (with a check that
no comment or CDATA section could hide a false one). Bytes in UTF-16 are refused (ISO 20022 messages are
UTF-8; a single-transaction message in UTF-16 is still accepted as one payment).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from .message import Issue, MessageError, ParsedMessage

BULK_FAMILIES = ("pacs.008", "pacs.009")
_BODIES = {b"FIToFICstmrCdtTrf", b"FICdtTrf"}
_TRANSACTION = b"CdtTrfTxInf"
_GROUP = b"GrpHdr"
_COUNT = b"NbOfTxs"
_DROPPED = (b"CtrlSum", b"TtlIntrBkSttlmAmt")   # controls of the group: not in a transaction message
FORMAT_ERROR_CODE = "FF01"
DUPLICATE_CODE = "AM05"
# A start tag (or an empty element), its name, its attributes (quoted values may hold '>' or '/').
_START_TAG = re.compile(rb"""<([^\s/>]+)(?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*\s*(/?)>""")
_END_TAG = re.compile(rb"</([^\s>]+)\s*>")


class BulkLayoutError(MessageError):
    """The bytes of a message with several transactions cannot be split (UTF-16, or a structure the
    tokenizer does not find where the parser did)."""


def _fail(message: str) -> None:
    raise BulkLayoutError(Issue(FORMAT_ERROR_CODE, "", message))


def _local(name: bytes) -> bytes:
    return name.rpartition(b":")[2]


@dataclass(frozen=True)
class BulkLayout:
    """The transaction messages of one message: `head + data[start:end] + tail` for each range."""

    head: bytes
    tail: bytes
    transactions: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.transactions)

    def transaction_message(self, data: bytes, index: int) -> bytes:
        start, end = self.transactions[index]
        return assemble(self.head, data[start:end], self.tail)


def assemble(head: bytes, transaction: bytes, tail: bytes) -> bytes:
    """A transaction message from the message's head and tail and one transaction's bytes."""
    return head + transaction + tail


@dataclass
class _Scanner:
    data: bytes
    pos: int = 0
    edits: list = field(default_factory=list)   # (start, end, replacement) in the head

    def next_tag(self):
        """(kind, name, start, end) of the next start ('start'), empty ('empty') or end ('end') tag, or
        None at the end; comments, CDATA sections and processing instructions are skipped."""
        data = self.data
        while True:
            at = data.find(b"<", self.pos)
            if at < 0:
                return None
            if data.startswith(b"<!--", at):
                self.pos = self._after(b"-->", at + 4)
            elif data.startswith(b"<![CDATA[", at):
                self.pos = self._after(b"]]>", at + 9)
            elif data.startswith(b"<?", at):
                self.pos = self._after(b"?>", at + 2)
            elif data.startswith(b"<!", at):
                _fail("a markup declaration in a message with several transactions")
            elif data.startswith(b"</", at):
                match = _END_TAG.match(data, at)
                if match is None:
                    _fail("an end tag the splitter cannot read")
                self.pos = match.end()
                return "end", match.group(1), at, match.end()
            else:
                match = _START_TAG.match(data, at)
                if match is None:
                    _fail("a start tag the splitter cannot read")
                self.pos = match.end()
                return ("empty" if match.group(2) else "start"), match.group(1), at, match.end()

    def _after(self, closing: bytes, start: int) -> int:
        end = self.data.find(closing, start)
        if end < 0:
            _fail("an unterminated comment, CDATA section or processing instruction")
        return end + len(closing)

    def element_end(self, name: bytes, start_tag_end: int) -> tuple[int, int]:
        """(start, end) of the end tag of the element whose start tag ends at `start_tag_end`; the
        scanner continues after it. Fast path: the first `</name>` after the start tag, when nothing in
        between could hide a false one (no comment, CDATA section or nested element of the same name);
        else tag by tag."""
        closing = b"</" + name + b">"
        found = self.data.find(closing, start_tag_end)
        if found >= 0:
            between = self.data[start_tag_end:found]
            if b"<!--" not in between and b"<![CDATA[" not in between and b"<" + name not in between:
                self.pos = found + len(closing)
                return found, self.pos
        self.pos = start_tag_end
        depth = 1
        while True:
            tag = self.next_tag()
            if tag is None:
                _fail("an element that does not end")
            kind, tag_name, start, end = tag
            if kind == "start":
                depth += 1
            elif kind == "end":
                depth -= 1
                if depth == 0:
                    if tag_name != name:
                        _fail("an end tag that does not match its start tag")
                    return start, end


def layout_of(data: bytes) -> BulkLayout:
    """The layout of a pacs.008/pacs.009 (parsed before: well-formed, no DTD). BulkLayoutError when the
    bytes are UTF-16 or the structure is not found."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or data[:2] in (b"<\x00", b"\x00<"):
        _fail("a message with several transactions must be UTF-8 (ISO 20022 XML); this one is UTF-16")
    scanner = _Scanner(data)
    stack: list[bytes] = []
    body_depth = None
    transactions: list[tuple[int, int]] = []
    head_end = tail_start = None
    while True:
        tag = scanner.next_tag()
        if tag is None:
            break
        kind, name, start, end = tag
        local = _local(name)
        if kind == "end":
            if not stack or stack[-1] != name:
                _fail("an end tag that does not match its start tag")
            stack.pop()
            continue
        depth = len(stack)
        if body_depth is None and local in _BODIES and stack and _local(stack[-1]) == b"Document":
            body_depth = depth
        elif body_depth is not None and depth == body_depth + 1:
            if local == _TRANSACTION:
                if head_end is None:
                    head_end = start
                if kind == "empty":
                    _fail("an empty transaction")
                transactions.append((start, scanner.element_end(name, end)[1]))
                tail_start = scanner.pos
                continue
            if local == _GROUP and kind == "start" and head_end is None:
                _group_edits(scanner, name, end)
                continue
        if kind == "start":
            stack.append(name)
    if body_depth is None or not transactions:
        _fail("no transactions found where the message has them")
    head = _edited(data[:head_end], scanner.edits)
    return BulkLayout(head=head, tail=data[tail_start:], transactions=tuple(transactions))


def _group_edits(scanner: _Scanner, group_name: bytes, group_start_end: int) -> None:
    """Within the group header: NbOfTxs -> 1, CtrlSum and TtlIntrBkSttlmAmt left out (as edits of the
    head); the scanner ends after the group header."""
    depth = 0
    while True:
        tag = scanner.next_tag()
        if tag is None:
            _fail("a group header that does not end")
        kind, name, start, end = tag
        if kind == "end":
            if depth == 0:
                if name != group_name:
                    _fail("a group header that does not end where it should")
                return
            depth -= 1
            continue
        local = _local(name)
        if depth == 0 and kind == "start" and (local == _COUNT or local in _DROPPED):
            end_tag, element_end = scanner.element_end(name, end)
            if local == _COUNT:
                scanner.edits.append((end, end_tag, b"1"))
            else:
                scanner.edits.append((start, element_end, b""))
            continue
        if kind == "start":
            depth += 1


def _edited(head: bytes, edits: list) -> bytes:
    out, at = [], 0
    for start, end, replacement in sorted(edits):
        out += [head[at:start], replacement]
        at = end
    out.append(head[at:])
    return b"".join(out)


def transaction_count(parsed: ParsedMessage) -> int:
    """How many transactions a parsed message carries (pacs.008/pacs.009; 0 for other messages)."""
    from .facts import scan_message

    scan = scan_message(parsed)
    return len(scan.transactions) if scan.family in BULK_FAMILIES else 0


def is_bulk(parsed: ParsedMessage) -> bool:
    """A pacs.008 or pacs.009 with more than one transaction."""
    return transaction_count(parsed) > 1


def _inside_a_transaction(issue: Issue) -> bool:
    return "/CdtTrfTxInf" in issue.path


def group_issues(parsed: ParsedMessage, *, profile: str, registry, now=None) -> list[Issue]:
    """What rejects a message with several transactions as a whole, before any payment exists: its
    AppHdr and Document against their schemas (a message that does not conform cannot be split), then
    the business rules of the group: NbOfTxs, TtlIntrBkSttlmAmt, CtrlSum, the group header's dates,
    identifiers and agents, the AppHdr against the agents. A rule broken inside one transaction is that
    transaction's: its own validation rejects that payment alone."""
    from .rules import _utc_now, run_rules
    from .validation import check_header, validate_schema

    issues = check_header(parsed) + validate_schema(parsed, registry)
    if issues:
        return issues
    return [issue for issue in run_rules(parsed, profile, _utc_now(now), raw_is_tree=True)
            if not _inside_a_transaction(issue)]


def transaction_facts(message: bytes):
    """The Facts of one transaction message (its payment id among them): parsed on its own."""
    from .facts import extract_facts
    from .parsing import ParseLimits, parse_message

    return extract_facts(parse_message(message, ParseLimits(max_bytes=max(len(message), 1))))


BODY_NAMES = {"pacs.008": "FIToFICstmrCdtTrf", "pacs.009": "FICdtTrf"}


def duplicate_identities(payment_ids: list[str], message_type: str) -> list[Issue]:
    """AM05 for each transaction whose payment id (its EndToEndId and UETR under the message's identity)
    an earlier transaction of the message already has: two transactions cannot be one payment."""
    body = BODY_NAMES.get(".".join(message_type.split(".")[:2]), "*")
    seen: dict[str, int] = {}
    issues = []
    for index, payment_id in enumerate(payment_ids):
        first = seen.setdefault(payment_id, index)
        if first != index:
            issues.append(Issue(DUPLICATE_CODE, f"/Document/{body}/CdtTrfTxInf[{index + 1}]/PmtId",
                                f"transaction {index + 1} has the identity (EndToEndId, UETR) of transaction "
                                f"{first + 1}", rule="BULK-TX-IDENTITY"))
    return issues
