"""Loading a SAM template the way CloudFormation would see it, for the embedded local runtime.

- `load_yaml` reads YAML with CloudFormation's short tags (`!Ref`, `!GetAtt A.B`, `!Sub`, ...) turned into
  their long form (`{"Ref": ...}`, `{"Fn::GetAtt": [...]}`), as `sam` and CloudFormation do.
- `load_template` expands the SAM transform with aws-sam-translator (the library `sam deploy` relies on).
  Local paths (`CodeUri`, `ContentUri`, `DefinitionUri`) are swapped for S3 markers before the translation
  (the translator only accepts S3 locations, as after `sam package`) and mapped back afterwards.
- `Resolver` evaluates the intrinsic functions of the expanded template: Ref, Fn::GetAtt, Fn::Sub, Fn::Join,
  Fn::Select, Fn::Split, Fn::If, Fn::FindInMap, Fn::Base64, Fn::GetAZs, Fn::ToJsonString, Fn::Length, the
  condition functions, and AWS::NoValue. Resource references are answered by a callback, so resources
  are resolved in dependency order (`creation_order`).
"""
from __future__ import annotations

import base64
import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

CODE_MARKER_BUCKET = "mxflow-local-code"
_LOCAL_URI_PROPERTIES = {
    "AWS::Serverless::Function": "CodeUri",
    "AWS::Serverless::LayerVersion": "ContentUri",
    "AWS::Serverless::StateMachine": "DefinitionUri",
    "AWS::Serverless::Api": "DefinitionUri",
}
PSEUDO_PARAMETERS = ("AWS::Region", "AWS::AccountId", "AWS::Partition", "AWS::StackName", "AWS::StackId",
                     "AWS::URLSuffix", "AWS::NoValue", "AWS::NotificationARNs")


class TemplateError(Exception):
    """The template cannot be loaded or resolved; the message says where and why."""


class _NoValue:
    """AWS::NoValue: the property that holds it is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader plus CloudFormation short-form tags."""


def _construct_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)
# CloudFormation reads YAML 1.1 timestamps as strings (e.g. Version: 2012-10-17)
_CfnLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in _CfnLoader.yaml_implicit_resolvers.items()
}


