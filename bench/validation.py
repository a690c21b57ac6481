"""Validation throughput on one core: the whole pipeline against bare lxml and the xmlschema library.

The message is a CBPR+ pacs.008 with its AppHdr in a SWIFT envelope, read from
../shared/iso20022/samples (or $MXFLOW_SHARED). Loops over the same bytes, each about 2.5 s in ten
turns interleaved with the others' (the machine is shared: load from elsewhere then falls on all of
them alike):
- pipeline: mxflow.iso20022.validation.validate_message, profile "cbpr+" (hardened parse, identify,
  XSD of AppHdr and Document, business rules, facts);
- lxml: the floor - parse, take the Document, validate it with the same compiled schema;
- xmlschema: the pure-Python peer - validate the same Document (same bytes) with a schema compiled
  once, outside the loop.
pipeline_cold_caches is the pipeline with the BIC/IBAN validation caches emptied before each message
(every account new), the honest figure for traffic that does not repeat accounts. The pipeline also
validates the AppHdr, which the lxml floor does not.
Goal: pipeline >= 50% of the lxml rate (goal_pipeline_vs_lxml).

stage_us: microseconds per message of each stage, every loop on a fresh parse of the same bytes (the
best of eight interleaved turns of each loop; a stage is the difference of two loops):
parse (parse_message: hardening and identification), xsd (AppHdr and Document), rules (the business
rules with the shared scan, as the pipeline runs them), facts (what extract_facts adds once the rules
ran), pipeline (1e6 / pipeline rate: a mean over its turns, so under load above the sum of the best
stages); lxml_parse and lxml_xsd split the floor the same way.
cold_import_ms: medians of 10 fresh interpreters (this one's python): `import mxflow.iso20022`, and
that import plus the first validate_message of the sample (schemas compiled, code sets and
schwifty loaded on the way).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MXFLOW_SHARED", ROOT.parent / "shared"))
SAMPLE = SHARED / "iso20022" / "samples" / "phoughton-cbpr-ur" / "2026" / "cbprplus_pacs008_2026.xml"
XSD_DIR = SHARED / "iso20022" / "xsd"
SECONDS = 2.5


def _interleaved_rates(functions: dict, seconds: float, slices: int = 10) -> dict:
    """Calls per second of each function, measured in turns of seconds/slices each (the machine is
    shared: a burst of load then falls on every function alike, not on whichever ran at the time).
    Each rate is the total count over the total time of its turns."""
    counts = dict.fromkeys(functions, 0)
    spent = dict.fromkeys(functions, 0.0)
    for function in functions.values():
        for _ in range(20):
            function()
    for _ in range(slices):
        for name, function in functions.items():
            count, started = 0, time.perf_counter()
            deadline = started + seconds / slices
            while True:
                for _ in range(20):
                    function()
                count += 20
                now = time.perf_counter()
                if now >= deadline:
                    break
            counts[name] += count
            spent[name] += now - started
    return {name: counts[name] / spent[name] for name in functions}


def _per_call_us(functions: dict, seconds: float = 0.4, slices: int = 8) -> dict:
    """Microseconds per call of each function: the best of its turns (see _interleaved_rates)."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(slices):
        for name, rate in _interleaved_rates(functions, seconds / slices, slices=1).items():
            best[name] = min(best[name], 1e6 / rate)
    return best


def _stages(data: bytes, registry, schema, parser, document_tag: str) -> dict:
    """Microseconds per message of each stage (see the module notes)."""
    from mxflow.iso20022.facts import extract_facts
    from mxflow.iso20022.parsing import parse_message
    from mxflow.iso20022.rules import run_rules
    from mxflow.iso20022.validation import validate_schema

    now = datetime.now(timezone.utc)

    def parse_and_rules():
        run_rules(parse_message(data), "cbpr+", now, raw_is_tree=True)

    def parse_rules_and_facts():
        parsed = parse_message(data)
        run_rules(parsed, "cbpr+", now, raw_is_tree=True)
        extract_facts(parsed)

    def lxml_parse():
        root = etree.fromstring(data, parser)
        return root if root.tag == document_tag else root.find(document_tag)

    us = _per_call_us({
        "parse": lambda: parse_message(data),
        "parse+xsd": lambda: validate_schema(parse_message(data), registry),
        "parse+rules": parse_and_rules,
        "parse+rules+facts": parse_rules_and_facts,
        "lxml_parse": lxml_parse,
        "lxml_parse+xsd": lambda: schema.validate(lxml_parse()),
    })
    stages = {
        "parse": us["parse"],
        "xsd": us["parse+xsd"] - us["parse"],
        "rules": us["parse+rules"] - us["parse"],
        "facts": us["parse+rules+facts"] - us["parse+rules"],
        "lxml_parse": us["lxml_parse"],
        "lxml_xsd": us["lxml_parse+xsd"] - us["lxml_parse"],
    }
    return {name: round(value, 1) for name, value in stages.items()}


