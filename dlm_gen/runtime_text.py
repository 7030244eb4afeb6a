"""The runtime as a generated script carries it: the package's modules, verbatim.

A script holds `dlm_gen.runtime` whole, so that it runs without dlm-gen: the
`main` module's function right after the plan, then, below one marker line that
names dlm-gen's version and the runtime's SHA-256, every other module's code in
the package's order (`dlm_gen.runtime.MODULES`). Each module's own text is
copied from its first statement after the imports to its end; the imports are
merged into the script's one import block (the standard library only: the
training stack is imported inside functions), and the imports between runtime
modules are dropped, since the script is one namespace.

`check` and `diff` read the marker back (`runtime_marker`) to tell a script
rendered with another runtime from one edited by hand.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from dlm_gen import __version__
from dlm_gen.runtime import MODULES

RUNTIME_PACKAGE = "dlm_gen.runtime"
RUNTIME_DIR = Path(__file__).parent / "runtime"
# The marker line above the appended runtime, and the one that ends it.
MARKER = "# dlm-gen {version} runtime, sha256 {sha256}"
MARKER_LINE = re.compile(
    r"^# dlm-gen (?P<version>\S{1,40}) runtime, sha256 (?P<sha256>[0-9a-f]{64})$"
)
END_LINE = "# End of the runtime. The data, last: what training.sources read, and the rows."
# Names the template itself uses from the standard library (the Script it builds).
TEMPLATE_IMPORTS = (("pathlib", "Path"),)


class RuntimeLayoutError(Exception):
    """A runtime module that breaks the layout the script relies on (a developer's
    error, caught by the tests: never a user's)."""


@dataclass(frozen=True)
class Module:
    """One runtime module split for the script: its imports and its code."""

    name: str
    plain_imports: frozenset[str]  # `import x`
    from_imports: frozenset[tuple[str, str]]  # `from x import y`
    code: str  # from the first statement after the imports to the end


@dataclass(frozen=True)
class RuntimeText:
    """What a script carries of the runtime."""

    imports: str  # the merged import block, `from __future__` first
    main: str  # dlm_gen/runtime/main.py's code
    library: str  # every other module's code, in order
    sha256: str  # of main and library as carried
    spans: tuple[tuple[str, int], ...] = ()  # (module, its first line in library), in order

    @property
    def marker(self) -> str:
        return MARKER.format(version=__version__, sha256=self.sha256)

    def module_at(self, line: int) -> str:
        """The runtime module the library's `line` (from 0) comes from."""
        name = self.spans[0][0] if self.spans else "main"
        for module, first in self.spans:
            if first > line:
                break
            name = module
        return f"dlm_gen/runtime/{name}.py"


@functools.lru_cache(maxsize=1)
def runtime_text() -> RuntimeText:
    """The runtime of the installed package, read once per process."""
    main = _split("main", (RUNTIME_DIR / "main.py").read_text(encoding="utf-8"))
    modules = [
        _split(name, (RUNTIME_DIR / f"{name}.py").read_text(encoding="utf-8")) for name in MODULES
    ]
    library = "\n\n\n".join(module.code for module in modules)
    spans, line = [], 0
    for module in modules:
        spans.append((module.name, line))
        line += module.code.count("\n") + 3  # its lines, and the two blank ones after
    return RuntimeText(
        imports=_import_block([main, *modules]),
        main=main.code,
        library=library,
        sha256=runtime_digest(main.code, library),
        spans=tuple(spans),
    )


def runtime_digest(main: str, library: str) -> str:
    """SHA-256 of the runtime's text as a script carries it."""
    return hashlib.sha256(f"{main}\n{library}".encode()).hexdigest()


def runtime_marker(script_text: str) -> tuple[str, str] | None:
    """(dlm-gen version, runtime SHA-256) of a script's marker line, if it has one."""
    for line in script_text.splitlines():
        matched = MARKER_LINE.match(line)
        if matched:
            return matched["version"], matched["sha256"]
    return None


def _split(name: str, source: str) -> Module:
    """A module's imports and its code: docstring and imports first, then nothing but
    code (an import among the code would be lost in the script)."""
    tree = ast.parse(source)
    plain: set[str] = set()
    from_names: set[tuple[str, str]] = set()
    body_start = None
    for statement in tree.body:
        is_import = isinstance(statement, (ast.Import, ast.ImportFrom))
        if body_start is None and _is_docstring(statement, tree):
            continue
        if is_import and body_start is not None:
            raise RuntimeLayoutError(
                f"dlm_gen/runtime/{name}.py:{statement.lineno}: import after code"
            )
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                _no_alias(name, statement, alias)
                plain.add(alias.name)
        elif isinstance(statement, ast.ImportFrom):
            module = statement.module or ""
            if module == "__future__" or module.startswith(RUNTIME_PACKAGE):
                continue  # the script's own future import; one namespace for the package
            if statement.level or module.split(".")[0] == "dlm_gen":
                raise RuntimeLayoutError(
                    f"dlm_gen/runtime/{name}.py:{statement.lineno}: imports {module or '.'}, "
                    "outside the runtime"
                )
            for alias in statement.names:
                _no_alias(name, statement, alias)
                from_names.add((module, alias.name))
        elif body_start is None:
            body_start = _first_line(statement, source)
    if body_start is None:
        raise RuntimeLayoutError(f"dlm_gen/runtime/{name}.py: no code")
    lines = source.splitlines()
    code = "\n".join(lines[body_start - 1 :]).strip("\n")
    return Module(name, frozenset(plain), frozenset(from_names), code)


def _is_docstring(statement: ast.stmt, tree: ast.Module) -> bool:
    return (
        statement is tree.body[0]
        and isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _no_alias(name: str, statement: ast.stmt, alias: ast.alias) -> None:
    if alias.asname is not None:  # one name per thing in the one namespace
        raise RuntimeLayoutError(f"dlm_gen/runtime/{name}.py:{statement.lineno}: 'as' import")


def _first_line(statement: ast.stmt, source: str) -> int:
    """Where a statement's text starts, with the comment lines right above it (and its
    decorators)."""
    first = min([statement.lineno, *(d.lineno for d in getattr(statement, "decorator_list", []))])
    lines = source.splitlines()
    while first > 1 and lines[first - 2].startswith("#"):
        first -= 1
    return first


def _import_block(modules: list[Module]) -> str:
    """One import block as ruff's isort writes it: the future import, then the standard
    library's straight imports, then its from-imports, each sorted."""
    plain = sorted({name for module in modules for name in module.plain_imports})
    from_names: dict[str, set[str]] = {}
    for module in modules:
        for source, name in module.from_imports:
            from_names.setdefault(source, set()).add(name)
    for source, name in TEMPLATE_IMPORTS:
        from_names.setdefault(source, set()).add(name)
    lines = [f"import {name}" for name in plain]
    for source in sorted(from_names):
        names = ", ".join(sorted(from_names[source], key=_isort_key))
        lines.append(f"from {source} import {names}")
    return "from __future__ import annotations\n\n" + "\n".join(lines)


def _isort_key(name: str) -> tuple[int, str]:
    """isort's order-by-type: CONSTANTS, then Classes, then functions and modules."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)
