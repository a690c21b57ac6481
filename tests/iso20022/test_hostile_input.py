"""Hostile and broken input: every case is refused with FF01 and a clear reason, quickly, without
reading a file, opening a connection or expanding an entity.

A tripwire file (a named pipe: any open() for reading by libxml2 would be seen by the watcher) and a
listening socket on 127.0.0.1 prove nothing outside the bytes is touched. A thread with a 5 s join is a
hang detector, not a timing assertion.
"""
from __future__ import annotations

import threading

import pytest

from mxflow.iso20022.message import MessageError
from mxflow.iso20022.parsing import MessageTooLargeError, ParseLimits, parse_message
from mxflow.iso20022.validation import validate_message
from tripwires import CANARY, Listener, Tripwire  # tests/tripwires.py

ISO = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"
SAMPLE = "phoughton-cbpr-ur/2026/cbprplus_pacs008_2026.xml"


@pytest.fixture
def tripwire(tmp_path):
    wire = Tripwire(tmp_path / "canary")
    yield wire
    wire.stop()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.stop()


def guarded(function, *args, **kwargs):
    """Run in a thread; fail if it has not returned within 5 s (a hang detector)."""
    box = {}

    def run():
        try:
            box["value"] = function(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "hung: no answer within 5 s"
    if "error" in box:
        raise box["error"]
    return box["value"]


def refused(data: bytes, registry, reason: str, limits=None) -> dict:
    """Assert both entry points refuse `data` with FF01 and `reason`; return the result as a dict."""
    with pytest.raises(MessageError) as caught:
        guarded(parse_message, data, limits)
    assert caught.value.issue.code == "FF01"
    assert reason in caught.value.issue.message, caught.value.issue.message
    result = guarded(validate_message, data, registry=registry, limits=limits)
    assert result.valid is False
    assert result.message_type is None and result.facts is None and result.parsed is None
    assert len(result.errors) == 1
    assert result.errors[0].code == "FF01"
    assert reason in result.errors[0].message
    return result.to_dict(file="x.xml")


def _doc(body: str) -> str:
    return f'<Document xmlns="{ISO}"><FIToFICstmrCdtTrf>{body}</FIToFICstmrCdtTrf></Document>'


DTD_REFUSED = "DOCTYPE (DTD) is not allowed"


def test_xxe_to_a_file(tripwire, registry):
    data = f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file://{tripwire.path}">]>' + _doc("&x;")
    out = refused(data.encode(), registry, DTD_REFUSED)
    assert CANARY not in repr(out)
    assert tripwire.opened == 0


def test_xxe_to_a_local_port(listener, registry):
    data = f'<!DOCTYPE d [<!ENTITY x SYSTEM "http://127.0.0.1:{listener.port}/x">]>' + _doc("&x;")
    refused(data.encode(), registry, DTD_REFUSED)
    assert listener.connections == 0


def test_external_dtd_to_file_and_port(tripwire, listener, registry):
    for system in (f"file://{tripwire.path}", f"http://127.0.0.1:{listener.port}/d.dtd"):
        data = f'<?xml version="1.0"?>\n<!DOCTYPE Document SYSTEM "{system}">\n' + _doc("")
        assert CANARY not in repr(refused(data.encode(), registry, DTD_REFUSED))
    assert tripwire.opened == 0
    assert listener.connections == 0


def test_parameter_entity(tripwire, listener, registry):
    data = (
        f'<!DOCTYPE d [<!ENTITY % p SYSTEM "http://127.0.0.1:{listener.port}/p"> %p;'
        f'<!ENTITY % f SYSTEM "file://{tripwire.path}"> %f;]>' + _doc("")
    )
    refused(data.encode(), registry, DTD_REFUSED)
    assert listener.connections == 0 and tripwire.opened == 0


def test_billion_laughs(registry):
    entities = '<!ENTITY l0 "lol">' + "".join(
        f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    data = f"<!DOCTYPE d [{entities}]>" + _doc("&l9;")
    refused(data.encode(), registry, DTD_REFUSED)


def test_quadratic_blowup(registry):
    data = f'<!DOCTYPE d [<!ENTITY a "{"x" * 50_000}">]>' + _doc("&a;" * 50_000)
    assert len(data) < 1024 * 1024
    refused(data.encode(), registry, DTD_REFUSED)


def test_doctype_after_comments_and_pi_is_still_refused(registry):
    data = '<?xml version="1.0"?><!-- c --><?pi x?>\n<!-- <Document> -->\n<!DOCTYPE d [<!ENTITY x "y">]>' + _doc("")
    refused(data.encode(), registry, DTD_REFUSED)


def test_doctype_in_utf16_is_refused(registry):
    data = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE d [<!ENTITY x "y">]>' + _doc("&x;")
    refused(data.encode("utf-16"), registry, DTD_REFUSED)


def test_xinclude_is_refused_and_never_processed(tripwire, registry):
    body = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="file://{tripwire.path}" parse="text"/>'
    out = refused(_doc(body).encode(), registry, "XInclude is not allowed")
    assert CANARY not in repr(out)
    assert tripwire.opened == 0


def test_undeclared_entity_reference(registry):
    refused(_doc("&x;").encode(), registry, "entity references are not allowed")


def test_oversized_body(samples_dir, registry):
    with pytest.raises(MessageTooLargeError):
        parse_message(b"<a>" + b"x" * (1024 * 1024) + b"</a>")
    refused(b"<a>" + b"x" * (1024 * 1024) + b"</a>", registry, "more than the limit of 1048576")


def test_size_limit_is_configurable(samples_dir, registry):
    data = (samples_dir / SAMPLE).read_bytes()
    assert parse_message(data).message_id == "pacs.008.001.08"  # accepted under the default 1 MiB
    refused(data, registry, f"the message is {len(data)} bytes, more than the limit of 1000", ParseLimits(max_bytes=1000))


def test_ten_thousand_deep_nesting(registry):
    data = b"<a>" * 10_000 + b"</a>" * 10_000
    refused(data, registry, "nested deeper than the limit")


def test_depth_limit_is_configurable(samples_dir, registry):
    data = (samples_dir / SAMPLE).read_bytes()
    from lxml import etree

    depth = max(sum(1 for _ in e.iterancestors()) + 1 for e in etree.fromstring(data).iter())
    assert depth == 8  # Envelope/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/.../Id/Othr/Id
    assert parse_message(data, ParseLimits(max_depth=depth)).message_id == "pacs.008.001.08"
    refused(data, registry, f"nested deeper than the limit of {depth - 1}", ParseLimits(max_depth=depth - 1))


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, 0.999])
def test_truncated_xml(fraction, samples_dir, registry):
    data = (samples_dir / SAMPLE).read_bytes()
    refused(data[: int(len(data) * fraction)], registry, "truncated")


