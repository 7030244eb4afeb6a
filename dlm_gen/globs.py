"""Globs over relative paths, matched in time linear in (pattern x name).

`training.sources` patterns are written by a document's author, so matching
must not be a backtracking regular expression (`*a*a*a...b` against a long
name of `a`s takes exponential time there). A pattern is compiled into a small
automaton instead (one state per wildcard or character of the pattern) and a
name is matched by moving the set of live states one character at a time, the
set held as the bits of an integer: at most (states x characters) bit
operations. Several patterns share one automaton (an include list is one
integer), so a file is read against all of them in one pass.

Two things keep a whole walk's matching cheap, whatever the patterns: the sets
of live states met so far are numbered and their moves remembered (a lazily
built DFA, at most _DFA_STATES of them at a time), so a character read in a
known state costs one dictionary lookup, not a dozen operations on integers of
thousands of bits; and the states reached along the previous path are kept, so
a path sharing its directories with the one before (the walk's sorted order)
reads only what differs. `work` counts what matching cost, in units of a
remembered move (a computed one costs more, by the automaton's size), so that
a caller can bound it (dlm_gen/sources.py, rules/limits.yaml max_glob_work).

Semantics are POSIX globs over a relative path: '**/' spans directories, '*',
'?' and '[...]' / '[!...]' stay within one (a class never matches '/').
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

# Characters whose transition masks a GlobSet remembers: file names use few
# distinct characters, and beyond this many the masks are computed afresh (the
# result is the same, only the time differs).
_CACHED_CHARACTERS = 4096
# Sets of live states a GlobSet numbers and remembers the moves of; when full, it
# starts afresh (the same answers, only the time differs). Each holds two integers
# of up to the automaton's size (2 KB at 64 patterns of 256 characters).
_DFA_STATES = 4096
# The `work` cost model, in units of a remembered move (~60 ns): a computed move
# costs a fixed part and a part per 64-bit word of the automaton (~0.8 us + ~15 ns a
# word), a path a fixed part (finding what it shares with the previous one) and a
# part per character (comparing it).
_COMPUTED_MOVE_UNITS = 15
_WORDS_PER_UNIT = 4
_PATH_UNITS = 30
_CHARACTERS_PER_UNIT = 64


class GlobError(ValueError):
    """A pattern that is no glob (an empty or reversed character class)."""


@dataclass(frozen=True)
class _CharClass:
    """`[...]`: single characters and ranges; `negated` for `[!...]` and `[^...]`."""

    singles: frozenset[str]
    ranges: tuple[tuple[str, str], ...]
    negated: bool

    def admits(self, char: str) -> bool:
        """Whether the class matches `char` (never '/': a slash is matched only by one)."""
        if char == "/":
            return False
        inside = char in self.singles or any(lo <= char <= hi for lo, hi in self.ranges)
        return inside != self.negated


def _parse_class(body: str) -> _CharClass:
    """The class between `[` and `]`, read as Python's `re` reads a set: a '-' between two
    characters is a range (refused when reversed), first or last it is itself."""
    negated = body[:1] in ("!", "^")
    items = body[1:] if negated else body
    if not items:
        raise GlobError("empty character class")
    singles: set[str] = set()
    ranges: list[tuple[str, str]] = []
    index = 0
    while index < len(items):
        char = items[index]
        if index + 2 < len(items) and items[index + 1] == "-":
            high = items[index + 2]
            if high < char:
                raise GlobError(f"bad character range {char}-{high}")
            ranges.append((char, high))
            index += 3
        else:
            singles.add(char)
            index += 1
    return _CharClass(frozenset(singles), tuple(ranges), negated)


# Tokens of a compiled pattern.
_LITERAL, _ONE, _CLASS, _STAR, _ANY_DEPTH, _DIRECTORIES = range(6)


def parse_glob(pattern: str) -> list[tuple[int, object]]:
    """`pattern` as tokens: '**/' (any directories, maybe none), '**' (anything), '*' and
    '?' (within one directory), '[...]' (a class, when a ']' closes it), else literals."""
    tokens: list[tuple[int, object]] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            tokens.append((_DIRECTORIES, None))
            index += 3
        elif pattern.startswith("**", index):
            tokens.append((_ANY_DEPTH, None))
            index += 2
        elif pattern[index] == "*":
            tokens.append((_STAR, None))
            index += 1
        elif pattern[index] == "?":
            tokens.append((_ONE, None))
            index += 1
        elif pattern[index] == "[" and "]" in pattern[index + 2 :]:
            end = pattern.index("]", index + 2)
            tokens.append((_CLASS, _parse_class(pattern[index + 1 : end])))
            index = end + 1
        else:
            tokens.append((_LITERAL, pattern[index]))
            index += 1
    return tokens


class GlobSet:
    """Patterns compiled into one automaton; `matches(path)` says whether any matches
    the whole of `path` (a relative path with '/' separators)."""

    def __init__(self, patterns: list[str]) -> None:
        self._literals: dict[str, int] = {}  # a character -> the states it advances
        self._classes: list[tuple[int, _CharClass]] = []
        self._one = 0  # '?': advances on any character but '/'
        self._star = 0  # '*': stays on any character but '/'
        self._any = 0  # '**': stays on any character
        self._directories = 0  # '**/': maybe no directory, else anything up to a '/'
        self._epsilon = 0  # states left without reading a character ('*', '**', '**/')
        self._start = 0
        self._accept = 0
        self._cache: dict[str, tuple[int, int]] = {}
        self._bounds: list[int] | None = None  # see _class_states
        self._intervals: dict[int, int] = {}
        bit = 1
        for pattern in patterns:
            self._start |= bit
            for kind, value in parse_glob(pattern):
                bit = self._add(kind, value, bit)
            self._accept |= bit
            bit <<= 1
        self.work = 0  # what matching has cost so far, in units of a remembered move
        self._computed_cost = _COMPUTED_MOVE_UNITS + bit.bit_length() // 64 // _WORDS_PER_UNIT
        states = self._close(self._start)
        self._initial = (states, (states & self._directories) << 1)
        self._forget()

    def _add(self, kind: int, value: object, bit: int) -> int:
        """Give the token its state `bit`; return the next state's bit."""
        if kind == _LITERAL:
            self._literals[value] = self._literals.get(value, 0) | bit  # type: ignore[index]
        elif kind == _CLASS:
            self._classes.append((bit, value))  # type: ignore[arg-type]
        elif kind == _ONE:
            self._one |= bit
        else:
            self._epsilon |= bit
            if kind == _STAR:
                self._star |= bit
            elif kind == _ANY_DEPTH:
                self._any |= bit
            else:
                self._directories |= bit
        return bit << 1

    def _close(self, states: int) -> int:
        """`states` and every state reachable from them without reading a character.

        The epsilon states run in blocks of consecutive bits, each leading to the next:
        adding the live ones to the block carries through it and sets exactly the
        states after them, in one addition whatever the block's length."""
        live = states & self._epsilon
        return states | ((self._epsilon + live) ^ self._epsilon) if live else states

    def _masks(self, char: str) -> tuple[int, int]:
        """(states that `char` advances, states that `char` keeps)."""
        cached = self._cache.get(char)
        if cached is not None:
            return cached
        advance = self._literals.get(char, 0)
        if char == "/":
            keep = self._any
        else:
            advance |= self._one
            keep = self._star | self._any
        if self._classes:
            advance |= self._class_states(char)
        if len(self._cache) < _CACHED_CHARACTERS:
            self._cache[char] = (advance, keep)
        return advance, keep

    def _class_states(self, char: str) -> int:
        """The class states `char` advances. The classes' ends cut the characters into
        intervals inside which every class answers alike: one answer per interval,
        found by bisection, so a name of many distinct characters costs no more."""
        if self._bounds is None:
            points = {ord("/"), ord("/") + 1}  # '/' alone: no class admits it
            for _, char_class in self._classes:
                points.update(ord(c) for c in char_class.singles)
                points.update(ord(c) + 1 for c in char_class.singles)
                points.update(ord(lo) for lo, _ in char_class.ranges)
                points.update(ord(hi) + 1 for _, hi in char_class.ranges)
            self._bounds = sorted(points)
        interval = bisect.bisect_right(self._bounds, ord(char))
        states = self._intervals.get(interval)
        if states is None:
            sample = chr(self._bounds[interval - 1]) if interval else "\0"
            states = 0
            for bit, char_class in self._classes:
                if char_class.admits(sample):
                    states |= bit
            self._intervals[interval] = states
        return states

    def _forget(self) -> None:
        """Drop the numbered state sets and the previous path (when there are too many)."""
        self._numbers: dict[tuple[int, int], int] = {}
        self._sets: list[tuple[int, int]] = []  # (live states, '**/' states waiting for '/')
        self._moves: list[dict[str, int]] = []
        self._accepting: list[bool] = []
        self._dead = self._number((0, 0))  # nothing live: no character revives it
        self._path = ""
        self._trail = [self._number(self._initial)]  # the set after each character of _path

    def _number(self, pair: tuple[int, int]) -> int:
        number = self._numbers.get(pair)
        if number is None:
            number = self._numbers[pair] = len(self._sets)
            self._sets.append(pair)
            self._moves.append({})
            self._accepting.append(bool(pair[0] & self._accept))
        return number

    def _step(self, pair: tuple[int, int], char: str) -> tuple[int, int]:
        """The state sets after reading `char`: the automaton's one move on integers."""
        states, inside = pair
        advance, keep = self._masks(char)
        states = ((states & advance) << 1) | (states & keep)
        if char == "/":
            states |= inside  # a '**/' waiting for a '/' is past it
        states = self._close(states)
        return states, inside | (states & self._directories) << 1

    def matches(self, path: str) -> bool:
        """Whether one of the patterns matches all of `path`."""
        if len(self._sets) >= _DFA_STATES:
            self._forget()
        self.work += _PATH_UNITS + len(path) // _CHARACTERS_PER_UNIT
        trail = self._trail
        done = min(_common_prefix(self._path, path), len(trail) - 1)
        del trail[done + 1 :]
        self._path = path
        number = trail[done]
        for index in range(done, len(path)):
            if number == self._dead:
                return False
            char = path[index]
            following = self._moves[number].get(char)
            if following is None:
                self.work += self._computed_cost
                pair = self._step(self._sets[number], char)
                if len(self._sets) >= _DFA_STATES:  # no room: the rest of this path unnumbered
                    return self._finish(pair, path, index + 1)
                following = self._moves[number][char] = self._number(pair)
            else:
                self.work += 1
            trail.append(following)
            number = following
        return self._accepting[number]

    def _finish(self, pair: tuple[int, int], path: str, start: int) -> bool:
        """Read the rest of `path` from `pair` without numbering the sets met."""
        for char in path[start:]:
            if pair == (0, 0):
                return False
            self.work += self._computed_cost
            pair = self._step(pair, char)
        return bool(pair[0] & self._accept)

    def fullmatch(self, path: str) -> bool:
        """Alias of `matches`, read like the regular expression it replaces."""
        return self.matches(path)


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of `a` and `b`, by halving (each comparison
    of slices is one C loop, never a Python step a character)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def compile_glob(pattern: str) -> GlobSet:
    """One POSIX glob over a relative path: '**/' spans directories, '*', '?' and '[...]'
    stay within one; raises GlobError for a pattern that is no glob."""
    return GlobSet([pattern])
