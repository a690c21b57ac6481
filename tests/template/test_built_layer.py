"""The check `make lint` runs on the layer `sam build` produced (tests/template/built_layer.py)."""

from __future__ import annotations

import struct

from .built_layer import EM_AARCH64, REQUIRED_FILES, main, problems

EM_X86_64 = 62


def _elf(machine: int) -> bytes:
    # e_ident: magic, 64-bit, little-endian, version 1, padding; then e_type (shared object) and e_machine.
    return b"\x7fELF" + bytes([2, 1, 1]) + bytes(9) + struct.pack("<HH", 3, machine) + bytes(44)


def _layer(tmp_path, machine: int = EM_AARCH64, skip: str | None = None):
    site = tmp_path / "layer" / "python"
    for rel in REQUIRED_FILES.values():
        if rel == skip:
            continue
        path = site / rel
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
        else:
            path.mkdir(parents=True, exist_ok=True)
    (site / "lxml").mkdir(parents=True, exist_ok=True)
    (site / "lxml" / "etree.cpython-313-aarch64-linux-gnu.so").write_bytes(_elf(machine))
    return tmp_path / "layer"


def test_a_complete_arm64_layer_passes(tmp_path, capsys):
    layer = _layer(tmp_path)
    assert problems(layer) == []
    assert main(["built_layer.py", str(layer)]) == 0


def test_an_x86_lxml_is_reported(tmp_path):
    found = problems(_layer(tmp_path, machine=EM_X86_64))
    assert len(found) == 1 and "not an aarch64" in found[0]


def test_each_missing_piece_is_reported(tmp_path):
    for what, rel in REQUIRED_FILES.items():
        layer = _layer(tmp_path / rel.replace("/", "_"), skip=rel)
        found = problems(layer)
        assert found == [f"missing {what}: python/{rel}"], rel


def test_not_a_layer_and_usage(tmp_path, capsys):
    assert problems(tmp_path) == [f"{tmp_path / 'python'} does not exist: is this a built Python layer?"]
    assert main(["built_layer.py", str(tmp_path)]) == 1
    assert main(["built_layer.py"]) == 2
    assert "usage" in capsys.readouterr().err
