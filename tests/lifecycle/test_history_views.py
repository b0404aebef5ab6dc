import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lifecycle.blocking import block
from lifecycle.history_views import application_history_context, duration_label
from lifecycle.models import AccessLevel, Delivery, Deployment, DeploymentItem, DeploymentLogLine
from lifecycle.tagging import tag_environment
from tests.factories import make_application, make_user, publish_files, released_application

pytestmark = pytest.mark.django_db

LIST_URL = reverse("lifecycle:deployments")
HTMX = {"HX-Request": "true"}
Status = Deployment.Status


def make_deployment(
    source,
    target,
    user,
    application=None,
    *,
    tag=None,
    previous_tag=None,
    status=Status.FINISHED,
    started_at=None,
    seconds=3,
    tagged=False,
    lines=(),
    **fields,
):
    """A deployment record as the deployment code leaves it: items only when it switched something."""
    started_at = started_at or timezone.now() - timedelta(minutes=5)
    if status == Status.RUNNING:
        # A live worker's lease: renewed just now (an older one is swept as aborted when viewed).
        fields = {"heartbeat_at": timezone.now(), "worker": "web-1:4242", **fields}
    requested = {"applications": [], "numbers": {}, "fingerprint": "test"}
    if application is not None:
        requested["applications"] = [application.pk]
        requested["numbers"] = {str(application.pk): tag.number if tag else "0.1"}
    deployment = Deployment.objects.create(
        source=source,
        target=target,
        started_by=user,
        started_at=started_at,
        finished_at=None if status == Status.RUNNING else started_at + timedelta(seconds=seconds),
        status=status,
        requested=requested,
        **fields,
    )
    if application is not None and status in (Status.FINISHED, Status.WARNINGS):
        DeploymentItem.objects.create(
            deployment=deployment,
            application=application,
            tag=tag,
            previous_tag=previous_tag,
            tagged=tagged,
            modules_changed=1,
        )
    for index, (level, message) in enumerate(lines):
        DeploymentLogLine.objects.create(
            deployment=deployment, at=started_at + timedelta(seconds=index), level=level, message=message
        )
    return deployment


@pytest.fixture
def shop(environments):
    """Shop released as 0.3 everywhere, then hotfixed in Pre-Production and tagged 0.3.1 there."""
    application, (core,), tag = released_application("Shop", environments, number="0.3")
    publish_files(core, environments[2], {"main.py": "fix"})
    hotfix_tag = tag_environment(application, environments[2], "0.3.1")
    return application, tag, hotfix_tag


def text(html):
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def detail_url(deployment):
    return reverse("lifecycle:deployment", args=[deployment.pk])


# The deployment page.


def test_it_shows_a_finished_deployment(client, viewer, release_manager, environments, shop):
    application, tag, hotfix_tag = shop
    _, _, pre, prod = environments
    deployment = make_deployment(
        pre,
        prod,
        release_manager,
        application,
        tag=hotfix_tag,
        previous_tag=tag,
        status=Status.WARNINGS,
        seconds=75,
        tagged=True,
        notes="Quarter-end fix",
        deploy_anyway=True,
        findings=[
            {
                "severity": "confirm",
                "code": "undoes_changes",
                "message": "Would undo Core v2.",
                "application": "Shop",
            },
            {"severity": "warning", "code": "downgrade", "message": "A downgrade.", "application": "Shop"},
        ],
        lines=[("info", "Started."), ("warning", "Shop: a downgrade."), ("info", "Finished with warnings.")],
    )
    client.force_login(viewer)
    response = client.get(detail_url(deployment))
    html = response.content.decode()

    assert response.status_code == 200
    assert f"Deployment {deployment.pk}: Pre-Production → Production" in text(html)
    assert '<span class="deploy-status deploy-status-warnings">Finished with warnings</span>' in html
    assert "took 1 min 15 s" in html
    assert "Started by <strong>release-manager</strong>" in html
    assert "<strong>Deploy anyway</strong>" in html
    assert "Quarter-end fix" in html
    assert "0.3 → 0.3.1" in text(html)
    assert 'class="tagged-label"' in html
    assert "Would undo Core v2." in html and "Needs Deploy anyway" in html
    assert re.search(r'class="log-line log-warning">.*?Shop: a downgrade\.', html, re.S)
    assert html.count('class="log-line ') == 3
    # Over: the log does not poll.
    assert 'hx-trigger="every 1s"' not in html


