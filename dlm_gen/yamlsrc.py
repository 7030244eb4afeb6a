"""YAML with source positions, and without PyYAML's silent surprises.

PyYAML keeps the last of two duplicate keys, expands alias bombs until memory
runs out and loses line numbers once it has built Python objects. This loader
composes the node tree itself and builds plain values from it, so that it can:

* refuse duplicate keys and non-string keys, naming both lines;
* stop after a fixed budget of nodes (an alias bomb fails in milliseconds),
  and refuse an alias inside the value it names (`x: &a [*a]`);
* refuse numbers no plan can use: infinities, NaN (`.inf`, `1e309`) and
  integers too long for Python to read;
* return, with the value, a map from each key path to the line it is on;
* read `2e-4` as a float (YAML 1.1 wants `2.0e-4`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import yaml

from dlm_gen.errors import DlmError, Problem

Path = tuple[str | int, ...]
# Collections are built here, not by PyYAML, so their tags are checked here too.
PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_STR_TAG = "tag:yaml.org,2002:str"

# A node budget far above any real document or rule table.
DEFAULT_NODE_BUDGET = 20_000


# libyaml's parser when PyYAML was built with it: ~10x faster to compose.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """SafeLoader that also reads exponent floats without a dot (`2e-4`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass
class SourcedYaml:
    """A YAML value plus the 1-based line of every mapping key and list item."""

    value: object
    lines: dict[Path, int] = field(default_factory=dict)
    first_line: int = 1

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), self.first_line)


class _Builder:
    def __init__(self, loader: _Loader, file: str, line_offset: int, budget: int) -> None:
        self.loader = loader
        self.file = file
        self.line_offset = line_offset
        self.budget = budget
        self.lines: dict[Path, int] = {}
        self.open_nodes: set[int] = set()  # collections being built: an alias to one loops

    def line(self, node: yaml.Node) -> int:
        return node.start_mark.line + 1 + self.line_offset

    def build(self, node: yaml.Node, path: Path) -> object:
        self.budget -= 1
        if self.budget < 0:
            raise DlmError.one(
                self.file,
                self.line(node),
                None,
                "YAML is too large or expands an alias bomb "
                f"(more than {DEFAULT_NODE_BUDGET} values after expanding aliases)",
            )
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in PLAIN_TAGS:
            raise DlmError.one(
                self.file,
                self.line(node),
                _dotted(path),
                f"YAML tag {node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed: "
                "only plain mappings, lists and scalars",
            )
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in self.open_nodes:
                raise DlmError.one(
                    self.file,
                    self.line(node),
                    _dotted(path),
                    "YAML alias refers to a value that contains it (the value would be "
                    "infinitely deep)",
                )
            self.open_nodes.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self.build_mapping(node, path)
                items = []
                for index, item in enumerate(node.value):
                    self.lines.setdefault((*path, index), self.line(item))
                    items.append(self.build(item, (*path, index)))
                return items
            finally:
                self.open_nodes.discard(id(node))
        return self.scalar(node, path)

    def scalar(self, node: yaml.Node, path: Path) -> object:
        try:
            if node.tag == _STR_TAG:  # most scalars: skip PyYAML's dispatch
                value = node.value
            else:
                value = self.loader.construct_object(node, deep=True)
        except ValueError:  # Python refuses to read integers of more than 4300 digits
            raise DlmError.one(
                self.file, self.line(node), _dotted(path), "number has far too many digits"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise DlmError.one(
                self.file,
                self.line(node),
                _dotted(path),
                f"expected a finite number, got {str(node.value)[:40]!r} "
                "(quote it if you meant text)",
            )
        return value

    def build_mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, object]:
        self.loader.flatten_mapping(node)  # resolves `<<` merge keys
        result: dict[str, object] = {}
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, path) if isinstance(key_node, yaml.ScalarNode) else None
            key_line = self.line(key_node)
            if not isinstance(key, str):
                raise DlmError.one(
                    self.file, key_line, _dotted(path), f"keys must be strings, got {key!r}"
                )
            if key in seen:
                raise DlmError.one(
                    self.file,
                    key_line,
                    _dotted((*path, key)),
                    f"duplicate key (first set on line {seen[key]}); YAML would silently "
                    "keep only the last one, so remove one of them",
                )
            seen[key] = key_line
            self.lines[(*path, key)] = key_line
            result[key] = self.build(value_node, (*path, key))
        return result


def _dotted(path: Path) -> str | None:
    return ".".join(str(p) for p in path) or None


def load(text: str, file: str, line_offset: int = 0, budget: int = DEFAULT_NODE_BUDGET):
    """Parse one YAML document from `text`; `line_offset` is added to every line."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = None if mark is None else mark.line + 1 + line_offset
            problem = exc.problem or exc.context or "not valid YAML"
            raise DlmError([Problem(file, line, None, f"malformed YAML: {problem}")]) from None
        except yaml.YAMLError as exc:
            raise DlmError.one(file, None, None, f"malformed YAML: {exc}") from None
        if node is None:
            return SourcedYaml(None, {}, line_offset + 1)
        builder = _Builder(loader, file, line_offset, budget)
        try:
            value = builder.build(node, ())
        except yaml.constructor.ConstructorError as exc:
            mark = exc.problem_mark
            line = None if mark is None else mark.line + 1 + line_offset
            raise DlmError.one(file, line, None, f"malformed YAML: {exc.problem}") from None
        builder.lines.setdefault((), builder.line(node))
        return SourcedYaml(value, builder.lines, builder.line(node))
    finally:
        loader.dispose()
