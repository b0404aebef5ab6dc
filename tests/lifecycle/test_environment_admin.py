"""Environment positions are unique: the admin refuses a duplicate with a clear message, never a 500."""

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from lifecycle.models import Environment

pytestmark = pytest.mark.django_db
CHANGELIST = reverse("admin:lifecycle_environment_changelist")


@pytest.fixture
def admin_client(client, environments):
    client.force_login(User.objects.create_superuser("root", password="x"))
    return client


def positions():
    return dict(Environment.objects.values_list("name", "position"))


def changelist_data(environments, new_positions):
    """The changelist's list_editable form, with `new_positions` {name: position} applied."""
    data = {
        "form-TOTAL_FORMS": str(len(environments)),
        "form-INITIAL_FORMS": str(len(environments)),
        "_save": "Save",
    }
    for index, environment in enumerate(environments):
        data[f"form-{index}-id"] = str(environment.pk)
        data[f"form-{index}-position"] = str(new_positions.get(environment.name, environment.position))
        data[f"form-{index}-is_production"] = "on" if environment.is_production else ""
    return data


def change_data(environment, **changes):
    data = {
        "name": environment.name,
        "position": environment.position,
        "is_production": "on" if environment.is_production else "",
        "delivery": environment.delivery,
        "accesses-TOTAL_FORMS": "0",
        "accesses-INITIAL_FORMS": "0",
    }
    data.update(changes)
    return data


def test_the_change_form_refuses_a_taken_position(admin_client, environments):
    before = positions()
    qa = environments[1]
    url = reverse("admin:lifecycle_environment_change", args=[qa.pk])
    response = admin_client.post(url, change_data(qa, position=environments[2].position))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Position 3 is already taken by Pre-Production" in page
    assert positions() == before


def test_the_add_form_refuses_a_taken_position(admin_client, environments):
    response = admin_client.post(
        reverse("admin:lifecycle_environment_add"),
        {
            "name": "Staging",
            "position": "1",
            "delivery": "record",
            "accesses-TOTAL_FORMS": "0",
            "accesses-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 200
    assert "Position 1 is already taken by Development" in response.content.decode()
    assert not Environment.objects.filter(name="Staging").exists()


def test_the_list_refuses_two_environments_at_one_position(admin_client, environments):
    before = positions()
    data = changelist_data(environments, {"Development": 9, "Quality Assurance": 9})
    response = admin_client.post(CHANGELIST, data)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Please correct the errors below." in page or "Please correct the error below." in page
    assert "Development and Quality Assurance cannot both be at position 9" in page
    assert positions() == before


def test_the_list_refuses_a_position_held_by_an_environment_that_stays(admin_client, environments):
    before = positions()
    response = admin_client.post(CHANGELIST, changelist_data(environments, {"Development": 4}))
    assert response.status_code == 200
    assert "Position 4 is already taken by Production" in response.content.decode()
    assert positions() == before


def test_the_list_refuses_a_swap_in_one_step_and_says_how(admin_client, environments):
    before = positions()
    data = changelist_data(environments, {"Pre-Production": 4, "Production": 3})
    response = admin_client.post(CHANGELIST, data)
    assert response.status_code == 200
    assert "move one to a free position first" in response.content.decode()
    assert positions() == before

    admin_client.post(CHANGELIST, changelist_data(environments, {"Production": 5}))
    admin_client.post(CHANGELIST, changelist_data(Environment.objects.all(), {"Pre-Production": 4}))
    response = admin_client.post(CHANGELIST, changelist_data(Environment.objects.all(), {"Production": 3}))
    assert response.status_code == 302
    assert positions() == {**before, "Pre-Production": 4, "Production": 3}
