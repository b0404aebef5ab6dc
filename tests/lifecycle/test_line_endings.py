import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.line_endings import CRLF, LF, keep_line_endings, line_ending, main_line_ending, textarea_text


def browser_round_trip(text: str) -> str:
    """What a browser submits for a textarea showing `text`: every line break as CRLF."""
    return text.replace("\n", "\r\n")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", LF),
        (b"one line", LF),
        (b"a\nb\n", LF),
        (b"a\r\nb\r\n", CRLF),
        (b"a\r\nb\n", None),
        (b"a\rb", None),
        (b"a\r\nb\r", None),
    ],
)
def test_it_tells_a_files_line_ending(data, expected):
    assert line_ending(data) == expected


@pytest.mark.parametrize(
    ("original", "edited", "expected"),
    [
        (None, "a\r\nb\r\n", b"a\nb\n"),
        (b"a\nb\n", "a\r\nc\r\n", b"a\nc\n"),
        (b"a\r\nb\r\n", "a\r\nc\r\n", b"a\r\nc\r\n"),
        # Text that lost its CRLFs on the way (a merge conflict edited after .replace("\r\n", "\n")).
        (b"a\r\nb\r\n", "a\nc\n", b"a\r\nc\r\n"),
        (b"a\r\nb\r\nc\n", "x\ny\n", b"x\r\ny\r\n"),  # mostly CRLF
        (b"a\nb\nc\r\n", "x\r\ny\r\n", b"x\ny\n"),  # mostly LF
        (b"x", "caf\u00e9\r\n", "caf\u00e9\n".encode()),
    ],
)
def test_it_gives_edited_text_the_original_line_endings(original, edited, expected):
    assert keep_line_endings(original, edited) == expected


def test_a_new_file_gets_lf():
    assert main_line_ending(None) == LF


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xfe",  # not UTF-8
        "caf\u00e9".encode("latin-1"),
        b"a\0b",
        b"a\r\nb\n",
        b"old mac\rfile",
    ],
)
def test_it_refuses_text_that_a_form_would_change(data):
    assert textarea_text(data) is None


@given(
    st.lists(st.text(st.characters(exclude_characters="\r\n\0", codec="utf-8")), max_size=6),
    st.sampled_from([LF, CRLF]),
    st.booleans(),
)
def test_text_shown_in_a_textarea_comes_back_byte_for_byte(lines, eol, final_newline):
    data = (eol.join(lines) + (eol if final_newline and lines else "")).encode("utf-8")
    text = textarea_text(data)
    assert text is not None
    assert keep_line_endings(data, browser_round_trip(text)) == data
