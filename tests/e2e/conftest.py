"""End-to-end fixtures: the application's own template.yaml on the embedded local runtime, behind the
local HTTP API, exercised over HTTP exactly as a consumer would."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MXFLOW_SHARED", REPO.parent / "shared"))
XSD_DIR = SHARED / "iso20022" / "xsd"
DECISION_TIMEOUT_SECONDS = 6
REGION = "eu-west-1"  # its own Region, so it never meets the other suites' runtimes


@pytest.fixture(scope="session")
def decision_timeout() -> int:
    return DECISION_TIMEOUT_SECONDS


@pytest.fixture(scope="session")
def schema_dirs() -> list[str]:
    """../shared's official XSDs when they are there; else none: the built-in set alone (a bare clone)."""
    return [str(XSD_DIR)] if XSD_DIR.is_dir() else []


@pytest.fixture(scope="session")
def schema_dir_args(schema_dirs) -> list[str]:
    """The --schema-dir options of an `mxflow` subprocess: ../shared's XSDs when they are there (else the
    built-in set alone)."""
    return [arg for directory in schema_dirs for arg in ("--schema-dir", directory)]


@pytest.fixture(scope="session")
def registry(schema_dirs):
    from mxflow.iso20022 import SchemaRegistry

    return SchemaRegistry(schema_dirs=schema_dirs)


@pytest.fixture(scope="session")
def versions(registry):
    """CBPR+'s message versions, or the newest the installed schemas have where one has none (as the demo
    chooses): camt.029.001.14 on the built-in set alone."""
    from mxflow.iso20022 import CBPR_PLUS_VERSIONS

    return CBPR_PLUS_VERSIONS.installed(registry)[0]


@pytest.fixture(scope="session")
def api(schema_dirs, versions):
    from mxflow_cli.local_schemas import version_parameters
    from mxflow_local.http_api import LocalApi

    overrides = {"DecisionTimeoutSeconds": str(DECISION_TIMEOUT_SECONDS), **version_parameters(versions)}
    # no added schemas: the functions' registry is exactly `registry`
    env = {"MXFLOW_SCHEMA_DIR": os.pathsep.join(schema_dirs), "MXFLOW_ADDED_SCHEMAS": "",
           "LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
    with LocalApi.start(REPO / "template.yaml", port=0, parameter_overrides=overrides, env_overrides=env,
                        region=REGION) as running:
        yield running


@pytest.fixture(scope="session")
def client(api):
    from mxflow_local.client import ALL_SCOPES, PaymentsClient

    return PaymentsClient(api.url, api.issue_token(ALL_SCOPES, client_id="e2e-client"))


@pytest.fixture(scope="session")
def client_for(api):
    from mxflow_local.client import PaymentsClient

    def make(scopes, client_id="e2e-client"):
        return PaymentsClient(api.url, api.issue_token(list(scopes), client_id=client_id))

    return make


# --- the hardening figures of issue 8 (hostile input, races, fuzzing), printed at the end of the run -----
FIGURES: dict = {}


@pytest.fixture(scope="session")
def figures() -> dict:
    """What the hardening tests counted (inputs tried and their outcomes, races, fuzz cases, memory):
    printed as one JSON document at the end of the run, and written to $MXFLOW_FIGURES_FILE if set."""
    return FIGURES


def pytest_terminal_summary(terminalreporter):
    if not FIGURES:
        return
    import json

    text = json.dumps(FIGURES, indent=2, sort_keys=True, default=str)
    terminalreporter.section("hardening figures (issue 8)")
    terminalreporter.write_line(text)
    if os.environ.get("MXFLOW_FIGURES_FILE"):
        Path(os.environ["MXFLOW_FIGURES_FILE"]).write_text(text + "\n")