_IMPORT = "import time; t = time.perf_counter(); import mxflow.iso20022; print((time.perf_counter() - t) * 1000)"
_FIRST_VALIDATE = (
    "import sys, time; t = time.perf_counter(); import mxflow.iso20022 as m; "
    "r = m.validate_message(open(sys.argv[1], 'rb').read(), profile='cbpr+', registry=m.SchemaRegistry([sys.argv[2]])); "
    "assert r.valid, r.errors; print((time.perf_counter() - t) * 1000)"
)


def _cold_import_ms(runs: int = 10) -> dict:
    """Medians over fresh interpreters (see the module notes)."""
    out = {}
    for name, code in (("import", _IMPORT), ("import_and_first_validate", _FIRST_VALIDATE)):
        times = []
        for _ in range(runs):
            done = subprocess.run([sys.executable, "-c", code, str(SAMPLE), str(XSD_DIR)], capture_output=True,
                                  text=True, timeout=60, check=True)
            times.append(float(done.stdout))
        out[name] = round(statistics.median(times), 1)
    return out


def run() -> dict:
    from mxflow.iso20022.schemas import SchemaRegistry
    from mxflow.iso20022.validation import validate_message

    data = SAMPLE.read_bytes()
    registry = SchemaRegistry([XSD_DIR])
    check = validate_message(data, profile="cbpr+", registry=registry)
    if not check.valid:
        raise RuntimeError(f"bench sample is not valid: {[i.to_dict() for i in check.errors]}")
    message_id = check.message_type
    schema = registry.schema_for(message_id)  # the same compiled schema for the floor
    document_tag = f"{{urn:iso:std:iso:20022:tech:xsd:{message_id}}}Document"
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

    def pipeline():
        validate_message(data, profile="cbpr+", registry=registry)

    from mxflow.iso20022.rules import bic_problem, iban_problem

    def pipeline_cold_caches():
        """The pipeline as if every BIC and IBAN were new (the per-value caches emptied each time)."""
        bic_problem.cache_clear()
        iban_problem.cache_clear()
        validate_message(data, profile="cbpr+", registry=registry)

    def bare_lxml():
        root = etree.fromstring(data, parser)
        document = root if root.tag == document_tag else root.find(document_tag)
        if not schema.validate(document):
            raise RuntimeError("bare lxml found the sample invalid")

    import xmlschema

    xs_schema = xmlschema.XMLSchema(str(registry.source_for(message_id)))

    def with_xmlschema():
        root = etree.fromstring(data, parser)
        document = root if root.tag == document_tag else root.find(document_tag)
        xs_schema.validate(document)

    rates = _interleaved_rates({"pipeline": pipeline, "cold": pipeline_cold_caches, "lxml": bare_lxml,
                                "xmlschema": with_xmlschema}, SECONDS)
    pipeline_rate, cold_rate, lxml_rate, xmlschema_rate = (
        rates["pipeline"], rates["cold"], rates["lxml"], rates["xmlschema"])
    stages = _stages(data, registry, schema, parser, document_tag)
    stages["pipeline"] = round(1e6 / pipeline_rate, 1)
    return {
        "validation": {
            "sample": str(SAMPLE.relative_to(SHARED)),
            "message_bytes": len(data),
            "message_type": message_id,
            "profile": "cbpr+",
            "pipeline_msgs_per_s": round(pipeline_rate, 1),
            "pipeline_cold_caches_msgs_per_s": round(cold_rate, 1),
            "lxml_msgs_per_s": round(lxml_rate, 1),
            "xmlschema_msgs_per_s": round(xmlschema_rate, 1),
            "pipeline_vs_lxml": round(pipeline_rate / lxml_rate, 3),
            "pipeline_vs_xmlschema": round(pipeline_rate / xmlschema_rate, 2),
            "goal_pipeline_vs_lxml": 0.5,
            "stage_us": stages,
            "cold_import_ms": _cold_import_ms(),
        }
    }
