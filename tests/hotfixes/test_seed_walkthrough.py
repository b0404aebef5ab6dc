"""The seed's whole walkthrough through the domain code, on the demo pipeline."""

import pytest
from django.contrib.auth.models import User

from hotfixes.merging import evaluate, perform, prepare, take_everything
from hotfixes.models import Hotfix
from hotfixes.propagation import mark_solved, statuses
from lifecycle.demo import load_demo
from lifecycle.deploying.running import run_deployment, start_deployment
from lifecycle.deploying.validation import validate
from lifecycle.models import Application, CurrentVersion, Environment, Module
from tests.factories import publish_files

pytestmark = pytest.mark.django_db
DEFECT = b"        subtotal += line.unit_price\n"
FIX = b"        subtotal += line.unit_price * line.quantity\n"


def files_of(module, environment):
    version = CurrentVersion.objects.get(module=module, environment=environment).version
    return {f.path: bytes(f.blob.data) for f in version.files.select_related("blob")}


def test_it_walks_the_seed_domain():
    load_demo()
    rm = User.objects.create_superuser("rm", password="x")
    dev, qa, pre, prod = Environment.objects.all()
    shop = Application.objects.get(name="eCommerce")
    cart = Module.objects.get(name="ShoppingCart")
    dev_cart_before = files_of(cart, dev)["cart.py"]

    files = files_of(cart, pre)
    files["cart.py"] = files["cart.py"].replace(DEFECT, FIX)
    publish_files(cart, pre, files, user=rm)
    hotfix = Hotfix.objects.get(application=shop)

    validation = validate(pre, prod, [shop])
    run_deployment(start_deployment(pre, prod, [shop], user=rm, fingerprint=validation.fingerprint).pk)

    for target in (qa, dev):
        prepared = prepare(shop, pre if target == qa else qa, target)
        assert [m.module.name for m in prepared.modules] == ["ShoppingCart"]
        assert not prepared.has_conflicts
        selections = take_everything(prepared)
        assert not evaluate(prepared, selections).unresolved
        perform(prepared, selections, user=rm, fingerprint=prepared.fingerprint)

    dev_cart = files_of(cart, dev)["cart.py"]
    assert FIX in dev_cart and DEFECT not in dev_cart
    assert b"def remove_line" in dev_cart  # Development's newer work is kept.
    assert dev_cart != dev_cart_before
    assert not Hotfix.objects.filter(application=shop, environment__in=[qa, dev]).exists()

    (rows,) = statuses([hotfix], [dev, qa, pre, prod]).values()
    assert {row.environment.name: row.state for row in rows} == {
        "Development": "all",
        "Quality Assurance": "all",
        "Production": "all",
    }
    mark_solved(hotfix.pk, [dev, qa, pre, prod], user=rm)
    hotfix.refresh_from_db()
    assert not hotfix.is_open and not hotfix.solved_incomplete
