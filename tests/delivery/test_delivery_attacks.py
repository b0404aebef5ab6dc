"""An outside reviewer's attacks on delivery (issue 10) that found defects, each test named for its attack."""

import pytest

from lifecycle.models import CurrentVersion, Drift
from lifecycle.snapshots import content_hash, tree_hash
from tests.delivery.agent_support import (
    assert_error,
    drift_url,
    make_agent_environment,
    new_token,
    post_json,
    post_zip,
    reports_url,
)
from tests.factories import publish_files, released_application
from tests.zips import make_zip

pytestmark = pytest.mark.django_db

EDITED = {"main.py": b"# edited on the server\n"}


@pytest.fixture
def shop(environments):
    application, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    production = make_agent_environment(environments[-1])
    return application, cart, production, new_token(production)


def _report(client, raw, application, module, applied, live):
    response = post_json(
        client,
        reports_url(),
        {
            "applications": [
                {"name": application.name, "applied": {module.name: applied}, "live": {module.name: live}}
            ]
        },
        raw,
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_a_drift_uploaded_after_a_newer_publish_cannot_be_adopted_over_it(client, shop):
    """The agent is asked for the drift of v1; v2 is published before its upload arrives.

    The files were edited on v1: kept as a drift "from v2", adopting them would publish v1's
    files plus the edit on top of v2, silently undoing v2.
    """
    application, cart, production, raw = shop
    v1 = CurrentVersion.objects.get(environment=production, module=cart).version
    edited = tree_hash({path: content_hash(data) for path, data in EDITED.items()})
    assert _report(client, raw, application, cart, v1.tree_hash, edited)["drift_uploads"] == [cart.name]
    publish_files(cart, production, {"main.py": "# v2: a fix published in Production\n"})

    response = post_zip(client, drift_url(cart.name), make_zip(EDITED), raw)

    assert_error(response, 409, "not_applied")
    assert not Drift.objects.exists()


def test_a_drift_upload_without_any_report_is_refused(client, shop):
    _, cart, _, raw = shop
    assert_error(post_zip(client, drift_url(cart.name), make_zip(EDITED), raw), 409, "not_applied")
    assert not Drift.objects.exists()
