"""Security tests: who may do what, CSRF, hostile input and escaping.

Shared here: a snapshot of
everything a change could write, the world each case starts from, and the table of every
changing action of the console (browser, htmx, JSON API and command line), which
`test_access_matrix` runs for every persona and environment and `test_csrf` runs with CSRF
checks enforced.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from hotfixes.merging import prepare
from hotfixes.models import Hotfix, HotfixChange, Merge, MergeItem
from lifecycle import blocking
from lifecycle.deploying.switching import deploy_tag
from lifecycle.deploying.validation import validate
from lifecycle.editing import add_file, open_draft
from lifecycle.models import (
    AccessLevel,
    ApiToken,
    ApplicationBlock,
    ApplicationTag,
    Blob,
    CurrentVersion,
    Deployment,
    DeploymentPlan,
    Draft,
    EnvironmentTag,
    ModuleChange,
    ModuleVersion,
    PlanItem,
)
from lifecycle.rollback import rollback_validation
from lifecycle.tagging import tag_environment
from lifecycle.tokens import create_token
from tests.factories import publish_files, released_application
from tests.zips import make_zip

VIEW, PUBLISH, DEPLOY, FULL = (int(level) for level in AccessLevel)
DEV, QA, PRE, PROD = range(4)
ENVIRONMENT_NAMES = ["Development", "Quality Assurance", "Pre-Production", "Production"]

# The personas of tests/conftest.py, written out again so the expectations do not come from the
# code under test: each persona's level per environment (0: no access), in pipeline order.
LEVELS = {
    "viewer": (VIEW, VIEW, VIEW, VIEW),
    "developer": (DEPLOY, DEPLOY, DEPLOY, VIEW),
    "release_manager": (FULL, FULL, FULL, FULL),
    "outsider": (0, 0, 0, 0),
}
PERSONAS = tuple(LEVELS)


# ---------------------------------------------------------------------------
# What a change could write


def snapshot() -> dict[str, Any]:
    """Everything a change could write, in a form two calls can be compared with."""
    return {
        "versions": ModuleVersion.objects.count(),
        "blobs": Blob.objects.count(),
        "changes": ModuleChange.objects.count(),
        "current": sorted(CurrentVersion.objects.values_list("environment_id", "module_id", "version_id")),
        "tags": ApplicationTag.objects.count(),
        "environment_tags": sorted(
            EnvironmentTag.objects.values_list("environment_id", "application_id", "tag_id")
        ),
        "deployments": Deployment.objects.count(),
        "hotfixes": sorted(
            (pk, str(solved_at), note)
            for pk, solved_at, note in Hotfix.objects.values_list("pk", "solved_at", "solved_note")
        ),
        "hotfix_changes": HotfixChange.objects.count(),
        "blocks": sorted(
            (pk, str(unblocked_at))
            for pk, unblocked_at in ApplicationBlock.objects.values_list("pk", "unblocked_at")
        ),
        "drafts": sorted(
            (draft.pk, json.dumps(draft.manifest, sort_keys=True), draft.comment)
            for draft in Draft.objects.all()
        ),
        "tokens": sorted(
            (pk, str(revoked)) for pk, revoked in ApiToken.objects.values_list("pk", "revoked_at")
        ),
        "merges": (Merge.objects.count(), MergeItem.objects.count()),
        "plans": (sorted(DeploymentPlan.objects.values_list("pk", "name")), PlanItem.objects.count()),
    }


def differences(before: dict, after: dict) -> list[str]:
    return [key for key in before if before[key] != after[key]]


# ---------------------------------------------------------------------------
# The world a case starts from


@dataclass
class Ctx:
    """One case: the pipeline, the user acting, the application and what the action's setup made."""

    environments: list
    user: Any
    client: Any
    tmp_path: Any
    index: int | None = None
    application: Any = None
    module: Any = None
    tag: Any = None  # 0.3, deployed everywhere
    extra: dict = field(default_factory=dict)

    @property
    def env(self):
        return None if self.index is None else self.environments[self.index]

    def at(self, index):
        return self.environments[index]


def build_world(ctx: Ctx) -> Ctx:
    """App with one module App-Core (main.py), tagged 0.3 in Development and deployed everywhere."""
    ctx.application, (ctx.module,), ctx.tag = released_application("App", ctx.environments)
    return ctx


def change(module, environment, text="changed"):
    """Publish (as the system) a new version of `module` in `environment`; a hotfix outside the first."""
    return publish_files(module, environment, {"main.py": f"# {module.name}\nprint('{text}')\n"})


