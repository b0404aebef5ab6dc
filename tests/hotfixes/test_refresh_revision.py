"""Solving a hotfix moves the pipeline revision (hotfixes/apps.py), so open grids show the red gone."""

import pytest
from django.urls import reverse

from hotfixes.propagation import mark_solved
from lifecycle import revision
from tests.hotfixes.test_solve import hotfix, propagated  # noqa: F401  (fixtures)
from tests.lifecycle.test_refresh import shown

pytestmark = pytest.mark.django_db(transaction=True)  # The revision moves when a change commits.
GRID = reverse("lifecycle:pipeline")


def test_solving_a_hotfix_refreshes_its_row(client, release_manager, environments, propagated):  # noqa: F811
    client.force_login(release_manager)
    page = client.get(GRID).content.decode()
    assert 'class="cell hotfix"' in page
    sent = shown(page)
    before = revision.current()
    mark_solved(propagated.pk, environments, user=release_manager)
    assert revision.current() > before
    answer = client.post(GRID, sent, headers={"HX-Request": "true"}).content.decode()
    assert f'id="row-{propagated.application_id}"' in answer
    assert 'class="cell hotfix"' not in answer
