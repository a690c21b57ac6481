"""The check `make lint` runs on the layer `sam build` produced (tests/template/built_layer.py)."""

from __future__ import annotations

import json
import shutil
import struct

from mxflow.iso20022.schema_sets import REQUIRED_BUILTIN, AddedSchemas, builtin_entries, find_set_dir

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
    # the schema set: the required built-in schemas (real files, as the installed manifest records them)
    # and an empty added set
    if skip != "mxflow-schemas/builtin.json":
        installed = json.loads((find_set_dir() / "builtin.json").read_text())
        kept = [item for item in installed["schemas"] if item["messageId"] in REQUIRED_BUILTIN]
        for item in kept:
            target = site / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(find_set_dir().parent / item["path"], target)
        (site / "mxflow-schemas" / "builtin.json").write_text(json.dumps({**installed, "schemas": kept}))
    if skip != "mxflow-schemas/added/index.json":
        (site / "mxflow-schemas" / "added" / "index.json").write_text(json.dumps({"format": 1, "schemas": []}))
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


def test_the_builtin_schema_set_is_checked_file_by_file(tmp_path):
    layer = _layer(tmp_path)
    site = layer / "python"
    header = next(e for e in builtin_entries() if e.message_id == "head.001.001.02")
    rel = header.path.relative_to(find_set_dir().parent).as_posix()
    (site / rel).write_bytes((site / rel).read_bytes() + b"\n")
    manifest = json.loads((site / "mxflow-schemas" / "builtin.json").read_text())
    manifest["schemas"] = [i for i in manifest["schemas"] if i["messageId"] != "pacs.002.001.10"]
    (site / "mxflow-schemas" / "builtin.json").write_text(json.dumps(manifest))
    assert problems(layer) == [
        "the built-in schema set lacks pacs.002.001.10",
        f"built-in head.001.001.02: python/{rel} is missing or not the file checked (sha256)",
    ]


def test_the_added_schemas_are_those_of_the_state_directory(tmp_path):
    layer = _layer(tmp_path)
    folder = tmp_path / "ug"
    folder.mkdir()
    header = next(e for e in builtin_entries() if e.message_id == "head.001.001.02")
    (folder / "head.xsd").write_bytes(header.path.read_bytes())
    state = AddedSchemas(tmp_path / "state" / "schemas")
    assert problems(layer, state.directory) == []  # nothing added, nothing in the layer
    state.add(folder)
    [found] = problems(layer, state.directory)
    assert "not those of" in found and "missing or different: head.001.001.02" in found
    state.copy_to(layer / "python" / "mxflow-schemas" / "added")  # what the layer build does
    assert problems(layer, state.directory) == []
    record = state.records()[0]
    (layer / "python" / "mxflow-schemas" / "added" / record["file"]).write_bytes(b"tampered")
    assert problems(layer, state.directory) == [
        f"added head.001.001.02: python/mxflow-schemas/added/{record['file']} is missing or not the file added (sha256)"]
