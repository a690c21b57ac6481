"""`python -m mxflow.iso20022 [--site SITE] [--added DIR]`: assemble the built-in ISO 20022 schema set.

What the root Makefile's venv step and the layer build (layers/mxflow/Makefile) run after installing the
wheels of layers/mxflow/schema-wheels.txt: every XSD checked (schema_sets.assemble_builtin), the set
written to SITE/mxflow-schemas/builtin.json; with --added, an added set (`mxflow schemas add`) copied
beside it. Exit 0, or 1 with the reason when the set cannot be assembled as pinned.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .schema_sets import ADDED_DIR, AddedSchemas, AssemblyError, write_builtin_manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mxflow.iso20022",
        description="Assemble the built-in ISO 20022 schema set from the wheels installed in SITE and write "
                    "SITE/mxflow-schemas/builtin.json; with --added, copy an added set beside it (the layer).")
    parser.add_argument("--site", help="the site directory holding the wheels (default: this interpreter's)")
    parser.add_argument("--added", help="a directory of added schemas (mxflow schemas add) to copy into "
                                        "SITE/mxflow-schemas/added")
    args = parser.parse_args(argv)
    try:
        path, manifest = write_builtin_manifest(Path(args.site).resolve() if args.site else None)
    except AssemblyError as exc:
        print(f"mxflow schemas: the built-in set cannot be assembled: {exc}", file=sys.stderr)
        return 1
    print(f"mxflow schemas: built-in set of {len(manifest['schemas'])} official XSDs "
          f"({len(manifest['refused'])} files refused, {len(manifest['skipped'])} skipped) -> {path}")
    if args.added:
        target = path.parent / ADDED_DIR
        try:
            copied = AddedSchemas(args.added).copy_to(target)
        except (OSError, ValueError) as exc:
            print(f"mxflow schemas: the added schemas in {args.added} cannot be copied: {exc}", file=sys.stderr)
            return 1
        print(f"mxflow schemas: {len(copied)} added schema(s) from {args.added} -> {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
