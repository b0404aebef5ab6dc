"""An environment set back to `record` (in the admin) while a deployment waits for its machines.

A record environment's switch is the deployment, and its agents are refused from then on
(403 not_delivering): nothing will ever confirm the delivery. The waiting deployment must not
keep the environment locked until its deadline (600 s by default) and then end "with errors"
offering a Retry that is refused; it finishes at the next sweep, saying why.
"""

import pytest
from django.test import Client
from django.urls import reverse

from lifecycle.deploying.running import run_deployment
from lifecycle.models import Delivery, Deployment, Environment
from tests.lifecycle.deliveries import changed_in_development, log_messages, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def waiting(environments, release_manager):
    dev, qa = environments[0], environments[1]
    Environment.objects.filter(pk=qa.pk).update(delivery=Delivery.AGENT)
    qa.refresh_from_db()
    shop = changed_in_development("Shop", environments)[0]
    deployment = run_deployment(start(dev, qa, shop, release_manager).pk)
    assert deployment.status == Deployment.Status.WAITING
    Environment.objects.filter(pk=qa.pk).update(delivery=Delivery.RECORD)
    return deployment


def test_viewing_it_finishes_it_and_says_why(waiting, release_manager):
    client = Client()
    client.force_login(release_manager)

    page = client.get(reverse("lifecycle:deployment", args=[waiting.pk])).content.decode()

    waiting.refresh_from_db()
    assert waiting.status == Deployment.Status.FINISHED
    assert log_messages(waiting)[-1] == (
        "Quality Assurance no longer delivers to machines (its delivery is record): the switch in "
        "Stageboard is the deployment, and no machine confirmed it: finished."
    )
    assert "Retry" not in page


def test_it_does_not_hold_back_the_next_deployment(waiting, environments, release_manager):
    dev, qa = environments[0], Environment.objects.get(pk=environments[1].pk)
    cart = changed_in_development("Cart", environments)[0]

    following = run_deployment(start(dev, qa, cart, release_manager).pk)

    assert following.status == Deployment.Status.FINISHED  # record: the switch is the deployment
    waiting.refresh_from_db()
    assert waiting.status == Deployment.Status.FINISHED
