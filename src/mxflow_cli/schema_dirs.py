"""Where the local commands (`local up`, `demo`) find official XSDs when no --schema-dir is given:
$MXFLOW_SCHEMA_DIR, else ../shared/iso20022/xsd beside the repository when it is there (the reference
set tests and the demo use). In AWS the functions read /opt/schemas (the optional schema layer)."""
from __future__ import annotations

import os
from pathlib import Path


def default_schema_dirs() -> list[str]:
    if os.environ.get("MXFLOW_SCHEMA_DIR"):
        return [d for d in os.environ["MXFLOW_SCHEMA_DIR"].split(os.pathsep) if d]
    shared = Path(os.environ.get("MXFLOW_SHARED", Path.cwd().parent / "shared")) / "iso20022" / "xsd"
    return [str(shared.resolve())] if shared.is_dir() else []
