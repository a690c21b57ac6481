"""`mxflow validate` (README.md): exit codes 0/1/2, the --json object shape, --schema-dir,
--profile, missing files, hostile input as an ordinary invalid file."""
from __future__ import annotations

import json

import pytest

from mxflow_cli.main import main

GOOD = "phoughton-cbpr-ur/2026/cbprplus_pacs008_2026.xml"
XSD_BAD = "phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_xsd_issue.xml"
IBAN_BAD = "phoughton-cbpr-ur/2025/cbprplus_pacs008_sample_dodgy_IBAN_and_bic_mismatch.xml"
PACS009 = "phoughton-cbpr-ur/2026/pacs009_fi_transfer_sample.xml"


@pytest.fixture(autouse=True)
def _no_environment_schema_dir(monkeypatch, tmp_path):
    """Only the schemas a test names: no MXFLOW_SCHEMA_DIR, no ../shared lookup, an empty state directory
    (no added schemas); the built-in set stays."""
    monkeypatch.delenv("MXFLOW_SCHEMA_DIR", raising=False)
    monkeypatch.setenv("MXFLOW_SHARED", "off")
    monkeypatch.setenv("MXFLOW_STATE_DIR", str(tmp_path / "state"))


def _json_lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_all_valid_exits_0_with_the_contract_shape(samples_dir, xsd_dir, capsys):
    files = [str(samples_dir / GOOD), str(samples_dir / "phoughton-cbpr-ur/2026/pacs009_fi_transfer_sample.xml")]
    assert main(["validate", "--json", "--schema-dir", str(xsd_dir), *files]) == 0
    lines = _json_lines(capsys.readouterr().out)
    assert [line["file"] for line in lines] == files
    for line in lines:
        assert set(line) == {"file", "valid", "messageType", "errors"}
        assert line["valid"] is True and line["errors"] == []
    assert [line["messageType"] for line in lines] == ["pacs.008.001.08", "pacs.009.001.08"]


def test_some_invalid_exits_1(samples_dir, xsd_dir, capsys):
    files = [str(samples_dir / GOOD), str(samples_dir / XSD_BAD)]
    assert main(["validate", "--json", "--schema-dir", str(xsd_dir), *files]) == 1
    good, bad = _json_lines(capsys.readouterr().out)
    assert good["valid"] is True
    assert bad["valid"] is False and bad["messageType"] == "pacs.008.001.08"
    [error] = bad["errors"]
    assert {"code", "path", "message"} <= set(error)
    assert error["code"] == "FF01"
    assert error["path"] == "/Document/FIToFICstmrCdtTrf/CdtTrfTxInf/CdtrAgt[2]"


def test_human_output(samples_dir, xsd_dir, capsys):
    assert main(["validate", "--schema-dir", str(xsd_dir), str(samples_dir / GOOD), str(samples_dir / XSD_BAD)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{samples_dir / GOOD}: valid (pacs.008.001.08)"
    assert lines[1] == f"{samples_dir / XSD_BAD}: INVALID (pacs.008.001.08)"
    assert lines[2].startswith("    FF01 /Document/FIToFICstmrCdtTrf/CdtTrfTxInf/CdtrAgt[2]: Element 'CdtrAgt'")


def test_without_schema_dir_the_builtin_set_validates_a_cbpr_pacs008_with_its_header(samples_dir, capsys):
    # head.001.001.02 and pacs.008.001.08 are in the built-in set; pacs.009.001.08 is not (no package has it)
    assert main(["validate", "--json", str(samples_dir / GOOD), str(samples_dir / PACS009)]) == 1
    good, pacs009 = _json_lines(capsys.readouterr().out)
    assert good["valid"] is True and good["errors"] == []
    [error] = pacs009["errors"]
    assert error["code"] == "FF01" and error["path"] == "/Document"
    assert "urn:iso:std:iso:20022:tech:xsd:pacs.009.001.08" in error["message"]
    assert "mxflow schemas add PATH" in error["message"] and "--schema-dir" in error["message"]


def test_schema_dir_from_the_environment(samples_dir, xsd_dir, capsys, monkeypatch):
    monkeypatch.setenv("MXFLOW_SCHEMA_DIR", str(xsd_dir))
    assert main(["validate", "--json", str(samples_dir / PACS009)]) == 0


def test_profile_is_passed_to_the_rules(samples_dir, xsd_dir, capsys):
    for profile in ("iso", "cbpr+"):
        assert main(["validate", "--json", "--profile", profile, "--schema-dir", str(xsd_dir), str(samples_dir / IBAN_BAD)]) == 1
        [line] = _json_lines(capsys.readouterr().out)
        assert "AC01" in {e["code"] for e in line["errors"]}  # IBAN check digits, a business rule
    with pytest.raises(SystemExit) as caught:
        main(["validate", "--profile", "swift", str(samples_dir / GOOD)])
    assert caught.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path, samples_dir, capsys):
    assert main(["validate", str(tmp_path / "missing.xml")]) == 2
    err = capsys.readouterr().err
    assert "missing.xml" in err and "No such file" in err and "Traceback" not in err
    assert main(["validate", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["validate", "--schema-dir", str(tmp_path / "nope"), str(samples_dir / GOOD)]) == 2
    assert "not a directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as caught:
        main(["validate"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["validate", "--bogus", str(samples_dir / GOOD)])
    assert caught.value.code == 2


def test_unreadable_file_exits_2(tmp_path, capsys):
    path = tmp_path / "secret.xml"
    path.write_bytes(b"<a/>")
    path.chmod(0)
    try:
        open(path, "rb").close()
        pytest.skip("running as a user who can read mode-0 files")
    except PermissionError:
        pass
    assert main(["validate", str(path)]) == 2
    assert "Permission denied" in capsys.readouterr().err


def test_hostile_and_non_xml_files_are_invalid_not_crashes(tmp_path, xsd_dir, capsys):
    xxe = tmp_path / "xxe.xml"
    xxe.write_bytes(b'<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]><Document>&x;</Document>')
    not_xml = tmp_path / "payment.json"
    not_xml.write_bytes(b'{"amount": 1}')
    big = tmp_path / "big.xml"
    big.write_bytes(b"<a>" + b"x" * (2 * 1024 * 1024) + b"</a>")
    assert main(["validate", "--json", "--schema-dir", str(xsd_dir), str(xxe), str(not_xml), str(big)]) == 1
    out = capsys.readouterr().out
    assert "root:" not in out  # nothing of /etc/passwd
    lines = _json_lines(out)
    assert [line["valid"] for line in lines] == [False, False, False]
    assert all(line["messageType"] is None and line["errors"][0]["code"] == "FF01" for line in lines)
    assert "DOCTYPE" in lines[0]["errors"][0]["message"]
    assert "not XML" in lines[1]["errors"][0]["message"]
    assert "more than the limit" in lines[2]["errors"][0]["message"]


def test_installed_console_script(samples_dir, xsd_dir):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("mxflow")
    if not script.exists():
        pytest.skip("mxflow console script not installed in this environment")
    proc = subprocess.run(
        [str(script), "validate", "--json", "--schema-dir", str(xsd_dir), str(samples_dir / XSD_BAD)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["errors"][0]["code"] == "FF01"
