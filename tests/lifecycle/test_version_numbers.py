import pytest

from lifecycle.version_numbers import InvalidVersionNumber, NoNumberLeft, VersionNumber, suggest_next


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.3", (0, 3, 0, False)),
        ("0.3.1", (0, 3, 1, True)),
        ("10.20.30", (10, 20, 30, True)),
        ("1.0", (1, 0, 0, False)),
        (" 2.5 ", (2, 5, 0, False)),
        ("0.0.0", (0, 0, 0, True)),
        ("999999999.0", (999999999, 0, 0, False)),
    ],
)
def test_it_parses_valid_numbers(text, expected):
    number = VersionNumber.parse(text)
    assert (number.major, number.minor, number.patch, number.has_patch) == expected
    assert str(number) == text.strip()


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "1.",
        ".1",
        "01.2",
        "1.02",
        "1.2.03",
        "1.2.3.4",
        "-1.2",
        "1.-2",
        "a.b",
        "1.2a",
        "v1.2",
        "1,2",
        "1.2.",
        "1e3.1",
        "1000000000.0",
        "１.２",
        "0.3\n0.4",
        None,
        3,
    ],
)
def test_it_refuses_invalid_numbers(text):
    with pytest.raises(InvalidVersionNumber):
        VersionNumber.parse(text)


def test_it_orders_numerically():
    texts = ["0.10", "0.9", "0.3.1", "0.3", "1.0", "0.3.10", "0.3.2", "0.11.0"]
    ordered = [str(n) for n in sorted(VersionNumber.parse(t) for t in texts)]
    assert ordered == ["0.3", "0.3.1", "0.3.2", "0.3.10", "0.9", "0.10", "0.11.0", "1.0"]


def test_it_treats_missing_patch_as_zero():
    assert VersionNumber.parse("0.3") == VersionNumber.parse("0.3.0")
    assert VersionNumber.parse("0.3") < VersionNumber.parse("0.3.1")


@pytest.mark.parametrize(
    ("current", "taken", "hotfix", "expected"),
    [
        ("0.4", [], False, "0.5"),
        ("0.3", [], True, "0.3.1"),
        ("0.3.1", [], True, "0.3.2"),
        ("0.4", ["0.5", "0.6"], False, "0.7"),
        ("0.3", ["0.3.1", "0.3.2"], True, "0.3.3"),
        ("0.9", [], False, "0.10"),
        (None, [], False, "0.1"),
        (None, ["0.1"], False, "0.2"),
    ],
)
def test_it_suggests_the_next_number(current, taken, hotfix, expected):
    current_number = VersionNumber.parse(current) if current else None
    taken_numbers = {VersionNumber.parse(t) for t in taken}
    assert str(suggest_next(current_number, taken_numbers, hotfix=hotfix)) == expected


# Issue 9, item 28: a suggestion is always a number the parser accepts.


@pytest.mark.parametrize(
    ("current", "taken", "hotfix", "expected"),
    [
        ("0.999999999", [], False, "1.0"),
        ("0.999999998", ["0.999999999"], False, "1.0"),
        ("0.999999999", ["1.0"], False, "1.1"),
        ("0.3.999999999", [], True, "0.4"),
        ("0.3.999999998", ["0.3.999999999", "0.4"], True, "0.4.1"),
        ("0.999999999.999999999", [], True, "1.0"),
        ("999999998.999999999", [], False, "999999999.0"),
    ],
)
def test_it_carries_past_the_largest_part_instead_of_suggesting_an_invalid_number(
    current, taken, hotfix, expected
):
    taken_numbers = {VersionNumber.parse(t) for t in taken}
    suggested = suggest_next(VersionNumber.parse(current), taken_numbers, hotfix=hotfix)
    assert str(suggested) == expected
    assert VersionNumber.parse(str(suggested)) == suggested


@pytest.mark.parametrize(
    ("current", "hotfix"), [("999999999.999999999", False), ("999999999.999999999.999999999", True)]
)
def test_it_says_clearly_when_no_number_is_left(current, hotfix):
    with pytest.raises(NoNumberLeft, match="No version number is left after 999999999.999999999"):
        suggest_next(VersionNumber.parse(current), set(), hotfix=hotfix)
    assert issubclass(NoNumberLeft, InvalidVersionNumber)
