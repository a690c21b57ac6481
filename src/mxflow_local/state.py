"""The state directory of the local tools: $MXFLOW_STATE_DIR, default ~/.mxflow/.

What lives there: the running `mxflow local up`'s token-signing key (auth.py), the schemas added with
`mxflow schemas add` (`schemas/`, read by `validate`, `local up`, the demo and the layer build) and the
local settings (`settings.json`: the message versions to generate). Nothing here is an AWS credential.
"""
from __future__ import annotations

import os
from pathlib import Path

STATE_DIR_ENV = "MXFLOW_STATE_DIR"


def state_dir() -> Path:
    configured = os.environ.get(STATE_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".mxflow"


def added_schemas_dir() -> Path:
    """Where `mxflow schemas add` puts schemas (see mxflow.iso20022.schema_sets.AddedSchemas)."""
    return state_dir() / "schemas"


def settings_path() -> Path:
    return state_dir() / "settings.json"
