"""Fixtures of the ISO 20022 library tests: the shared reference data (../shared, or $MXFLOW_SHARED) and
a schema registry on its official XSDs.

In a bare clone (no ../shared) the tests that need its third-party samples or XSDs skip, each with a
one-line reason; `registry` is then the built-in set alone, and `require_schemas` skips a test whose
message versions it does not have."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mxflow.iso20022.schemas import SchemaRegistry

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MXFLOW_SHARED", REPO.parent / "shared"))


SHARED_XSD = SHARED / "iso20022" / "xsd"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "iso20022").is_dir():
        pytest.skip(f"needs ../shared's third-party ISO 20022 samples and XSDs (not found at {SHARED})")
    return SHARED


@pytest.fixture(scope="session")
def xsd_dir(shared_dir) -> Path:
    return shared_dir / "iso20022" / "xsd"


@pytest.fixture(scope="session")
def samples_dir(shared_dir) -> Path:
    return shared_dir / "iso20022" / "samples"


@pytest.fixture(scope="session")
def registry() -> SchemaRegistry:
    """Official XSDs of ../shared/iso20022/xsd when it is there, then the built-in set."""
    return SchemaRegistry([SHARED_XSD] if SHARED_XSD.is_dir() else [])


@pytest.fixture(scope="session")
def require_schemas(registry):
    """require_schemas("camt.056.001.08", ...): skip unless `registry` has every one (a bare clone has the
    built-in set only)."""

    def check(*message_ids: str) -> None:
        missing = [m for m in message_ids if not registry.has_schema(m)]
        if missing:
            pytest.skip(f"needs the {', '.join(missing)} XSD(s) from ../shared (not installed here)")

    return check


# --- rules, facts, builders: samples as bytes and freshly parsed ------------------------------


@pytest.fixture(scope="session")
def sample_bytes(samples_dir):
    """sample_bytes("phoughton-cbpr-ur/2025/cbprplus_pacs008_2025.xml") -> the file's bytes."""

    def load(name: str) -> bytes:
        return (samples_dir / name).read_bytes()

    return load


@pytest.fixture(scope="session")
def parsed_sample(sample_bytes):
    """parsed_sample(name) -> a fresh ParsedMessage of a sample (its tree may be mutated by the test)."""
    from mxflow.iso20022.parsing import parse_message

    def parse(name: str):
        return parse_message(sample_bytes(name))

    return parse


# A camt.056.001.08 written for these tests (no camt.056 sample exists in ../shared); it is checked
# against the official XSD in test_rules.py (test_real_samples_and_the_camt056_pass).
_CAMT056 = b"""<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="urn:swift:xsd:envelope">
  <AppHdr xmlns="urn:iso:std:iso:20022:tech:xsd:head.001.001.02">
    <Fr><FIId><FinInstnId><BICFI>BRDEROBU</BICFI></FinInstnId></FIId></Fr>
    <To><FIId><FinInstnId><BICFI>BTRLRO22</BICFI></FinInstnId></FIId></To>
    <BizMsgIdr>CXL-20261120-0001</BizMsgIdr>
    <MsgDefIdr>camt.056.001.08</MsgDefIdr>
    <BizSvc>swift.cbprplus.02</BizSvc>
    <CreDt>2026-11-20T10:00:00+00:00</CreDt>
  </AppHdr>
  <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.056.001.08">
    <FIToFIPmtCxlReq>
      <Assgnmt>
        <Id>CXL-20261120-0001</Id>
        <Assgnr><Agt><FinInstnId><BICFI>BRDEROBU</BICFI></FinInstnId></Agt></Assgnr>
        <Assgne><Agt><FinInstnId><BICFI>BTRLRO22</BICFI></FinInstnId></Agt></Assgne>
        <CreDtTm>2026-11-20T10:00:00+00:00</CreDtTm>
      </Assgnmt>
      <Case>
        <Id>CASE-0001</Id>
        <Cretr><Agt><FinInstnId><BICFI>BRDEROBU</BICFI></FinInstnId></Agt></Cretr>
      </Case>
      <CtrlData><NbOfTxs>1</NbOfTxs></CtrlData>
      <Undrlyg>
        <TxInf>
          <CxlId>CXLID-0001</CxlId>
          <OrgnlGrpInf>
            <OrgnlMsgId>pcs008bzmsgidr-1</OrgnlMsgId>
            <OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId>
            <OrgnlCreDtTm>2026-11-19T09:05:00+01:00</OrgnlCreDtTm>
          </OrgnlGrpInf>
          <OrgnlInstrId>pcs008bzmsgidr-1</OrgnlInstrId>
          <OrgnlEndToEndId>E2E04044506271305</OrgnlEndToEndId>
          <OrgnlUETR>174c245f-2682-4291-ad67-2a41e530cd27</OrgnlUETR>
          <OrgnlIntrBkSttlmAmt Ccy="RON">12000000</OrgnlIntrBkSttlmAmt>
          <OrgnlIntrBkSttlmDt>2026-11-19</OrgnlIntrBkSttlmDt>
          <CxlRsnInf><Rsn><Cd>DUPL</Cd></Rsn></CxlRsnInf>
        </TxInf>
      </Undrlyg>
    </FIToFIPmtCxlReq>
  </Document>
</Envelope>
"""


@pytest.fixture(scope="session")
def camt056_bytes(require_schemas) -> bytes:
    """A camt.056.001.08 cancelling the payment of phoughton-cbpr-ur/2025/cbprplus_pacs008_2025.xml."""
    require_schemas("camt.056.001.08")
    return _CAMT056
