import difflib
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from hotfixes.models import Hotfix
from lifecycle.demo import DemoError, load_demo
from lifecycle.models import AccessLevel, Application, CurrentVersion, Environment, EnvironmentAccess
from lifecycle.pipeline import build_rows

pytestmark = pytest.mark.django_db

DEFECT = "        subtotal += line.unit_price\n"
PIPELINE = ["Development", "Quality Assurance", "Pre-Production", "Production"]


def labels():
    """(application, environment) -> the label the grid shows."""
    rows = build_rows(Application.objects.all(), Environment.objects.all())
    return {(row.application.name, cell.environment.name): cell.label for row in rows for cell in row.cells}


def counts():
    models = [
        *apps.get_app_config("lifecycle").get_models(),
        *apps.get_app_config("hotfixes").get_models(),
        Group,
    ]
    return {model.__name__: model.objects.count() for model in models}


def files(environment_name, module_name):
    current = CurrentVersion.objects.get(environment__name=environment_name, module__name=module_name)
    return {file.path: file.blob for file in current.version.files.select_related("blob")}


def tagged_files(application_name, number, module_name):
    tag = Application.objects.get(name=application_name).tags.get(number=number)
    version = tag.members.get(module__name=module_name).version
    return {file.path: file.blob for file in version.files.select_related("blob")}


@pytest.fixture
def demo(db):
    assert load_demo() is True


def test_it_changes_nothing_when_run_again(demo):
    before = (counts(), labels())

    assert load_demo() is False
    assert (counts(), labels()) == before


def test_it_shows_ecommerce_on_0_3_with_newer_work_in_development(demo):
    grid = labels()

    assert grid["eCommerce", "Development"] == "0.4+"
    for environment in PIPELINE[1:]:
        assert grid["eCommerce", environment] == "0.3"


def test_it_shows_the_other_applications_in_other_states(demo):
    grid = labels()

    assert [grid["HR Portal", environment] for environment in PIPELINE] == ["1.3", "1.3", "1.2", "1.2"]
    assert grid["Customer Support", "Quality Assurance"] == "2.1+"
    assert grid["Customer Support", "Production"] == "2.1"
    assert grid["Inventory", "Development"] == "0.1"
    assert grid["Inventory", "Pre-Production"] == grid["Inventory", "Production"] == "–"
    assert not CurrentVersion.objects.filter(
        module__application__name="Inventory", environment__name="Production"
    )


def test_it_leaves_one_open_hotfix_in_customer_support_quality_assurance(demo):
    hotfix = Hotfix.objects.open().get()

    assert (hotfix.application.name, hotfix.environment.name) == ("Customer Support", "Quality Assurance")
    assert [change.module.name for change in hotfix.changes.all()] == ["Tickets"]


def test_it_leaves_the_order_total_defect_in_pre_production(demo):
    cart = files("Pre-Production", "ShoppingCart")["cart.py"].data.decode()

    assert cart.count(DEFECT) == 1


def test_it_changes_development_cart_away_from_the_defect(demo):
    released = tagged_files("eCommerce", "0.3", "ShoppingCart")["cart.py"].data.decode()
    developed = files("Development", "ShoppingCart")["cart.py"].data.decode()

    assert developed != released
    assert developed.count(DEFECT) == 1
    # Far enough from the defect that merging its fix back into Development is clean.
    base = released.splitlines(keepends=True)
    defect_at = base.index(DEFECT)
    matcher = difflib.SequenceMatcher(a=base, b=developed.splitlines(keepends=True), autojunk=False)
    for kind, start, end, _, _ in matcher.get_opcodes():
        if kind != "equal":
            assert end < defect_at - 3 or start > defect_at + 3


def test_it_stores_the_webui_logo_as_binary(demo):
    blobs = files("Production", "WebUI")

    assert blobs["static/shop/img/logo.png"].is_binary
    assert blobs["static/shop/img/logo.png"].data.startswith(b"\x89PNG\r\n\x1a\n")
    assert not blobs["templates/shop/cart.html"].is_binary


def test_it_gives_groups_access_per_environment(demo):
    def level(group, environment):
        return EnvironmentAccess.objects.get(group__name=group, environment__name=environment).level

    assert level("Viewers", "Production") == AccessLevel.VIEW
    assert level("Developers", "Pre-Production") == AccessLevel.DEPLOY
    assert level("Developers", "Production") == AccessLevel.VIEW
    assert level("Release managers", "Production") == AccessLevel.FULL


def test_it_reuses_existing_environments(environments):
    assert load_demo() is True

    assert list(Environment.objects.all()) == environments
    assert Environment.objects.get(is_production=True).name == "Production"


def test_it_refuses_a_pipeline_where_development_is_not_first(db):
    Environment.objects.create(name="Sandbox", position=0)

    with pytest.raises(DemoError, match="Sandbox comes before Development"):
        load_demo()
    # One transaction: nothing of the demo is left behind.
    assert list(Environment.objects.values_list("name", flat=True)) == ["Sandbox"]
    assert not Application.objects.exists()
    assert not Group.objects.exists()


def test_it_prints_the_grid_then_says_nothing_changed(db):
    first, second = StringIO(), StringIO()

    call_command("load_demo", stdout=first)
    call_command("load_demo", stdout=second)

    assert "Loaded the demo pipeline." in first.getvalue()
    assert "2.1+ !" in first.getvalue()
    assert second.getvalue() == "Demo pipeline already loaded; nothing changed.\n"


def test_it_reports_a_conflict_as_a_command_error(db):
    Application.objects.create(name="Inventory")

    with pytest.raises(CommandError, match="Some demo applications already exist"):
        call_command("load_demo", stdout=StringIO())