@pytest.mark.parametrize("data", [b"", b"   \n\t "])
def test_empty_input(data, registry):
    refused(data, registry, "the input is empty")


def test_json(registry):
    refused(b'{"paymentId": "x", "amount": 1}', registry, "not XML")


def test_declared_utf16_but_utf8_bytes(registry):
    data = '<?xml version="1.0" encoding="UTF-16"?>' + _doc("")
    refused(data.encode("utf-8"), registry, "wrongly declared encoding")


def test_declared_utf8_but_latin1_bytes(registry):
    data = '<?xml version="1.0" encoding="UTF-8"?>' + _doc("<Nm>Caf\xe9 M\xfcller</Nm>")
    out = refused(data.encode("latin-1"), registry, "wrongly declared encoding")
    assert "0xE9" not in repr(out)  # libxml2's "Bytes: 0x.." (payment data) is dropped


def test_declared_utf8_but_utf16_bytes(registry):
    data = '<?xml version="1.0" encoding="UTF-8"?>' + _doc("")
    refused(data.encode("utf-16"), registry, "wrongly declared encoding")


def test_other_declared_encodings_are_not_accepted(registry):
    data = '<?xml version="1.0" encoding="ISO-8859-1"?>' + _doc("")
    refused(data.encode("latin-1"), registry, "encoding 'ISO-8859-1' is not accepted")


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_utf16_and_utf8_with_bom_are_accepted_when_valid(codec, samples_dir, registry):
    text = (samples_dir / SAMPLE).read_text("utf-8")
    if codec == "utf-16-be":
        data = b"\xfe\xff" + text.replace("UTF-8", "UTF-16").encode("utf-16-be")
    elif codec == "utf-16":
        data = text.replace("UTF-8", "UTF-16").encode("utf-16")  # little-endian with a BOM here
    else:
        data = text.encode("utf-8-sig")
    parsed = parse_message(data)
    assert parsed.message_id == "pacs.008.001.08"
    from mxflow.iso20022.validation import validate_schema

    assert validate_schema(parsed, registry) == []


def test_xinclude_namespace_spelt_with_character_references(tripwire, registry):
    body = f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclud&#101;" href="file://{tripwire.path}"/>'
    refused(_doc(body).encode(), registry, "XInclude is not allowed")
    assert tripwire.opened == 0


def test_depth_limit_below_libxml2s_own(registry):
    data = b"<a>" * 150 + b"</a>" * 150  # under libxml2's 256, over the default limit of 100
    refused(data, registry, "nested deeper than the limit of 100")
    self_closing = b"<a>" * 101 + b"<b/>" + b"</a>" * 101  # depth 102
    refused(self_closing, registry, "nested deeper than the limit of 100")
