"""Fixtures of the template tests: the SAM template as written, and as CloudFormation receives it.

Both come from the local runtime's template reader (mxflow_local.template), the one reader of
template.yaml: CloudFormation short tags such as ``!GetAtt`` become their long form, and the
expansion runs aws-sam-translator exactly as ``sam deploy`` relies on it: the generated IAM roles, the
REST API's OpenAPI body, the state machine resource are inspected, not the SAM shorthand that
produced them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mxflow_local.template import LoadedTemplate, load_template

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
STATE_MACHINE = REPO / "statemachines" / "payment.asl.json"       # the anchor (STANDARD)
PAYMENT_FLOW = REPO / "statemachines" / "payment_flow.asl.json"   # PaymentFlow (EXPRESS)
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")
ACCOUNT, REGION, STACK = "123456789012", "us-east-1", "mxflow"


def application_template(stack_name: str = STACK) -> LoadedTemplate:
    """template.yaml read and expanded with default parameter values."""
    return load_template(TEMPLATE, region=REGION, account_id=ACCOUNT, stack_name=stack_name)


@pytest.fixture(scope="session")
def loaded() -> LoadedTemplate:
    return application_template()


@pytest.fixture(scope="session")
def sam(loaded) -> dict:
    return loaded.sam


@pytest.fixture(scope="session")
def cfn(loaded) -> dict:
    """The template after the SAM transform (default parameter values)."""
    return loaded.cfn


@pytest.fixture(scope="session")
def asl_text() -> str:
    return STATE_MACHINE.read_text()


@pytest.fixture(scope="session")
def asl(asl_text) -> dict:
    return json.loads(asl_text)


@pytest.fixture(scope="session")
def flow_asl_text() -> str:
    return PAYMENT_FLOW.read_text()


@pytest.fixture(scope="session")
def flow_asl(flow_asl_text) -> dict:
    return json.loads(flow_asl_text)


def resources_of(template: dict, resource_type: str) -> dict[str, dict]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == resource_type}
