"""The API's "no such environment" answer lists only the environments the token's user can view.

Found by attacking as an outsider after issue 9: a token of a Development-only viewer asked for
an unknown environment and was told the names of all of them, Production's included.
"""

import pytest
from django.urls import reverse

from lifecycle.models import AccessLevel
from lifecycle.tokens import create_token
from tests.factories import make_user, released_application

pytestmark = pytest.mark.django_db


def test_an_unknown_environment_lists_only_those_the_user_sees(environments, client):
    dev = environments[0]
    released_application("Shop", environments, module_names=("Cart",))
    raw = create_token(make_user("dev-viewer", {dev: AccessLevel.VIEW}), "ci")[1]
    response = client.get(
        reverse("api:environment-archive", args=["Shop-Cart", "Nowhere"]),
        headers={"Authorization": f"Bearer {raw}"},
    )
    assert response.status_code == 404
    message = response.json()["detail"]
    assert "Development" in message
    assert all(e.name not in message for e in environments[1:])
