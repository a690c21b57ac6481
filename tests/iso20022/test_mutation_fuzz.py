"""Mutation fuzzing of validate_message (hypothesis): real messages changed at the byte level (bytes
flipped, inserted, deleted, duplicated; truncation; re-encoding and wrong encoding declarations) and
at the element level (elements dropped, duplicated, texts and currencies replaced), in any mix.

Whatever the input, validate_message returns (never raises), its verdict agrees with its errors,
every error carries a real ISO ExternalStatusReason1Code, a path and a message, and a message it
calls valid really is valid: the same bytes give the same verdict and facts again, and the rules
run on the tree alone (no look at the raw bytes) and the XSD step on a fresh parse find nothing.

Example counts are bounded: 300 per test in `make unit` (`-m "not slow"`), 2,000 more per kind in
the `slow` tests that `make test` adds. Every example run is counted in CASES and printed at the end
of the module (`pytest -s`).
"""
from __future__ import annotations

import copy
import json
from collections import Counter
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from mxflow.iso20022 import codes
from mxflow.iso20022.message import MessageError
from mxflow.iso20022.parsing import MESSAGE_ID_PATTERN, parse_message
from mxflow.iso20022.rules import check_rules, raw_may_leave_x_characters
from mxflow.iso20022.validation import validate_message, validate_schema

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)
SAMPLES = [
    "phoughton-cbpr-ur/2025/cbprplus_pacs008_2025.xml",
    "phoughton-cbpr-ur/2026/cbprplus_pacs008_2026.xml",
    "phoughton-cbpr-ur/2026/pacs009_fi_transfer_sample.xml",
]
BOUNDED = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
LONG = settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CASES: Counter = Counter()

xml_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=["\ufffe", "\uffff"]), max_size=30)
interesting_text = st.sampled_from(["", " ", "/", "a//b", "\t", "E2E\t1", "Zoë", "&", "2099-01-01", "1.234567", "-1",
                                    "XAU", "XDR", "XXX", "EUR", "BRDEXXBU", "0", "99", "not a date", "é", "<", "]]>"])


@st.composite
def byte_mutations(draw):
    """(operation, position, length, payload) steps on the raw bytes."""
    operation = st.sampled_from(["flip", "insert", "delete", "duplicate", "truncate"])
    payload = st.binary(min_size=1, max_size=8) | st.sampled_from(
        [b"<", b">", b"&", b"&amp;", b"<!DOCTYPE x>", b"<![CDATA[x]]>", b"<!--c-->", b"<?pi?>", b"\t", b"\xc3", b"\xe9",
         b"\x00", b'"', b"/>", b"</x>"])
    steps = st.tuples(operation, st.integers(0, 1 << 16), st.integers(1, 64), payload)
    return draw(st.lists(steps, min_size=1, max_size=3))


def mutate_bytes(data: bytes, steps) -> bytes:
    for operation, position, length, payload in steps:
        if not data:
            break
        at = position % len(data)
        if operation == "flip":
            data = data[:at] + bytes([data[at] ^ (payload[0] or 1)]) + data[at + 1:]
        elif operation == "insert":
            data = data[:at] + payload + data[at:]
        elif operation == "delete":
            data = data[:at] + data[at + length:]
        elif operation == "duplicate":
            data = data[:at] + data[at:at + length] + data[at:]
        else:
            data = data[:at]
    return data


ENCODINGS = ["utf-8 as is", "utf-16 with a BOM", "utf-16-le without a BOM", "utf-16-be with a BOM", "utf-8 with a BOM",
             "latin-1 declared utf-8", "declared iso-8859-1", "declared utf-16, bytes utf-8", "no declaration"]


