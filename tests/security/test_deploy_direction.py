"""Tag & Deploy goes forward only: from an earlier environment into a later one.

Found by attacking as an outsider after issue 9: `/deploy/run` accepted Production as the source
and Development as the target. Production's hotfix then reached Development by a deployment, with
no merge, no choice of changes and over Development's own work, although changes move backward
only by merging (docs/rules.md, "Which way changes move").
"""

import pytest
from django.urls import reverse

from lifecycle.deploying.running import start_deployment
from lifecycle.deploying.validation import DeploymentRefused, validate
from lifecycle.models import AccessLevel, CurrentVersion, Deployment
from tests.factories import make_user, publish_files, released_application

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(environments):
    dev, _, _, prod = environments
    application, (module,), _ = released_application("Shop", environments, module_names=("Cart",))
    publish_files(module, prod, {"main.py": "production hotfix\n"})
    return application


def test_validation_refuses_a_backward_deployment(shop, environments):
    dev, _, _, prod = environments
    validation = validate(prod, dev, [shop])
    assert [f.code for f in validation.findings if f.severity == "error"] == ["backward"]


def test_start_deployment_refuses_it(shop, environments, release_manager):
    dev, _, _, prod = environments
    fingerprint = validate(prod, dev, [shop]).fingerprint
    with pytest.raises(DeploymentRefused, match="forward only"):
        start_deployment(prod, dev, [shop], user=release_manager, fingerprint=fingerprint, deploy_anyway=True)
    assert not Deployment.objects.exists()


def test_the_deploy_form_refuses_it(shop, environments, client):
    dev, _, _, prod = environments
    client.force_login(make_user("dev-lead", {dev: AccessLevel.FULL, prod: AccessLevel.VIEW}))
    query = {"source": prod.pk, "target": dev.pk, "application": shop.pk}
    fingerprint = client.get(reverse("lifecycle:deploy"), query).context["validation"].fingerprint
    response = client.post(
        reverse("lifecycle:deploy-run"), {**query, "fingerprint": fingerprint, "deploy_anyway": "on"}
    )
    assert response.status_code == 409
    assert "forward only" in response.content.decode()
    assert not Deployment.objects.exists()
    assert CurrentVersion.objects.get(environment=dev).version.number == 1


def test_a_forward_deployment_still_validates(shop, environments):
    dev, _, _, prod = environments
    assert not validate(dev, prod, [shop]).has_errors
