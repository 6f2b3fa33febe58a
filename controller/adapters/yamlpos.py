"""YAML documents as plain data plus the line and column of every key and item, for precise error messages.

PyYAML's composer gives each node a mark; we build the data ourselves from the nodes so that every path gets a
position, duplicate keys are errors (YAML forbids them; PyYAML would silently keep the last), and recursive or
exploding aliases are refused instead of hanging.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

Path = tuple[str | int, ...]
MAX_NODES = 100_000
MAX_DEPTH = 64  # nesting deeper than this is not a desired state
_CORE = "tag:yaml.org,2002:"
# the YAML core schema: nothing else is constructed (no binary, set, omap, pairs, custom or python tags)
CORE_TAGS = frozenset(_CORE + t for t in ("null", "bool", "int", "float", "str", "seq", "map", "merge"))
TIMESTAMP = _CORE + "timestamp"  # YAML 1.1 resolves 2024-01-01 to a date; the core schema reads it as a string
# libyaml's parser is about ten times faster than PyYAML's pure-Python one and gives the same marks.
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True, slots=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(slots=True)
class ParsedDocument:
    data: Any
    start: Position
    positions: dict[Path, Position] = field(default_factory=dict)
    problems: list[tuple[Path, str, Position | None]] = field(default_factory=list)

    def locate(self, path: Path) -> Position:
        """The position of `path`, or of its nearest ancestor that exists."""
        for n in range(len(path), -1, -1):
            pos = self.positions.get(path[:n])
            if pos is not None:
                return pos
        return self.start


class YamlSyntaxError(Exception):
    def __init__(self, position: Position, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


def _pos(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, doc: ParsedDocument) -> None:
        self.doc = doc
        self.constructor = SafeConstructor()
        self.count = 0
        self.stack: set[int] = set()

    def scalar(self, node: ScalarNode) -> Any:
        """A scalar of the core schema; a value its tag cannot read (`!!bool maybe`) is a located error."""
        if node.tag == TIMESTAMP:
            return node.value
        if node.tag not in CORE_TAGS:
            raise YamlSyntaxError(_pos(node), f"YAML tag {node.tag!r} is not allowed: only the core schema")
        try:
            return self.constructor.construct_object(node, deep=True)
        except (KeyError, ValueError, TypeError, OverflowError):
            short = node.tag.removeprefix(_CORE)
            raise YamlSyntaxError(_pos(node), f"this value cannot be read as !!{short}") from None

    def build(self, node: Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise YamlSyntaxError(_pos(node), f"document too large (more than {MAX_NODES} nodes after aliases)")
        if len(path) > MAX_DEPTH:
            raise YamlSyntaxError(_pos(node), f"nested deeper than {MAX_DEPTH} levels")
        if id(node) in self.stack:
            raise YamlSyntaxError(_pos(node), "recursive alias")
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if node.tag not in CORE_TAGS:
            raise YamlSyntaxError(_pos(node), f"YAML tag {node.tag!r} is not allowed: only the core schema")
        self.stack.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                out_list = []
                for i, item in enumerate(node.value):
                    self.doc.positions.setdefault((*path, i), _pos(item))
                    out_list.append(self.build(item, (*path, i)))
                return out_list
            if isinstance(node, MappingNode):
                self.constructor.flatten_mapping(node)
                out: dict[str, Any] = {}
                for key_node, value_node in node.value:
                    if not isinstance(key_node, ScalarNode):
                        self.doc.problems.append((path, "a key must be a plain scalar", _pos(key_node)))
                        continue
                    key_value = self.scalar(key_node)
                    key = key_value if isinstance(key_value, str) else str(key_value)
                    if key in out:
                        first = self.doc.positions[(*path, key)].line
                        self.doc.problems.append(
                            ((*path, key), f"duplicate key {key!r} (first on line {first})", _pos(key_node))
                        )
                        continue
                    self.doc.positions[(*path, key)] = _pos(key_node)
                    out[key] = self.build(value_node, (*path, key))
                return out
        finally:
            self.stack.discard(id(node))
        raise YamlSyntaxError(_pos(node), f"unsupported node {type(node).__name__}")


def parse(text: str) -> list[ParsedDocument]:
    """Every document of a YAML stream, empty documents left out. Raises YamlSyntaxError with a position."""
    docs: list[ParsedDocument] = []
    loader: Any = None
    try:
        loader = Loader(text)  # the pure-Python reader checks every character here already
        while loader.check_node():
            node = loader.get_node()
            if node is None or (isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
                continue
            doc = ParsedDocument(data=None, start=_pos(node))
            doc.positions[()] = doc.start
            doc.data = _Builder(doc).build(node, ())
            docs.append(doc)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)
        message = " ".join(str(p) for p in (e.context, e.problem) if p)
        raise YamlSyntaxError(where, f"YAML syntax: {message}") from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        column = e.position - (text.rfind("\n", 0, e.position) + 1) + 1
        raise YamlSyntaxError(Position(line, column), f"YAML: unacceptable character #x{e.character:04x}") from None
    except yaml.YAMLError as e:
        raise YamlSyntaxError(Position(1, 1), f"YAML: {type(e).__name__}") from None
    except RecursionError:
        raise YamlSyntaxError(Position(1, 1), "YAML nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return docs
