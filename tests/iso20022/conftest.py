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