def test_it_polls_the_log_every_second_while_running(client, viewer, release_manager, environments, shop):
    application, tag, _ = shop
    deployment = make_deployment(
        environments[0], environments[1], release_manager, application, tag=tag, status=Status.RUNNING,
        lines=[("info", "Started.")],
    )  # fmt: skip
    client.force_login(viewer)

    page = client.get(detail_url(deployment)).content.decode()
    assert 'id="log"' in page and 'hx-trigger="every 1s"' in page
    assert "Requested, not switched yet" in page

    response = client.get(detail_url(deployment), headers=HTMX)
    fragment = response.content.decode()
    assert response.status_code == 200
    assert fragment.lstrip().startswith('<section id="log"')
    assert f'hx-get="{detail_url(deployment)}"' in fragment
    assert 'hx-trigger="every 1s"' in fragment and 'hx-swap="outerHTML"' in fragment
    assert "<html" not in fragment
    assert "Running" in fragment


def test_it_stops_polling_with_the_final_fragment_when_finished(
    client, viewer, release_manager, environments, shop
):
    application, tag, _ = shop
    deployment = make_deployment(
        environments[0], environments[1], release_manager, application, tag=tag, status=Status.RUNNING
    )
    DeploymentLogLine.objects.create(deployment=deployment, at=timezone.now(), message="Switching.")
    client.force_login(viewer)
    assert client.get(detail_url(deployment), headers=HTMX).status_code == 200

    Deployment.objects.filter(pk=deployment.pk).update(status=Status.FAILED, finished_at=timezone.now())
    DeploymentLogLine.objects.create(
        deployment=deployment, at=timezone.now(), level="error", message="Failed, nothing was changed."
    )
    response = client.get(detail_url(deployment), headers=HTMX)
    fragment = response.content.decode()

    assert response.status_code == 286
    assert 'hx-trigger="every 1s"' not in fragment
    assert re.search(r'class="log-line log-error">.*?Failed, nothing was changed\.', fragment, re.S)
    # The header's status and the applications are refreshed out of band.
    assert '<p id="status" class="deployment-status" hx-swap-oob="true">' in fragment
    assert '<span class="deploy-status deploy-status-failed">Aborted</span>' in fragment
    assert "Requested, nothing was deployed" in fragment


def test_it_shows_every_status_in_words(client, viewer, release_manager, environments):
    """As LifeTime says them; the badge's colour is never the only signal."""
    labels = {
        Status.RUNNING: "Running",
        Status.WAITING: "Waiting for Quality Assurance",
        Status.FINISHED: "Finished",
        Status.WARNINGS: "Finished with warnings",
        Status.ERRORS: "Finished with errors",
        Status.FAILED: "Aborted",
    }
    assert set(labels) == set(Status.values)
    # Only an environment that delivers to machines has deployments waiting for it (a record one's end).
    environments[1].delivery = Delivery.AGENT
    environments[1].save(update_fields=["delivery"])
    client.force_login(viewer)
    for status, label in labels.items():
        deployment = make_deployment(environments[0], environments[1], release_manager, status=status)
        badge = f'<span class="deploy-status deploy-status-{status}">{label}</span>'
        assert badge in client.get(detail_url(deployment)).content.decode()
        listed = client.get(LIST_URL, {"status": status}).content.decode()
        assert f'deploy-status deploy-status-{status}" href="{detail_url(deployment)}">{label}</a>' in listed


def test_it_escapes_log_messages_findings_and_notes(client, viewer, release_manager, environments):
    deployment = make_deployment(
        environments[0],
        environments[1],
        release_manager,
        notes="<b>notes</b>",
        findings=[
            {"severity": "error", "code": "x", "message": "<script>alert(1)</script>", "application": "A"}
        ],
        lines=[("error", "<img src=x onerror=alert(1)>")],
    )
    client.force_login(viewer)
    html = client.get(detail_url(deployment)).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>notes" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html


def test_it_renders_findings_of_any_shape(client, viewer, release_manager, environments):
    deployment = make_deployment(
        environments[0],
        environments[1],
        release_manager,
        findings=[{"severity": "novel", "message": "Something new."}, "not a finding", {"code": "bare"}],
    )
    client.force_login(viewer)
    response = client.get(detail_url(deployment))
    assert response.status_code == 200
    assert "Something new." in response.content.decode()


def test_it_needs_view_access_to_the_target(client, outsider, release_manager, environments):
    deployment = make_deployment(environments[2], environments[3], release_manager)
    qa_only = make_user("qa-only", {environments[1]: AccessLevel.FULL})
    client.force_login(outsider)
    assert client.get(detail_url(deployment)).status_code == 404
    client.force_login(qa_only)
    assert client.get(detail_url(deployment)).status_code == 404
    assert client.get(detail_url(deployment), headers=HTMX).status_code == 404


