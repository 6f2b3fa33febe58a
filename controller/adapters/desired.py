"""Reads a desired-state directory into `spec.Loaded`: every error of the run, each at its file, line and field.

One broken document never stops the others: it is held back (not reconciled, never orphaned or pruned) and reported.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from controller.adapters import envfile, yamlpos
from controller.core import checks, interpolate, monitoring, spec
from controller.core.diagnostics import Diagnostic, field_path
from controller.core.errors import DesiredStateError

DEFAULT_ENV_FILE = ".workspace/.env"
SUFFIXES = (".yaml", ".yml")

R = TypeVar("R", spec.DatabaseInstance, spec.Network, spec.Volume, spec.Consumer, spec.Host)


@dataclass(frozen=True)
class Limits:
    """How much a desired state may be: beyond these, a file is a located error (and held back), never read on."""

    file_bytes: int = 1 << 20  # one file: 1 MiB
    total_bytes: int = 32 << 20  # every file of the directory together: 32 MiB
    documents: int = 10_000  # documents in the whole directory

    @classmethod
    def raised(cls, file_bytes: int | None, total_bytes: int | None) -> Limits:
        """The defaults, with what the command line raised (`--max-file-bytes`, `--max-total-bytes`)."""
        default = cls()
        return cls(file_bytes or default.file_bytes, total_bytes or default.total_bytes, default.documents)


@dataclass
class _Budget:
    limits: Limits
    bytes: int = 0
    documents: int = 0


_UNION_TAGS = ("function-", "str", "is-")  # pydantic's names for union members in error locations
_FRIENDLY = {
    "extra_forbidden": "unknown field",
    "missing": "required field is missing",
}


@dataclass
class _Doc:
    file: str
    parsed: yamlpos.ParsedDocument
    kind: str | None
    name: str | None
    resource: spec.Resource | None = None


def find_files(directory: Path) -> list[Path]:
    """Every *.yaml / *.yml below `directory`, recursively, hidden files and folders skipped, in a stable order."""
    out: list[Path] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(Path(root, f) for f in sorted(files) if f.endswith(SUFFIXES) and not f.startswith("."))
    return out


def load_variables(
    env_file: Path | None, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[Diagnostic], str | None]:
    """Variables from the env file first, then the environment. `env_file=None` means the default, if present."""
    variables, problems, used, _ = _variables(env_file, environ)
    return variables, problems, used


def _variables(
    env_file: Path | None, environ: Mapping[str, str] | None
) -> tuple[dict[str, str], list[Diagnostic], str | None, dict[str, str]]:
    """As load_variables, and the env file's own variables (whose secret-named values are secrets by value)."""
    explicit = env_file is not None
    path = env_file if env_file is not None else Path(DEFAULT_ENV_FILE)
    variables = dict(os.environ if environ is None else environ)
    if not path.exists():
        if explicit:
            raise DesiredStateError(f"env file {path} does not exist")
        return variables, [], None, {}
    try:
        from_file, problems = envfile.read(path)
    except (OSError, UnicodeDecodeError) as e:
        raise DesiredStateError(f"env file {path} cannot be read: {type(e).__name__}") from None
    variables.update(from_file)
    return variables, problems, str(path), from_file


def load(
    directory: Path,
    env_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    display: Path | None = None,
    limits: Limits | None = None,
) -> spec.Loaded:
    """`display`: the directory to name in messages, when `directory` is a copy (a commit exported from git)."""
    if not directory.is_dir():
        raise DesiredStateError(f"desired-state directory {directory} does not exist (use --dir)")
    variables, diagnostics, used_env, from_file = _variables(env_file, environ)
    files = find_files(directory)
    parsed: list[tuple[str, list[yamlpos.ParsedDocument]]] = []
    unreadable: list[str] = []
    budget = _Budget(limits or Limits())
    roots = _roots(directory)
    for path in files:
        got = _parse_file(path, diagnostics, budget, roots)
        if got is None:
            unreadable.append(str(path))
        else:
            parsed.append((str(path), got))
    docs, secret_values = _validate_all(parsed, variables, from_file, diagnostics)
    state, sources = _assemble(docs, diagnostics, unreadable)
    state = replace(state, exporters=monitoring.exporters(state, variables))
    if display is not None:
        old, new = str(directory), str(display)
        diagnostics = [replace(d, file=new + d.file[len(old) :]) if d.file.startswith(old) else d for d in diagnostics]
        files = [Path(new + str(f)[len(old) :]) for f in files]
    diagnostics.sort(key=lambda d: (d.file, d.line, d.column, d.severity))
    files_read = tuple(str(f) for f in files)
    return spec.Loaded(state, tuple(diagnostics), files_read, sources, used_env, frozenset(secret_values))


