"""Tag & Deploy in the browser: the plan dialog, saved plans, rollback and version diffs."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from lifecycle import access, visibility
from lifecycle.deploying.plans import (
    PlanError,
    delete_plan,
    plan_for_deployment,
    plan_for_user,
    plans_between,
    save_plan,
)
from lifecycle.deploying.running import launch, start_deployment
from lifecycle.deploying.validation import DeploymentRefused, validate
from lifecycle.htmx import HtmxHttpRequest, page_or_partial
from lifecycle.models import (
    AccessLevel,
    Application,
    EnvironmentTag,
)
from lifecycle.pipeline import build_rows
from lifecycle.request_values import parse_id
from lifecycle.rollback import RollbackError, rollback, rollback_validation

MAX_TEXT = 2000  # Notes and comments, as in the publish form.


def _environments(user, data):
    """Source and target from the request, defaulting to the first two environments the user sees."""
    visible = access.visible_environments(user)
    if len(visible) < 2:
        raise PermissionDenied("Deploying needs access to at least two environments.")
    source = _chosen(visible, data.get("source"), visible[0])
    default_target = visible[min(visible.index(source) + 1, len(visible) - 1)]
    target = _chosen(visible, data.get("target"), default_target)
    return visible, source, target


def _chosen(visible, value, default):
    """The environment a request names: the default if none, 404 if it is not one the user sees."""
    pk = parse_id(value)
    if pk is None:
        return default
    for environment in visible:
        if environment.pk == pk:
            return environment
    raise Http404("No such environment.")


def _selected_applications(data, source, target):
    if data.get("all") == "differences":
        rows = build_rows(Application.objects.all(), [source, target])
        # An empty source has nothing to deploy: it is never among "all with differences".
        return [
            row.application
            for row in rows
            if row.cells[0].modules and (row.gaps[0].deployable or row.cells[0].has_plus)
        ]
    ids = [pk for pk in map(parse_id, data.getlist("application")) if pk is not None]
    return list(Application.objects.filter(pk__in=ids))


def _numbers(data):
    numbers = {}
    for key, value in data.items():
        pk = parse_id(key.removeprefix("number-")) if key.startswith("number-") else None
        if pk is not None and value.strip():
            # Whole: cut short, '0.5' followed by 29 spaces and junk would read as 0.5. The
            # validation refuses what is not a number, however long.
            numbers[pk] = value.strip()
    return numbers


def _render_plan(request, data, *, error=None, status=200, plan=None):
    visible, source, target = _environments(request.user, data)
    applications = _selected_applications(data, source, target)
    validation = (
        validate(source, target, applications, _numbers(data)) if applications and source != target else None
    )
    can_deploy = access.can(request.user, target, AccessLevel.DEPLOY)
    context = {
        "environments": visible,
        "source": source,
        "target": target,
        "validation": validation,
        "applications": applications,
        "error": error,
        "notes": data.get("notes", ""),
        "can_deploy": can_deploy,
        "can_confirm": access.can(request.user, target, AccessLevel.FULL),
        "plan": plan,
        "plans": plans_between(request.user, source, target),
    }
    return render(request, page_or_partial(request, "lifecycle/deploy.html", "plan"), context, status=status)


@login_required
@require_GET
def deploy(request: HtmxHttpRequest):
    # Opened from a saved plan: the page carries it, so the deployment records which plan it ran.
    _, source, target = _environments(request.user, request.GET)
    try:
        plan = plan_for_deployment(request.user, parse_id(request.GET.get("plan")), source, target)
    except PlanError as error:
        return _render_plan(request, request.GET, error=str(error), status=422)
    return _render_plan(request, request.GET, plan=plan)


@login_required
@require_POST
def deploy_run(request: HtmxHttpRequest):
    data = request.POST
    _, source, target = _environments(request.user, data)
    applications = _selected_applications(data, source, target)
    try:
        plan = plan_for_deployment(request.user, parse_id(data.get("plan")), source, target)
    except PlanError as error:
        return _render_plan(request, data, error=str(error), status=422)
    if len(data.get("notes", "")) > MAX_TEXT:
        return _render_plan(
            request,
            data,
            error=f"Notes are limited to {MAX_TEXT} characters; nothing was deployed.",
            status=422,
            plan=plan,
        )
    try:
        if not applications:
            raise DeploymentRefused("Choose at least one application to deploy.")
        deployment = start_deployment(
            source,
            target,
            applications,
            user=request.user,
            fingerprint=data.get("fingerprint", ""),
            numbers=_numbers(data),
            deploy_anyway=data.get("deploy_anyway") == "on",
            notes=data.get("notes", ""),
            plan=plan,
        )
    except DeploymentRefused as refusal:
        return _render_plan(request, data, error=str(refusal), status=409, plan=plan)
    launch(deployment)
    url = reverse("lifecycle:deployment", args=[deployment.pk])
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return redirect(url)


@login_required
@require_POST
def plan_save(request: HtmxHttpRequest):
    data = request.POST
    _, source, target = _environments(request.user, data)
    access.require(request.user, target, AccessLevel.DEPLOY)
    try:
        plan = save_plan(
            request.user,
            source,
            target,
            _selected_applications(data, source, target),
            name=data.get("name", ""),
            numbers=_numbers(data),
            notes=data.get("notes", ""),
        )
    except PlanError as error:
        return _render_plan(request, data, error=str(error), status=422)
    messages.success(
        request, f"Saved the plan “{plan.name}”. Open it from the deploy page to validate and run it."
    )
    return redirect(_plan_url(plan))


def _plan_url(plan):
    query = QueryDict(mutable=True)
    query.update({"source": plan.source_id, "target": plan.target_id, "plan": plan.pk})
    for item in plan.items.all():
        if item.include:
            query.appendlist("application", item.application_id)
        if item.number:
            query[f"number-{item.application_id}"] = item.number
    if plan.notes:
        query["notes"] = plan.notes
    return f"{reverse('lifecycle:deploy')}?{query.urlencode()}"


@login_required
@require_GET
def plan_open(request: HtmxHttpRequest, plan_id: int):
    return redirect(_plan_url(plan_for_user(request.user, plan_id)))


@login_required
@require_POST
def plan_delete(request: HtmxHttpRequest, plan_id: int):
    plan = plan_for_user(request.user, plan_id)
    delete_plan(request.user, plan)
    messages.info(request, f"Deleted the plan “{plan.name}”.")
    return redirect(f"{reverse('lifecycle:deploy')}?source={plan.source_id}&target={plan.target_id}")


# Rollback: tag an older version's content under a new number and deploy it.


@login_required
@require_http_methods(["GET", "POST"])
def rollback_view(request: HtmxHttpRequest, application_id: int, tag_id: int):
    application = get_object_or_404(Application, pk=application_id)
    visible = access.visible_environments(request.user)
    if not visible:
        raise PermissionDenied("You have no access to any environment.")
    # A tag holding a version the user may not read does not exist for them (lifecycle.visibility).
    tag = get_object_or_404(visibility.visible_tags(request.user, application), pk=tag_id)
    data = request.POST if request.method == "POST" else request.GET
    environment = _chosen(visible, data.get("environment"), visible[-1])
    error, status = None, 200
    if request.method == "POST":
        access.require(request.user, environment, AccessLevel.DEPLOY)
        try:
            deployment = rollback(
                application,
                tag,
                environment,
                number=data.get("number", ""),
                user=request.user,
                fingerprint=data.get("fingerprint", ""),
                deploy_anyway=data.get("deploy_anyway") == "on",
            )
        except (RollbackError, DeploymentRefused) as refusal:
            error, status = str(refusal), 409
        else:
            launch(deployment)
            return redirect("lifecycle:deployment", deployment.pk)
    validation = rollback_validation(application, tag, environment, data.get("number", ""))
    current = EnvironmentTag.objects.filter(application=application, environment=environment).first()
    context = {
        "application": application,
        "tag": tag,
        "environment": environment,
        "environments": visible,
        "validation": validation,
        "current": current.tag if current else None,
        "error": error,
        "can_deploy": access.can(request.user, environment, AccessLevel.DEPLOY),
        "can_confirm": access.can(request.user, environment, AccessLevel.FULL),
    }
    return render(request, "lifecycle/rollback.html", context, status=status)
