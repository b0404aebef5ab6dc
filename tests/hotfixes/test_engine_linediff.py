from hypothesis import given
from hypothesis import strategies as st

from hotfixes.engine.linediff import Line, decode_text, diff_lines, split_lines


def numbered(count: int) -> bytes:
    return "".join(f"line {n}\n" for n in range(1, count + 1)).encode()


def replace_line(data: bytes, number: int, text: str) -> bytes:
    lines = data.decode().split("\n")
    lines[number - 1] = text
    return "\n".join(lines).encode()


def test_it_numbers_the_lines_of_a_hunk():
    diff = diff_lines(numbered(10), replace_line(numbered(10), 5, "five"))

    assert not diff.binary
    assert (diff.added, diff.deleted) == (1, 1)
    [hunk] = diff.hunks
    assert hunk.header == "@@ -2,7 +2,7 @@"
    assert hunk.lines == (
        Line("context", 2, 2, "line 2", "\n"),
        Line("context", 3, 3, "line 3", "\n"),
        Line("context", 4, 4, "line 4", "\n"),
        Line("delete", 5, None, "line 5", "\n"),
        Line("add", None, 5, "five", "\n"),
        Line("context", 6, 6, "line 6", "\n"),
        Line("context", 7, 7, "line 7", "\n"),
        Line("context", 8, 8, "line 8", "\n"),
    )


def test_it_folds_long_unchanged_stretches_into_separate_hunks():
    old = numbered(40)
    new = replace_line(replace_line(old, 5, "five"), 30, "thirty")

    diff = diff_lines(old, new)

    assert [hunk.header for hunk in diff.hunks] == ["@@ -2,7 +2,7 @@", "@@ -27,7 +27,7 @@"]
    assert "line 15" not in {line.text for hunk in diff.hunks for line in hunk.lines}


def test_it_keeps_changes_closer_than_twice_the_context_in_one_hunk():
    old = numbered(40)
    new = replace_line(replace_line(old, 5, "five"), 12, "twelve")  # 6 unchanged lines between

    diff = diff_lines(old, new)

    assert [hunk.header for hunk in diff.hunks] == ["@@ -2,14 +2,14 @@"]


def test_it_takes_the_number_of_context_lines():
    old = numbered(20)
    new = replace_line(old, 10, "ten")

    assert [hunk.header for hunk in diff_lines(old, new, context=0).hunks] == ["@@ -10,1 +10,1 @@"]
    assert [hunk.header for hunk in diff_lines(old, new, context=1).hunks] == ["@@ -9,3 +9,3 @@"]


def test_it_shows_an_added_file_as_all_added():
    diff = diff_lines(None, b"a\nb\nc\n")

    assert (diff.added, diff.deleted) == (3, 0)
    assert [hunk.header for hunk in diff.hunks] == ["@@ -0,0 +1,3 @@"]
    assert [(line.kind, line.new_number) for line in diff.hunks[0].lines] == [
        ("add", 1),
        ("add", 2),
        ("add", 3),
    ]


def test_it_shows_a_deleted_file_as_all_deleted():
    diff = diff_lines(b"a\nb\n", None)

    assert (diff.added, diff.deleted) == (0, 2)
    assert [hunk.header for hunk in diff.hunks] == ["@@ -1,2 +0,0 @@"]


def test_it_shows_no_hunks_for_equal_content():
    diff = diff_lines(b"same\n", b"same\n")

    assert not diff.changed
    assert diff.hunks == ()


def test_it_calls_a_file_with_a_nul_byte_binary():
    diff = diff_lines(b"text\n", b"te\0xt\n")

    assert diff.binary and diff.changed
    assert (diff.hunks, diff.added, diff.deleted) == ((), 0, 0)


def test_it_calls_a_file_that_is_not_utf8_binary():
    assert diff_lines(b"caf\xe9\n", b"cafe\n").binary
    assert diff_lines(None, b"\xff\xfe").binary
    assert not diff_lines(None, "café\n".encode()).binary


