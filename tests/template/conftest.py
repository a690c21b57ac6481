"""Fixtures of the template tests: the SAM template as written, and as CloudFormation receives it.

The SAM template is read with aws-sam-translator's YAML loader (CloudFormation short tags such as
``!GetAtt`` become their long form) and expanded with the local runtime's loader, which runs
aws-sam-translator exactly as ``sam deploy`` relies on it: the generated IAM roles, the REST API's
OpenAPI body, the state machine resource are inspected, not the SAM shorthand that produced them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from samtranslator.yaml_helper import yaml_parse

from mxflow_local.template import load_template

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
STATE_MACHINE = REPO / "statemachines" / "payment.asl.json"
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


@pytest.fixture(scope="session")
def sam() -> dict:
    return yaml_parse(TEMPLATE.read_text())


@pytest.fixture(scope="session")
def cfn() -> dict:
    """The template after the SAM transform (default parameter values)."""
    return load_template(TEMPLATE, region="us-east-1", account_id="123456789012", stack_name="mxflow").cfn


@pytest.fixture(scope="session")
def asl_text() -> str:
    return STATE_MACHINE.read_text()


@pytest.fixture(scope="session")
def asl(asl_text) -> dict:
    return json.loads(asl_text)


def resources_of(template: dict, resource_type: str) -> dict[str, dict]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == resource_type}
