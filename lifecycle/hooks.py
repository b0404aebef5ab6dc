"""What lifecycle learns of hotfixes, without importing the hotfixes app.

Arrows run one way: hotfixes imports lifecycle, never the reverse. Where
lifecycle must react to hotfixes or show them, the hotfixes app plugs in here
at start-up (`HotfixesConfig.ready`):

- `version_published` is sent inside the publishing transaction, so a receiver
  that fails rolls the publish back: hotfixes opens or extends a hotfix on it.
- `register_hotfix_state` hands over the object that answers, as plain data,
  which hotfixes are open and which modules carry their changes: the grid,
  deploy validation, rollback and the API show that.
- `register_application_section` adds a section to the application page.

Without the hotfixes app installed, lifecycle runs alone and sees no hotfix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from django.dispatch import Signal

# Sent by publishing.publish after a new version became current, inside its transaction, with
# module, environment, version, previous (the version it replaced or None), user, merged_from.
version_published = Signal()


class HotfixState:
    """The open hotfixes, as data. This default knows none; hotfixes registers the real one."""

    def open_hotfixes(self, application_ids: Iterable[int], environment_ids: Iterable[int]) -> dict:
        """(application id, environment id) -> the id of the open hotfix there."""
        return {}

    def hotfixed_modules(self, application_ids: Iterable[int], environment_ids: Iterable[int]) -> set:
        """(environment id, module id) pairs whose module carries an open hotfix's change."""
        return set()


_hotfix_state = HotfixState()
_application_sections: list[Callable] = []


def register_hotfix_state(state: HotfixState) -> None:
    global _hotfix_state
    _hotfix_state = state


def hotfix_state() -> HotfixState:
    return _hotfix_state


def register_application_section(section: Callable) -> None:
    """`section(request, application, environments)` returns a dict with `template` and its context."""
    if section not in _application_sections:
        _application_sections.append(section)


def application_sections(request, application, environments) -> list[dict]:
    return [section(request, application, environments) for section in _application_sections]
