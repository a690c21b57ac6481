"""`mxflow schemas list|add|remove|versions`: the XSDs every local command and the layer use.

- `list [--json] [--schema-dir DIR]`: every schema in use, by message id: its source (a schema directory,
  an add, or built-in package@version) and sha256; then the message versions mxflow generates and
  whether each has a schema.
- `add PATH`: a folder of XSDs or a zip (the ISO 20022 catalogue's download, a MyStandards export) into
  the state directory ($MXFLOW_STATE_DIR, default ~/.mxflow). Every .xsd is checked
  (mxflow.iso20022.schema_sets.check_schema_file); one bad file refuses the whole add, naming the file and
  the reason, and nothing is written.
- `remove ID`: the schemas of one add (its id, as `list` shows it) or one added message id.
- `versions [--set MESSAGE_ID ...] [--reset]`: the message versions to generate (the local setting).

Exit status as for `mxflow validate`: 0 done, 1 refused (bad schema files, nothing to remove), 2 usage
error (no such path, an unknown version).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .main import UsageError, help_without_subcommand


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("schemas", help="the ISO 20022 XSDs in use: list, add, remove, versions",
                                   description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="schemas_command", metavar="SUBCOMMAND")

    listing = sub.add_parser("list", help="every schema in use, its source and sha256")
    listing.add_argument("--json", action="store_true", help="one JSON document")
    listing.add_argument("--schema-dir", action="append", default=[], metavar="DIR",
                         help="a schema directory searched first, as for validate (repeatable)")
    listing.set_defaults(func=run_list)

    add = sub.add_parser("add", help="add a folder of XSDs or a zip (all or nothing)",
                         description="Check every .xsd of a folder or a zip and add them all, or none, to the "
                         "state directory that validate, local up, the demo and sam build read.")
    add.add_argument("path", metavar="PATH", help="a folder of .xsd files or a .zip")
    add.set_defaults(func=run_add)

    remove = sub.add_parser("remove", help="remove an add (its id) or one added message id")
    remove.add_argument("ident", metavar="ID", help="an add id or a message id, as `mxflow schemas list` shows")
    remove.set_defaults(func=run_remove)

    versions = sub.add_parser("versions", help="the message versions mxflow generates (local setting)",
                              description="Show, set or reset the pacs.002, camt.029 and head.001 versions the "
                              "local runtime generates (the local setting; the environment and template "
                              "parameters take precedence).")
    versions.add_argument("--set", nargs="+", metavar="MESSAGE_ID", default=None,
                          help="e.g. camt.029.001.14 (one per family; the others keep their setting)")
    versions.add_argument("--reset", action="store_true", help="back to CBPR+'s defaults")
    versions.add_argument("--json", action="store_true", help="one JSON document")
    versions.set_defaults(func=run_versions)

    parser.set_defaults(func=help_without_subcommand(parser))


def _registry(args):
    from mxflow_cli.local_schemas import local_registry

    for directory in getattr(args, "schema_dir", []):
        if not Path(directory).is_dir():
            raise UsageError(f"--schema-dir {directory}: not a directory")
    return local_registry(getattr(args, "schema_dir", []))


def _versions_report(registry) -> tuple[list[dict], str | None]:
    from mxflow_cli.local_schemas import configured_versions, missing_versions_note

    try:
        versions, origin = configured_versions()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    rows = []
    for message_id in versions.message_ids():
        entry = registry.entry_for(message_id)
        rows.append({"messageId": message_id, "setBy": origin[message_id],
                     "schema": entry.label if entry else None})
    return rows, missing_versions_note(versions, registry)


def run_list(args) -> int:
    registry = _registry(args)
    entries = registry.entries()
    # sam build puts the added and built-in schemas into the layer; schema directories stay here
    rows = [{"messageId": e.message_id, "kind": e.kind, "source": e.source, "sha256": e.sha256 or _sha256(e.path),
             "file": str(e.path), "inLayer": e.kind != "dir"} for e in entries]
    versions, note = _versions_report(registry)
    problems = [{"file": name, "reason": reason} for name, reason in registry.problems]
    if args.json:
        print(json.dumps({"schemas": rows, "generatedVersions": versions, "problems": problems}, indent=1))
        return 0
    width = max([len(r["messageId"]) for r in rows] + [10])
    source_width = max([len(f"{r['kind']} {r['source']}") for r in rows] + [6])
    for row in rows:
        print(f"{row['messageId']:<{width}}  {row['kind'] + ' ' + row['source']:<{source_width}}  {row['sha256']}")
    kinds = {}
    for row in rows:
        kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
    print(f"{len(rows)} schemas ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})")
    if kinds.get("dir"):
        print("  (sam build puts the added and built-in schemas into the layer; schema directories stay on this "
              "machine: add them with `mxflow schemas add DIR` to deploy them)")
    print("generated message versions:")
    for row in versions:
        print(f"  {row['messageId']:<{width}}  {('schema: ' + row['schema']) if row['schema'] else 'NO SCHEMA'}"
              f"  (set by {row['setBy']})")
    for problem in problems:
        print(f"unreadable: {problem['file']}: {problem['reason']}", file=sys.stderr)
    if note:
        print(f"mxflow: warning: {note}", file=sys.stderr)
    return 0


def _sha256(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def run_add(args) -> int:
    from mxflow.iso20022.schema_sets import AddedSchemas, SchemasRefused
    from mxflow_local.state import added_schemas_dir

    source = Path(args.path)
    if not source.exists():
        raise UsageError(f"{source}: no such folder or zip file")
    if not (source.is_dir() or source.is_file()):
        raise UsageError(f"{source}: not a folder or a file")
    store = AddedSchemas(added_schemas_dir())
    try:
        result = store.add(source)
    except SchemasRefused as refused:
        for name, reason in refused.problems:
            print(f"mxflow: refused: {name}: {reason}", file=sys.stderr)
        print(f"mxflow: nothing was added ({len(refused.problems)} problem(s) in {source})", file=sys.stderr)
        return 1
    except ValueError as exc:  # the state's index cannot be read
        print(f"mxflow: error: {exc}", file=sys.stderr)
        return 1
    for record in result.added:
        print(f"added {record['messageId']}  from {record['name']}  sha256 {record['sha256']}")
    for record in result.replaced:
        print(f"  (replaces {record['messageId']} of add {record['addId']})")
    for record in result.unchanged:
        print(f"unchanged {record['messageId']} (already added by {record['addId']})")
    print(f"add {result.add_id}: {len(result.added)} schema(s) added, {len(result.unchanged)} unchanged, "
          f"in {store.directory}; `mxflow schemas remove {result.add_id}` undoes it")
    return 0


def run_remove(args) -> int:
    from mxflow.iso20022.schema_sets import AddedSchemas
    from mxflow_local.state import added_schemas_dir

    store = AddedSchemas(added_schemas_dir())
    try:
        gone = store.remove(args.ident)
    except KeyError:
        print(f"mxflow: nothing removed: no add or added message id {args.ident!r} "
              f"(see `mxflow schemas list`)", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"mxflow: error: {exc}", file=sys.stderr)
        return 1
    for record in gone:
        print(f"removed {record['messageId']} (add {record['addId']})")
    return 0


def run_versions(args) -> int:
    from mxflow.iso20022 import CBPR_PLUS_VERSIONS
    from mxflow_cli.local_schemas import save_versions, saved_versions

    if args.set and args.reset:
        raise UsageError("--set and --reset exclude each other")
    if args.reset:
        save_versions([])
    elif args.set:
        try:
            current = saved_versions()
            versions = CBPR_PLUS_VERSIONS
            for message_id in [*current, *args.set]:
                versions = versions.with_version(message_id)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        chosen = {m[:8]: m for m in [*current, *args.set]}
        save_versions(sorted(chosen.values()))
    registry = _registry(args)
    rows, note = _versions_report(registry)
    if args.json:
        print(json.dumps({"generatedVersions": rows}, indent=1))
    else:
        for row in rows:
            print(f"{row['messageId']:<16} {('schema: ' + row['schema']) if row['schema'] else 'NO SCHEMA'}"
                  f"  (set by {row['setBy']})")
    if note:
        print(f"mxflow: warning: {note}", file=sys.stderr)
    return 0
