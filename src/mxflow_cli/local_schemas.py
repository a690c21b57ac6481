"""The schemas and message versions every local command uses (`validate`, `schemas`, `local up`, `demo`).

Schema sources, in order (schemas.SchemaRegistry: the first that has a namespace wins):
1. schema directories: `--schema-dir DIR` (repeatable), then the directories in $MXFLOW_SCHEMA_DIR; when
   neither names one, ../shared/iso20022/xsd beside the working directory if it is there (the reference
   set of a development clone; MXFLOW_SHARED=off switches that lookup off, MXFLOW_SHARED=DIR moves it);
2. the schemas added with `mxflow schemas add` (the state directory's schemas/, mxflow_local.state);
3. the built-in set (official XSDs of the wheels the set-up installed).
The layer that `sam build` makes holds 2 and 3 (in AWS, SchemaLayerArn adds the operator's own at
/opt/schemas, first); schema directories stay on this machine.

Message versions mxflow generates (mxflow.iso20022.MessageVersions), each from the first that sets it:
a template parameter given to `local up --parameter-overrides`, the environment
(MXFLOW_STATUS_REPORT_VERSION, MXFLOW_CANCELLATION_ANSWER_VERSION, MXFLOW_APP_HEADER_VERSION), the local
setting (`mxflow schemas versions --set ...`, in the state directory's settings.json), CBPR+'s defaults.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from mxflow.iso20022 import CBPR_PLUS_VERSIONS, MessageVersions, SchemaRegistry
from mxflow.iso20022.schemas import ADDED_SCHEMAS_ENV, SCHEMA_DIR_ENV, schema_dirs_from_environment
from mxflow_local.state import added_schemas_dir, settings_path

SHARED_ENV = "MXFLOW_SHARED"
SHARED_OFF = ("off", "none", "0", "false")


def shared_schema_dir() -> Path | None:
    """../shared/iso20022/xsd (or $MXFLOW_SHARED/iso20022/xsd) when it is there and not switched off."""
    configured = os.environ.get(SHARED_ENV)
    if configured is not None and configured.strip().lower() in SHARED_OFF:
        return None
    shared = Path(configured) if configured else Path.cwd().parent / "shared"
    directory = shared / "iso20022" / "xsd"
    return directory.resolve() if directory.is_dir() else None


def schema_dirs(explicit=()) -> list[str]:
    """`--schema-dir` directories, then $MXFLOW_SCHEMA_DIR's; else the shared reference set if present."""
    dirs = [*explicit, *schema_dirs_from_environment()]
    if dirs:
        return [str(Path(d).resolve()) for d in dirs]
    shared = shared_schema_dir()
    return [str(shared)] if shared else []


def local_registry(explicit=()) -> SchemaRegistry:
    return SchemaRegistry(schema_dirs(explicit), added=added_schemas_dir())


def schema_summary(registry: SchemaRegistry) -> str:
    """"schemas: 78 builtin, 2 added, 82 dir (mxflow schemas list shows each)"."""
    counts: dict[str, int] = {}
    for entry in registry.entries():
        counts[entry.kind] = counts.get(entry.kind, 0) + 1
    return ("schemas: " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
            + " (mxflow schemas list shows each)") if counts else "no schemas installed"


def function_environment(dirs: list[str]) -> dict[str, str]:
    """What the functions of the local runtime get, so their registry is the command line's: the schema
    directories (empty: none, not the template's /opt/schemas) and the added schemas."""
    return {SCHEMA_DIR_ENV: os.pathsep.join(dirs), ADDED_SCHEMAS_ENV: str(added_schemas_dir())}


# -- message versions --------------------------------------------------------------------------------

def saved_versions() -> list[str]:
    """The message ids `mxflow schemas versions --set` saved (none when there is no setting)."""
    try:
        document = json.loads(settings_path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise ValueError(f"{settings_path()} cannot be read: {exc}") from None
    versions = document.get("messageVersions", []) if isinstance(document, dict) else None
    if not isinstance(versions, list) or not all(isinstance(v, str) for v in versions):
        raise ValueError(f"{settings_path()}: messageVersions is not a list of message ids")
    return versions


def save_versions(message_ids: list[str]) -> None:
    path = settings_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    document["messageVersions"] = message_ids
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def configured_versions(parameter_overrides: dict | None = None) -> tuple[MessageVersions, dict[str, str]]:
    """The versions to generate and, for each message id, where its setting came from
    ("default", "local setting", the environment variable, or the template parameter).
    ValueError for a version mxflow does not build."""
    versions = CBPR_PLUS_VERSIONS
    origin = {m: "CBPR+ default" for m in versions.message_ids()}

    def apply(message_id: str, where: str) -> None:
        nonlocal versions
        before = set(versions.message_ids())
        versions = versions.with_version(message_id)
        for m in set(versions.message_ids()) - before:
            origin[m] = where

    for message_id in saved_versions():
        apply(message_id, f"local setting ({settings_path()})")
    for _name, variable, parameter, _supported in MessageVersions.SETTINGS:
        if os.environ.get(variable):
            apply(os.environ[variable], f"environment {variable}")
    for _name, _variable, parameter, _supported in MessageVersions.SETTINGS:
        if (parameter_overrides or {}).get(parameter):
            apply(parameter_overrides[parameter], f"parameter {parameter}")
    return versions, {m: origin.get(m, "CBPR+ default") for m in versions.message_ids()}


def version_parameters(versions: MessageVersions) -> dict[str, str]:
    """The template parameters that make the functions generate `versions`."""
    return {parameter: getattr(versions, name) for name, _v, parameter, _s in MessageVersions.SETTINGS}


def missing_versions_note(versions: MessageVersions, registry: SchemaRegistry) -> str | None:
    """A warning naming each configured version with no installed schema, and how to fix it; None when
    every one has a schema."""
    missing = versions.missing(registry)
    if not missing:
        return None
    try:
        alternative, _changes = versions.installed(registry)
        fixes = " ".join(m for m in alternative.message_ids() if m not in versions.message_ids())
    except ValueError:
        fixes = ""
    note = (f"no schema is installed for the configured version(s) {', '.join(missing)}: generating them "
            f"fails the step (error SchemaNotInstalled) until the schema is added (mxflow schemas add PATH)")
    if fixes:
        note += f" or a version with a schema is chosen (mxflow schemas versions --set {fixes})"
    return note
