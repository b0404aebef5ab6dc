"""Two tabs of one person acting at the same moment, on PostgreSQL with real threads: the draft's row
lock lets one request pass its check at a time, so one wins and the other is told (StaleDraft)."""

import pytest
from django.db import connection

from lifecycle.editing import StaleDraft, open_draft, publish_draft, save_text
from lifecycle.models import Blob, CurrentVersion, Draft
from tests.factories import released_application
from tests.lifecycle.test_concurrency import race

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locks across connections need PostgreSQL"
    ),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def draft(environments, developer):
    _, (core,), _ = released_application("Shop", environments)
    return open_draft(developer, core, environments[0])


def page(draft):
    """What one loaded editor page holds: the draft as it was then."""
    shown = Draft.objects.get(pk=draft.pk)
    return shown, {"revision": shown.revision, "from_hash": shown.manifest["main.py"]}


@pytest.mark.parametrize("attempt", range(3))
def test_two_saves_from_pages_showing_the_same_file(draft, attempt):
    (tab_a, state_a), (tab_b, state_b) = page(draft), page(draft)
    outcomes = race(
        lambda: save_text(tab_a, "main.py", "alice\n", **state_a),
        lambda: save_text(tab_b, "main.py", "bob\n", **state_b),
    )
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["NoneType", "StaleDraft"]
    winner = "alice\n" if outcomes[0] is None else "bob\n"
    saved = Draft.objects.get(pk=draft.pk)
    assert bytes(Blob.objects.get(hash=saved.manifest["main.py"]).data) == winner.encode()
    assert saved.revision == 1


@pytest.mark.parametrize("attempt", range(3))
def test_a_save_racing_a_publish_from_the_same_page(draft, attempt):
    (tab_a, state_a), (tab_b, state_b) = page(draft), page(draft)
    before = CurrentVersion.objects.get(module=draft.module, environment=draft.environment).version
    outcomes = race(
        lambda: save_text(tab_a, "main.py", "unseen\n", **state_a),
        lambda: publish_draft(tab_b, "publish", revision=state_b["revision"]),
    )
    saved, published = outcomes
    assert isinstance(saved, StaleDraft) != isinstance(published, StaleDraft)
    current = CurrentVersion.objects.get(module=draft.module, environment=draft.environment).version
    if isinstance(saved, StaleDraft):
        # The publish went first: nothing changed, so "no changes", and the draft is gone.
        assert not published.created and current == before and not Draft.objects.exists()
    else:
        # The save went first: the publish was of a page that did not show it, so it was refused.
        assert current == before and Draft.objects.get().revision == 1


def test_two_publishes_from_the_same_page(draft, developer):
    save_text(draft, "main.py", "shipped\n", revision=0, from_hash=draft.manifest["main.py"])
    (tab_a, state_a), (tab_b, state_b) = page(draft), page(draft)
    outcomes = race(
        lambda: publish_draft(tab_a, "first", revision=state_a["revision"]),
        lambda: publish_draft(tab_b, "second", revision=state_b["revision"]),
    )
    assert sorted(type(outcome).__name__ for outcome in outcomes) == ["PublishResult", "StaleDraft"]
    current = CurrentVersion.objects.get(module=draft.module, environment=draft.environment).version
    assert current.number == 2 and not Draft.objects.exists()