def test_it_answers_404_for_an_unknown_deployment(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("lifecycle:deployment", args=[999999])).status_code == 404


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(0.42, "0.4 s"), (12, "12 s"), (75, "1 min 15 s"), (3 * 3600 + 120, "3 h 2 min")],
)
def test_it_formats_durations(release_manager, environments, seconds, label):
    deployment = make_deployment(environments[0], environments[1], release_manager, seconds=seconds)
    assert duration_label(deployment) == label


# The deployments page.


def rows(html):
    return [int(pk) for pk in re.findall(r'<tr data-deployment="(\d+)">', html)]


def test_it_lists_deployments_newest_first(client, viewer, release_manager, environments, shop):
    application, tag, hotfix_tag = shop
    now = timezone.now()
    old = make_deployment(
        environments[0],
        environments[1],
        release_manager,
        application,
        tag=tag,
        started_at=now - timedelta(days=2),
    )
    new = make_deployment(
        environments[2], environments[3], release_manager, application, tag=hotfix_tag,
        started_at=now - timedelta(hours=1),
    )  # fmt: skip
    client.force_login(viewer)
    response = client.get(LIST_URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert rows(html) == [new.pk, old.pk]
    assert "Pre-Production → Production" in html
    assert f'href="{detail_url(new)}"' in html
    assert '<a href="/deployments/">Deployments</a>' in html  # the nav link


def test_it_lists_only_deployments_into_environments_the_user_sees(client, release_manager, environments):
    dev, qa, pre, prod = environments
    into_qa = make_deployment(dev, qa, release_manager)
    make_deployment(pre, prod, release_manager)
    client.force_login(make_user("qa-viewer", {qa: AccessLevel.VIEW}))
    html = client.get(LIST_URL).content.decode()
    assert rows(html) == [into_qa.pk]
    assert f'<option value="{prod.pk}">' not in html


def test_it_refuses_a_user_without_access(client, outsider):
    client.force_login(outsider)
    assert client.get(LIST_URL).status_code == 403


def test_it_filters_deployments(client, viewer, release_manager, developer, environments, shop):
    dev, qa, pre, prod = environments
    application, tag, hotfix_tag = shop
    other, (module,) = make_application("Stock")
    publish_files(module, dev, {"main.py": "stock"})
    stock_tag = tag_environment(other, dev, "1.0")
    by_rm = make_deployment(pre, prod, release_manager, application, tag=hotfix_tag)
    by_dev = make_deployment(dev, qa, developer, other, tag=stock_tag)
    failed = make_deployment(dev, qa, developer, application, tag=tag, status=Status.FAILED)
    running = make_deployment(qa, pre, developer, other, tag=stock_tag, status=Status.RUNNING)
    client.force_login(viewer)

    def listed(**filters):
        return rows(client.get(LIST_URL, filters).content.decode())

    # A failed or running deployment has no items: it is found by what it was asked to deploy.
    assert sorted(listed(application="sho")) == sorted([by_rm.pk, failed.pk])
    assert sorted(listed(application="STOCK")) == sorted([by_dev.pk, running.pk])
    assert listed(application="nothing like it") == []
    assert listed(environment=prod.pk) == [by_rm.pk]
    assert sorted(listed(user="develop")) == sorted([by_dev.pk, failed.pk, running.pk])
    assert listed(status="failed") == [failed.pk]
    assert listed(status="running") == [running.pk]
    assert listed(application="shop", user="developer", environment=qa.pk) == [failed.pk]
    # Unknown values are ignored rather than failing.
    assert len(listed(status="exploded", environment="abc", page="x")) == 4


def test_it_keeps_the_filters_in_the_form_and_the_page_links(client, viewer, release_manager, environments):
    for _ in range(55):
        make_deployment(environments[0], environments[1], release_manager)
    client.force_login(viewer)
    html = client.get(LIST_URL, {"user": "release", "status": "finished"}).content.decode()
    assert 'name="user" value="release"' in html
    assert '<option value="finished" selected>Finished</option>' in html
    assert len(rows(html)) == 50
    assert "Page 1 of 2 · 55 deployments" in html
    assert 'href="/deployments/?user=release&amp;status=finished&amp;page=2"' in html
    second = client.get(LIST_URL, {"user": "release", "status": "finished", "page": 2}).content.decode()
    assert len(rows(second)) == 5


def test_it_answers_htmx_with_the_table_fragment(client, viewer, release_manager, environments):
    deployment = make_deployment(environments[0], environments[1], release_manager)
    client.force_login(viewer)
    response = client.get(LIST_URL, {"status": "finished"}, headers=HTMX)
    fragment = response.content.decode()
    assert fragment.lstrip().startswith('<section id="deployments"')
    assert "<html" not in fragment and 'id="deployment-filters"' not in fragment
    assert rows(fragment) == [deployment.pk]


def test_it_escapes_names_in_the_list(client, viewer, environments):
    evil = make_user("<b>evil</b>", {environments[1]: AccessLevel.DEPLOY})
    make_deployment(environments[0], environments[1], evil)
    client.force_login(viewer)
    html = client.get(LIST_URL).content.decode()
    assert "<b>evil" not in html and "&lt;b&gt;evil&lt;/b&gt;" in html


def _list_queries(client, user):
    client.force_login(user)
    with CaptureQueriesContext(connection) as context:
        response = client.get(LIST_URL, {"application": "a"})
    assert response.status_code == 200
    return len(context.captured_queries)


def test_it_runs_the_same_number_of_queries_for_3_and_40_deployments(
    client, viewer, release_manager, environments, django_assert_max_num_queries
):
    def add(count, start):
        for index in range(start, start + count):
            application, (module,) = make_application(f"App {index:02}")
            publish_files(module, environments[0], {"main.py": str(index)})
            tag = tag_environment(application, environments[0], "0.1")
            status = [Status.FINISHED, Status.FAILED, Status.RUNNING, Status.WARNINGS][index % 4]
            make_deployment(
                environments[0], environments[1], release_manager, application, tag=tag, status=status
            )

    add(3, 0)
    few = _list_queries(client, viewer)
    add(37, 3)
    many = _list_queries(client, viewer)
    assert few == many
    with django_assert_max_num_queries(9):
        client.get(LIST_URL)


# The application page.


def test_it_gives_the_application_page_its_history_in_a_fixed_number_of_queries(
    release_manager, developer, environments, shop, django_assert_num_queries
):
    application, tag, hotfix_tag = shop
    dev, qa, pre, prod = environments
    now = timezone.now()
    done = make_deployment(
        pre, prod, release_manager, application, tag=hotfix_tag, started_at=now - timedelta(hours=1)
    )
    failed = make_deployment(
        dev,
        qa,
        release_manager,
        application,
        tag=tag,
        status=Status.FAILED,
        started_at=now - timedelta(hours=2),
    )
    make_deployment(dev, qa, release_manager)  # Another application's.
    block(application, prod, release_manager, "Freeze")

    # The deployments, their items, the blocks, and the user's access levels.
    with django_assert_num_queries(4):
        context = application_history_context(application, environments, developer)

    assert [d.pk for d in context["deployments"]] == [done.pk, failed.pk]
    by_pk = {d.pk: d for d in context["deployments"]}
    assert by_pk[done.pk].number == "0.3.1" and by_pk[done.pk].item is not None
    assert by_pk[failed.pk].number == "0.3" and by_pk[failed.pk].item is None
    assert set(context["blocks"]) == {prod.pk}
    assert [row["can_block"] for row in context["blocking"]] == [False] * 4
    assert all(
        row["can_block"]
        for row in application_history_context(application, environments, release_manager)["blocking"]
    )


def test_it_shows_deployments_and_blocks_on_the_application_page(
    client, release_manager, developer, environments, shop
):
    application, tag, hotfix_tag = shop
    deployment = make_deployment(
        environments[2], environments[3], release_manager, application, tag=hotfix_tag
    )
    block(application, environments[3], release_manager, "Quarter-end <freeze>")
    client.force_login(developer)
    html = client.get(reverse("lifecycle:application", args=[application.pk])).content.decode()

    section = html[html.index('id="deployment-history"') :]
    assert f'href="{detail_url(deployment)}"' in section and "0.3.1" in section
    assert (
        'Blocked in Production</strong>: <span class="block-reason">Quarter-end &lt;freeze&gt;</span>' in html
    )
    assert "Quarter-end <freeze>" not in html
    # The developer has no full access anywhere: no block or unblock forms.
    assert "/block/" not in html and "/unblock/" not in html

    client.force_login(release_manager)
    html = client.get(reverse("lifecycle:application", args=[application.pk])).content.decode()
    assert html.count(f'action="/applications/{application.pk}/block/') == 3
    assert html.count(f'action="/applications/{application.pk}/unblock/') == 1