# ---------------------------------------------------------------------------
# Requests


@dataclass
class Req:
    method: str
    url: str
    data: Any = None
    content_type: str | None = None
    headers: dict = field(default_factory=dict)


def send(ctx: Ctx, request: Req, *, htmx=False, csrf: str | None = None, csrf_in="field"):
    """Send `request` with the case's client; `csrf` adds the token as a form field or header."""
    headers = dict(request.headers)
    if htmx:
        headers["HX-Request"] = "true"
    data = request.data
    if csrf is not None:
        if csrf_in == "header":
            headers["X-CSRFToken"] = csrf
        else:
            data = {**(data or {}), "csrfmiddlewaretoken": csrf}
    method = getattr(ctx.client, request.method)
    kwargs = {"headers": headers}
    if request.content_type:
        kwargs["content_type"] = request.content_type
    return method(request.url, {} if data is None else data, **kwargs)


def upload(name="module.zip", files=None, data=None):
    data = data if data is not None else make_zip(files or {"main.py": "print('uploaded')\n"})
    return SimpleUploadedFile(name, data, content_type="application/zip")


def run_command(ctx: Ctx, *args, **options) -> int:
    """A management command's exit code: 0, or the code of the CommandError it raised."""
    try:
        call_command(*args, stdout=io.StringIO(), stderr=io.StringIO(), **options)
    except CommandError as error:
        return error.returncode
    return 0


# ---------------------------------------------------------------------------
# Who may: each rule takes the persona's levels (in pipeline order) and the environment index.


def needs(level):
    return lambda levels, i: levels[i] >= level


def logged_in(levels, i):
    return True


def sees_any(levels, i):
    return any(level >= VIEW for level in levels)


def deploy_rule(level):
    """View on the source (the environment before), `level` on the target."""
    return lambda levels, i: levels[i - 1] >= VIEW and levels[i] >= level


def merge_rule(levels, i):
    """Merging the next environment's changes into environment i: view there, publish here."""
    return levels[i + 1] >= VIEW and levels[i] >= PUBLISH


def propagate_rule(levels, i):
    """The hotfix of environment i into every earlier one: view on it, publish on each."""
    return levels[i] >= VIEW and all(levels[j] >= PUBLISH for j in range(i))


# ---------------------------------------------------------------------------
# The actions


@dataclass(frozen=True)
class Action:
    name: str
    kind: str  # "browser", "api" or "command"
    environments: tuple  # indexes where the action applies; (None,) for actions outside environments
    rule: Callable
    request: Callable[[Ctx], Req] | None = None  # browser and api
    command: Callable[[Ctx], int] | None = None  # command
    setup: Callable[[Ctx], None] | None = None
    writes: tuple = ()  # snapshot keys an allowed action changes; () for pages that only read
    htmx: bool = False  # the htmx variant answers differently and is checked too
    post: bool = True  # a changing request (CSRF applies)

    def __str__(self):
        return self.name


ALL = (DEV, QA, PRE, PROD)
NOT_FIRST = (QA, PRE, PROD)
NOT_LAST = (DEV, QA, PRE)


def module_url(name):
    return lambda c: reverse(f"lifecycle:{name}", args=[c.module.pk, c.env.pk])


def _draft_with_change(c):
    draft = open_draft(c.user, c.module, c.env)
    add_file(draft, "draft.py", b"x = 1\n")


def _deploy_source_ahead(c):
    change(c.module, c.at(c.index - 1), "next")


def _deploy_request(c, **extra):
    source, target = c.at(c.index - 1), c.env
    fingerprint = validate(source, target, [c.application]).fingerprint
    data = {
        "source": source.pk,
        "target": target.pk,
        "application": c.application.pk,
        "fingerprint": fingerprint,
    }
    return Req("post", reverse("lifecycle:deploy-run"), {**data, **extra})


def _plan(c):
    c.extra["plan"] = DeploymentPlan.objects.create(
        name="Nightly", source=c.at(c.index - 1), target=c.env, created_by=c.user
    )


def _newer_tag_running(c):
    """0.4 made in Development and running in the case's environment, so 0.3 can be rolled back to."""
    dev = c.at(DEV)
    change(c.module, dev, "0.4")
    newer = tag_environment(c.application, dev, "0.4")
    if c.index != DEV:
        deploy_tag(newer, c.env)


def _rollback_request(c):
    fingerprint = rollback_validation(c.application, c.tag, c.env, "").fingerprint
    return Req(
        "post",
        reverse("lifecycle:rollback", args=[c.application.pk, c.tag.pk]),
        {"environment": c.env.pk, "number": "", "fingerprint": fingerprint, "deploy_anyway": "on"},
    )