def reencode(data: bytes, how: str) -> bytes:
    text = data.decode("utf-8", "replace")
    declaration_end = text.find("?>") + 2 if text.startswith("<?xml") else 0
    body = text[declaration_end:]
    if how == "utf-16 with a BOM":
        return ('<?xml version="1.0" encoding="UTF-16"?>' + body).encode("utf-16")
    if how == "utf-16-le without a BOM":
        return ('<?xml version="1.0" encoding="UTF-16"?>' + body).encode("utf-16-le")
    if how == "utf-16-be with a BOM":
        return b"\xfe\xff" + ('<?xml version="1.0" encoding="UTF-16"?>' + body).encode("utf-16-be")
    if how == "utf-8 with a BOM":
        return b"\xef\xbb\xbf" + data
    if how == "latin-1 declared utf-8":
        return ('<?xml version="1.0" encoding="UTF-8"?>' + body.replace("Debtor", "Débiteur")).encode("latin-1", "replace")
    if how == "declared iso-8859-1":
        return ('<?xml version="1.0" encoding="ISO-8859-1"?>' + body).encode("latin-1", "replace")
    if how == "declared utf-16, bytes utf-8":
        return ('<?xml version="1.0" encoding="UTF-16"?>' + body).encode("utf-8")
    if how == "no declaration":
        return body.lstrip().encode("utf-8")
    return data


@st.composite
def element_mutations(draw):
    operation = st.sampled_from(["delete", "text", "duplicate", "currency"])
    return draw(st.lists(st.tuples(operation, st.integers(0, 10_000), xml_text | interesting_text), min_size=1, max_size=3))


def mutate_elements(data: bytes, steps) -> bytes:
    root = etree.fromstring(data)
    for operation, index, text in steps:
        elements = [e for e in root.iter(etree.Element) if e.getparent() is not None]
        if not elements:
            break
        element = elements[index % len(elements)]
        if operation == "delete":
            element.getparent().remove(element)
        elif operation == "duplicate":
            element.addnext(copy.deepcopy(element))
        else:
            clean = "".join(c for c in text if c in "\t\n\r" or (" " <= c and c not in "\ufffe\uffff"))
            if operation == "text":
                element.text = clean
            else:
                element.set("Ccy", clean)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def check(data: bytes, registry, profile: str, kind: str) -> None:
    CASES[kind] += 1
    result = validate_message(data, profile=profile, registry=registry, now=NOW)  # must not raise
    assert result.valid is (not result.errors)
    assert result.message_type is None or MESSAGE_ID_PATTERN.fullmatch(result.message_type)
    for issue in result.errors:
        assert codes.is_status_reason(issue.code), issue
        assert isinstance(issue.path, str) and issue.message
        if issue.rule is not None:
            assert issue.path.startswith("/"), issue
    if result.facts is not None:
        json.dumps(result.facts.to_dict())
    if result.valid:
        CASES[kind + ", valid"] += 1
        again = validate_message(data, profile=profile, registry=registry, now=NOW)
        assert again.valid and again.facts == result.facts
        parsed = parse_message(data)
        assert validate_schema(parsed, registry) == []
        assert check_rules(parsed, profile=profile, now=NOW) == []  # the tree alone agrees


def _sample(sample_bytes, index: int) -> bytes:
    return sample_bytes(SAMPLES[index % len(SAMPLES)])


def _byte_case(sample_bytes, registry, index, steps, encoding, profile):
    data = mutate_bytes(reencode(_sample(sample_bytes, index), encoding), steps)
    check(data, registry, profile, "byte mutations")


def _element_case(sample_bytes, camt056_bytes, registry, index, steps, encoding, profile):
    original = camt056_bytes if index % (len(SAMPLES) + 1) == len(SAMPLES) else _sample(sample_bytes, index)
    check(reencode(mutate_elements(original, steps), encoding), registry, profile, "element mutations")


PROFILES = st.sampled_from(["iso", "cbpr+"])


@BOUNDED
@given(index=st.integers(0, 100), steps=byte_mutations(), encoding=st.sampled_from(ENCODINGS), profile=PROFILES)
def test_byte_mutations_never_break_validate_message(sample_bytes, registry, index, steps, encoding, profile):
    _byte_case(sample_bytes, registry, index, steps, encoding, profile)


