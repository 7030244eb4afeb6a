"""YAML with source positions, and without PyYAML's silent surprises.

PyYAML keeps the last of two duplicate keys, expands alias bombs until memory
runs out and loses line numbers once it has built Python objects. This loader
composes the node tree itself and builds plain values from it, so that it can:

* refuse duplicate keys and non-string keys, naming both lines;
* stop after a fixed budget of nodes (an alias bomb fails in milliseconds),
  and refuse an alias inside the value it names (`x: &a [*a]`). The values are
  counted in PyYAML's events before its composer builds a node of them, so a
  16 MiB `x: [a,a,...]` is refused after the budget's worth of events, not
  after a node tree of gigabytes;
* refuse numbers no plan can use: infinities, NaN (`.inf`, `1e309`) and
  integers too long for Python to read;
* return, with the value, a map from each key path to the line it is on;
* read `2e-4` as a float (YAML 1.1 wants `2.0e-4`);
* never read a number or a boolean silently where YAML 1.1 (PyYAML, and so
  the `dlm` tool) and YAML 1.2 disagree: `010` (octal 8, or 10), `190:20:30`
  (base 60), `1_000`, `yes`/`no`/`on`/`off` are refused with their line and
  how to write them, and so are numbers in another base (`0x20`, `0o10`,
  `0b11`): a reviewer reads a document's numbers in decimal. A date stays the
  text it is (YAML 1.2), and scalar tags other than the plain ones are refused.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import yaml

from dlm_gen.errors import DlmError, Problem
from dlm_gen.shown import clipped

Path = tuple[str | int, ...]
# Collections are built here, not by PyYAML, so their tags are checked here too.
PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_TAG = "tag:yaml.org,2002:"
_STR_TAG = _TAG + "str"
_INT_TAG, _FLOAT_TAG, _BOOL_TAG = _TAG + "int", _TAG + "float", _TAG + "bool"
_TIMESTAMP_TAG = _TAG + "timestamp"
# The scalars a document or table may hold (others: `!!binary`, `=`, local tags).
SCALAR_TAGS = (_STR_TAG, _INT_TAG, _FLOAT_TAG, _BOOL_TAG, _TAG + "null", _TIMESTAMP_TAG)
# YAML 1.2's core schema spells booleans only so; YAML 1.1 adds yes/no/on/off.
_BOOLEANS_12 = ("true", "True", "TRUE", "false", "False", "FALSE")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9_]+")
_NUMBER_STARTS = ("0", "-", "+")  # how a plain text that YAML 1.2 reads as a number begins
_RADIX = re.compile(r"[-+]?0(?P<letter>[xXoObB])[0-9a-fA-F_]*")
_RADIX_NAMES = {"x": "hexadecimal", "o": "octal", "b": "binary"}
# How much of a refused scalar a message shows (and at most how long one whose
# YAML 1.1 value is worked out for it: base 60 costs quadratic time in its length).
_SHOWN_CHARS = 40

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


_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
_END_EVENTS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _too_large(budget: int) -> str:
    return (
        "YAML is too large or expands an alias bomb "
        f"(more than {budget} values after expanding aliases)"
    )


def _count_values(text: str, file: str, line_offset: int, budget: int) -> None:
    """Refuse, from the parser's events alone, YAML of more values than `budget`.

    Counts what `_Builder.build` would count before aliases expand: the root, each
    list item and each mapping value (not the keys); an alias costs nothing here
    and is counted as it expands. Each event is dropped once counted, so memory
    stays flat whatever the text holds."""
    events = _Loader(text)
    try:
        left = budget
        # Per open collection: None for a list, else whether a mapping's next node is a key.
        open_collections: list[bool | None] = []
        while events.check_event():
            event = events.get_event()
            if isinstance(event, _END_EVENTS):
                open_collections.pop()
                continue
            if not isinstance(event, (*_NODE_EVENTS, yaml.AliasEvent)):
                continue
            is_key = False
            if open_collections and open_collections[-1] is not None:
                is_key = open_collections[-1]
                open_collections[-1] = not is_key
            if isinstance(event, yaml.SequenceStartEvent):
                open_collections.append(None)
            elif isinstance(event, yaml.MappingStartEvent):
                open_collections.append(True)
            if is_key or isinstance(event, yaml.AliasEvent):
                continue
            left -= 1
            if left < 0:
                line = event.start_mark.line + 1 + line_offset
                raise DlmError.one(file, line, None, _too_large(budget))
    finally:
        events.dispose()


class _Builder:
    def __init__(self, loader: _Loader, file: str, line_offset: int, budget: int) -> None:
        self.loader = loader
        self.file = file
        self.line_offset = line_offset
        self.budget = self.initial_budget = budget
        self.lines: dict[Path, int] = {}
        self.open_nodes: set[int] = set()  # collections being built: an alias to one loops

    def line(self, node: yaml.Node) -> int:
        return node.start_mark.line + 1 + self.line_offset

    def build(self, node: yaml.Node, path: Path) -> object:
        self.budget -= 1
        if self.budget < 0:
            raise DlmError.one(self.file, self.line(node), None, _too_large(self.initial_budget))
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
        problem = self.ambiguity(node)
        if problem is not None:
            raise DlmError.one(self.file, self.line(node), _dotted(path), problem)
        try:
            if node.tag in (_STR_TAG, _TIMESTAMP_TAG):  # most scalars: skip PyYAML's dispatch
                value = node.value  # a date is the text it is, as YAML 1.2 reads it
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

    def ambiguity(self, node: yaml.Node) -> str | None:
        """Why this scalar is refused, or None: a tag that is not a plain scalar's, or a
        spelling that YAML 1.1 and 1.2 read differently (or a number not in decimal)."""
        tag, text = node.tag, str(node.value)
        if tag == _STR_TAG:  # most scalars: quoted, or plain text that is no number
            if node.style or text[:1] not in _NUMBER_STARTS:  # style: None or "" if plain
                return None
        elif tag not in SCALAR_TAGS:
            return f"YAML tag {tag.replace(_TAG, '!!')} is not allowed: only plain scalars"
        shown = repr(clipped(text, _SHOWN_CHARS))
        radix = _RADIX.fullmatch(text)
        if radix:
            name = _RADIX_NAMES[radix["letter"].lower()]
            return f"{shown} is {name} notation: write the number in decimal{_decimal(text)}"
        if _LEADING_ZERO.fullmatch(text):  # also a plain `08`: a number to YAML 1.2 only
            return _leading_zero(text, shown)
        if tag in (_INT_TAG, _FLOAT_TAG) and (":" in text or "_" in text):
            value = self.value_11(node) if len(text) <= _SHOWN_CHARS else None
            what = "a base-60 number" if ":" in text else "a number with underscores"
            write = f"write {value}" if value is not None else "write it in plain decimal"
            return (
                f"{shown} is {what} to YAML 1.1 and text to YAML 1.2: {write}, "
                "or quote it if you meant text"
            )
        if tag == _BOOL_TAG and text not in _BOOLEANS_12:
            truth = "true" if text.lower() in ("yes", "on", "y") else "false"
            return (
                f"{shown} is {truth} to YAML 1.1 and text to YAML 1.2: write true or false, "
                "or quote it if you meant text"
            )
        return None

    def value_11(self, node: yaml.ScalarNode) -> object:
        """What YAML 1.1 (PyYAML) reads a short scalar as, or None when it cannot."""
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, yaml.YAMLError):
            return None

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


def _decimal(text: str) -> str:
    """` (N)`: a short `0x`/`0o`/`0b` number in decimal; empty when too long to show."""
    digits = text.replace("_", "")
    if len(digits) > _SHOWN_CHARS:
        return ""
    try:
        return f" ({int(digits, 0)})"
    except ValueError:  # `0x`, or digits its base does not have (`0b12`)
        return ""


def _leading_zero(text: str, shown: str) -> str:
    """The message for `010`: octal 8 to YAML 1.1, decimal 10 to YAML 1.2 (`08`: text
    to YAML 1.1); the reader must say which it meant."""
    digits = text.replace("_", "")
    unsigned = digits.lstrip("+-")
    if len(unsigned) > _SHOWN_CHARS:
        return f"{shown} has a leading zero: write the number without it"
    sign = "-" if digits.startswith("-") else ""
    decimal = f"{sign}{int(unsigned)}"
    if set(unsigned) <= set("01234567"):
        octal = f"{sign}{int(unsigned, 8)}"
        if octal == decimal:  # `00`
            return f"{shown} has a leading zero: write {decimal}"
        return (
            f"{shown} is octal {octal} to YAML 1.1 and {decimal} to YAML 1.2: write {octal} "
            f"or {decimal} without the leading zero, or quote it if you meant text"
        )
    return (
        f"{shown} is text to YAML 1.1 and {decimal} to YAML 1.2: write {decimal} without "
        "the leading zero, or quote it if you meant text"
    )


def _dotted(path: Path) -> str | None:
    return ".".join(str(p) for p in path) or None


def load(text: str, file: str, line_offset: int = 0, budget: int = DEFAULT_NODE_BUDGET):
    """Parse one YAML document from `text`; `line_offset` is added to every line."""
    loader = _Loader(text)
    try:
        try:
            _count_values(text, file, line_offset, budget)
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
