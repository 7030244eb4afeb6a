"""Pydantic's validation errors, told as a person needs them: field, line, expectation.

One problem per field (a union's alternatives folded), the line of the key in
the document, "expected ..., got ..." in plain words, and for an unknown key
a did-you-mean from the model that refused it.
"""

from __future__ import annotations

import difflib

from pydantic import ValidationError

from dlm_gen import yamlsrc
from dlm_gen.errors import Problem
from dlm_gen.schema import (
    FORMAT_VERSIONS,
    PER_ADAPTER_FIELDS,
    Frontmatter,
    NamedAdapterSettings,
    TrainingConfig,
)


def problems_from_validation(
    file: str, front: yamlsrc.SourcedYaml, exc: ValidationError
) -> list[Problem]:
    """Turn pydantic's errors into one problem per field, with line and expectation."""
    grouped: dict[tuple[str | int, ...], list[dict]] = {}
    for error in exc.errors(include_url=False):
        path = _data_path(front.value, error["loc"])
        grouped.setdefault(path, []).append(error)
    # A union like "auto" | list: once the value is a list, "expected 'auto'" is noise.
    grouped = {
        path: errors
        for path, errors in grouped.items()
        if not (
            all(e["type"] == "literal_error" for e in errors)
            and any(len(other) > len(path) and other[: len(path)] == path for other in grouped)
        )
    }
    problems = []
    for path, errors in grouped.items():
        field = ".".join(str(p) for p in path) or None
        line = front.line_of(path)
        if errors[0]["type"] == "extra_forbidden":
            message = _unknown_key_message(path)
        elif errors[0]["type"] == "missing":
            message = "required field is missing"
        elif errors[0]["type"] == "value_error":  # our own validators say what to do
            message = _expectation(errors[0])
        elif path == ("dlm_version",) and errors[0]["type"] == "less_than_equal":
            low, high = FORMAT_VERSIONS
            message = (
                f"{errors[0].get('input')} is newer than the format versions "
                f"dlm-gen reads ({low}..{high}): upgrade dlm-gen, or write the document for "
                f"version {high}"
            )
        else:
            got = errors[0].get("input")
            expected = " or ".join(dict.fromkeys(_expectation(e) for e in errors))
            message = f"expected {expected}, got {got!r}"
        problems.append(Problem(file, line, field, message))
    return sorted(problems, key=lambda p: (p.line or 0, p.field or ""))


def _expectation(error: dict) -> str:
    message = error["msg"]
    for prefix in ("Value error, ", "Input should be ", "String should "):
        message = message.removeprefix(prefix)
    return message


def _data_path(data: object, loc: tuple) -> tuple[str | int, ...]:
    """Keep the parts of a pydantic location that index the data (drop union tags)."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if _has(node, part):
            path.append(part)
            node = node[part]
        elif (
            isinstance(node, dict)
            and isinstance(part, str)
            and not part.startswith(("literal[", "list[", "dict[", "function-", "["))
        ):
            path.append(part)  # a missing field, named in the error
            node = None
    return tuple(path)


def _has(node: object, part: object) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _unknown_key_message(path: tuple[str | int, ...]) -> str:
    key = str(path[-1])
    parent = path[:-1]
    if parent == ():
        known = list(Frontmatter.model_fields)
    elif parent == ("training",):
        known = list(TrainingConfig.model_fields)
    elif len(parent) == 3 and parent[:2] == ("training", "adapters"):
        known = list(NamedAdapterSettings.model_fields)
        if key in TrainingConfig.model_fields:
            return (
                f"unknown key '{key}' in an adapter block: only {', '.join(PER_ADAPTER_FIELDS)} "
                f"may differ per adapter; set {key} under training"
            )
    else:
        known = []
    message = f"unknown key '{key}'"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        message += f"; did you mean '{close[0]}'?"
    elif known:
        message += f"; expected one of: {', '.join(known)}"
    return message
