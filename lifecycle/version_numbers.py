"""Application version numbers: `MAJOR.MINOR` or `MAJOR.MINOR.PATCH`.

Pure Python, no Django: parsing, numeric ordering and the suggestions that
Tag & Deploy makes. `0.3` and `0.3.0` name the same version, so they compare
equal and cannot both be tagged in one application.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Non-negative integers without leading zeros; at most nine digits so that
# every part fits a 32-bit database integer.
_PART = r"(0|[1-9][0-9]{0,8})"
LARGEST_PART = 999_999_999
_PATTERN = re.compile(rf"{_PART}\.{_PART}(?:\.{_PART})?")


class InvalidVersionNumber(ValueError):
    pass


class NoNumberLeft(InvalidVersionNumber):
    """Every part of the number is already at its largest: nothing valid comes after it."""


@dataclass(frozen=True, order=True)
class VersionNumber:
    major: int
    minor: int
    patch: int = 0
    # Whether the number was written with three parts; it does not take part in ordering.
    has_patch: bool = field(default=False, compare=False)

    @classmethod
    def parse(cls, text: str) -> VersionNumber:
        if not isinstance(text, str):
            raise InvalidVersionNumber("A version number must be text such as 0.3 or 0.3.1.")
        match = _PATTERN.fullmatch(text.strip())
        if match is None:
            raise InvalidVersionNumber(
                f"{text.strip()[:40]!r} is not a version number: use MAJOR.MINOR or MAJOR.MINOR.PATCH "
                "with whole numbers and no leading zeros, such as 0.3 or 0.3.1."
            )
        major, minor, patch = match.groups()
        return cls(int(major), int(minor), int(patch or 0), has_patch=patch is not None)

    def __str__(self) -> str:
        if self.has_patch:
            return f"{self.major}.{self.minor}.{self.patch}"
        return f"{self.major}.{self.minor}"

    def next_minor(self) -> VersionNumber:
        """The next MAJOR.MINOR; past the largest minor, the next major (0.999999999 -> 1.0)."""
        if self.minor < LARGEST_PART:
            return VersionNumber(self.major, self.minor + 1)
        if self.major < LARGEST_PART:
            return VersionNumber(self.major + 1, 0)
        raise NoNumberLeft(
            f"No version number is left after {self}: every part is at its largest, "
            f"{LARGEST_PART}. Type a number that is not taken."
        )

    def next_patch(self) -> VersionNumber:
        """The next hotfix number; past the largest patch, the next minor (0.3.999999999 -> 0.4)."""
        if self.patch < LARGEST_PART:
            return VersionNumber(self.major, self.minor, self.patch + 1, has_patch=True)
        return self.next_minor()


def suggest_next(current: VersionNumber | None, taken: set[VersionNumber], *, hotfix: bool) -> VersionNumber:
    """The number Tag & Deploy proposes for a new tag.

    In the first environment the next minor (0.4 -> 0.5); elsewhere, where a
    change is a hotfix, a third number on the current tag (0.3 -> 0.3.1,
    0.3.1 -> 0.3.2). Numbers already taken are skipped. A part at its largest
    carries into the next one, so the suggestion always parses; NoNumberLeft
    when nothing comes after.
    """
    if current is None:
        candidate = VersionNumber(0, 1)
        step = VersionNumber.next_minor
    elif hotfix:
        candidate = current.next_patch()
        step = VersionNumber.next_patch
    else:
        candidate = current.next_minor()
        step = VersionNumber.next_minor
    while candidate in taken:
        candidate = step(candidate)
    return candidate
