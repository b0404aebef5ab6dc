"""The seed's whole walkthrough through the Django client, on the demo pipeline.

Fix in Pre-Production, Tag & Deploy 0.3.1 to Production, compare and merge into
Quality Assurance, then into Development (where cart.py has newer work), Mark
Hotfix as Solved: no red left for eCommerce.
"""

import html as htmllib
import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from hotfixes.models import Hotfix
from lifecycle.demo import load_demo
from lifecycle.models import Application, CurrentVersion, Environment, Module
from tests.editor_forms import editor_fields

pytestmark = pytest.mark.django_db
DEFECT = "        subtotal += line.unit_price\n"
FIX = "        subtotal += line.unit_price * line.quantity\n"


def cells(client, application="eCommerce"):
    html = client.get(reverse("lifecycle:pipeline")).content.decode()
    row = re.search(rf'<tr data-application="{application}"[^>]*>(.*?)</tr>', html, re.S).group(1)
    return re.findall(
        r'<td class="(cell[^"]*)" data-environment="([^"]+)".*?<span class="version">([^<]+)</span>',
        row,
        re.S,
    )


def fingerprint(html):
    return re.search(r'name="fingerprint" value="([0-9a-f]+)"', html).group(1)


def cart_text(environment):
    cart = Module.objects.get(name="ShoppingCart")
    version = CurrentVersion.objects.get(module=cart, environment=environment).version
    return bytes(version.files.select_related("blob").get(path="cart.py").blob.data).decode()


def test_it_walks_the_seed_from_fix_to_solved(client):
    load_demo()
    client.force_login(User.objects.create_superuser("rm", password="x"))
    dev, qa, pre, prod = Environment.objects.all()
    shop = Application.objects.get(name="eCommerce")
    cart = Module.objects.get(name="ShoppingCart")
    dev_before = cart_text(dev)

    # 1. Fix the defect in Pre-Production through the editor.
    editor = reverse("lifecycle:editor", args=[cart.pk, pre.pk])
    source = re.search(
        r'<textarea id="file-content"[^>]*>\n(.*?)</textarea>',
        client.get(editor, {"path": "cart.py"}).content.decode(),
        re.S,
    ).group(1)
    source = htmllib.unescape(source)
    assert DEFECT in source
    saved = client.post(
        reverse("lifecycle:editor-save", args=[cart.pk, pre.pk]),
        {
            **editor_fields(client, cart, pre, "cart.py"),
            "path": "cart.py",
            "content": source.replace(DEFECT, FIX),
        },
    )
    assert saved.status_code < 400, saved.status_code
    published = client.post(
        reverse("lifecycle:editor-publish", args=[cart.pk, pre.pk]),
        {**editor_fields(client, cart, pre), "comment": "Count quantities"},
    )
    assert published.status_code < 400, published.status_code
    assert ("cell hotfix", "Pre-Production", "0.3+") in cells(client)

    # 2. Tag & Deploy 0.3.1 to Production.
    query = {"source": pre.pk, "target": prod.pk, "application": shop.pk}
    plan = client.get(reverse("lifecycle:deploy"), query).content.decode()
    assert ">Tag &amp; Deploy 0.3.1</button>" in plan
    client.post(
        reverse("lifecycle:deploy-run"),
        {**query, "fingerprint": fingerprint(plan), f"number-{shop.pk}": "0.3.1"},
    )
    assert cells(client)[2:] == [("cell hotfix", "Pre-Production", "0.3.1"), ("cell", "Production", "0.3.1")]

    # 3. Compare Pre-Production with Quality Assurance, then merge into Quality Assurance.
    compare = client.get(
        reverse("hotfixes:compare"), {"application": shop.pk, "source": pre.pk, "target": qa.pk}
    )
    assert compare.status_code == 200 and "ShoppingCart" in compare.content.decode()
    for source_env, target_env in ((pre, qa), (qa, dev)):
        sides = {"application": shop.pk, "source": source_env.pk, "target": target_env.pk}
        page = client.get(reverse("hotfixes:merge"), sides).content.decode()
        assert (
            'data-module="ShoppingCart"' in page
            and "conflict" not in re.sub(r"<[^>]+>", "", page).split("Merge")[0]
        )
        response = client.post(
            reverse("hotfixes:merge"), {**sides, "fingerprint": fingerprint(page), "action": "merge"}
        )
        assert response.status_code == 302, response.content.decode()[:2000]

    assert FIX in cart_text(qa)
    dev_after = cart_text(dev)
    assert FIX in dev_after and DEFECT not in dev_after
    assert (
        "def remove_line" in dev_after and "def remove_line" in dev_before
    )  # Development's own work is kept.
    assert not Hotfix.objects.filter(application=shop, environment__in=[qa, dev]).exists()

    # 4. Every environment contains the fix: Mark Hotfix as Solved, and the red is gone.
    hotfix = Hotfix.objects.get(application=shop)
    app_page = client.get(reverse("lifecycle:application", args=[shop.pk])).content.decode()
    assert app_page.count("contains every change") == 3
    response = client.post(reverse("hotfixes:solve", args=[hotfix.pk]))
    assert response.status_code == 302
    hotfix.refresh_from_db()
    assert not hotfix.is_open and not hotfix.solved_incomplete
    assert all("hotfix" not in css for css, _, _ in cells(client))
    # Quality Assurance holds exactly the files of 0.3.1 after the merge: it shows that tag.
    assert [label for _, _, label in cells(client)] == ["0.4+", "0.3.1", "0.3.1", "0.3.1"]
