"""What the agent API tests share: an agent environment with a released application, and tokens."""

from django.urls import reverse

from lifecycle.delivery import agent_tokens
from lifecycle.models import Delivery, Environment


def make_agent_environment(environment: Environment, delivery=Delivery.AGENT) -> Environment:
    environment.delivery = delivery
    environment.save(update_fields=["delivery"])
    return environment


def new_token(environment: Environment, name="web-1") -> str:
    return agent_tokens.create(environment, name)[1]


def bearer(raw: str) -> dict:
    return {"Authorization": f"Bearer {raw}"}


def state_url():
    return reverse("api:agent-state")


def manifest_url(module_name, number):
    return reverse("api:agent-manifest", args=[module_name, number])


def archive_url(module_name, number):
    return reverse("api:agent-archive", args=[module_name, number])


def reports_url():
    return reverse("api:agent-reports")


def drift_url(module_name):
    return reverse("api:agent-drift", args=[module_name])


def delivery_url(deployment_id):
    return reverse("api:agent-delivery", args=[deployment_id])


def post_json(client, url, payload, raw, **extra):
    import json

    body = payload if isinstance(payload, bytes | str) else json.dumps(payload)
    return client.post(url, data=body, content_type="application/json", headers=bearer(raw), **extra)


def post_zip(client, url, body, raw):
    return client.post(url, data=body, content_type="application/zip", headers=bearer(raw))


def assert_error(response, status, code=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    assert error["message"]
    return error
