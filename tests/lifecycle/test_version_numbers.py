import pytest

from lifecycle.version_numbers import InvalidVersionNumber, VersionNumber, suggest_next


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
