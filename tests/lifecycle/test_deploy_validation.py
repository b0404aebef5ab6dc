import pytest

from lifecycle.deploying.running import run_deployment, start_deployment
from lifecycle.deploying.validation import DeploymentRefused, validate
from lifecycle.models import ApplicationBlock, CurrentVersion, Deployment, EnvironmentTag
from lifecycle.tagging import tag_environment
from tests.factories import make_application, publish_files, released_application

pytestmark = pytest.mark.django_db


def item_of(validation):
    (item,) = validation.items
    return item


def codes(item):
    return sorted(f.code for f in item.findings)


@pytest.mark.parametrize(
    ("case", "source_index", "expected"),
    [
        ("first environment: next minor", 0, "0.4"),
        ("hotfix: a third number", 2, "0.3.1"),
        ("hotfix of a hotfix", "after-hotfix", "0.3.2"),
        ("taken numbers skipped", "taken", "0.3.3"),
    ],
)
def test_it_suggests_the_version_number(environments, release_manager, case, source_index, expected):
    dev, qa, pre, prod = environments
    application, (core,), _ = released_application("Shop", environments, number="0.3")
    if source_index == 0:
        publish_files(core, dev, {"main.py": "dev work"})
        source, target = dev, qa
    elif source_index == 2:
        publish_files(core, pre, {"main.py": "fix"})
        source, target = pre, prod
    elif source_index == "after-hotfix":
        publish_files(core, pre, {"main.py": "fix"})
        tag_environment(application, pre, "0.3.1")
        publish_files(core, pre, {"main.py": "fix again"})
        source, target = pre, prod
    else:
        for number in ("0.3.1", "0.3.2"):
            publish_files(core, qa, {"main.py": f"qa {number}"})
            tag_environment(application, qa, number)
        publish_files(core, pre, {"main.py": "fix"})
        source, target = pre, prod
    item = item_of(validate(source, target, [application]))
    assert item.needs_tag and item.suggested == expected and item.number == expected
    assert item.action_label == f"Tag & Deploy {expected}"


@pytest.mark.parametrize(
    ("typed", "error"),
    [
        ("0.9", None),
        ("1.0.0", None),
        ("0.3", "taken_number"),
        ("0.3.0", "taken_number"),
        ("0.03", "invalid_number"),
        ("banana", "invalid_number"),
    ],
)
def test_it_accepts_or_refuses_a_typed_number(environments, typed, error):
    dev, qa, _, _ = environments
    application, (core,), _ = released_application("Shop", environments, number="0.3")
    publish_files(core, dev, {"main.py": "dev work"})
    item = item_of(validate(dev, qa, [application], {application.pk: typed}))
    assert item.number == typed
    assert [f.code for f in item.findings if f.severity == "error"] == ([error] if error else [])


def test_it_deploys_a_tag_as_it_is_without_plus(environments):
    dev, qa, _, _ = environments
    application, (core,), _ = released_application("Shop", environments, number="0.3")
    publish_files(core, dev, {"main.py": "0.4 work"})
    tag_environment(application, dev, "0.4")
    item = item_of(validate(dev, qa, [application]))
    assert not item.needs_tag and item.action_label == "Deploy 0.4" and item.findings == []


def test_it_finds_nothing_to_deploy(environments):
    application, _, _ = released_application("Shop", environments)
    item = item_of(validate(environments[1], environments[2], [application]))
    assert codes(item) == ["nothing_to_deploy"]


def test_it_flags_an_unpropagated_hotfix_as_undone_in_the_seed_situation(environments):
    """0.4 from Development into a Pre-Production that still holds an unpropagated hotfix."""
    dev, qa, pre, prod = environments
    application, (cart, catalog), _ = released_application("eCommerce", environments, ("Cart", "Catalog"))
    publish_files(catalog, dev, {"main.py": "0.4 search"})
    tag_environment(application, dev, "0.4")
    tag_04 = EnvironmentTag.objects.get(environment=dev, application=application).tag
    from lifecycle.deploying.switching import deploy_tag

    deploy_tag(tag_04, qa)
    fix = publish_files(cart, pre, {"main.py": "hotfix"})

    item = item_of(validate(qa, pre, [application]))
    (undo,) = [f for f in item.findings if f.code == "undoes_changes"]
    assert undo.severity == "confirm"
    assert undo.modules == [
        {
            "module": "eCommerce-Cart",
            "module_id": cart.pk,
            "target_version": fix.number,
            "deployed_version": 1,
            "hotfix": True,
        }
    ]
    assert "open hotfix in eCommerce-Cart" in undo.message


def test_it_does_not_flag_versions_that_contain_the_target(environments):
    dev, qa, _, _ = environments
    application, (core,), _ = released_application("Shop", environments)
    publish_files(core, dev, {"main.py": "newer"})
    item = item_of(validate(dev, qa, [application]))
    assert "undoes_changes" not in codes(item)


def test_it_warns_of_a_downgrade(environments):
    dev, qa, _, _ = environments
    application, (core,), _ = released_application("Shop", environments, number="0.3")
    publish_files(core, qa, {"main.py": "qa fix"})
    tag_environment(application, qa, "0.5")
    item = item_of(validate(dev, qa, [application]))
    assert "downgrade" in codes(item)
    assert "undoes_changes" in codes(item)


def test_it_refuses_a_blocked_application(environments, release_manager):
    dev, qa, _, _ = environments
    application, (core,), _ = released_application("Shop", environments)
    publish_files(core, dev, {"main.py": "newer"})
    ApplicationBlock.objects.create(
        application=application,
        environment=qa,
        reason="Release freeze",
        blocked_by=release_manager,
        blocked_at="2026-11-29T10:00:00Z",
    )
    item = item_of(validate(dev, qa, [application]))
    assert "blocked" in codes(item) and item.has_errors
    assert "Release freeze" in [f for f in item.findings if f.code == "blocked"][0].message


