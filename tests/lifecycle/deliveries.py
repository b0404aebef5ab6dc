"""Helpers for the worker, lease and delivery tests: real deployments, and agent reports as rows.

A report is written as the agent API stores it (lifecycle/delivery/reports.py: one
LiveApplication row per application), so these tests judge confirming.py alone.
"""

from datetime import timedelta

from django.utils import timezone

from lifecycle.deploying.running import start_deployment
from lifecycle.deploying.validation import validate
from lifecycle.models import (
    ApplicationTag,
    AuditEvent,
    CurrentVersion,
    Deployment,
    DeploymentItem,
    EnvironmentTag,
    LiveApplication,
    ModuleChange,
    TagMember,
)
from tests.factories import publish_files, released_application


def changed_in_development(name, environments, module_names=("Core", "Web")):
    """Released as 0.3 everywhere, then a new version of every module in Development (it shows 0.3+)."""
    application, modules, _ = released_application(name, environments, module_names=module_names)
    for module in modules:
        publish_files(module, environments[0], {"main.py": f"# {module.name}\nprint('newer')\n"})
    return application, modules


def start(source, target, application, user) -> Deployment:
    return start_deployment(
        source,
        target,
        [application],
        user=user,
        fingerprint=validate(source, target, [application]).fingerprint,
    )


def snapshot():
    """Everything a switch writes, in every environment."""
    return {
        "current": sorted(
            CurrentVersion.objects.values_list("environment_id", "module_id", "version_id", "changed_at")
        ),
        "environment_tags": sorted(
            EnvironmentTag.objects.values_list("environment_id", "application_id", "tag_id")
        ),
        "application_tags": ApplicationTag.objects.count(),
        "tag_members": TagMember.objects.count(),
        "module_changes": ModuleChange.objects.count(),
        "deployment_items": DeploymentItem.objects.count(),
    }


def make_stale(deployment, *, worker="web-1:4242", seconds=3600):
    """The lease as a worker that stopped leaves it: last renewed long ago."""
    Deployment.objects.filter(pk=deployment.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=seconds), worker=worker
    )


def log_messages(deployment) -> list[str]:
    return list(deployment.log_lines.order_by("at", "id").values_list("message", flat=True))


def endings(deployment) -> list[str]:
    """The audit lines that ended (or retried) the deployment, oldest first."""
    return list(
        AuditEvent.objects.filter(
            action__in=[
                AuditEvent.Action.DEPLOY_FINISHED,
                AuditEvent.Action.DEPLOY_FAILED,
                AuditEvent.Action.DEPLOY_RETRIED,
            ],
            after__deployment=deployment.pk,
        )
        .order_by("at", "id")
        .values_list("action", flat=True)
    )


def running_hashes(environment, application) -> dict[str, str]:
    return dict(
        CurrentVersion.objects.filter(environment=environment, module__application=application).values_list(
            "module__name", "version__tree_hash"
        )
    )


def report(
    environment,
    application,
    *,
    applied,
    deployment=None,
    generation=0,
    hook=None,
    output="",
    at=None,
):
    """What the agent API stores for one application of a report (and then check() reads)."""
    row, _ = LiveApplication.objects.get_or_create(environment=environment, application=application)
    row.applied, row.live = dict(applied), dict(applied)
    row.applied_generation = generation
    row.deployment = deployment
    row.version = "0.4"
    row.reported_at = at or timezone.now()
    if hook is not None:
        row.hook_exit_status, row.hook_output = hook, output
    row.save()
    return row