def load_text(text: str, file: str = "<text>", variables: Mapping[str, str] | None = None) -> spec.Loaded:
    """Load one file's text (tests and tools); the same rules as a directory of one file, the variables taken as
    if they came from the env file."""
    diagnostics: list[Diagnostic] = []
    values = dict(variables or {})
    parsed = _parse_text(text, file, diagnostics)
    docs, secret_values = _validate_all([(file, parsed or [])], values, values, diagnostics)
    state, sources = _assemble(docs, diagnostics, [] if parsed is not None else [file])
    state = replace(state, exporters=monitoring.exporters(state, {**os.environ, **values}))  # as load's variables
    diagnostics.sort(key=lambda d: (d.file, d.line, d.column, d.severity))
    return spec.Loaded(state, tuple(diagnostics), (file,), sources, None, frozenset(secret_values))


def _validate_all(
    parsed: list[tuple[str, list[yamlpos.ParsedDocument]]],
    variables: Mapping[str, str],
    from_file: Mapping[str, str],
    diagnostics: list[Diagnostic],
) -> tuple[list[_Doc], set[str]]:
    """Every parsed document validated, knowing first what is secret across the whole desired state: the variables
    used under a secret key anywhere, and (by value) those and every secret-named variable of the env file."""
    refs: set[str] = set()
    for _, docs in parsed:
        for doc in docs:
            if isinstance(doc.data, dict) and "spec" in doc.data:
                refs |= interpolate.secret_references(doc.data["spec"])
    values = {v for k, v in from_file.items() if v and spec.is_secret_key(k)}
    values |= {variables[n] for n in refs if variables.get(n)}
    secrets = interpolate.Secrets(frozenset(refs), frozenset(values))
    out = []
    for file, docs in parsed:
        for doc in docs:
            d = _validate(doc, file, variables, diagnostics, secrets)
            if d is not None:
                out.append(d)
    return out, values


def _roots(directory: Path) -> tuple[Path, ...]:
    """Where a symlink may point: inside the desired-state directory, or inside the git repository holding it."""
    top = directory.resolve()
    roots = [top]
    for parent in (top, *top.parents):
        if (parent / ".git").exists():
            roots.append(parent)
            break
    return tuple(roots)


def _refusal(path: Path, budget: _Budget, roots: tuple[Path, ...]) -> str | None:
    """Why a file is not read at all, before it is opened: not a regular file (a FIFO would block, a device flood), a
    symlink out of the repository, or over a size limit."""
    limits = budget.limits
    try:
        if path.is_symlink():
            target = path.resolve(strict=True)
            if not any(target == r or r in target.parents for r in roots):
                return "a symlink to a file outside the desired-state directory and its repository: not read"
        st = path.stat()
    except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
        return f"cannot be read: {getattr(e, 'strerror', None) or type(e).__name__}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file (a device, a FIFO or a socket): not read"
    if st.st_size > limits.file_bytes:
        return f"{st.st_size} bytes, more than the {limits.file_bytes} a file may have (--max-file-bytes)"
    if budget.bytes + st.st_size > limits.total_bytes:
        return f"the desired state would pass {limits.total_bytes} bytes with this file (--max-total-bytes)"
    return None