def load_document(path: str | Path, what: str = "template") -> Any:
    """Read a YAML or JSON document (a template, an OpenAPI definition) with CloudFormation's
    short-form tags as long-form dicts."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        # _CfnLoader is a yaml.SafeLoader subclass that only adds CloudFormation's tags: no Python objects.
        return yaml.load(text, Loader=_CfnLoader)  # noqa: S506  # nosec B506 # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path} is not valid YAML: {exc}") from None


def load_yaml(path: str | Path) -> dict:
    """Read a CloudFormation/SAM template (YAML or JSON) with its short-form tags as long-form dicts."""
    document = load_document(path)
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{path} has no Resources section")
    return document


@dataclass
class LoadedTemplate:
    path: Path
    sam: dict                      # the template as written (tags as long-form dicts)
    cfn: dict                      # after the SAM transform
    parameters: dict[str, Any]     # every parameter's value (defaults + overrides), pseudo parameters included
    local_paths: dict[str, Path] = field(default_factory=dict)  # marker key (SAM logical id) -> local dir/file

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def local_path_of(self, location: Any) -> Path | None:
        """The local path a translated S3 location stands for (Code / Content / DefinitionS3Location)."""
        if not isinstance(location, dict):
            return None
        bucket = location.get("S3Bucket", location.get("Bucket"))
        key = location.get("S3Key", location.get("Key"))
        if bucket == CODE_MARKER_BUCKET:
            return self.local_paths.get(key)
        return None


def _parameter_values(sam: dict, overrides: dict[str, str], pseudo: dict[str, str],
                      defaults: dict[str, str] | None = None) -> dict[str, Any]:
    """The parameters' values: an override, else a caller's default for a parameter the template declares
    (`defaults`; ignored for one it does not), else the template's Default."""
    defaults = defaults or {}
    declared = sam.get("Parameters") or {}
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"unknown template parameter(s): {', '.join(unknown)}; declared: {', '.join(sorted(declared)) or 'none'}")
    values: dict[str, Any] = dict(pseudo)
    for name, spec in declared.items():
        spec = spec or {}
        if name in overrides:
            value = str(overrides[name])
        elif name in defaults:
            value = str(defaults[name])
        elif "Default" in spec:
            value = spec["Default"]
            value = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        else:
            raise TemplateError(f"parameter {name} has no Default: give it with --parameter-overrides {name}=VALUE")
        allowed = spec.get("AllowedValues")
        if allowed and value not in [str(a) for a in allowed]:
            raise TemplateError(f"parameter {name}={value!r} is not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern and not re.fullmatch(pattern, value):
            raise TemplateError(f"parameter {name}={value!r} does not match AllowedPattern {pattern}")
        kind = spec.get("Type", "String")
        if kind == "Number":
            try:
                float(value)
            except ValueError:
                raise TemplateError(f"parameter {name}={value!r} is not a Number") from None
        if kind == "CommaDelimitedList" or kind.startswith("List<"):
            values[name] = [part.strip() for part in value.split(",")] if value else []
        else:
            values[name] = value
    return values


def load_template(path: str | Path, *, parameter_overrides: dict[str, str] | None = None, region: str,
                  account_id: str, stack_name: str, parameter_defaults: dict[str, str] | None = None) -> LoadedTemplate:
    """Load and expand a SAM template; raises TemplateError with the translator's messages.

    parameter_defaults: values used in place of the template's Default for the parameters it declares
    (an override still wins; a name the template does not declare is ignored)."""
    path = Path(path).resolve()
    sam = load_yaml(path)
    pseudo = {
        "AWS::Region": region, "AWS::AccountId": account_id, "AWS::StackName": stack_name,
        "AWS::Partition": partition_of(region), "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackId": f"arn:{partition_of(region)}:cloudformation:{region}:{account_id}:stack/{stack_name}/00000000-0000-4000-8000-000000000000",
        "AWS::NotificationARNs": [],
    }
    parameters = _parameter_values(sam, parameter_overrides or {}, pseudo, parameter_defaults)
    to_translate = copy.deepcopy(sam)
    local_paths: dict[str, Path] = {}
    for logical_id, resource in (to_translate.get("Resources") or {}).items():
        prop = _LOCAL_URI_PROPERTIES.get((resource or {}).get("Type"))
        props = (resource or {}).get("Properties") or {}
        if prop and isinstance(props.get(prop), str) and not props[prop].startswith("s3://"):
            local_paths[logical_id] = (path.parent / props[prop]).resolve()
            props[prop] = f"s3://{CODE_MARKER_BUCKET}/{logical_id}"
    if "Transform" in to_translate:
        cfn = _translate(to_translate, parameters, region)
    else:
        cfn = to_translate
    return LoadedTemplate(path=path, sam=sam, cfn=cfn, parameters=parameters, local_paths=local_paths)


def _translate(template: dict, parameters: dict[str, Any], region: str) -> dict:
    import boto3
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.model.exceptions import InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    import logging

    # SAM's feature toggles have no config offline; their "not available" warnings are noise here
    logging.getLogger("samtranslator.feature_toggle.feature_toggle").setLevel(logging.ERROR)
    session = boto3.session.Session(region_name=region, aws_access_key_id="local", aws_secret_access_key="local")
    values = {k: v for k, v in parameters.items() if not k.startswith("AWS::")}
    metrics = Metrics(metrics_publisher=DummyMetricsPublisher())
    try:
        return Translator(managed_policy_map=None, sam_parser=Parser(), boto_session=session,
                          metrics=metrics).translate(template, parameter_values=values, feature_toggle=None)
    except InvalidDocumentException as exc:
        messages = "; ".join(str(cause) for cause in exc.causes)
        raise TemplateError(f"SAM transform failed: {messages}") from None
    finally:
        metrics.publish()


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


# ---------------------------------------------------------------------------------------------------------
# intrinsic functions

_SUB_PATTERN = re.compile(r"\$\{([^}]+)\}")


def references_of(value: Any) -> set[str]:
    """Logical ids referred to by Ref / Fn::GetAtt / Fn::Sub inside a value (parameters included)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                target = arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
                found.add(target)
            elif key == "Fn::Sub":
                text = arg[0] if isinstance(arg, list) else arg
                local = set(arg[1]) if isinstance(arg, list) and len(arg) > 1 and isinstance(arg[1], dict) else set()
                for name in _SUB_PATTERN.findall(text if isinstance(text, str) else ""):
                    if not name.startswith("!"):
                        head = name.split(".", 1)[0]
                        if head not in local:
                            found.add(head)
        for item in value.values():
            found |= references_of(item)
    elif isinstance(value, list):
        for item in value:
            found |= references_of(item)
    return found


def _dependencies(resources: dict[str, dict]) -> dict[str, set[str]]:
    """Logical id -> the resources it refers to (Ref, GetAtt, Sub) or names in DependsOn."""
    deps: dict[str, set[str]] = {}
    for logical_id, resource in resources.items():
        refs = references_of(resource.get("Properties") or {}) & set(resources)
        depends_on = resource.get("DependsOn") or []
        refs |= set([depends_on] if isinstance(depends_on, str) else depends_on) & set(resources)
        refs.discard(logical_id)
        deps[logical_id] = refs
    return deps


def with_dependencies(resources: dict[str, dict], wanted) -> set[str]:
    """The resources `wanted` names and every resource they refer to, directly or not."""
    deps = _dependencies(resources)
    found: set[str] = set()
    todo = list(wanted)
    while todo:
        logical_id = todo.pop()
        if logical_id not in resources:
            raise TemplateError(f"no resource {logical_id} in the template")
        if logical_id not in found:
            found.add(logical_id)
            todo.extend(deps[logical_id])
    return found


def creation_order(resources: dict[str, dict]) -> list[str]:
    """Logical ids in an order where every resource comes after those it refers to."""
    deps = _dependencies(resources)
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: tuple[str, ...]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise TemplateError(f"circular dependency between resources: {' -> '.join(trail + (node,))}")
        state[node] = 1
        for dep in sorted(deps[node]):
            visit(dep, trail + (node,))
        state[node] = 2
        order.append(node)

    for logical_id in resources:
        visit(logical_id, ())
    return order


class Resolver:
    """Evaluates intrinsic functions against parameters, conditions, mappings and created resources."""

    def __init__(self, template: dict, parameters: dict[str, Any],
                 resource_ref: Callable[[str], Any], resource_attr: Callable[[str, str], Any]):
        self.template = template
        self.parameters = parameters
        self._resource_ref = resource_ref
        self._resource_attr = resource_attr
        self._conditions: dict[str, bool] = {}

    # conditions
    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            definitions = self.template.get("Conditions") or {}
            if name not in definitions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self.resolve(definitions[name]))
        return self._conditions[name]

    def resource_enabled(self, resource: dict) -> bool:
        name = resource.get("Condition")
        return True if name is None else self.condition(name)

    # values
    def ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.parameters:
            return self.parameters[name]
        if name in (self.template.get("Resources") or {}):
            return self._resource_ref(name)
        raise TemplateError(f"Ref to unknown name {name}")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            items = [self.resolve(item) for item in value]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            handler = _INTRINSICS.get(key)
            if handler is not None:
                return handler(self, arg)
        resolved = {}
        for key, item in value.items():
            item = self.resolve(item)
            if item is not NO_VALUE:
                resolved[key] = item
        return resolved

    def sub(self, arg: Any) -> str:
        if isinstance(arg, list):
            text, variables = arg[0], {k: self.resolve(v) for k, v in (arg[1] if len(arg) > 1 else {}).items()}
        else:
            text, variables = arg, {}

        def replace(match: re.Match) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name and name.split(".", 1)[0] not in self.parameters and not name.startswith("AWS::"):
                target, attribute = name.split(".", 1)
                value = self._resource_attr(target, attribute)
            else:
                value = self.ref(name)
            return ",".join(map(str, value)) if isinstance(value, list) else str(value)

        return _SUB_PATTERN.sub(replace, text)


def _fn_getatt(resolver: Resolver, arg: Any) -> Any:
    if isinstance(arg, str):
        arg = arg.split(".", 1)
    target, attribute = arg[0], resolver.resolve(arg[1])
    return resolver._resource_attr(target, attribute)


def _fn_if(resolver: Resolver, arg: list) -> Any:
    name, when_true, when_false = arg
    return resolver.resolve(when_true if resolver.condition(name) else when_false)


def _fn_find_in_map(resolver: Resolver, arg: list) -> Any:
    map_name, top, second = (resolver.resolve(part) for part in arg[:3])
    try:
        return (resolver.template.get("Mappings") or {})[map_name][top][second]
    except KeyError:
        raise TemplateError(f"Fn::FindInMap: no {map_name}/{top}/{second}") from None


def _fn_select(resolver: Resolver, arg: list) -> Any:
    index, items = resolver.resolve(arg[0]), resolver.resolve(arg[1])
    return items[int(index)]


def _fn_equals(resolver: Resolver, arg: list) -> bool:
    left, right = (resolver.resolve(part) for part in arg)
    return str(left) == str(right)


_INTRINSICS: dict[str, Callable[[Resolver, Any], Any]] = {
    "Ref": lambda r, arg: r.ref(r.resolve(arg)),
    "Fn::GetAtt": _fn_getatt,
    "Fn::Sub": lambda r, arg: r.sub(arg),
    "Fn::Join": lambda r, arg: str(r.resolve(arg[0])).join(str(item) for item in r.resolve(arg[1])),
    "Fn::Select": _fn_select,
    "Fn::Split": lambda r, arg: str(r.resolve(arg[1])).split(r.resolve(arg[0])),
    "Fn::If": _fn_if,
    "Fn::FindInMap": _fn_find_in_map,
    "Fn::Base64": lambda r, arg: base64.b64encode(str(r.resolve(arg)).encode()).decode(),
    "Fn::GetAZs": lambda r, arg: [f"{r.resolve(arg) or r.parameters['AWS::Region']}{s}" for s in "abc"],
    "Fn::ToJsonString": lambda r, arg: json.dumps(r.resolve(arg), separators=(",", ":")),
    "Fn::Length": lambda r, arg: len(r.resolve(arg)),
    "Fn::Equals": _fn_equals,
    "Fn::And": lambda r, arg: all(r.resolve(part) for part in arg),
    "Fn::Or": lambda r, arg: any(r.resolve(part) for part in arg),
    "Fn::Not": lambda r, arg: not r.resolve(arg[0]),
    "Condition": lambda r, arg: r.condition(arg),
    "Fn::ImportValue": lambda r, arg: (_ for _ in ()).throw(
        TemplateError("Fn::ImportValue needs another stack's exports; the local runtime runs one stack")),
}
