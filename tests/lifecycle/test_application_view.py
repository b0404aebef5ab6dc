import re

import pytest
from django.urls import reverse

from lifecycle.tagging import tag_environment
from tests.factories import publish_files, released_application

pytestmark = pytest.mark.django_db


def module_row(html, module):
    row = re.search(rf'<tr data-module="{re.escape(module)}"[^>]*>(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r'<td class="module-version">(.*?)</td>', row, re.S)
    return [
        " ".join(re.sub(r'<span class="visually-hidden">.*?</span>|<[^>]+>', "", c).split()) for c in cells
    ]


def test_it_lists_modules_per_environment_with_plus_marks(client, viewer, environments):
    dev, qa, pre, prod = environments
    application, (cart, catalog), _ = released_application(
        "Shop", environments, module_names=("Cart", "Catalog")
    )
    publish_files(catalog, dev, {"main.py": "new search"})
    publish_files(cart, pre, {"main.py": "hotfix"})
    client.force_login(viewer)
    html = client.get(reverse("lifecycle:application", args=[application.pk])).content.decode()

    assert module_row(html, "Shop-Catalog") == ["v2+", "v1", "v1", "v1"]
    assert module_row(html, "Shop-Cart") == ["v1", "v1", "v2+", "v1"]
    cart_row = re.search(r'<tr data-module="Shop-Cart"[^>]*>(.*?)</tr>', html, re.S).group(1)
    assert cart_row.count("hotfix-plus") == 1
    assert "Hotfix in Pre-Production" in html
    assert "(open hotfix)" in html


def test_it_shows_tag_history_and_recent_changes(client, viewer, environments):
    application, (core,), _ = released_application("Shop", environments, number="0.3")
    publish_files(core, environments[0], {"main.py": "next"}, comment="Search filters")
    tag_environment(application, environments[0], "0.4", notes="Autumn release")
    client.force_login(viewer)
    html = client.get(reverse("lifecycle:application", args=[application.pk])).content.decode()
    tags = re.findall(r'<td class="version">([^<]+)</td>', html)
    assert tags == ["0.4", "0.3"]
    assert "Autumn release" in html
    assert "v1 → v2" in html
    assert html.count("<td>Deploy</td>") == 3


def test_it_runs_a_fixed_number_of_queries(client, viewer, environments, django_assert_max_num_queries):
    application, modules, _ = released_application(
        "Shop", environments, module_names=[f"M{i}" for i in range(12)]
    )
    for module in modules[:6]:
        publish_files(module, environments[2], {"main.py": "fix " + module.name})
    client.force_login(viewer)
    # 22: one of them reads the partial merges' links, to tell an environment holding some of a
    # hotfix from one holding none (hotfixes.propagation.statuses); whatever the number of modules.
    # 23: the grid row looks for a tag whose contents an environment with `+` runs (build_rows).
    with django_assert_max_num_queries(24):  # 23, and the pipeline revision (lifecycle/refresh.py)
        client.get(reverse("lifecycle:application", args=[application.pk]))


def test_it_answers_404_for_an_unknown_application(client, viewer):
    client.force_login(viewer)
    assert client.get(reverse("lifecycle:application", args=[999999])).status_code == 404


def test_it_refuses_a_user_without_access(client, outsider, environments):
    application, _, _ = released_application("Shop", environments)
    client.force_login(outsider)
    assert client.get(reverse("lifecycle:application", args=[application.pk])).status_code == 403


def test_it_escapes_user_content(client, viewer, environments):
    application, (core,), _ = released_application("Shop", environments)
    publish_files(core, environments[0], {"main.py": "x"})
    tag_environment(application, environments[0], "0.4", notes="<img src=x onerror=alert(1)>")
    client.force_login(viewer)
    html = client.get(reverse("lifecycle:application", args=[application.pk])).content.decode()
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
