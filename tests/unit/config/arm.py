"""A symbolic reader of ARM template expressions, for checking deploy/keyvault/aci-template.json
offline (no Azure, and the official JSON schema is not available here).

`evaluate("[resourceId('A.B/x', parameters('n'))]")` gives `A.B/x/<n>`: parameters stay symbolic
(`<name>`), variables are expanded, resource ids are written the way Azure writes their paths
(type segments interleaved with names), so a `dependsOn` entry and the resource it names come out
as the same string. Functions the checks do not need to see through become `name(args)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>-?\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<punct>[(),.\[\]]))"
)


def interleave(resource_type: str, names: list[str]) -> str:
    """`Microsoft.X/a/b` + [n1, n2] -> `Microsoft.X/a/n1/b/n2` (the path of a resource id)."""
    namespace, *kinds = resource_type.split("/")
    parts = [namespace]
    for kind, name in zip(kinds, names, strict=True):
        parts += [kind, name]
    return "/".join(parts)


@dataclass
class Evaluator:
    variables: dict[str, Any]
    parameter_values: dict[str, Any] = field(default_factory=dict)  # a nested template's inputs
    used_parameters: set[str] = field(default_factory=set)
    used_variables: set[str] = field(default_factory=set)
    resource_ids: set[str] = field(default_factory=set)  # every resourceId(...) the template names

    def evaluate(self, value: Any) -> Any:
        if isinstance(value, str) and value.startswith("[") and not value.startswith("[["):
            tokens = [m for m in _TOKEN.finditer(value[1:-1]) if m.group(0).strip()]
            result, end = self._expression(tokens, 0)
            assert end == len(tokens), f"unparsed rest in {value}"
            return result
        if isinstance(value, dict):
            return {self.evaluate(k): self.evaluate(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.evaluate(v) for v in value]
        return value

    def _expression(self, tokens: list[re.Match[str]], at: int) -> tuple[Any, int]:
        token = tokens[at]
        if token.group("string") is not None:
            value: Any = token.group("string")[1:-1].replace("''", "'")
            at += 1
        elif token.group("number") is not None:
            value, at = int(token.group("number")), at + 1
        else:
            name = token.group("name")
            assert name and tokens[at + 1].group("punct") == "(", f"not a call at {name}"
            args, at = self._arguments(tokens, at + 2)
            value = self._call(name, args)
        while at < len(tokens) and tokens[at].group("punct") == ".":  # property access
            value, at = f"{value}.{tokens[at + 1].group('name')}", at + 2
        return value, at

    def _arguments(self, tokens: list[re.Match[str]], at: int) -> tuple[list[Any], int]:
        args: list[Any] = []
        while tokens[at].group("punct") != ")":
            value, at = self._expression(tokens, at)
            args.append(value)
            if tokens[at].group("punct") == ",":
                at += 1
        return args, at + 1

    def _call(self, name: str, args: list[Any]) -> Any:
        calls: dict[str, Callable[..., Any]] = {
            "parameters": self._parameter,
            "variables": self._variable,
            "format": lambda text, *a: re.sub(r"\{(\d+)\}", lambda m: str(a[int(m.group(1))]), text),
            "concat": lambda *a: (
                [x for part in a for x in part] if a and isinstance(a[0], list) else "".join(map(str, a))
            ),
            "createArray": lambda *a: list(a),
            "createObject": lambda *a: dict(zip(a[::2], a[1::2], strict=True)),
            "if": lambda condition, yes, no: {"if": condition, "then": yes, "else": no},
            "resourceId": self._resource_id_used,
            "subscriptionResourceId": lambda kind, *names: interleave(kind, list(names)),
            "extensionResourceId": lambda scope, kind, *names: f"{scope}/providers/{interleave(kind, list(names))}",
        }
        if name in calls:
            return calls[name](*args)
        return f"{name}({', '.join(map(str, args))})"

    def _parameter(self, name: str) -> str:
        self.used_parameters.add(name)
        return self.parameter_values.get(name, f"<{name}>")

    def _variable(self, name: str) -> Any:
        self.used_variables.add(name)
        assert name in self.variables, f"variables('{name}') is not declared"
        return self.evaluate(self.variables[name])

    def _resource_id_used(self, *args: str) -> str:
        found = self._resource_id(*args)
        self.resource_ids.add(found)
        return found

    @staticmethod
    def _resource_id(*args: str) -> str:
        if "/" not in args[0]:  # resourceId(resourceGroup, type, names...)
            return f"rg:{args[0]}/{interleave(args[1], list(args[2:]))}"
        return interleave(args[0], list(args[1:]))


def resource_path(resource: dict[str, Any], evaluator: Evaluator) -> str:
    """The path a template resource is known by: its type and name, under its scope or group."""
    name = str(evaluator.evaluate(resource["name"]))
    kinds = resource["type"].count("/")
    path = interleave(resource["type"], name.split("/", kinds - 1))  # a guid(...) name may hold slashes
    if "scope" in resource:
        return f"{evaluator.evaluate(resource['scope'])}/providers/{path}"
    if "resourceGroup" in resource:
        return f"rg:{evaluator.evaluate(resource['resourceGroup'])}/{path}"
    return path
