"""A second outsider's round over the console after issue 9: what it found, pinned.

Each case is sent by a release manager (full access everywhere), so a refusal is about the
input, never about access: a clear 4xx, and nothing written (tests.security.snapshot).
"""

import pytest
from django.urls import reverse

from lifecycle.deploying.validation import validate
from lifecycle.models import ApplicationTag, PlanItem
from tests.security import DEV, QA, Ctx, build_world, change, differences, snapshot

pytestmark = pytest.mark.django_db

# A number cut at 32 characters read as 0.5: 0.5, 29 spaces, then what makes it invalid.
CUT_SHORT = "0.5" + " " * 29 + "x"


@pytest.fixture
def world(environments, release_manager, client, tmp_path):
    """App released as 0.3 everywhere; the release manager logged in."""
    client.force_login(release_manager)
    client.raise_request_exception = False
    return build_world(Ctx(environments, release_manager, client, tmp_path, DEV))


def _refused(response, before, status):
    assert response.status_code == status, response.content[:300]
    assert 'role="alert"' in response.content.decode()
    assert differences(before, snapshot()) == []


@pytest.mark.parametrize("number", [CUT_SHORT, "0.5" + "\u00a0" * 40 + "0"])
def test_deploy_refuses_a_number_that_is_valid_only_when_cut_short(world, number):
    dev, qa = world.at(DEV), world.at(QA)
    change(world.module, dev, "ahead")
    before = snapshot()
    response = world.client.post(
        reverse("lifecycle:deploy-run"),
        {
            "source": dev.pk,
            "target": qa.pk,
            "application": world.application.pk,
            "fingerprint": validate(dev, qa, [world.application]).fingerprint,
            f"number-{world.application.pk}": number,
        },
    )
    _refused(response, before, 409)
    assert "is not a version number" in response.content.decode()
    assert not ApplicationTag.objects.filter(number="0.5").exists()


@pytest.mark.parametrize("number", ["01.2", "1.2.3.4", "-1.0", "１.０", "99999999999999999999.0", CUT_SHORT])
def test_a_plan_refuses_a_number_that_is_not_a_version(world, number):
    before = snapshot()
    response = world.client.post(
        reverse("lifecycle:plan-save"),
        {
            "source": world.at(DEV).pk,
            "target": world.at(QA).pk,
            "application": world.application.pk,
            "name": "Nightly",
            f"number-{world.application.pk}": number,
        },
    )
    _refused(response, before, 422)
    assert "is not a version number" in response.content.decode()


def test_a_plan_keeps_a_valid_number_without_the_spaces_around_it(world):
    response = world.client.post(
        reverse("lifecycle:plan-save"),
        {
            "source": world.at(DEV).pk,
            "target": world.at(QA).pk,
            "application": world.application.pk,
            "name": "Nightly",
            f"number-{world.application.pk}": " 0.5 ",
        },
    )
    assert response.status_code == 302
    assert list(PlanItem.objects.values_list("number", flat=True)) == ["0.5"]
