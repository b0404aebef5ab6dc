"""Line endings of text files edited in a browser. Pure Python, no Django.

A browser's textarea shows every line break as LF and submits every one as CRLF
(the HTML standard normalises them both ways), so text that went through a form
has lost its file's line endings. These helpers put them back, and tell which
files cannot make that trip unchanged. The editor and the merge's conflict
editor both use them, so a file keeps its line endings whichever page edits it.
"""

from __future__ import annotations

LF = "\n"
CRLF = "\r\n"


def _counts(data: bytes) -> tuple[int, int, int]:
    """(CRLF, lone LF, lone CR) line breaks in `data`."""
    crlf = data.count(b"\r\n")
    return crlf, data.count(b"\n") - crlf, data.count(b"\r") - crlf


def line_ending(data: bytes) -> str | None:
    """CRLF when every line break of `data` is CRLF, LF when every one is LF (or it has none),
    None when they are mixed or a lone CR (old Mac style) appears."""
    crlf, lf, cr = _counts(data)
    if cr or (crlf and lf):
        return None
    return CRLF if crlf else LF


def main_line_ending(data: bytes | None) -> str:
    """The line ending most of `data`'s lines use: CRLF only when CRLF outnumbers LF; LF for a new file."""
    if data is None:
        return LF
    crlf, lf, _ = _counts(data)
    return CRLF if crlf > lf else LF


def as_lf(text: str) -> str:
    """`text` with every line break (CRLF, CR or LF) written as LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def keep_line_endings(original: bytes | None, edited: str) -> bytes:
    """`edited` (text from a browser form, whatever its line breaks) as UTF-8 with `original`'s line endings.

    Every line break becomes the one `original` mostly uses (see main_line_ending):
    a CRLF file stays CRLF, an LF file or a new file (None) gets LF.
    """
    text = as_lf(edited)
    if main_line_ending(original) == CRLF:
        text = text.replace("\n", "\r\n")
    return text.encode("utf-8")


def textarea_text(data: bytes) -> str | None:
    """The text to show in a textarea for `data`, or None when the round trip through a form would change it.

    None for bytes that are not UTF-8, that hold a NUL (the HTML parser turns it
    into U+FFFD), or whose line endings are mixed or include a lone CR (the form
    sends them all back as one kind). For every other file,
    keep_line_endings(data, <what the browser submits>) gives back `data` exactly.
    """
    if b"\0" in data or line_ending(data) is None:
        return None
    try:
        return as_lf(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None
