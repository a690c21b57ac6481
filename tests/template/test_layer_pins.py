"""The Lambda layer ships the versions the tests ran: every pin in layers/mxflow/requirements.txt is the
same package at the same version in requirements/dev.txt (the venv `make test` installs). A layer pin
that drifts from the tested one (or a layer package installed unpinned, as botocore was through the
X-Ray SDK) would deploy code no test ran."""
from __future__ import annotations

from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{path.name}: {line!r} is not pinned with =="
        found[canonicalize_name(requirement.name)] = specifiers[0].version
    return found


def test_every_layer_pin_is_the_tested_version():
    layer = pins(ROOT / "layers" / "mxflow" / "requirements.txt")
    tested = pins(ROOT / "requirements" / "dev.txt")
    assert {"boto3", "botocore"} <= set(layer), "the layer pins the AWS SDK it ships"
    drifted = {name: (version, tested.get(name)) for name, version in layer.items() if tested.get(name) != version}
    assert not drifted, f"layer pin -> tested version: {drifted}"