def _blocked(c):
    blocking.block(c.application, c.env, c.user, "release freeze")


def _next_env_hotfix(c):
    change(c.module, c.at(c.index + 1), "hotfix")


def _merge_request(c):
    source, target = c.at(c.index + 1), c.env
    fingerprint = prepare(c.application, source, target).fingerprint
    data = {
        "application": c.application.pk,
        "source": source.pk,
        "target": target.pk,
        "fingerprint": fingerprint,
        "action": "merge",
    }
    return Req("post", reverse("hotfixes:merge"), data)


def _hotfix_here(c):
    change(c.module, c.env, "hotfix")
    c.extra["hotfix"] = Hotfix.objects.open().get(application=c.application, environment=c.env)


def _propagate_request(c):
    hotfix = c.extra["hotfix"]
    module_ids = list(hotfix.changes.values_list("module_id", flat=True))
    fingerprints = [
        prepare(c.application, c.env, c.at(j), module_ids).fingerprint for j in reversed(range(c.index))
    ]
    return Req("post", reverse("hotfixes:propagate", args=[hotfix.pk]), {"fingerprint": fingerprints})


def _own_token(c):
    c.extra["token"], c.extra["raw"] = create_token(c.user, "CI")


def _deployment_here(c):
    c.extra["deployment"] = Deployment.objects.create(
        source=c.at(max(c.index - 1, 0)),
        target=c.env,
        started_by=c.user,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        status=Deployment.Status.FINISHED,
    )


def _api_publish_request(c):
    url = reverse("api:publish", args=[c.module.name, c.env.name])
    body = make_zip({"main.py": "print('from the api')\n"})
    headers = {"Authorization": f"Bearer {c.extra['raw']}"}
    return Req("post", url, body, content_type="application/zip", headers=headers)


def _api_get(name, args):
    def request(c):
        return Req(
            "get", reverse(f"api:{name}", args=args(c)), headers={"Authorization": f"Bearer {c.extra['raw']}"}
        )

    return request


def _publish_command(c):
    path = c.tmp_path / "module.zip"
    path.write_bytes(make_zip({"main.py": "print('from the command line')\n"}))
    return run_command(c, "publish", c.env.name, c.module.name, str(path), user=c.user.username)


def _download_command(c):
    return run_command(
        c, "download", c.env.name, c.module.name, str(c.tmp_path / "out.zip"), user=c.user.username
    )


def _get(url):
    return lambda c: Req("get", url(c))