@BOUNDED
@given(index=st.integers(0, 100), steps=element_mutations(), encoding=st.sampled_from(ENCODINGS), profile=PROFILES)
def test_element_mutations_never_break_validate_message(sample_bytes, camt056_bytes, registry, index, steps,
                                                        encoding, profile):
    _element_case(sample_bytes, camt056_bytes, registry, index, steps, encoding, profile)


@pytest.mark.slow
@LONG
@given(index=st.integers(0, 100), steps=byte_mutations(), encoding=st.sampled_from(ENCODINGS), profile=PROFILES)
def test_byte_mutations_long_run(sample_bytes, registry, index, steps, encoding, profile):
    _byte_case(sample_bytes, registry, index, steps, encoding, profile)


@pytest.mark.slow
@LONG
@given(index=st.integers(0, 100), steps=element_mutations(), encoding=st.sampled_from(ENCODINGS), profile=PROFILES)
def test_element_mutations_long_run(sample_bytes, camt056_bytes, registry, index, steps, encoding, profile):
    _element_case(sample_bytes, camt056_bytes, registry, index, steps, encoding, profile)


# --- the character-set pre-check on raw bytes never hides what the tree holds -------------------------

# Texts of X characters alone, with one tab, with one character outside X, or anything: the one
# character that matters is then often alone in a leaf.
x_text = st.text(st.sampled_from(list("AZaz09/-?:().,'+ \n\r")), max_size=6)
outside_x = st.sampled_from(["\t", "é", "&", "<", ">", '"', "@", "_", "ü", "\u2028", "\x85", "\xa0"])
leaf_text = st.one_of(x_text, st.builds(lambda a, c, b: a + c + b, x_text, outside_x, x_text),
                      st.builds(lambda a, b: a + "\t" + b, x_text, x_text), st.text(max_size=8).filter(
                          lambda t: all(c in "\t\n\r" or " " <= c < "\ud800" or "\ue000" <= c < "\ufffe" for c in t)))
indentation = st.sampled_from(["", "\n", "\n\t", "\n  ", "\t", " "])
extras = st.sampled_from([""] * 8 + ["<!--c-->", "<?pi x?>", "<![CDATA[x\t]]>", "<E/>", '<E a="/>"/>'])


@st.composite
def raw_documents(draw):
    """A small document with random leaf texts (escaped or as character references), indentation,
    attributes, empty elements, comments, processing instructions and CDATA sections."""
    parts = []
    for index in range(draw(st.integers(1, 4))):
        text = draw(leaf_text)
        escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", draw(st.sampled_from([">", "&gt;"])))
        if draw(st.booleans()):
            escaped = "".join(f"&#{ord(c)};" if c in "\t\r" else c for c in escaped)
        attribute = draw(st.sampled_from(["", ' a="1"', ' a="x/"', " a='/>'", ' a=">"']))
        parts.append(f"{draw(indentation)}<L{index}{attribute}>{draw(extras)}{escaped}{draw(extras)}</L{index}>")
    body = "".join(parts) + draw(indentation)
    declaration = draw(st.sampled_from(["", '<?xml version="1.0" encoding="UTF-8"?>\n']))
    return (declaration + f"<Document>{body}<Sub>{draw(extras)}{body}</Sub></Document>").encode("utf-8")


def _tree_leaves_outside_x(data: bytes) -> bool:
    from mxflow.iso20022.rules import _OUTSIDE_X_CHARACTER

    root = etree.fromstring(data, etree.XMLParser(remove_comments=True, remove_pis=True, strip_cdata=True))
    return any(_OUTSIDE_X_CHARACTER.search(text) for text in root.xpath("descendant-or-self::*[not(*)]/text()"))


@settings(max_examples=1500, deadline=None)
@given(data=raw_documents())
def test_raw_character_set_pre_check_never_hides_a_leaf(data):
    CASES["raw character-set documents"] += 1
    if _tree_leaves_outside_x(data):
        assert raw_may_leave_x_characters(data), data


def test_the_pre_check_lets_the_usual_message_through(sample_bytes):
    for name in SAMPLES:
        assert not raw_may_leave_x_characters(sample_bytes(name)), name


def teardown_module(module):
    print("\nmutation fuzzing cases run:", dict(CASES))