def _parse_file(
    path: Path, diagnostics: list[Diagnostic], budget: _Budget, roots: tuple[Path, ...]
) -> list[yamlpos.ParsedDocument] | None:
    """The documents of one file, or None when the file could not be read or parsed at all."""
    file = str(path)
    refused = _refusal(path, budget, roots)
    if refused is not None:
        diagnostics.append(Diagnostic(file, 1, 1, refused))
        return None
    try:
        with path.open("rb") as f:
            raw = f.read(budget.limits.file_bytes + 1)
    except OSError as e:
        diagnostics.append(Diagnostic(file, 1, 1, f"cannot be read: {e.strerror or type(e).__name__}"))
        return None
    if len(raw) > budget.limits.file_bytes:
        diagnostics.append(Diagnostic(file, 1, 1, "grew past the size limit while it was read"))
        return None
    budget.bytes += len(raw)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        column = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
        diagnostics.append(Diagnostic(file, line, column, "not valid UTF-8 text"))
        return None
    return _parse_text(text, file, diagnostics, budget)


def _parse_text(
    text: str, file: str, diagnostics: list[Diagnostic], budget: _Budget | None = None
) -> list[yamlpos.ParsedDocument] | None:
    try:
        parsed = yamlpos.parse(text)
    except yamlpos.YamlSyntaxError as e:
        diagnostics.append(Diagnostic(file, e.position.line, e.position.column, e.message))
        return None
    if budget is not None:
        budget.documents += len(parsed)
        if budget.documents > budget.limits.documents:
            limit = budget.limits.documents
            diagnostics.append(Diagnostic(file, 1, 1, f"more than {limit} documents in the desired state: not read"))
            return None
    if not parsed:
        diagnostics.append(Diagnostic(file, 1, 1, "empty file: no document (delete it, or declare a resource)"))
    return parsed


def _validate(
    doc: yamlpos.ParsedDocument,
    file: str,
    variables: Mapping[str, str],
    diagnostics: list[Diagnostic],
    secrets: interpolate.Secrets,
) -> _Doc | None:
    data = doc.data
    if not isinstance(data, dict):
        found = type(data).__name__ if data is not None else "nothing"
        diagnostics.append(
            Diagnostic(
                file,
                doc.start.line,
                doc.start.column,
                f"a document must be a mapping (apiVersion, kind, metadata, spec), not {found}",
            )
        )
        return None
    kind = data.get("kind") if isinstance(data.get("kind"), str) else None
    meta = data.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) and isinstance(meta.get("name"), str) else None
    d = _Doc(file, doc, kind, name)

    def report(path: tuple[str | int, ...], message: str, at: yamlpos.Position | None = None) -> None:
        pos = at or doc.locate(path)
        diagnostics.append(Diagnostic(file, pos.line, pos.column, message, kind, name, field_path(path) or None))

    for path, message, at in doc.problems:
        report(path, message, at)
    model = spec.KINDS.get(kind or "")
    if model is None:
        if "kind" not in data:
            report(("kind",), f"required field is missing: one of {', '.join(spec.KINDS)}")
        else:
            report(("kind",), f"unknown kind: use one of {', '.join(spec.KINDS)}")
        return d
    resolved = dict(data)
    issues: list[interpolate.Issue] = []
    if "spec" in data:
        resolved["spec"], issues = interpolate.resolve_spec(data["spec"], variables, secrets)
    for issue in issues:
        report(issue.path, issue.message)
    try:
        resource = model.model_validate(resolved)
    except ValidationError as e:
        seen: set[tuple[str | int, ...]] = set()
        for err in e.errors(include_url=False, include_input=False, include_context=False):
            path = _data_path(data, err["loc"])
            if path in seen or any(i.path == path for i in issues):
                continue  # a union reports once per member; an interpolation issue already explains it
            seen.add(path)
            report(path, _FRIENDLY.get(err["type"], err["msg"].removeprefix("Value error, ")))
        return d
    if issues or doc.problems:
        return d
    d.resource = resource
    return d


