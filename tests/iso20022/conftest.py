"""Fixtures of the ISO 20022 library tests: the shared reference data (../shared, or $MXFLOW_SHARED) and
a schema registry on its official XSDs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mxflow.iso20022.schemas import SchemaRegistry

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MXFLOW_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "iso20022").is_dir():
        pytest.fail(f"shared reference data not found at {SHARED} (set MXFLOW_SHARED)")
    return SHARED


@pytest.fixture(scope="session")
def xsd_dir(shared_dir) -> Path:
    return shared_dir / "iso20022" / "xsd"


@pytest.fixture(scope="session")
def samples_dir(shared_dir) -> Path:
    return shared_dir / "iso20022" / "samples"


@pytest.fixture(scope="session")
def registry(xsd_dir) -> SchemaRegistry:
    """Official XSDs of ../shared/iso20022/xsd, then the built-in pacs.008 set."""
    return SchemaRegistry([xsd_dir])


# --- A2 (rules, facts, builders): samples as bytes and freshly parsed ------------------------------


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