def test_it_finds_a_missing_dependency(environments):
    dev, qa, _, _ = environments
    application, (web,) = make_application("Shop", ["Web"])
    _, (payments,) = make_application("Pay", ["Payments"])
    publish_files(payments, dev, {"pay.py": "x"})
    publish_files(web, dev, {"web.py": "x", "stageboard.json": '{"uses": ["Pay-Payments"]}'})
    item = item_of(validate(dev, qa, [application]))
    (missing,) = [f for f in item.findings if f.code == "missing_dependency"]
    assert missing.severity == "error" and "Shop-Web uses Pay-Payments" in missing.message
    # Once the used module runs in the target, the finding is gone.
    publish_files(payments, qa, {"pay.py": "x"})
    assert "missing_dependency" not in codes(item_of(validate(dev, qa, [application])))


def test_it_deploys_tag_and_deploy_031_to_production(environments, release_manager):
    dev, qa, pre, prod = environments
    application, (cart,), _ = released_application("eCommerce", environments, ("Cart",))
    fix = publish_files(cart, pre, {"main.py": "fixed"}, user=release_manager)
    validation = validate(pre, prod, [application])
    deployment = start_deployment(
        pre, prod, [application], user=release_manager, fingerprint=validation.fingerprint, notes="Hotfix"
    )
    run_deployment(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.FINISHED
    assert CurrentVersion.objects.get(environment=prod, module=cart).version == fix
    assert EnvironmentTag.objects.get(environment=prod, application=application).tag.number == "0.3.1"
    assert EnvironmentTag.objects.get(environment=pre, application=application).tag.number == "0.3.1"
    item = deployment.items.get()
    assert item.tagged and item.previous_tag.number == "0.3" and item.modules_changed == 1
    assert list(deployment.log_lines.values_list("message", flat=True))[-1] == "Finished."


def test_it_needs_deploy_anyway_from_a_full_user(environments, developer, release_manager):
    dev, qa, pre, prod = environments
    application, (core,), _ = released_application("Shop", environments)
    publish_files(core, qa, {"main.py": "qa hotfix"})
    publish_files(core, dev, {"main.py": "dev work"})
    validation = validate(dev, qa, [application])
    assert validation.needs_confirmation
    with pytest.raises(DeploymentRefused, match="Deploy anyway"):
        start_deployment(dev, qa, [application], user=developer, fingerprint=validation.fingerprint)
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        start_deployment(
            dev, qa, [application], user=developer, fingerprint=validation.fingerprint, deploy_anyway=True
        )
    assert not Deployment.objects.exists()
    deployment = start_deployment(
        dev, qa, [application], user=release_manager, fingerprint=validation.fingerprint, deploy_anyway=True
    )
    run_deployment(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.WARNINGS and deployment.deploy_anyway


def test_a_dependency_on_another_application_deployed_together_is_not_missing(environments):
    """Issue 9, item 15: modules of every application in the deployment will exist in the target."""
    dev, qa, _, _ = environments
    shop, (web,) = make_application("Shop", ["Web"])
    pay, (payments,) = make_application("Pay", ["Payments"])
    publish_files(payments, dev, {"pay.py": "x"})
    publish_files(web, dev, {"web.py": "x", "stageboard.json": '{"uses": ["Pay-Payments"]}'})

    validation = validate(dev, qa, [shop, pay])
    assert [codes(item) for item in validation.items] == [[], []]
    # Deployed alone, Shop still misses it.
    assert "missing_dependency" in codes(item_of(validate(dev, qa, [shop])))


def test_it_never_suggests_a_number_the_parser_refuses(environments):
    """Issue 9, item 28: after 0.999999999 comes 1.0, not 0.1000000000."""
    dev, qa, _, _ = environments
    application, (core,), _ = released_application("Shop", environments, number="0.999999999")
    publish_files(core, dev, {"main.py": "dev work"})
    item = item_of(validate(dev, qa, [application]))
    assert item.suggested == "1.0" and item.action_label == "Tag & Deploy 1.0"
    assert not item.has_errors


def test_it_says_so_when_no_number_is_left(environments):
    dev, qa, _, _ = environments
    application, (core,), _ = released_application("Shop", environments, number="999999999.999999999")
    publish_files(core, dev, {"main.py": "dev work"})
    item = item_of(validate(dev, qa, [application]))
    assert item.suggested == ""
    (finding,) = item.findings
    assert finding.code == "invalid_number" and "No version number is left after" in finding.message
    # A number typed by the user is still checked as usual.
    typed = item_of(validate(dev, qa, [application], {application.pk: "0.5"}))
    assert [f.code for f in typed.findings] == ["downgrade"]


def test_findings_and_log_lines_count_in_good_english(environments, release_manager):
    """Issue 9, item 28: "1 module switched", not "1 module(s) switched"."""
    dev, qa, pre, prod = environments
    application, (cart,), _ = released_application("eCommerce", environments, ("Cart",))
    publish_files(cart, pre, {"main.py": "fixed"}, user=release_manager)
    validation = validate(pre, prod, [application])
    deployment = start_deployment(
        pre, prod, [application], user=release_manager, fingerprint=validation.fingerprint
    )
    run_deployment(deployment.pk)
    lines = list(deployment.log_lines.values_list("message", flat=True))
    assert "Tagged and deployed eCommerce 0.3.1: 1 module switched." in lines

    publish_files(cart, qa, {"main.py": "qa hotfix"})
    (undo,) = [f for f in item_of(validate(dev, qa, [application])).findings if f.code == "undoes_changes"]
    assert undo.message.endswith("would be replaced by a version that does not contain it.")
