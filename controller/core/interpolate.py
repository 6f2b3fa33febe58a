"""`${VAR}` interpolation of a document's spec, and the rule that secrets are references, never literals.

Syntax (as in compose files): `${VAR}`, `${VAR:-default}` (default when unset or empty), `${VAR-default}` (default
when unset), `$$` for a literal `$`. Only the `spec` of a document is interpolated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.core.secrets import Secret
from controller.core.spec import is_secret_key

Path = tuple[str | int, ...]

_TOKEN = re.compile(
    r"\$\$"  # escaped dollar
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
    r"|(?P<bad>\$\{[^}]*\}?|\$[A-Za-z_])"
)
_PURE_REF = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem at a path inside one document; never carries the offending value."""

    path: Path
    message: str


@dataclass(frozen=True, slots=True)
class Interpolated:
    value: str
    names: tuple[str, ...]  # every variable referenced
    missing: tuple[str, ...]
    malformed: str | None = None


def interpolate(text: str, variables: Mapping[str, str]) -> Interpolated:
    names: list[str] = []
    missing: list[str] = []
    malformed: str | None = None

    def substitute(m: re.Match[str]) -> str:
        nonlocal malformed
        if m.group(0) == "$$":
            return "$"
        if m.group("bad") is not None:
            malformed = m.group("bad")
            return ""
        name = m.group("name")
        names.append(name)
        value = variables.get(name)
        op = m.group("op")
        if op == ":-" and not value:
            return m.group("default")
        if op == "-" and value is None:
            return m.group("default")
        if value is None:
            missing.append(name)
            return ""
        return value

    out = _TOKEN.sub(substitute, text)
    return Interpolated(out, tuple(names), tuple(dict.fromkeys(missing)), malformed)


@dataclass(frozen=True)
class Secrets:
    """What makes a value secret besides its own key: variables used under a secret key anywhere in the desired state
    (`POSTGRES_PASSWORD: ${DB_PASS}` makes DB_PASS secret wherever else it is used), and the values themselves (a
    value that embeds one of them is secret, whatever the variable it came through)."""

    variables: frozenset[str] = frozenset()
    values: frozenset[str] = frozenset()

    def embedded_in(self, text: str) -> bool:
        return any(len(v) >= 4 and v in text for v in self.values)


# Keys named like secrets whose value is a file's path, not the secret itself (a Host's client key).
FILE_REFERENCES = frozenset({("spec", "tls", "key")})


def secret_references(spec: Any) -> set[str]:
    """The variables a document's spec references as the value of a secret key (`KEY: ${VAR}`)."""
    found: set[str] = set()
    if isinstance(spec, dict):
        for k, v in spec.items():
            if is_secret_key(str(k)) and isinstance(v, str) and (m := _PURE_REF.match(v)):
                found.add(m.group("name"))
            found |= secret_references(v)
    elif isinstance(spec, list):
        for item in spec:
            found |= secret_references(item)
    return found


def resolve_spec(spec: Any, variables: Mapping[str, str], secrets: Secrets | None = None) -> tuple[Any, list[Issue]]:
    """Interpolate every string below a document's `spec`, turning secret values into `Secret`.

    Returns the resolved data and the issues (missing variables, literal secrets, malformed references). The
    data is still returned on issues, with the broken values left out, so validation can report more.
    """
    issues: list[Issue] = []
    resolved = _walk(spec, ("spec",), None, variables, issues, secrets or Secrets())
    return resolved, issues


def _walk(
    node: Any, path: Path, key: str | None, variables: Mapping[str, str], issues: list[Issue], secrets: Secrets
) -> Any:
    if isinstance(node, dict):
        return {k: _walk(v, (*path, k), str(k), variables, issues, secrets) for k, v in node.items()}
    if isinstance(node, list):
        out = []
        for i, item in enumerate(node):
            value = _walk(item, (*path, i), None, variables, issues, secrets)
            if isinstance(value, Secret):
                issues.append(
                    Issue(
                        (*path, i),
                        "a secret may not stand in a list such as a command line "
                        "(it would show in the process list): pass it through env",
                    )
                )
                continue
            out.append(value)
        return out
    secret_key = key is not None and is_secret_key(key) and path not in FILE_REFERENCES
    if secret_key:
        return _secret(node, path, key or "", variables, issues)
    if isinstance(node, bool) and len(path) >= 2 and path[1] == "env":
        issues.append(Issue(path, "env values are strings: quote true/false/yes/no"))
        return None
    if isinstance(node, int | float) and not isinstance(node, bool) and len(path) >= 2 and path[1] == "env":
        return str(node)
    if not isinstance(node, str):
        return node
    result = interpolate(node, variables)
    if result.malformed is not None:
        issues.append(Issue(path, "malformed variable reference: write ${VAR}, ${VAR:-default}, or $$ for a literal $"))
        return None
    for name in result.missing:
        issues.append(Issue(path, f"{name} is not set"))
    if result.missing:
        return None
    if any(is_secret_key(n) or n in secrets.variables for n in result.names) or secrets.embedded_in(result.value):
        return Secret(result.value, ref=node)
    return result.value


def _secret(node: Any, path: Path, key: str, variables: Mapping[str, str], issues: list[Issue]) -> Any:
    if node is None:
        return None
    literal = f"{key} is a secret: write it as a ${{VAR}} reference, never a literal value"
    if not isinstance(node, str):
        issues.append(Issue(path, literal))
        return None
    m = _PURE_REF.match(node)
    if m is None:
        if _TOKEN.search(node) and "${" in node:
            issues.append(
                Issue(
                    path,
                    f"{key} is a secret: it must be exactly one ${{VAR}} reference, "
                    "with no literal text or default around it",
                )
            )
        else:
            issues.append(Issue(path, literal))
        return None
    name = m.group("name")
    value = variables.get(name)
    if value is None:
        issues.append(Issue(path, f"{name} is not set"))
        return None
    if value == "":
        issues.append(Issue(path, f"{name} is set but empty: a secret needs a value"))
        return None
    return Secret(value, ref=node)
