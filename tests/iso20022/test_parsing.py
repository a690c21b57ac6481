"""Parsing and identification: envelopes, bare parts, namespaces, the AppHdr/Document agreement, the
XSD step's element paths and redaction, and concurrent validation."""
from __future__ import annotations

import threading

import pytest
from lxml import etree

from mxflow.iso20022.message import MessageError, element_path
from mxflow.iso20022.parsing import (
    MissingDocumentError,
    ParseLimits,
    UnsupportedMessageError,
    parse_message,
    redact_libxml2_message,
)
from mxflow.iso20022.validation import check_header, validate_schema

P008 = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"
HEAD = "urn:iso:std:iso:20022:tech:xsd:head.001.001.02"
SAMPLE = "phoughton-cbpr-ur/2026/cbprplus_pacs008_2026.xml"


@pytest.mark.parametrize(
    "name, root, message_id",
    [
        (SAMPLE, "{urn:swift:xsd:envelope}Envelope", "pacs.008.001.08"),
        ("phoughton-cbpr-ur/y2025/pacs.009.min.xml", "Envelope", "pacs.009.001.08"),
        ("phoughton-cbpr-ur/2025/CBPR2025.PACS008-MinMax-0023.xml", "{SWIFTNetBusinessEnvelope}Request", "pacs.008.001.08"),
        (
            "moov-fednow20022/testdata/sample-participant-to-fednow-message.xml",
            "{urn:fednow:incoming:v001}FedNowIncoming",
            "pacs.008.001.08",
        ),
        ("moov-fednow20022/tests/testdata/admi_002.xml", "{urn:iso:std:iso:20022:tech:xsd:admi.002.001.01}Document", "admi.002.001.01"),
    ],
)
def test_envelopes_and_bare_documents(name, root, message_id, samples_dir):
    parsed = parse_message((samples_dir / name).read_bytes())
    assert parsed.root.tag == root
    assert parsed.message_id == message_id
    assert etree.QName(parsed.document).localname == "Document"
    assert parsed.document.tag == f"{{urn:iso:std:iso:20022:tech:xsd:{message_id}}}Document"
    if parsed.root is parsed.document:
        assert parsed.app_header is None and parsed.header_message_id is None
    else:
        assert parsed.app_header.tag == f"{{{HEAD}}}AppHdr"
        assert parsed.header_message_id == message_id
    assert parsed.raw == (samples_dir / name).read_bytes()


def _message(header_id="pacs.008.001.08", doc_ns=P008, header_ns=HEAD, body="<FIToFICstmrCdtTrf/>") -> bytes:
    return (
        f'<Envelope xmlns="urn:swift:xsd:envelope"><AppHdr xmlns="{header_ns}"><MsgDefIdr>{header_id}</MsgDefIdr>'
        f'</AppHdr><Document xmlns="{doc_ns}">{body}</Document></Envelope>'
    ).encode()


def test_header_must_agree_with_document():
    agreeing = parse_message(_message())
    assert check_header(agreeing) == []
    parsed = parse_message(_message(header_id="pacs.009.001.08"))
    assert parsed.message_id == "pacs.008.001.08"  # the Document namespace decides
    [issue] = check_header(parsed)
    assert issue.code == "FF01" and issue.path == "/AppHdr/MsgDefIdr"
    assert "'pacs.009.001.08'" in issue.message and "pacs.008.001.08" in issue.message
    [issue] = check_header(parse_message(_message(header_id="Jane Doe 4711")))
    assert "Jane Doe" not in issue.message and "not a message identifier" in issue.message


def test_non_iso_document_namespace_is_unsupported():
    with pytest.raises(UnsupportedMessageError) as caught:
        parse_message(_message(doc_ns="urn:swift:xsd:admi.998.001.02"))
    assert caught.value.issue.code == "FF01" and caught.value.issue.path == "/Document"
    assert "urn:swift:xsd:admi.998.001.02" in caught.value.issue.message
    with pytest.raises(UnsupportedMessageError):
        parse_message(b"<Document><FIToFICstmrCdtTrf/></Document>")  # no namespace at all


def test_header_in_another_namespace_is_unsupported():
    with pytest.raises(UnsupportedMessageError) as caught:
        parse_message(_message(header_ns="urn:swift:xsd:$ahV10"))
    assert caught.value.issue.path == "/AppHdr"