def _data_path(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The part of a pydantic error location that names real places in the data (union member tags dropped)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if in_dict or in_list:
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and not part.startswith(_UNION_TAGS):
            out.append(part)  # a missing or unknown key: name it, it is what the user must add or remove
            break
        else:
            break
        out.append(part)
    return tuple(out)


def _assemble(
    docs: list[_Doc], diagnostics: list[Diagnostic], unreadable: list[str]
) -> tuple[spec.DesiredState, dict[tuple[str, str], spec.SourceLocation]]:
    broken: set[tuple[str, str]] = set()
    broken_containers: set[str] = set()
    sources: dict[tuple[str, str], spec.SourceLocation] = {}
    good: list[_Doc] = []
    for d in docs:
        if d.kind and d.name:
            sources.setdefault((d.kind, d.name), spec.SourceLocation(d.file, d.parsed.start.line))
        if d.resource is None:
            _hold_back(d, broken, broken_containers)
            continue
        if isinstance(d.resource, spec.DatabaseInstance):
            problems = checks.check_instance(d.resource)
            _report(d, problems, diagnostics)
            if any(p.severity == "error" for p in problems):
                _hold_back(d, broken, broken_containers)
                continue
        good.append(d)
    # Cross-resource checks until nothing more is held back: holding one back can leave another dangling.
    while True:
        by_kind: dict[str, list[_Doc]] = {k: [d for d in good if d.kind == k] for k in spec.KINDS}
        problems = checks.check_all(
            _resources(good, spec.DatabaseInstance),
            _resources(good, spec.Network),
            _resources(good, spec.Volume),
            _resources(good, spec.Consumer),
            broken,
            unreadable,
            _resources(good, spec.Host),
        )
        failing = {id(by_kind[p.kind][p.index]) for p in problems if p.severity == "error"}
        if not failing:
            for p in problems:
                _report(by_kind[p.kind][p.index], [p], diagnostics)
            break
        for p in problems:
            doc = by_kind[p.kind][p.index]
            if id(doc) in failing and p.severity == "error":
                _report(doc, [p], diagnostics)
        for d in [d for d in good if id(d) in failing]:
            _hold_back(d, broken, broken_containers)
        good = [d for d in good if id(d) not in failing]
    state = spec.DesiredState(
        instances=tuple(d.resource for d in good if isinstance(d.resource, spec.DatabaseInstance)),
        networks=tuple(d.resource for d in good if isinstance(d.resource, spec.Network)),
        volumes=tuple(d.resource for d in good if isinstance(d.resource, spec.Volume)),
        consumers=tuple(d.resource for d in good if isinstance(d.resource, spec.Consumer)),
        hosts=tuple(d.resource for d in good if isinstance(d.resource, spec.Host)),
        held_back=frozenset(broken),
        held_back_containers=frozenset(broken_containers),
        complete=not any(d.severity == "error" for d in diagnostics),
        unreadable_files=tuple(unreadable),
    )
    return state, sources


def _resources(docs: list[_Doc], cls: type[R]) -> list[R]:
    """The resources of one kind, in the order of `docs` (a problem's index counts among them)."""
    return [d.resource for d in docs if isinstance(d.resource, cls)]


def _hold_back(d: _Doc, broken: set[tuple[str, str]], containers: set[str]) -> None:
    if d.kind and d.name:
        broken.add((d.kind, d.name))
    data = d.parsed.data
    s = data.get("spec") if isinstance(data, dict) else None
    if isinstance(s, dict) and isinstance(s.get("containerName"), str):
        containers.add(s["containerName"])
    elif d.kind == spec.Kind.DATABASE_INSTANCE and d.name:
        containers.add(d.name)


def _report(d: _Doc, problems: list[checks.Problem], diagnostics: list[Diagnostic]) -> None:
    for p in problems:
        pos = d.parsed.locate(p.path)
        diagnostics.append(
            Diagnostic(d.file, pos.line, pos.column, p.message, p.kind, p.name, field_path(p.path) or None, p.severity)
        )
