import difflib
from io import StringIO

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from hotfixes.models import Hotfix
from lifecycle.delivery import agent_tokens
from lifecycle.demo import AGENT_TOKEN_NAME, DemoError, load_demo, prepare_agents
from lifecycle.models import (
    AccessLevel,
    AgentToken,
    Application,
    CurrentVersion,
    Delivery,
    Environment,
    EnvironmentAccess,
)
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


# ----------------------------------------------------------------------------- the demo agents

SLUGS = {
    "Development": "development",
    "Quality Assurance": "quality-assurance",
    "Pre-Production": "pre-production",
    "Production": "production",
}


def token_files(var_dir):
    return {path.name: path.read_text() for path in sorted((var_dir / "agents").iterdir())}


def mode(path):
    return path.stat().st_mode & 0o777


def test_demo_agents_make_each_environment_deliver_into_its_own_folder(demo, tmp_path):
    agents = prepare_agents(tmp_path)

    assert [(agent.environment.name, agent.slug) for agent in agents] == list(SLUGS.items())
    for agent in agents:
        assert Environment.objects.get(pk=agent.environment.pk).delivery == Delivery.AGENT
        assert agent.root == tmp_path / "environments" / agent.slug
        assert agent.root.is_dir()
        assert agent.token_file == tmp_path / "agents" / f"{agent.slug}.token"
        assert agent.new_token
        token = agent_tokens.authenticate(agent.token_file.read_text().strip())
        assert token is not None and token.environment == agent.environment
        assert token.name == AGENT_TOKEN_NAME


def test_demo_agent_tokens_are_readable_by_their_owner_only(demo, tmp_path):
    prepare_agents(tmp_path)

    assert mode(tmp_path / "agents") == 0o700
    assert {name: mode(tmp_path / "agents" / name) for name in token_files(tmp_path)} == {
        f"{slug}.token": 0o600 for slug in sorted(SLUGS.values())
    }


def test_demo_agents_run_again_keep_their_tokens(demo, tmp_path):
    prepare_agents(tmp_path)
    files_before, tokens_before = token_files(tmp_path), list(AgentToken.objects.values_list("pk", flat=True))

    again = prepare_agents(tmp_path)

    assert [agent.new_token for agent in again] == [False] * 4
    assert token_files(tmp_path) == files_before
    assert list(AgentToken.objects.values_list("pk", flat=True)) == tokens_before
    assert load_demo() is False


def test_a_revoked_demo_token_is_replaced_and_the_others_kept(demo, tmp_path, admin_user):
    prepare_agents(tmp_path)
    before = token_files(tmp_path)
    agent_tokens.revoke(agent_tokens.authenticate(before["production.token"].strip()), admin_user)

    again = {agent.slug: agent for agent in prepare_agents(tmp_path)}

    after = token_files(tmp_path)
    assert [slug for slug, agent in again.items() if agent.new_token] == ["production"]
    assert after["production.token"] != before["production.token"]
    assert {name: text for name, text in after.items() if name != "production.token"} == {
        name: text for name, text in before.items() if name != "production.token"
    }
    assert agent_tokens.authenticate(after["production.token"].strip()).environment.name == "Production"
    assert mode(tmp_path / "agents" / "production.token") == 0o600


def test_a_lost_demo_token_file_gets_a_new_token(demo, tmp_path):
    prepare_agents(tmp_path)
    (tmp_path / "agents" / "development.token").unlink()

    (development, *others) = prepare_agents(tmp_path)

    assert development.new_token and not any(agent.new_token for agent in others)
    token = agent_tokens.authenticate(token_files(tmp_path)["development.token"].strip())
    assert token.environment.name == "Development"


@pytest.mark.parametrize("held", ["another environment's token", "not a token", ""])
def test_a_token_file_that_does_not_hold_the_environments_token_is_replaced(demo, tmp_path, held):
    prepare_agents(tmp_path)
    path = tmp_path / "agents" / "development.token"
    if held == "another environment's token":
        held = token_files(tmp_path)["production.token"]
    path.write_text(held)

    (development, *_) = prepare_agents(tmp_path)

    assert development.new_token
    assert agent_tokens.authenticate(path.read_text().strip()).environment.name == "Development"


def test_a_loosened_token_file_is_made_private_again_and_kept(demo, tmp_path):
    prepare_agents(tmp_path)
    path = tmp_path / "agents" / "quality-assurance.token"
    raw = path.read_text()
    path.chmod(0o644)

    prepare_agents(tmp_path)

    assert (path.read_text(), mode(path)) == (raw, 0o600)


def test_demo_agents_need_the_demo_and_leave_nothing_behind(db, tmp_path):
    Environment.objects.create(name="Development", position=1)

    with pytest.raises(CommandError, match="Quality Assurance, Pre-Production, Production do not exist"):
        call_command("demo_agents", var_dir=str(tmp_path / "var"), stdout=StringIO())
    assert not (tmp_path / "var").exists()
    assert not AgentToken.objects.exists()
    assert Environment.objects.get().delivery == Delivery.RECORD


def test_the_demo_agents_command_says_which_tokens_it_made(demo, tmp_path):
    first, second = StringIO(), StringIO()

    call_command("demo_agents", var_dir=str(tmp_path), stdout=first)
    call_command("demo_agents", var_dir=str(tmp_path), stdout=second)

    assert first.getvalue().count("new token") == 4
    assert second.getvalue().count("token kept") == 4
    assert f"Quality Assurance: delivered by its agent into {tmp_path}/environments/quality-assurance/" in (
        second.getvalue()
    )