ACTIONS = [
    # Publish-level: the editor, zip upload, API and command line, in every environment.
    Action(
        "editor-save",
        "browser",
        ALL,
        needs(PUBLISH),
        lambda c: Req(
            "post", module_url("editor-save")(c), {"path": "main.py", "content": "print('saved')\n"}
        ),
        writes=("drafts",),
    ),
    Action(
        "editor-add",
        "browser",
        ALL,
        needs(PUBLISH),
        lambda c: Req("post", module_url("editor-add")(c), {"path": "added.py", "content": "x = 1\n"}),
        writes=("drafts",),
    ),
    Action(
        "editor-rename",
        "browser",
        ALL,
        needs(PUBLISH),
        lambda c: Req("post", module_url("editor-rename")(c), {"path": "main.py", "new_path": "renamed.py"}),
        writes=("drafts",),
    ),
    Action(
        "editor-delete",
        "browser",
        ALL,
        needs(PUBLISH),
        lambda c: Req("post", module_url("editor-delete")(c), {"path": "main.py"}),
        writes=("drafts",),
    ),
    Action(
        "editor-discard",
        "browser",
        ALL,
        needs(PUBLISH),
        lambda c: Req("post", module_url("editor-discard")(c)),
        setup=_draft_with_change,
        writes=("drafts",),
    ),
    Action(
        "editor-publish",
        "browser",
        ALL,
        needs(PUBLISH),
        lambda c: Req("post", module_url("editor-publish")(c), {"comment": "from the editor"}),
        setup=_draft_with_change,
        writes=("versions", "current", "drafts"),
    ),
    Action(
        "module-upload",
        "browser",
        ALL,
        needs(PUBLISH),
        lambda c: Req("post", module_url("module-upload")(c), {"archive": upload(), "comment": "zip"}),
        writes=("versions", "current"),
    ),
    Action(
        "api-publish",
        "api",
        ALL,
        needs(PUBLISH),
        _api_publish_request,
        setup=_own_token,
        writes=("versions", "current"),
    ),
    Action(
        "command-publish",
        "command",
        ALL,
        needs(PUBLISH),
        command=_publish_command,
        writes=("versions", "current"),
    ),
    # Deploy-level: into every environment but the first, from the one before it.
    Action(
        "deploy-run",
        "browser",
        NOT_FIRST,
        deploy_rule(DEPLOY),
        _deploy_request,
        setup=_deploy_source_ahead,
        writes=("deployments", "current", "tags"),
        htmx=True,
    ),
    Action(
        "deploy-anyway",
        "browser",
        NOT_FIRST,
        deploy_rule(FULL),
        lambda c: _deploy_request(c, deploy_anyway="on"),
        setup=lambda c: change(c.module, c.env, "target's own change"),
        writes=("deployments", "current"),
        htmx=True,
    ),
    Action(
        "plan-save",
        "browser",
        NOT_FIRST,
        deploy_rule(DEPLOY),
        lambda c: Req(
            "post",
            reverse("lifecycle:plan-save"),
            {
                "source": c.at(c.index - 1).pk,
                "target": c.env.pk,
                "application": c.application.pk,
                "name": "Nightly",
            },
        ),
        writes=("plans",),
    ),
    Action(
        "plan-delete",
        "browser",
        NOT_FIRST,
        needs(DEPLOY),
        lambda c: Req("post", reverse("lifecycle:plan-delete", args=[c.extra["plan"].pk])),
        setup=_plan,
        writes=("plans",),
    ),
    # Rolling back always undoes what came after, so it needs "Deploy anyway", so full access.
    Action(
        "rollback",
        "browser",
        ALL,
        needs(FULL),
        _rollback_request,
        setup=_newer_tag_running,
        writes=("deployments", "current", "tags"),
    ),
    # Full: blocking and Mark Hotfix as Solved.
    Action(
        "block",
        "browser",
        ALL,
        needs(FULL),
        lambda c: Req(
            "post", reverse("lifecycle:block", args=[c.application.pk, c.env.pk]), {"reason": "freeze"}
        ),
        writes=("blocks",),
        htmx=True,
    ),
    Action(
        "unblock",
        "browser",
        ALL,
        needs(FULL),
        lambda c: Req(
            "post", reverse("lifecycle:unblock", args=[c.application.pk, c.env.pk]), {"reason": "thaw"}
        ),
        setup=_blocked,
        writes=("blocks",),
        htmx=True,
    ),
    Action(
        "mark-solved",
        "browser",
        NOT_FIRST,
        needs(FULL),
        lambda c: Req("post", reverse("hotfixes:solve", args=[c.extra["hotfix"].pk]), {"confirm": "yes"}),
        setup=_hotfix_here,
        writes=("hotfixes",),
    ),
    # Merging backward: publish on the target, view on the source.
    Action(
        "merge",
        "browser",
        NOT_LAST,
        merge_rule,
        _merge_request,
        setup=_next_env_hotfix,
        writes=("merges", "versions", "current"),
    ),
    Action(
        "propagate",
        "browser",
        NOT_FIRST,
        propagate_rule,
        _propagate_request,
        setup=_hotfix_here,
        writes=("merges", "versions", "current"),
    ),
    # A user's own API tokens: no environment involved, any logged-in user.
    Action(
        "token-create",
        "browser",
        (None,),
        logged_in,
        lambda c: Req("post", reverse("tokens:create"), {"name": "CI"}),
        writes=("tokens",),
    ),
    Action(
        "token-revoke",
        "browser",
        (None,),
        logged_in,
        lambda c: Req("post", reverse("tokens:revoke", args=[c.extra["token"].pk])),
        setup=_own_token,
        writes=("tokens",),
    ),
    # Pages. Opening the editor starts a draft, so it needs publish.
    Action(
        "editor-page",
        "browser",
        ALL,
        needs(PUBLISH),
        _get(module_url("editor")),
        writes=("drafts",),
        post=False,
    ),
    Action("module-page", "browser", ALL, needs(VIEW), _get(module_url("module")), post=False),
    Action(
        "module-download",
        "browser",
        ALL,
        needs(VIEW),
        lambda c: Req("get", reverse("lifecycle:module-download", args=[c.module.pk, c.env.pk, 1])),
        post=False,
    ),
    Action(
        "hotfix-page",
        "browser",
        NOT_FIRST,
        needs(VIEW),
        _get(lambda c: reverse("hotfixes:hotfix", args=[c.extra["hotfix"].pk])),
        setup=_hotfix_here,
        post=False,
    ),
    Action(
        "propagate-page",
        "browser",
        NOT_FIRST,
        needs(VIEW),
        _get(lambda c: reverse("hotfixes:propagate", args=[c.extra["hotfix"].pk])),
        setup=_hotfix_here,
        post=False,
    ),
    Action(
        "deployment-page",
        "browser",
        ALL,
        needs(VIEW),
        _get(lambda c: reverse("lifecycle:deployment", args=[c.extra["deployment"].pk])),
        setup=_deployment_here,
        post=False,
    ),
    Action(
        "compare-page",
        "browser",
        NOT_LAST,
        lambda levels, i: levels[i] >= VIEW and levels[i + 1] >= VIEW,
        lambda c: Req(
            "get",
            reverse("hotfixes:compare"),
            {"application": c.application.pk, "source": c.env.pk, "target": c.at(c.index + 1).pk},
        ),
        post=False,
    ),
    Action(
        "merge-page",
        "browser",
        NOT_LAST,
        lambda levels, i: levels[i] >= VIEW and levels[i + 1] >= VIEW,
        lambda c: Req(
            "get",
            reverse("hotfixes:merge"),
            {"application": c.application.pk, "source": c.at(c.index + 1).pk, "target": c.env.pk},
        ),
        setup=_next_env_hotfix,
        post=False,
    ),
    Action(
        "api-environment-archive",
        "api",
        ALL,
        needs(VIEW),
        _api_get("environment-archive", lambda c: [c.module.name, c.env.name]),
        setup=_own_token,
        post=False,
    ),
    Action("command-download", "command", ALL, needs(VIEW), command=_download_command, post=False),
    Action(
        "pipeline-page",
        "browser",
        (None,),
        sees_any,
        _get(lambda c: reverse("lifecycle:pipeline")),
        post=False,
    ),
    Action(
        "application-page",
        "browser",
        (None,),
        sees_any,
        _get(lambda c: reverse("lifecycle:application", args=[c.application.pk])),
        post=False,
    ),
    Action(
        "deploy-page", "browser", (None,), sees_any, _get(lambda c: reverse("lifecycle:deploy")), post=False
    ),
    Action(
        "deployments-page",
        "browser",
        (None,),
        sees_any,
        _get(lambda c: reverse("lifecycle:deployments")),
        post=False,
    ),
    Action(
        "rollback-page",
        "browser",
        (None,),
        sees_any,
        _get(lambda c: reverse("lifecycle:rollback", args=[c.application.pk, c.tag.pk])),
        post=False,
    ),
    Action(
        "diff-page",
        "browser",
        (None,),
        sees_any,
        lambda c: Req("get", reverse("hotfixes:diff", args=[c.module.pk, 1, 2])),
        setup=lambda c: change(c.module, c.at(DEV)),
        post=False,
    ),
    Action(
        "api-application",
        "api",
        (None,),
        sees_any,
        _api_get("application", lambda c: [c.application.name]),
        setup=_own_token,
        post=False,
    ),
    Action(
        "api-version-archive",
        "api",
        (None,),
        sees_any,
        _api_get("version-archive", lambda c: [c.module.name, 1]),
        setup=_own_token,
        post=False,
    ),
    Action(
        "plan-page",
        "browser",
        NOT_FIRST,
        needs(VIEW),
        _get(lambda c: reverse("lifecycle:plan", args=[c.extra["plan"].pk])),
        setup=_plan,
        post=False,
    ),
    Action(
        "compare-file-page",
        "browser",
        NOT_LAST,
        lambda levels, i: levels[i] >= VIEW and levels[i + 1] >= VIEW,
        lambda c: Req(
            "get",
            reverse("hotfixes:compare-file"),
            {
                "application": c.application.pk,
                "source": c.env.pk,
                "target": c.at(c.index + 1).pk,
                "module": c.module.pk,
                "version": 2,
                "base": 1,
                "path": "main.py",
            },
        ),
        setup=_next_env_hotfix,
        post=False,
    ),
    Action("tokens-page", "browser", (None,), logged_in, _get(lambda c: reverse("tokens:list")), post=False),
    # The audit trail: staff and users with full access somewhere.
    Action(
        "audit-page",
        "browser",
        (None,),
        lambda levels, i: FULL in levels,
        _get(lambda c: reverse("lifecycle:audit")),
        post=False,
    ),
    Action(
        "audit-export",
        "browser",
        (None,),
        lambda levels, i: FULL in levels,
        _get(lambda c: reverse("lifecycle:audit-export")),
        post=False,
    ),
]
ACTIONS_BY_NAME = {action.name: action for action in ACTIONS}
