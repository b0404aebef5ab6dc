"""A refused block or unblock from the plain form (no htmx) answers 422 with the page and the reason."""

import pytest
from django.urls import reverse

from lifecycle.blocking import block
from lifecycle.models import ApplicationBlock
from tests.factories import make_application

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(environments):
    return make_application("Shop", ["Cart"])[0]


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("", "Not blocked: Say why you block Shop in Production"),
        ("   ", "Not blocked: Say why you block Shop in Production"),
        ("x" * 5000, "Not blocked:"),
    ],
)
def test_a_refused_block_answers_422_with_the_reason(
    client, shop, environments, release_manager, reason, message
):
    client.force_login(release_manager)
    response = client.post(
        reverse("lifecycle:block", args=[shop.pk, environments[-1].pk]), {"reason": reason}
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert message in html
    assert '<section id="blocking"' in html and "<html" in html  # the whole page, with the form to try again
    assert not ApplicationBlock.objects.exists()


def test_a_second_block_answers_422(client, shop, environments, release_manager):
    production = environments[-1]
    block(shop, production, release_manager, "First")
    client.force_login(release_manager)
    response = client.post(reverse("lifecycle:block", args=[shop.pk, production.pk]), {"reason": "Second"})
    assert response.status_code == 422
    assert (
        "Not blocked: Shop is already blocked in Production by release-manager" in response.content.decode()
    )
    assert ApplicationBlock.objects.get().reason == "First"


def test_a_refused_unblock_answers_422(client, shop, environments, release_manager):
    client.force_login(release_manager)
    response = client.post(
        reverse("lifecycle:unblock", args=[shop.pk, environments[-1].pk]), {"reason": "Why"}
    )
    assert response.status_code == 422
    assert (
        "Not unblocked: Shop is not blocked in Production; nothing to unblock." in response.content.decode()
    )


def test_a_block_still_redirects_to_the_application_page(client, shop, environments, release_manager):
    client.force_login(release_manager)
    response = client.post(
        reverse("lifecycle:block", args=[shop.pk, environments[-1].pk]), {"reason": "Freeze"}
    )
    assert response.status_code == 302
    assert ApplicationBlock.objects.get().reason == "Freeze"
