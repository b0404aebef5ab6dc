"""Saved deployment plans: who may see, use, save and delete them.

A plan names a source, a target, applications, numbers and notes. Its rules:

- it is visible, and usable, only by users who can view both its environments;
  to anyone else it does not exist (404), so its name and existence never leak;
- saving one needs `deploy` on its target (and view on its source), deleting one
  too (403 when the plan is visible but the user may not);
- a number saved with an application is blank (suggest one at deploy) or a
  version number; whether it is still free is checked when the plan is deployed;
- a deployment names a plan only if the plan was saved for that very source and
  target; otherwise the deployment is refused and nothing is written;
- saving and deleting are recorded in the audit trail, under the target.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404

from lifecycle import access, audit
from lifecycle.models import AccessLevel, AuditEvent, DeploymentPlan, PlanItem
from lifecycle.version_numbers import InvalidVersionNumber, VersionNumber

MAX_NAME = 100
MAX_NOTES = 2000  # As the notes of a deployment and the comment of a publish.


class PlanError(ValueError):
    """A plan that cannot be saved or used; the message says why, and nothing was written."""


def can_see(user, plan) -> bool:
    return access.can(user, plan.source, AccessLevel.VIEW) and access.can(user, plan.target, AccessLevel.VIEW)


def plan_for_user(user, plan_id) -> DeploymentPlan:
    """The plan, if it exists and `user` sees both its environments; Http404 otherwise.

    A user who sees no environment at all is told so (403), as on every page.
    """
    if not access.visible_environments(user):
        raise PermissionDenied("You have no access to any environment.")
    plan = DeploymentPlan.objects.select_related("source", "target").filter(pk=plan_id).first()
    if plan is None or not can_see(user, plan):
        raise Http404("No such plan.")
    return plan


def plans_between(user, source, target, limit: int = 20) -> list[DeploymentPlan]:
    """The plans saved from `source` to `target`, for a user who sees both (none otherwise)."""
    if not (access.can(user, source, AccessLevel.VIEW) and access.can(user, target, AccessLevel.VIEW)):
        return []
    return list(DeploymentPlan.objects.filter(source=source, target=target).order_by("name")[:limit])


def plan_for_deployment(user, plan_id: int | None, source, target) -> DeploymentPlan | None:
    """The plan a deployment from `source` to `target` names, or None when it names none.

    Refuses (PlanError) a plan that does not exist, that the user cannot see, or
    that was saved for another pair of environments. The message is the same for
    all three, so it never confirms that somebody else's plan exists.
    """
    if plan_id is None:
        return None
    plan = DeploymentPlan.objects.select_related("source", "target").filter(pk=plan_id).first()
    if plan is None or not can_see(user, plan) or (plan.source_id, plan.target_id) != (source.pk, target.pk):
        raise PlanError(
            f"That plan is not one saved from {source.name} to {target.name}; nothing was deployed. "
            "Open the plan again from the deploy page."
        )
    return plan


def save_plan(user, source, target, applications, *, name: str, numbers: dict[int, str], notes: str = ""):
    """Save a plan from `source` to `target`; PermissionDenied or PlanError, writing nothing, otherwise."""
    access.require(user, source, AccessLevel.VIEW)
    access.require(user, target, AccessLevel.DEPLOY)
    name = name.strip()
    if len(name) > MAX_NAME or len(notes) > MAX_NOTES:
        raise PlanError(
            f"A plan name has at most {MAX_NAME} characters and notes at most {MAX_NOTES}; nothing was saved."
        )
    applications = list(applications)
    if not name or not applications:
        raise PlanError("Give the plan a name and at least one application.")
    if source == target:
        raise PlanError("Choose two different environments; nothing was saved.")
    numbers = _checked_numbers(applications, numbers)
    with transaction.atomic():
        plan = DeploymentPlan.objects.create(
            name=name, source=source, target=target, notes=notes, created_by=user
        )
        PlanItem.objects.bulk_create(
            PlanItem(plan=plan, application=application, number=numbers.get(application.pk, ""))
            for application in applications
        )
        audit.record(
            AuditEvent.Action.PLAN_SAVED,
            user=user,
            environment=target,
            application=applications[0] if len(applications) == 1 else "",
            summary=f"Saved the plan “{plan.name}” from {source.name} to {target.name}",
            after=_described(plan, applications),
        )
    return plan


def _checked_numbers(applications, numbers: dict[int, str]) -> dict[int, str]:
    """The numbers typed for the plan's applications, each blank (suggest one) or a version number.

    Whether a number is still free is checked when the plan is deployed; its form is checked
    now, so that a plan never keeps a number no deployment could use.
    """
    checked = {}
    for application in applications:
        text = numbers.get(application.pk, "").strip()
        if text:
            try:
                VersionNumber.parse(text)
            except InvalidVersionNumber as error:
                raise PlanError(f"{application.name}: {error} Nothing was saved.") from None
        checked[application.pk] = text
    return checked


def delete_plan(user, plan) -> None:
    """Delete a plan: 404 for a user who cannot see it, 403 without `deploy` on its target."""
    if not can_see(user, plan):
        raise Http404("No such plan.")
    access.require(user, plan.target, AccessLevel.DEPLOY)
    applications = [item.application for item in plan.items.select_related("application")]
    with transaction.atomic():
        # Two deletes that both found the plan queue here; the second finds it gone, so the
        # audit trail says once that it was deleted.
        if not DeploymentPlan.objects.select_for_update().filter(pk=plan.pk).exists():
            raise Http404("No such plan: it was just deleted.")
        described = _described(plan, applications)
        plan.delete()
        audit.record(
            AuditEvent.Action.PLAN_DELETED,
            user=user,
            environment=plan.target,
            application=applications[0] if len(applications) == 1 else "",
            summary=f"Deleted the plan “{plan.name}” from {plan.source.name} to {plan.target.name}",
            before=described,
        )


def _described(plan, applications) -> dict:
    """What the audit trail keeps of a plan: plain names, readable without the plan."""
    return {
        "plan": plan.pk,
        "name": plan.name,
        "source": plan.source.name,
        "target": plan.target.name,
        "applications": sorted(application.name for application in applications),
    }