def test_it_marks_a_last_line_without_newline():
    diff = diff_lines(b"a\nb\n", b"a\nb")

    assert [(line.kind, line.text, line.eol) for line in diff.hunks[0].lines] == [
        ("context", "a", "\n"),
        ("delete", "b", "\n"),
        ("add", "b", ""),
    ]


def test_it_sees_a_change_of_line_endings():
    diff = diff_lines(b"a\nb\n", b"a\r\nb\n")

    assert (diff.added, diff.deleted) == (1, 1)
    assert [line.eol for line in diff.hunks[0].lines if line.kind == "add"] == ["\r\n"]


def test_it_splits_lines_on_newline_only():
    assert split_lines("a\x0cb\u2028c\r\nd\ne") == ["a\x0cb\u2028c\r\n", "d\n", "e"]
    assert split_lines("") == []
    assert split_lines("\n\n") == ["\n", "\n"]


def test_decode_text_is_none_for_binary():
    assert decode_text(b"plain\n") == "plain\n"
    assert decode_text(b"\x00") is None
    assert decode_text(b"\xc3") is None


@given(st.text())
def test_split_lines_round_trips(text):
    lines = split_lines(text)

    assert "".join(lines) == text
    assert all(line.endswith("\n") for line in lines[:-1])
    assert all("\n" not in line[:-1] for line in lines)


# Every character str.splitlines() ends a line at, among ordinary ones.
text_with_line_breaks = st.text(
    alphabet=st.sampled_from(list("ab \n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029é"))
)


@given(text_with_line_breaks)
def test_split_lines_ends_lines_at_newline_only_whichever_way_it_splits(text):
    parts = text.split("\n")
    expected = [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])

    assert split_lines(text) == expected


def test_split_lines_keeps_a_lone_carriage_return_inside_its_line():
    assert split_lines("a\rb\r\nc\x85d\n") == ["a\rb\r\n", "c\x85d\n"]
    assert split_lines("plain\nascii") == ["plain\n", "ascii"]


lines_of_few_letters = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "}\n", "\n", "d\r\n"]), max_size=30)


@given(lines_of_few_letters, lines_of_few_letters, st.integers(min_value=0, max_value=4))
def test_hunks_turn_the_old_text_into_the_new(old_lines, new_lines, context):
    old, new = "".join(old_lines), "".join(new_lines)

    diff = diff_lines(old.encode(), new.encode(), context=context)

    # Apply the hunks to the old lines, checking every number on the way.
    result, position = [], 1  # position: the next old line not yet copied
    for hunk in diff.hunks:
        first_old = hunk.old_start if hunk.old_count else hunk.old_start + 1
        assert first_old >= position
        result.extend(old_lines[position - 1 : first_old - 1])
        position = first_old
        old_seen = new_seen = 0
        for line in hunk.lines:
            if line.kind in ("context", "delete"):
                assert line.old_number == position
                assert old_lines[position - 1] == line.text + line.eol
                position += 1
                old_seen += 1
            if line.kind in ("context", "add"):
                assert line.new_number == len(result) + 1
                result.append(line.text + line.eol)
                new_seen += 1
        assert (old_seen, new_seen) == (hunk.old_count, hunk.new_count)
    result.extend(old_lines[position - 1 :])

    assert "".join(result) == new
    assert diff.added == sum(line.kind == "add" for hunk in diff.hunks for line in hunk.lines)
    assert diff.deleted == sum(line.kind == "delete" for hunk in diff.hunks for line in hunk.lines)
    # Folding: each hunk has `context` unchanged lines around its changes (fewer only at the
    # edges of the file), and at least one folded line lies between two hunks.
    spans = []
    for hunk in diff.hunks:
        first_old = hunk.old_start if hunk.old_count else hunk.old_start + 1
        end_old = first_old + hunk.old_count
        leading = next(i for i, line in enumerate(hunk.lines) if line.kind != "context")
        trailing = next(i for i, line in enumerate(reversed(hunk.lines)) if line.kind != "context")
        assert leading == context or first_old == 1
        assert trailing == context or end_old == len(old_lines) + 1
        spans.append((first_old, end_old))
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start - end >= 1
