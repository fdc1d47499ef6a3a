"""Where each key of a TOML policy file is written: tomllib accepts a file but gives no positions, so problems
found in its values are located by scanning the text again (desk/fallback/policy_file.py reports them)."""

from __future__ import annotations

import bisect
import contextlib
import json
import re
import tomllib

Path = tuple[str | int, ...]  # a place in the file: keys and array indexes

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def field_name(path: Path) -> str:
    name = ""
    for part in path:
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            name += f".{key}" if name else key
    return name


# --- where each key is defined ----------------------------------------------------------------------------------


class Locator:
    """Maps a path to the line defining it, by scanning TOML text that tomllib has already accepted.

    Headers, `key = value` lines and the elements of arrays get their own line; keys inside an inline table get
    the line they are written on; a path not written at all gets the line of its nearest written ancestor.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.marks: dict[Path, int] = {}
        self._newlines = [i for i, char in enumerate(text) if char == "\n"]
        with contextlib.suppress(ValueError, IndexError):  # best effort: a place not found gets no line
            self._scan()

    def line(self, path: Path) -> int | None:
        while path:
            if path in self.marks:
                return self.marks[path]
            path = path[:-1]
        return None

    def _mark(self, path: Path, pos: int) -> None:
        self.marks.setdefault(path, bisect.bisect_left(self._newlines, pos) + 1)

    def _scan(self) -> None:
        text, pos = self.text, 0
        table: Path = ()
        arrays: dict[Path, int] = {}  # array-of-tables path → elements so far
        while (pos := self._blank(pos)) < len(text):
            start = pos
            if text.startswith("[[", pos):
                keys, pos = self._key(pos + 2)
                pos = text.index("]]", pos) + 2
                array = (*self._resolve(keys[:-1], arrays), keys[-1])
                arrays[array] = arrays.get(array, 0) + 1
                table = (*array, arrays[array] - 1)
                self._mark(table, start)
            elif text[pos] == "[":
                keys, pos = self._key(pos + 1)
                pos = text.index("]", pos) + 1
                table = self._resolve(keys, arrays)
                self._mark(table, start)
            else:
                keys, pos = self._key(pos)
                path = table + tuple(keys)
                self._mark(path, start)
                pos = self._skip_value(self._expect(pos, "="), path)

    @staticmethod
    def _resolve(keys: list[str], arrays: dict[Path, int]) -> Path:
        path: Path = ()
        for key in keys:
            path = (*path, key)
            if path in arrays:
                path = (*path, arrays[path] - 1)
        return path

    def _blank(self, pos: int, *, newlines: bool = True) -> int:
        text = self.text
        while pos < len(text):
            if text[pos] in " \t" or (newlines and text[pos] in "\r\n"):
                pos += 1
            elif text[pos] == "#":
                end = text.find("\n", pos)
                pos = len(text) if end < 0 else end
            else:
                break
        return pos

    def _expect(self, pos: int, char: str) -> int:
        pos = self._blank(pos, newlines=False)
        if self.text[pos] != char:
            raise ValueError(f"expected {char!r} at {pos}")
        return pos + 1

    def _key(self, pos: int) -> tuple[list[str], int]:
        keys: list[str] = []
        while True:
            pos = self._blank(pos, newlines=False)
            if self.text[pos] in "\"'":
                end = self._string_end(pos)
                keys.append(tomllib.loads(f"k = {self.text[pos:end]}")["k"])
                pos = end
            else:
                match = _BARE_KEY.match(self.text, pos)
                if match is None:
                    raise ValueError(f"no key at {pos}")
                keys.append(match.group())
                pos = match.end()
            pos = self._blank(pos, newlines=False)
            if self.text[pos] != ".":
                return keys, pos
            pos += 1

    def _string_end(self, pos: int) -> int:
        text = self.text
        for quotes in ('"""', "'''"):
            if text.startswith(quotes, pos):
                end = pos + 3
                while True:
                    end = text.index(quotes, end)
                    if quotes[0] == "'" or not _escaped(text, end):
                        end += 3
                        while end < len(text) and text[end] == quotes[0]:  # up to two quotes end the content
                            end += 1
                        return end
                    end += 1
        if text[pos] == "'":
            return text.index("'", pos + 1) + 1
        end = pos + 1
        while text[end] != '"' or _escaped(text, end):
            end += 1
        return end + 1

    def _skip_value(self, pos: int, path: Path) -> int:
        text = self.text
        pos = self._blank(pos, newlines=False)
        if text[pos] in "\"'":
            return self._string_end(pos)
        if text[pos] == "[":
            pos, index = pos + 1, 0
            while (pos := self._blank(pos)) < len(text) and text[pos] != "]":
                if text[pos] == ",":
                    pos, index = pos + 1, index + 1
                    continue
                self._mark((*path, index), pos)
                pos = self._skip_value(pos, (*path, index))
            return pos + 1
        if text[pos] == "{":
            pos += 1
            while (pos := self._blank(pos, newlines=False)) < len(text) and text[pos] != "}":
                if text[pos] == ",":
                    pos += 1
                    continue
                keys, pos = self._key(pos)
                self._mark(path + tuple(keys), pos)
                pos = self._skip_value(self._expect(pos, "="), path + tuple(keys))
            return pos + 1
        while pos < len(text) and text[pos] not in ",]}#\r\n":
            pos += 1
        return pos


def _escaped(text: str, pos: int) -> bool:
    start = pos
    while start > 0 and text[start - 1] == "\\":
        start -= 1
    return (pos - start) % 2 == 1