def test_no_document():
    with pytest.raises(MissingDocumentError) as caught:
        parse_message(b'<Envelope xmlns="urn:swift:xsd:envelope"><Other/></Envelope>')
    assert "no ISO 20022 Document" in caught.value.issue.message
    assert caught.value.app_header is None


def test_two_documents_are_refused():
    data = f'<Envelope><Document xmlns="{P008}"/><Document xmlns="{P008}"/></Envelope>'.encode()
    with pytest.raises(MessageError) as caught:
        parse_message(data)
    assert "2 Document elements" in caught.value.issue.message


def test_str_is_a_programming_error():
    with pytest.raises(TypeError):
        parse_message("<Document/>")
    with pytest.raises(ValueError):
        ParseLimits(max_bytes=0)


def test_comments_and_processing_instructions_are_dropped(samples_dir):
    data = (samples_dir / "moov-fednow20022/testdata/fednow-sample-message-pacs002.xml").read_bytes()
    assert b"<!--" in data
    parsed = parse_message(data)
    assert all(isinstance(e.tag, str) for e in parsed.root.iter())


def test_schema_errors_in_a_one_line_message_point_at_the_right_element(samples_dir, registry):
    """Minified input (everything on line 1): the path comes from libxml2's node path, not the line."""
    tree = etree.fromstring((samples_dir / SAMPLE).read_bytes())
    for element in tree.iter():
        element.tail = None
        if len(element):
            element.text = None
    bics = list(tree.iter(f"{{{P008}}}BICFI"))
    assert len(bics) >= 3
    bics[2].text = "not a bic"
    data = etree.tostring(tree)
    assert data.count(b"\n") == 0
    parsed = parse_message(data)
    target = list(parsed.document.iter(f"{{{P008}}}BICFI"))[2]
    [issue] = validate_schema(parsed, registry)
    assert issue.path == element_path(target)
    assert issue.path.startswith("/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/") and issue.path.endswith("/BICFI")
    assert "not a bic" not in issue.message and "'…'" in issue.message


def test_payment_values_never_appear_in_schema_messages(samples_dir, registry):
    text = (samples_dir / SAMPLE).read_text()
    secret_ccy = "X'Y Z"  # a quote inside the value must not defeat the redaction
    text = text.replace('Ccy="RON"', f'Ccy="{secret_ccy}"', 1)
    text = text.replace("<pacs:UETR>", "<pacs:UETR>O'Brien-4711-", 1)
    parsed = parse_message(text.encode())
    issues = validate_schema(parsed, registry)
    assert len(issues) >= 2
    joined = " ".join(i.message for i in issues)
    assert "O'Brien" not in joined and "Brien-4711" not in joined and "X'Y" not in joined and "Y Z" not in joined
    assert any(i.path.endswith("/PmtId/UETR") for i in issues)
    assert any("attribute 'Ccy'" in i.message for i in issues)


def test_redaction_of_libxml2_messages():
    message = (
        "Element '{urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08}Nm': [facet 'pattern'] The value "
        "'Jo's ' is not' is not accepted by the pattern '[A-Z]+'."
    )
    out = redact_libxml2_message(message)
    assert out == "Element 'Nm': [facet 'pattern'] The value '…' is not accepted by the pattern '[A-Z]+'."
    out = redact_libxml2_message(
        "Element 'Amt', attribute 'Ccy': 'ZZZ9' is not a valid value of the atomic type 'ActiveCurrencyCode'."
    )
    assert "ZZZ9" not in out and "ActiveCurrencyCode" in out


def test_concurrent_validation_keeps_each_threads_errors(samples_dir, registry):
    """lxml's XMLSchema keeps one error_log per object; the registry's pool keeps threads apart."""
    good = (samples_dir / SAMPLE).read_bytes()
    bad = (samples_dir / "phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_xsd_issue.xml").read_bytes()
    failures = []
    start = threading.Barrier(8)

    def work(data, expected_paths):
        start.wait(5)
        for _ in range(200):
            paths = [i.path for i in validate_schema(parse_message(data), registry)]
            if paths != expected_paths:
                failures.append(paths)
                return

    threads = [
        threading.Thread(target=work, args=(good, []) if n % 2 else (bad, ["/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/CdtrAgt[2]"]))
        for n in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == []
