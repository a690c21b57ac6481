"""Hardened parsing and identification of ISO 20022 messages.

`parse_message(data, limits)` turns raw bytes into a `ParsedMessage` or raises `MessageError` carrying
an FF01 `Issue` with a clear reason. Nothing from outside the bytes is ever read:

- Any DOCTYPE (and any other `<!` markup declaration in the prolog) is refused by a scan of the prolog
  *before* lxml sees the bytes, so an entity declaration is never parsed, let alone expanded. The
  parser is configured to refuse DTDs, entities and the network as well, and the parsed tree is checked
  for a DTD again (defence in depth).
- XInclude is never processed; an XInclude element anywhere in the input is refused.
- Size (`ParseLimits.max_bytes`, default 1 MiB) is checked before parsing; nesting depth
  (`ParseLimits.max_depth`, default 100) after it, with libxml2's own limit of 256 (no `huge_tree`)
  stopping anything deeper while parsing.
- ISO 20022 messages are UTF-8; UTF-16 with a byte-order mark and US-ASCII are accepted too. Any other
  declared encoding, or bytes that contradict the declaration, is a clear error.

Identification: the message is a `Document` alone, an `AppHdr` plus `Document` inside any envelope
element (SWIFT `<Envelope>`, SWIFTNet `<Request>`/`<Message>`, FedNow `<FedNowIncoming>`, an unqualified
`<Envelope>`...), or a `Document` inside an envelope without a header. The Document namespace
`urn:iso:std:iso:20022:tech:xsd:<id>` gives the exact message id. Whether the AppHdr's MsgDefIdr agrees
is a validation question (see validation.py), not a parsing one.

Pure code: bytes in, results out, no AWS.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from lxml import etree

from .message import HEADER_CHILDREN, ISO_NAMESPACE_PREFIX, Issue, MessageError, ParsedMessage

__all__ = [
    "ParseLimits",
    "DEFAULT_LIMITS",
    "parse_message",
    "MessageTooLargeError",
    "UnsupportedMessageError",
    "MissingDocumentError",
    "FORMAT_ERROR_CODE",
    "MESSAGE_ID_PATTERN",
    "HEADER_MESSAGE_PATTERN",
    "redact_libxml2_message",
]

FORMAT_ERROR_CODE = "FF01"  # ExternalStatusReason1Code: invalid file format
MESSAGE_ID_PATTERN = re.compile(r"[a-z]{4}\.\d{3}\.\d{3}\.\d{2}")
HEADER_MESSAGE_PATTERN = re.compile(r"head\.001\.\d{3}\.\d{2}")
_LIBXML2_MAX_DEPTH = 256  # libxml2's own nesting limit without XML_PARSE_HUGE
_XINCLUDE_NAMESPACES = ("http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude")
_XINCLUDE_TAGS = tuple(f"{{{namespace}}}*" for namespace in _XINCLUDE_NAMESPACES)
_ACCEPTED_ENCODINGS = {"utf-8", "utf8", "utf-16", "utf-16le", "utf-16be", "us-ascii", "ascii"}


@dataclass(frozen=True)
class ParseLimits:
    """What the parser accepts at most. max_bytes: size of the raw input; max_depth: element nesting,
    counted from the root (envelope included). libxml2 stops at 256 whatever max_depth says."""

    max_bytes: int = 1024 * 1024
    max_depth: int = 100

    def __post_init__(self):
        if self.max_bytes < 1 or self.max_depth < 1:
            raise ValueError("ParseLimits values must be positive")


DEFAULT_LIMITS = ParseLimits()


class MessageTooLargeError(MessageError):
    """The input is larger than ParseLimits.max_bytes (HTTP 413 material)."""


class UnsupportedMessageError(MessageError):
    """Well-formed XML, but not an ISO 20022 message this library handles (non-ISO namespace)."""


class MissingDocumentError(MessageError):
    """Well-formed XML without an ISO 20022 Document. `app_header` is the AppHdr found, if any, so a
    caller can still check the header on its own."""

    def __init__(self, issue: Issue, app_header: etree._Element | None = None):
        super().__init__(issue)
        self.app_header = app_header


def _fail(message: str, path: str = "", cls=MessageError):
    raise cls(Issue(FORMAT_ERROR_CODE, path, message))


# --- one parser and one depth checker per thread: lxml serialises a shared parser with a lock -------

_local = threading.local()


def _parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            attribute_defaults=False,
            huge_tree=False,
            recover=False,
            remove_comments=True,
            remove_pis=True,
            collect_ids=False,
            strip_cdata=True,
        )
        _local.parser = parser
    return parser


_QUICK_DEPTH = 15  # ISO 20022 messages nest about 10 deep, envelope included


def _too_deep(root, max_depth: int) -> bool:
    """Whether an element is nested deeper than max_depth. An XPath walks the tree level by level in
    C; one that stops at _QUICK_DEPTH + 1 levels settles the usual message (~1.5 us less), the full
    one runs only when something is that deep."""
    if max_depth > _QUICK_DEPTH and not _depth_checker(_QUICK_DEPTH)(root):
        return False
    return _depth_checker(max_depth)(root)


def _depth_checker(max_depth: int) -> etree.XPath:
    """An XPath that finds any element deeper than max_depth (libxml2 walks the tree in C)."""
    cache = getattr(_local, "depth", None)
    if cache is None:
        cache = _local.depth = {}
    checker = cache.get(max_depth)
    if checker is None:
        checker = cache[max_depth] = etree.XPath("boolean(/" + "/".join(["*"] * (max_depth + 1)) + ")")
    return checker


# --- before parsing: encoding and prolog -------------------------------------------------------------


def _detect_encoding(data: bytes) -> tuple[str, int]:
    """(encoding family, offset of the first character) from a byte-order mark or the first bytes."""
    if data.startswith(b"\xef\xbb\xbf"):
        return "utf-8", 3
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        _fail("UTF-32 input is not accepted: ISO 20022 messages are UTF-8 (or UTF-16 with a byte-order mark)")
    if data.startswith(b"\xff\xfe"):
        return "utf-16-le", 2
    if data.startswith(b"\xfe\xff"):
        return "utf-16-be", 2
    if data.startswith(b"<\x00"):
        return "utf-16-le", 0
    if data.startswith(b"\x00<"):
        return "utf-16-be", 0
    return "ascii-compatible", 0


_DECLARED_ENCODING = re.compile(r"""\bencoding\s*=\s*(["'])([A-Za-z0-9._:-]*)\1""")


_SPACE = re.compile(rb"[ \t\r\n]*")
# The declarations nearly every message starts with, accepted without a closer look.
_USUAL_DECLARATIONS = tuple(f'<?xml version={q}1.0{q} encoding={q}{name}{q}?>'.encode("ascii")
                            for q in "\"'" for name in ("UTF-8", "utf-8"))


def _check_prolog(text: bytes, pos: int, declared_family: str) -> None:
    """Walk the prolog (XML declaration, comments, processing instructions, white space) from `pos` up
    to the root element and refuse any `<!` declaration there: a DOCTYPE is refused before anything
    parses it. `text` is the input (ASCII-compatible) or decoded UTF-16 re-encoded as UTF-8."""
    first = True
    if declared_family == "ascii-compatible" and text.startswith(_USUAL_DECLARATIONS, pos):
        pos = text.index(b"?>", pos) + 2  # UTF-8 declared on ASCII-compatible bytes: nothing to check
        first = False
    while True:
        pos = _SPACE.match(text, pos).end()
        if text.startswith(b"<?", pos):
            close = text.find(b"?>", pos + 2)
            if close < 0:
                _fail("not well-formed XML: unterminated processing instruction or XML declaration")
            if first and text.startswith(b"<?xml", pos) and text[pos + 5 : pos + 6] in (b" ", b"\t", b"\r", b"\n"):
                _check_declared_encoding(text[pos:close].decode("ascii", "replace"), declared_family)
            pos = close + 2
        elif text.startswith(b"<!--", pos):
            close = text.find(b"-->", pos + 4)
            if close < 0:
                _fail("not well-formed XML: unterminated comment")
            pos = close + 3
        elif text.startswith(b"<!DOCTYPE", pos):
            _fail("a DOCTYPE (DTD) is not allowed in an ISO 20022 message; it was refused before parsing")
        elif text.startswith(b"<!", pos):
            _fail("markup declarations (<!...) are not allowed before the root element")
        else:
            return
        first = False


def _check_declared_encoding(declaration: str, family: str) -> None:
    match = _DECLARED_ENCODING.search(declaration)
    if not match:
        return
    declared = match.group(2).lower()
    if declared not in _ACCEPTED_ENCODINGS:
        _fail(
            f"encoding {match.group(2)!r} is not accepted: ISO 20022 messages are UTF-8 "
            "(UTF-16 with a byte-order mark is accepted too)"
        )
    if declared.startswith("utf-16") and not family.startswith("utf-16"):
        _fail("the XML declaration says UTF-16 but the bytes are not UTF-16 (wrongly declared encoding)")
    if family.startswith("utf-16") and not declared.startswith("utf-16"):
        _fail(f"the XML declaration says {match.group(2)} but the bytes are UTF-16 (wrongly declared encoding)")


# --- after parsing ------------------------------------------------------------------------------------

_BYTES_IN_MESSAGE = re.compile(r"Bytes:(\s*0x[0-9A-Fa-f]{2})+")
_LOCATION_SUFFIX = re.compile(r",\s*line \d+, column \d+(\s*\(<string>, line \d+\))?\s*$")


def _at_end(data: bytes, exc: etree.XMLSyntaxError) -> bool:
    """Whether libxml2 stopped at the very end of the input (the input is cut short)."""
    line, column = getattr(exc, "position", (0, 0)) or (0, 0)
    lines = data.rstrip().split(b"\n")
    return line == len(lines) and column >= len(lines[-1])


def _syntax_error(exc: etree.XMLSyntaxError, data: bytes, limits: ParseLimits) -> MessageError:
    raw = str(exc.msg if getattr(exc, "msg", None) else exc)
    text = _LOCATION_SUFFIX.sub("", raw)
    text = _BYTES_IN_MESSAGE.sub("", text).strip()
    where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
    if "Excessive depth" in text:
        message = f"elements are nested deeper than the limit of {min(limits.max_depth, _LIBXML2_MAX_DEPTH)}"
    elif "Document is empty" in text or "Start tag expected" in text:
        message = "the input is not XML (no root element found)"
    elif "encoding" in text.lower() or "utf-8" in text.lower():
        message = f"the bytes do not match the declared encoding (wrongly declared encoding): {text}{where}"
    elif "Premature end" in text or "end of data" in text.lower() or _at_end(data, exc):
        message = f"not well-formed XML, the input is truncated: {text}{where}"
    elif "Entity" in text or "entity" in text:
        message = f"entity references are not allowed (no DTD, no entities): {text}{where}"
    else:
        message = f"not well-formed XML: {text}{where}"
    return MessageError(Issue(FORMAT_ERROR_CODE, "", redact_libxml2_message(message)))


_NAMESPACE_BRACES = re.compile(r"\{[^{}]*\}(?=[A-Za-z_])")
# libxml2 quotes the offending value in several XSD messages; the value can contain quotes itself, so
# the match is greedy up to the fixed text that follows the value.
_VALUE_TEMPLATES = [
    (re.compile(r"(The (?:actual )?value )'.*'( (?:is|has|must|does)\b)"), r"\1'…'\2"),
    (re.compile(r"(:\s)'.*'( is not a valid value\b)"), r"\1'…'\2"),
    (re.compile(r"(key-sequence )\[.*\]"), r"\1[…]"),
]


def redact_libxml2_message(message: str, values=()) -> str:
    """A libxml2 message made safe for logs and clients: payment values it quotes are replaced by '…',
    namespaces are dropped from element names ('{urn:...}CdtrAgt' -> 'CdtrAgt')."""
    for value in sorted({v for v in values if v}, key=len, reverse=True):
        message = message.replace(f"'{value}'", "'…'")
    for template, replacement in _VALUE_TEMPLATES:
        message = template.sub(replacement, message)
    return _NAMESPACE_BRACES.sub("", message)


def _message_id_of(namespace: str | None) -> str | None:
    if namespace and namespace.startswith(ISO_NAMESPACE_PREFIX):
        candidate = namespace[len(ISO_NAMESPACE_PREFIX) :]
        if MESSAGE_ID_PATTERN.fullmatch(candidate):
            return candidate
    return None


def _find_parts(root: etree._Element) -> tuple[list, list]:
    """The outermost elements named Document and AppHdr (any namespace). The walk only visits the
    envelope: it never descends into a part."""
    documents, headers = [], []
    stack = [root]
    while stack:
        element = stack.pop()
        tag = element.tag
        if tag.__class__ is not str:
            continue
        if tag.endswith("}Document") or tag == "Document":
            documents.append(element)
        elif tag.endswith("}AppHdr") or tag == "AppHdr":
            headers.append(element)
        elif len(element):
            stack.extend(reversed(element))
    return documents, headers


def parse_message(data: bytes, limits: ParseLimits | None = None) -> ParsedMessage:
    """Parse and identify one message. Raises MessageError (an FF01 Issue) on anything unacceptable:
    empty, too large, not XML, DTD/entities/XInclude, too deep, wrong encoding, no Document, a
    non-ISO namespace."""
    limits = limits or DEFAULT_LIMITS
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not isinstance(data, bytes):
        raise TypeError(f"parse_message takes bytes, not {type(data).__name__}")
    if len(data) > limits.max_bytes:
        _fail(f"the message is {len(data)} bytes, more than the limit of {limits.max_bytes}", cls=MessageTooLargeError)
    if not data.strip():
        _fail("the input is empty")

    family, offset = _detect_encoding(data)
    ascii_compatible = not family.startswith("utf-16")
    if ascii_compatible:
        _check_prolog(data, offset, family)
    else:
        body = data[offset:]
        try:
            text = body[: len(body) & ~1].decode(family)
        except UnicodeDecodeError:
            _fail("the bytes are not valid UTF-16 (wrongly declared encoding)")
        _check_prolog(text.encode("utf-8", "surrogatepass"), 0, family)

    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc, data, limits) from None
    except ValueError as exc:  # e.g. lxml refusing a str with an encoding declaration
        _fail(f"not well-formed XML: {exc}")

    docinfo = root.getroottree().docinfo  # (docinfo.doctype is read from these two)
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        _fail("a DOCTYPE (DTD) is not allowed in an ISO 20022 message")
    if limits.max_depth < _LIBXML2_MAX_DEPTH and _too_deep(root, limits.max_depth):
        _fail(f"elements are nested deeper than the limit of {limits.max_depth}")
    # An XInclude element needs its namespace URI in an xmlns attribute, spelt out or through
    # character references ('&'); ASCII-compatible bytes with neither need no walk of the tree.
    maybe_xinclude = not ascii_compatible or b"XInclude" in data or b"&" in data
    if maybe_xinclude and next(root.iter(*_XINCLUDE_TAGS), None) is not None:
        _fail("XInclude is not allowed in an ISO 20022 message (it is never processed)")

    documents, headers = _find_parts(root)
    if len(headers) > 1:
        _fail(f"the input holds {len(headers)} AppHdr elements; one message per input")
    app_header = headers[0] if headers else None
    header_id = None
    if app_header is not None:
        header_tag = app_header.tag
        header_ns = header_tag[1 : header_tag.index("}")] if header_tag[0] == "{" else None
        header_part = _message_id_of(header_ns)
        if header_part is None or not HEADER_MESSAGE_PATTERN.fullmatch(header_part):
            _fail(
                f"the AppHdr namespace {header_ns!r} is not an ISO 20022 business application header "
                f"(expected {ISO_NAMESPACE_PREFIX}head.001.001.NN)",
                "/AppHdr",
                UnsupportedMessageError,
            )
        # The first MsgDefIdr child, by a positional walk (find() costs ~3 us per call); the children
        # and their tags are kept for the scan of facts.py (HEADER_CHILDREN).
        definition_tag = "{" + header_ns + "}MsgDefIdr"
        header_children = [(child.tag, child) for child in app_header]
        for tag, definition in header_children:
            if tag == definition_tag:
                if definition.text:
                    header_id = definition.text.strip()
                break
    if not documents:
        raise MissingDocumentError(
            Issue(FORMAT_ERROR_CODE, "", "no ISO 20022 Document element found in the input"), app_header
        )
    if len(documents) > 1:
        _fail(f"the input holds {len(documents)} Document elements; one message per input")
    document = documents[0]
    document_tag = document.tag
    namespace = document_tag[1 : document_tag.index("}")] if document_tag[0] == "{" else None
    message_id = _message_id_of(namespace)
    if message_id is None:
        shown = namespace if namespace else "no namespace"
        _fail(
            f"unsupported message: the Document namespace ({shown}) is not an ISO 20022 message namespace "
            f"({ISO_NAMESPACE_PREFIX}<message id>)",
            "/Document",
            UnsupportedMessageError,
        )
    parsed = ParsedMessage(
        raw=data,
        root=root,
        document=document,
        app_header=app_header,
        message_id=message_id,
        header_message_id=header_id,
    )
    if app_header is not None:
        parsed.extra[HEADER_CHILDREN] = header_children
    return parsed
