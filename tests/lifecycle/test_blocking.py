import threading

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.urls import reverse

from lifecycle import blocking
from lifecycle.blocking import BlockError, block, unblock
from lifecycle.models import ApplicationBlock
from tests.factories import make_application

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}


@pytest.fixture
def shop(environments):
    application, _ = make_application("Shop")
    return application


@pytest.fixture
def production(environments):
    return environments[-1]


def block_url(application, environment):
    return reverse("lifecycle:block", args=[application.pk, environment.pk])


def unblock_url(application, environment):
    return reverse("lifecycle:unblock", args=[application.pk, environment.pk])


def flashed(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


# The domain functions.


def test_it_blocks_and_unblocks(shop, production, release_manager):
    made = block(shop, production, release_manager, "  Quarter-end freeze ")
    assert made.reason == "Quarter-end freeze"
    assert blocking.active_block(shop, production) == made

    lifted = unblock(shop, production, release_manager, "Freeze over")
    assert lifted.unblocked_by == release_manager and lifted.unblocked_at is not None
    stored = ApplicationBlock.objects.get()
    assert stored.unblock_reason == "Freeze over" and stored.unblocked_at is not None
    assert blocking.active_block(shop, production) is None

    # Blocking again keeps the lifted block as history.
    block(shop, production, release_manager, "Again")
    assert ApplicationBlock.objects.count() == 2


@pytest.mark.parametrize("reason", ["", "   ", None, "x" * (blocking.MAX_REASON_LENGTH + 1)])
def test_it_refuses_a_block_without_a_usable_reason(shop, production, release_manager, reason):
    with pytest.raises(BlockError, match="reason"):
        block(shop, production, release_manager, reason)
    assert not ApplicationBlock.objects.exists()


def test_it_refuses_a_second_active_block(shop, production, release_manager):
    block(shop, production, release_manager, "Freeze")
    with pytest.raises(BlockError, match=r"already blocked in Production by release-manager .*: Freeze"):
        block(shop, production, release_manager, "Freeze again")
    assert ApplicationBlock.objects.count() == 1


def test_it_blocks_each_environment_separately(shop, environments, release_manager):
    for environment in environments:
        block(shop, environment, release_manager, f"Not in {environment.name}")
    assert ApplicationBlock.objects.filter(unblocked_at__isnull=True).count() == len(environments)


def test_it_turns_a_block_made_meanwhile_into_a_message(shop, production, release_manager, monkeypatch):
    block(shop, production, release_manager, "First")
    # As if the other block was committed between our check and our insert.
    monkeypatch.setattr(blocking, "active_block", lambda application, environment: None)
    with pytest.raises(BlockError, match="just blocked in Production by someone else"):
        block(shop, production, release_manager, "Second")
    assert ApplicationBlock.objects.get().reason == "First"


def test_it_refuses_to_unblock_what_is_not_blocked(shop, production, release_manager):
    with pytest.raises(BlockError, match="not blocked in Production"):
        unblock(shop, production, release_manager, "Why not")
    block(shop, production, release_manager, "Freeze")
    unblock(shop, production, release_manager, "Done")
    with pytest.raises(BlockError, match="not blocked in Production"):
        unblock(shop, production, release_manager, "Twice")


def test_it_refuses_an_unblock_without_a_reason(shop, production, release_manager):
    block(shop, production, release_manager, "Freeze")
    with pytest.raises(BlockError, match="reason"):
        unblock(shop, production, release_manager, " ")
    assert blocking.active_block(shop, production) is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_it_lets_one_of_two_simultaneous_blocks_win(shop, production, release_manager):
    barrier = threading.Barrier(2)
    outcomes = []

    def attempt(reason):
        try:
            barrier.wait()
            block(shop, production, release_manager, reason)
            outcomes.append("blocked")
        except BlockError as error:
            outcomes.append(str(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(reason,)) for reason in ("One", "Two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert ApplicationBlock.objects.count() == 1
    assert outcomes.count("blocked") == 1
    (refusal,) = [outcome for outcome in outcomes if outcome != "blocked"]
    assert "already blocked in Production" in refusal


# The views.


def test_it_blocks_from_the_application_page(client, shop, production, release_manager):
    client.force_login(release_manager)
    response = client.post(block_url(shop, production), {"reason": "Quarter-end freeze"})
    assert response.status_code == 302
    assert response.url == reverse("lifecycle:application", args=[shop.pk]) + "#blocking"
    assert flashed(response) == [
        "Blocked Shop in Production: deployments of it into Production are refused until it is unblocked."
    ]
    made = ApplicationBlock.objects.get()
    assert (made.application, made.environment, made.blocked_by) == (shop, production, release_manager)


def test_it_unblocks_from_the_application_page(client, shop, production, release_manager):
    block(shop, production, release_manager, "Freeze")
    client.force_login(release_manager)
    response = client.post(unblock_url(shop, production), {"reason": "Freeze over"})
    assert response.status_code == 302
    assert flashed(response) == ["Unblocked Shop in Production: it may be deployed again."]
    assert ApplicationBlock.objects.get().unblock_reason == "Freeze over"


@pytest.mark.parametrize("user", ["developer", "viewer", "outsider"])
def test_it_refuses_users_without_full_access(client, shop, environments, release_manager, user, request):
    client.force_login(request.getfixturevalue(user))
    for environment in environments:
        assert client.post(block_url(shop, environment), {"reason": "Mine"}).status_code == 403
    assert not ApplicationBlock.objects.exists()

    block(shop, environments[-1], release_manager, "Freeze")
    assert client.post(unblock_url(shop, environments[-1]), {"reason": "Mine"}).status_code == 403
    assert blocking.active_block(shop, environments[-1]) is not None


def test_it_refuses_a_get(client, shop, production, release_manager):
    client.force_login(release_manager)
    assert client.get(block_url(shop, production)).status_code == 405
    assert client.get(unblock_url(shop, production)).status_code == 405


def test_it_answers_404_for_unknown_objects(client, shop, production, release_manager):
    client.force_login(release_manager)
    assert (
        client.post(reverse("lifecycle:block", args=[999999, production.pk]), {"reason": "x"}).status_code
        == 404
    )
    assert client.post(reverse("lifecycle:block", args=[shop.pk, 999999]), {"reason": "x"}).status_code == 404


def test_it_explains_a_refused_block_and_writes_nothing(client, shop, production, release_manager):
    client.force_login(release_manager)
    response = client.post(block_url(shop, production), {"reason": "  "})
    assert response.status_code == 422
    assert (
        "Not blocked: Say why you block Shop in Production: the reason is kept with the block."
        in response.content.decode()
    )
    assert not ApplicationBlock.objects.exists()


def test_it_tells_the_second_of_two_blockers(client, shop, production, release_manager):
    client.force_login(release_manager)
    client.post(block_url(shop, production), {"reason": "First"})
    response = client.post(block_url(shop, production), {"reason": "Second"})
    assert response.status_code == 422
    html = response.content.decode()
    assert "Not blocked: Shop is already blocked in Production by release-manager" in html
    assert ApplicationBlock.objects.get().reason == "First"


def test_it_explains_an_unblock_of_what_is_not_blocked(client, shop, production, release_manager):
    client.force_login(release_manager)
    response = client.post(unblock_url(shop, production), {"reason": "Why"})
    assert response.status_code == 422
    assert (
        "Not unblocked: Shop is not blocked in Production; nothing to unblock." in response.content.decode()
    )


def test_it_answers_htmx_with_the_blocking_section(client, shop, production, release_manager):
    client.force_login(release_manager)
    response = client.post(block_url(shop, production), {"reason": "<script>alert(1)</script>"}, headers=HTMX)
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="blocking"')
    assert "Blocked Shop in Production" in html
    assert (
        'Blocked in Production</strong>: <span class="block-reason">&lt;script&gt;alert(1)&lt;/script&gt;'
        in html
    )
    assert "<script>alert" not in html
    assert f'action="{unblock_url(shop, production)}"' in html
    # Nothing is left for the next full page.
    assert flashed(response) == []


def test_it_answers_a_refused_htmx_block_with_422_and_the_message(client, shop, production, release_manager):
    block(shop, production, release_manager, "Freeze")
    client.force_login(release_manager)
    response = client.post(block_url(shop, production), {"reason": "Again"}, headers=HTMX)
    assert response.status_code == 422
    assert 'role="alert">Not blocked: Shop is already blocked in Production' in response.content.decode()
    assert ApplicationBlock.objects.count() == 1
