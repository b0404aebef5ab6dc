"""Line diff of two versions of one file, for reading. Pure Python, no Django.

Lines are split on "\\n" only and keep their line ending, as git does: a form
feed or U+2028 inside a line does not split it, and joining the lines gives
back the exact text. Lines are compared with their endings, so a change from
CRLF to LF is a change; `Line.text` is shown without the ending and `Line.eol`
says what it was ("" for a last line without a newline).
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO
from typing import Literal

from hotfixes.engine.matching import LineMatcher

LineKind = Literal["context", "add", "delete"]


@dataclass(frozen=True, slots=True)
class Line:
    kind: LineKind
    old_number: int | None  # 1-based; None for an added line
    new_number: int | None  # 1-based; None for a deleted line
    text: str  # without its line ending
    eol: str  # "\n", "\r\n", or "" when the file ends without a newline


@dataclass(frozen=True, slots=True)
class Hunk:
    """One stretch of changes with its context, numbered like a unified diff's `@@ -a,b +c,d @@`.

    A start is 1-based; when its count is 0 (nothing on that side), it is the
    number of the line the hunk comes after, so 0 at the top of the file.
    """

    old_start: int
    old_count: int
    new_start: int
    new_count: int
    lines: tuple[Line, ...]

    @property
    def header(self) -> str:
        return f"@@ -{self.old_start},{self.old_count} +{self.new_start},{self.new_count} @@"


@dataclass(frozen=True, slots=True)
class FileDiff:
    binary: bool  # either side is not text: no hunks, the file is shown as changed as a whole
    hunks: tuple[Hunk, ...]
    added: int
    deleted: int

    @property
    def changed(self) -> bool:
        return self.binary or bool(self.hunks)


def decode_text(data: bytes) -> str | None:
    """The text of a file, or None when it is binary.

    The same rule as `lifecycle.snapshots.is_binary`: text is UTF-8 without NUL bytes.
    """
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def split_lines(text: str) -> list[str]:
    """The lines of `text`, each keeping its "\\n" (or "\\r\\n"); `"".join()` gives `text` back."""
    # str.splitlines() splits in C, three times faster than adding "\n" back to each part of
    # text.split("\n"), but also ends lines at "\r", "\x0c", "\u2028" and a few more. It ends one
    # at every "\n" too ("\r\n" is one ending), so it split only at "\n" exactly when it gave as
    # many lines as there are "\n" (plus a last line without one). Otherwise a StringIO with
    # newline="\n" ends lines at "\n" only and translates nothing.
    lines = text.splitlines(keepends=True)
    if len(lines) == text.count("\n") + (not text.endswith("\n") and text != ""):
        return lines
    return StringIO(text, newline="\n").readlines()


def _strip_eol(line: str) -> tuple[str, str]:
    if line.endswith("\r\n"):
        return line[:-2], "\r\n"
    if line.endswith("\n"):
        return line[:-1], "\n"
    return line, ""


def diff_lines(old: bytes | None, new: bytes | None, context: int = 3) -> FileDiff:
    """The line diff from `old` to `new` (None: the file does not exist on that side).

    Unchanged stretches longer than twice `context` lines are folded away,
    splitting the changes into separate hunks.
    """
    old_text = decode_text(old) if old else ""
    new_text = decode_text(new) if new else ""
    if old_text is None or new_text is None:
        return FileDiff(binary=True, hunks=(), added=0, deleted=0)
    if old_text == new_text:
        return FileDiff(binary=False, hunks=(), added=0, deleted=0)
    return diff_split_lines(split_lines(old_text), split_lines(new_text), context)


def diff_split_lines(old_lines: list[str], new_lines: list[str], context: int = 3) -> FileDiff:
    """`diff_lines` for text already split by `split_lines`."""
    matcher = LineMatcher(None, old_lines, new_lines)
    hunks = []
    added = deleted = 0
    for group in matcher.get_grouped_opcodes(context):
        lines = []
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for offset, line in enumerate(old_lines[i1:i2]):
                    text, eol = _strip_eol(line)
                    lines.append(Line("context", i1 + offset + 1, j1 + offset + 1, text, eol))
                continue
            for offset, line in enumerate(old_lines[i1:i2]):
                text, eol = _strip_eol(line)
                lines.append(Line("delete", i1 + offset + 1, None, text, eol))
            for offset, line in enumerate(new_lines[j1:j2]):
                text, eol = _strip_eol(line)
                lines.append(Line("add", None, j1 + offset + 1, text, eol))
            deleted += i2 - i1
            added += j2 - j1
        first, last = group[0], group[-1]
        old_start, old_count = first[1], last[2] - first[1]
        new_start, new_count = first[3], last[4] - first[3]
        hunks.append(
            Hunk(
                old_start=old_start + 1 if old_count else old_start,
                old_count=old_count,
                new_start=new_start + 1 if new_count else new_start,
                new_count=new_count,
                lines=tuple(lines),
            )
        )
    return FileDiff(binary=False, hunks=tuple(hunks), added=added, deleted=deleted)
