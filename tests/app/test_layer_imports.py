"""The lifecycle is pure domain: neither it nor any module it imports, directly or not, imports boto3
or botocore. Checked on the modules' import statements (their syntax trees), then in a fresh
interpreter (what importing the lifecycle actually loads)."""
from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys

AWS_LIBRARIES = ("boto3", "botocore")


def imported_modules(module: str) -> set[str]:
    """The absolute names of the modules `module`'s import statements name (relative ones resolved)."""
    spec = importlib.util.find_spec(module)
    tree = ast.parse(open(spec.origin, encoding="utf-8").read(), filename=spec.origin)
    package = module if spec.submodule_search_locations else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) \
                if node.level else node.module
            found.add(base)
            # `from package import module` names a submodule
            found |= {f"{base}.{alias.name}" for alias in node.names
                      if importlib.util.find_spec(base).submodule_search_locations is not None
                      and importlib.util.find_spec(f"{base}.{alias.name}") is not None}
    return found


def mxflow_imports_of(module: str) -> dict[str, set[str]]:
    """Every mxflow module reachable from `module` through imports, with what each imports."""
    seen: dict[str, set[str]] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen[name] = imported_modules(name)
        todo.extend(m for m in seen[name] if m == "mxflow" or m.startswith("mxflow."))
    return seen


def test_the_lifecycle_imports_no_aws_library_directly_or_through_mxflow():
    graph = mxflow_imports_of("mxflow.lifecycle")
    assert {"mxflow.errors", "mxflow.ports", "mxflow.iso20022"} <= set(graph)  # the walk does reach them
    offenders = {module: sorted(m for m in imports if m.split(".")[0] in AWS_LIBRARIES)
                 for module, imports in graph.items()}
    assert {module: found for module, found in offenders.items() if found} == {}


def test_importing_the_lifecycle_loads_no_aws_library():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, mxflow.lifecycle; "
                               "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))"],
        capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    assert loaded == "[]"


def test_the_adapters_are_where_boto3_is():
    assert "boto3" in imported_modules("mxflow.aws.clients")
