"""Hostile input: wrong types, missing fields, over-long values, invalid numbers, unknown or other
users' objects, hostile zips and text that is not UTF-8.

Every case is sent by a release manager (full access everywhere), so a refusal is about the input,
never about access. Each must be answered with a clear 4xx (a page refusing a form shows its message
as an alert) and write nothing; a page merely filtered by odd query values ignores them (200).
None may be a 500.
"""

import functools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from hotfixes.merging import prepare
from hotfixes.models import Hotfix
from hotfixes.propagation import mark_solved
from lifecycle import blocking
from lifecycle.deploying.switching import deploy_tag
from lifecycle.deploying.validation import validate
from lifecycle.editing import add_file, delete_file, open_draft
from lifecycle.models import Draft
from lifecycle.rollback import rollback_validation
from lifecycle.tagging import tag_environment
from lifecycle.tokens import create_token
from tests.editor_forms import draft_fields
from tests.factories import make_user, released_application
from tests.security import (
    DEV,
    PRE,
    PROD,
    QA,
    Ctx,
    Req,
    build_world,
    change,
    differences,
    run_command,
    send,
    snapshot,
    upload,
)
from tests.zips import HOSTILE, hostile, make_zip

pytestmark = pytest.mark.django_db

LONG = "x" * 10_000
MISSING = 999_999
BAD_DIGIT = "²"  # str.isdigit() says yes, int() says no


@functools.cache
def hostile_zip(name):
    return hostile(name)


# ---------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Case:
    request: Any  # Ctx -> Req
    expect: Any  # a status, or a tuple of acceptable statuses
    setup: Any = None
    settings: dict = field(default_factory=dict)
    htmx: bool = False
    message: str | None = None  # what the answer (or the page it redirects to) must say
    keeps: tuple = ()  # snapshot keys the refusal may write, by design


def case(name, expect, request, *, xfail=None, **options):
    marks = [pytest.mark.xfail(strict=True, reason=xfail)] if xfail else []
    return pytest.param(Case(request, expect, **options), id=name, marks=marks)


def post(url, data=None, **options):
    return lambda c: Req("post", url(c), data(c) if callable(data) else data, **options)


def get(url, data=None):
    return lambda c: Req("get", url(c), data(c) if callable(data) else data)


def module_url(name, module=None, environment=None):
    return lambda c: reverse(f"lifecycle:{name}", args=[module or c.module.pk, environment or c.env.pk])


def fixed(url):
    return lambda c: url


def editor_post(name, data=None, *, module=None, environment=None, **options):
    """A post to one of the editor's forms (`module_url(name, module, environment)`), carrying what
    its page showed besides what the user typed: the draft, its revision and, for a file of the
    draft (`data["path"]`), its content hash. A form without them is refused as stale (409) before
    the check a case is about. Read when the request is sent, after the case's setup.

    `data` may be a dict, or a function of the case giving a dict or an already encoded form body.
    """

    def with_fields(c):
        values = data(c) if callable(data) else dict(data or {})
        if isinstance(values, bytes):
            return f"{urlencode(draft_fields(c.user, c.module, c.env))}&".encode() + values
        return {**draft_fields(c.user, c.module, c.env, values.get("path")), **values}

    return post(module_url(name, module, environment), with_fields, **options)


def _setup_add_other(c):
    add_file(open_draft(c.user, c.module, c.env), "other.py", b"y = 2\n")


def _setup_empty_draft(c):
    delete_file(open_draft(c.user, c.module, c.env), "main.py")


def _setup_stale_draft(c):
    add_file(open_draft(c.user, c.module, c.env), "mine.py", b"z = 3\n")
    change(c.module, c.env, "someone else")


def _setup_dev_ahead(c):
    change(c.module, c.at(DEV), "next")


def _deploy(**extra):
    """Deploy Development -> Quality Assurance with a valid fingerprint, overridden by `extra`.

    The key NUMBER stands for the application's version field, `number-<application id>`.
    """

    def data(c):
        dev, qa = c.at(DEV), c.at(QA)
        fingerprint = validate(dev, qa, [c.application]).fingerprint
        values = {
            "source": dev.pk,
            "target": qa.pk,
            "application": c.application.pk,
            "fingerprint": fingerprint,
        }
        values.update({k.replace("NUMBER", f"number-{c.application.pk}"): v for k, v in extra.items()})
        return {k: v for k, v in values.items() if v is not None}

    return post(fixed(reverse("lifecycle:deploy-run")), data)


def _plan(**extra):
    def data(c):
        values = {
            "source": c.at(DEV).pk,
            "target": c.at(QA).pk,
            "application": c.application.pk,
            "name": "Nightly",
        }
        values.update(extra)
        return {k: v for k, v in values.items() if v is not None}

    return post(fixed(reverse("lifecycle:plan-save")), data)


def _setup_newer(c):
    change(c.module, c.at(DEV), "0.4")
    deploy_tag(tag_environment(c.application, c.at(DEV), "0.4"), c.env)


def _rollback(tag=None, application=None, **extra):
    def url(c):
        return reverse(
            "lifecycle:rollback",
            args=[application or c.application.pk, tag(c) if callable(tag) else tag or c.tag.pk],
        )

    def data(c):
        fingerprint = rollback_validation(c.application, c.tag, c.env, "").fingerprint
        values = {"environment": c.env.pk, "number": "", "fingerprint": fingerprint, "deploy_anyway": "on"}
        values.update(extra)
        return {k: v for k, v in values.items() if v is not None}

    return post(url, data)


def _setup_newer_also_in_production(c):
    """QA and Production both run 0.4: the same state, so the same rollback fingerprint."""
    _setup_newer(c)
    deploy_tag(c.application.tags.get(number="0.4"), c.at(PROD))


def _setup_other_application(c):
    _setup_newer(c)
    c.extra["other tag"] = released_application("Other", c.environments)[2]


def _block(reason, action="block", application=None, environment=None):
    return post(
        lambda c: reverse(
            f"lifecycle:{action}", args=[application or c.application.pk, environment or c.env.pk]
        ),
        {} if reason is None else {"reason": reason},
    )


def _blocked(c):
    blocking.block(c.application, c.env, c.user, "freeze")


def _pre_hotfix(c):
    change(c.module, c.at(PRE), "hotfix")
    c.extra["hotfix"] = Hotfix.objects.open().get(environment=c.at(PRE))


def _merge(**extra):
    """Merge Pre-Production's hotfix into Quality Assurance, with a valid fingerprint unless overridden."""

    def data(c):
        pre, qa = c.at(PRE), c.at(QA)
        values = {
            "application": c.application.pk,
            "source": pre.pk,
            "target": qa.pk,
            "fingerprint": prepare(c.application, pre, qa).fingerprint,
            "action": "merge",
        }
        values.update({key: value(c) if callable(value) else value for key, value in extra.items()})
        return {k: v for k, v in values.items() if v is not None}

    return post(fixed(reverse("hotfixes:merge")), data)


def _hotfix_url(name):
    return lambda c: reverse(f"hotfixes:{name}", args=[c.extra["hotfix"].pk])


def _solved(c):
    _pre_hotfix(c)
    mark_solved(c.extra["hotfix"].pk, c.environments, user=c.user, confirm_incomplete=True)


def _compare(view="compare", **query):
    def data(c):
        values = {"application": c.application.pk, "source": c.at(QA).pk, "target": c.at(PRE).pk}
        if view == "compare-file":
            values.update({"module": c.module.pk, "version": 2, "base": 1, "path": "main.py"})
        values.update(query)
        return {k: v for k, v in values.items() if v is not None}

    return get(fixed(reverse(f"hotfixes:{view}")), data)


def _other_token(c):
    someone = make_user("someone")
    c.extra["token"], _ = create_token(someone, "theirs")


def _qs(url, query):
    return lambda c: f"{url(c)}?{query}"


FORMS = [
    # The editor: save
    case(
        "save: no path",
        422,
        editor_post("editor-save", {"content": "x"}),
        message="path: This field is required",
    ),
    case(
        "save: a path not in the draft",
        422,
        editor_post("editor-save", {"path": "nope.py", "content": "x"}),
        message="nope.py is not in your draft",
    ),
    case(
        "save: a 10,000-character path",
        422,
        editor_post("editor-save", {"path": LONG, "content": "x"}),
        message="at most 1024 characters",
    ),
    case(
        "save: content over the file limit",
        422,
        editor_post("editor-save", {"path": "main.py", "content": "x" * 2000}),
        settings={"MODULE_MAX_FILE_BYTES": 1000},
        message="over the limit of 1000 bytes per file",
    ),
    case(
        "save: a request body over Django's limit",
        413,  # a page with the limits in words (lifecycle/request_limits.py), not a bare 400
        editor_post("editor-save", {"path": "main.py", "content": "x" * 20_000}),
        settings={"DATA_UPLOAD_MAX_MEMORY_SIZE": 10_000},
        message="nothing was saved",
    ),
    case(
        "save: a form body that is not UTF-8",
        422,
        editor_post(
            "editor-save",
            lambda c: b"path=%ff%fe&content=%ff",
            content_type="application/x-www-form-urlencoded",
        ),
        message="is not in your draft",
    ),
    case("save: an unknown module", 404, editor_post("editor-save", {"path": "main.py"}, module=MISSING)),
    case(
        "save: an unknown environment",
        404,
        editor_post("editor-save", {"path": "a"}, environment=MISSING),
    ),
    # The editor: add
    case(
        "add: no path",
        422,
        editor_post("editor-add", {"content": "x"}),
        message="path: This field is required",
    ),
    case(
        "add: a path that climbs out",
        422,
        editor_post("editor-add", {"path": "../evil.py"}),
        message="it leaves the module",
    ),
    case(
        "add: an absolute path",
        422,
        editor_post("editor-add", {"path": "/etc/cron.d/evil"}),
        message="it is absolute",
    ),
    case(
        "add: a backslash path",
        422,
        editor_post("editor-add", {"path": "..\\evil.py"}),
        message="it uses a backslash",
    ),
    case(
        "add: a drive letter",
        422,
        editor_post("editor-add", {"path": "C:/evil.py"}),
        message="it starts with a drive letter",
    ),
    case("add: a NUL in the path", 400, editor_post("editor-add", {"path": "a\x00b.py"})),
    case(
        "add: a tab in the path",
        422,
        editor_post("editor-add", {"path": "a\tb.py"}),
        message="it contains a control character",
    ),
    case(
        "add: a direction override",
        422,
        editor_post("editor-add", {"path": "evil\u202etxt.py"}),
        message="change the direction of the text",
    ),
    case(
        "add: an empty folder name",
        422,
        editor_post("editor-add", {"path": "a//b.py"}),
        message="it has an empty folder name",
    ),
    case(
        "add: only spaces",
        422,
        editor_post("editor-add", {"path": "   "}),
        message="path: This field is required",
    ),
    case(
        "add: a 10,000-character path",
        422,
        editor_post("editor-add", {"path": LONG}),
        message="at most 1024 characters",
    ),
    case(
        "add: a 300-character name",
        422,
        editor_post("editor-add", {"path": "n" * 300}),
        message="a name longer than 255 bytes",
    ),
    case(
        "add: a name taken ignoring case",
        422,
        editor_post("editor-add", {"path": "MAIN.py"}),
        message="MAIN.py already exists",
    ),
    case(
        "add: a path under an existing file",
        422,
        editor_post("editor-add", {"path": "main.py/inner.py"}),
        message="main.py/inner.py already exists",
    ),
    case(
        "add: an upload over the file limit",
        422,
        editor_post(
            "editor-add", lambda c: {"path": "big.bin", "upload": upload("big.bin", data=b"x" * 2000)}
        ),
        settings={"MODULE_MAX_FILE_BYTES": 1000},
        message="over the limit of 1000 bytes per file",
    ),
    case(
        "add: one file too many",
        422,
        editor_post("editor-add", {"path": "second.py", "content": "x"}),
        settings={"MODULE_MAX_FILES": 1},
        message="at most 1 files",
    ),
    case("add: an unknown module", 404, editor_post("editor-add", {"path": "a.py"}, module=MISSING)),
    # The editor: rename, delete, publish, discard
    case(
        "rename: no new path",
        422,
        editor_post("editor-rename", {"path": "main.py"}),
        message="new_path: This field is required",
    ),
    case(
        "rename: no path",
        422,
        editor_post("editor-rename", {"new_path": "x.py"}),
        message="path: This field is required",
    ),
    case(
        "rename: a path not in the draft",
        422,
        editor_post("editor-rename", {"path": "no.py", "new_path": "x"}),
        message="no.py is not in your draft",
    ),
    case(
        "rename: out of the module",
        422,
        editor_post("editor-rename", {"path": "main.py", "new_path": "../x"}),
        message="it leaves the module",
    ),
    case(
        "rename: a 10,000-character path",
        422,
        editor_post("editor-rename", {"path": "main.py", "new_path": LONG}),
        message="at most 1024 characters",
    ),
    case(
        "rename: onto another file ignoring case",
        422,
        editor_post("editor-rename", {"path": "main.py", "new_path": "OTHER.py"}),
        setup=_setup_add_other,
        message="OTHER.py already exists",
    ),
    case("delete: no path", 422, editor_post("editor-delete", {}), message="Choose a file to delete"),
    case(
        "delete: a path not in the draft",
        422,
        editor_post("editor-delete", {"path": "nope.py"}),
        message="nope.py is not in your draft",
    ),
    case(
        "delete: an unknown environment",
        404,
        editor_post("editor-delete", {"path": "a"}, environment=MISSING),
    ),
    case(
        "publish: a 10,000-character comment",
        422,
        editor_post("editor-publish", {"comment": LONG}),
        message="at most 2000 characters",
    ),
    case(
        "publish: a draft with no files",
        422,
        editor_post("editor-publish", {}),
        setup=_setup_empty_draft,
        message="contains no files",
    ),
    case(
        "publish: content over the module limit",
        422,
        editor_post("editor-publish", {}),
        setup=_setup_add_other,
        settings={"MODULE_MAX_TOTAL_BYTES": 10},
        message="over the limit of 10 bytes for one module",
    ),
    case(
        "publish: a stale draft",
        409,
        editor_post("editor-publish", {"comment": "mine"}),
        setup=_setup_stale_draft,
        message="changed in Quality Assurance while you were editing",
        keeps=("drafts",),  # the draft keeps the comment typed (docs/rules.md)
    ),
    case("discard: an unknown module", 404, editor_post("editor-discard", module=MISSING)),
    case("editor: an unknown module", 404, get(module_url("editor", module=MISSING))),
    case("editor: a path that is not UTF-8", 200, get(_qs(module_url("editor"), "path=%ff%fe"))),
    # Zip upload in the browser
    case("upload: no zip", 422, post(module_url("module-upload"), {"comment": "x"})),
    case(
        "upload: text instead of a file", 422, post(module_url("module-upload"), {"archive": "PK not a file"})
    ),
    case(
        "upload: a 10,000-character comment",
        422,
        post(module_url("module-upload"), lambda c: {"archive": upload(), "comment": LONG}),
    ),
    case(
        "upload: a zip over the size limit",
        422,
        post(module_url("module-upload"), lambda c: {"archive": upload()}),
        settings={"MODULE_MAX_ARCHIVE_BYTES": 50},
    ),
    case(
        "upload: an unknown module",
        404,
        post(module_url("module-upload", module=MISSING), lambda c: {"archive": upload()}),
    ),
    case("upload: GET", 405, get(module_url("module-upload"))),
    # Module pages
    case("module: an unknown environment", 404, get(module_url("module", environment=MISSING))),
    case(
        "module: a version that is not a number", 200, get(_qs(module_url("module"), "version=abc&path=%ff"))
    ),
    case("module: a version in superscript", 200, get(_qs(module_url("module"), f"version={BAD_DIGIT}"))),
    case(
        "download: an unknown version",
        404,
        get(lambda c: reverse("lifecycle:module-download", args=[c.module.pk, c.env.pk, 99])),
    ),
    case("diff: unknown versions", 404, get(lambda c: reverse("hotfixes:diff", args=[c.module.pk, 1, 99]))),
    case("diff: an unknown module", 404, get(lambda c: reverse("hotfixes:diff", args=[MISSING, 1, 1]))),
    # Deploy
    case("deploy: no application", 409, _deploy(application=None), setup=_setup_dev_ahead),
    case(
        "deploy: an application id that is not a number",
        409,
        _deploy(application="abc"),
        setup=_setup_dev_ahead,
    ),
    case("deploy: an unknown application", 409, _deploy(application=str(MISSING)), setup=_setup_dev_ahead),
    case(
        "deploy: an application id in superscript digits",
        409,
        _deploy(application=BAD_DIGIT),
        setup=_setup_dev_ahead,
    ),
    case("deploy: a wrong fingerprint", 409, _deploy(fingerprint="0" * 64), setup=_setup_dev_ahead),
    case("deploy: no fingerprint", 409, _deploy(fingerprint=None), setup=_setup_dev_ahead),
    case("deploy: a number that is not a version", 409, _deploy(NUMBER="abc"), setup=_setup_dev_ahead),
    case("deploy: a number with a leading zero", 409, _deploy(NUMBER="0.04"), setup=_setup_dev_ahead),
    case("deploy: a number with one part", 409, _deploy(NUMBER="1"), setup=_setup_dev_ahead),
    case("deploy: a negative number", 409, _deploy(NUMBER="-1.0"), setup=_setup_dev_ahead),
    case("deploy: a 10,000-character number", 409, _deploy(NUMBER=LONG), setup=_setup_dev_ahead),
    case("deploy: a taken number", 409, _deploy(NUMBER="0.3"), setup=_setup_dev_ahead),
    case("deploy: a taken number written 0.3.0", 409, _deploy(NUMBER="0.3.0"), setup=_setup_dev_ahead),
    case(
        "deploy: a number field for an id in superscript digits",
        409,
        _deploy(**{f"number-{BAD_DIGIT}": "0.5", "fingerprint": "0" * 64}),
        setup=_setup_dev_ahead,
    ),
    case(
        "deploy: a plan id that is not a number",
        (404, 409),
        _deploy(plan="abc", fingerprint="0" * 64),
        setup=_setup_dev_ahead,
    ),
    case(
        "deploy: an unknown target environment",
        (403, 404, 409),
        _deploy(target=str(MISSING)),
        setup=_setup_dev_ahead,
    ),
    case(
        "deploy: the same source and target",
        409,
        lambda c: _deploy(target=str(c.at(DEV).pk))(c),
        setup=_setup_dev_ahead,
    ),
    case(
        "deploy: 10,000-character notes",
        (400, 409, 422),
        _deploy(notes=LONG),
        setup=_setup_dev_ahead,
    ),
    case("deploy: GET", 405, get(fixed(reverse("lifecycle:deploy-run")))),
    case(
        "deploy page: ids that are not numbers",
        200,
        get(fixed(reverse("lifecycle:deploy")), {"source": "abc", "target": "%ff", "application": "x"}),
    ),
    case(
        "deploy page: an application id in superscript digits",
        200,
        get(fixed(reverse("lifecycle:deploy")), {"application": BAD_DIGIT}),
    ),
    # Plans
    case("plan: no name", 422, _plan(name=None)),
    case("plan: a blank name", 422, _plan(name="   ")),
    case("plan: no application", 422, _plan(application=None)),
    case(
        "plan: a 10,000-character name",
        (400, 422),
        _plan(name=LONG),
    ),
    case(
        "plan: an unknown target environment",
        (403, 404, 422),
        _plan(target=str(MISSING)),
    ),
    case("plan: delete an unknown plan", 404, post(fixed(reverse("lifecycle:plan-delete", args=[MISSING])))),
    case("plan: open an unknown plan", 404, get(fixed(reverse("lifecycle:plan", args=[MISSING])))),
    # Rollback (Quality Assurance runs 0.4; back to 0.3)
    case("rollback: a number that is not a version", 409, _rollback(number="abc"), setup=_setup_newer),
    case("rollback: a number with a leading zero", 409, _rollback(number="01.2"), setup=_setup_newer),
    case("rollback: a 10,000-character number", 409, _rollback(number=LONG), setup=_setup_newer),
    case("rollback: a taken number", 409, _rollback(number="0.3"), setup=_setup_newer),
    case("rollback: a taken number written 0.4.0", 409, _rollback(number="0.4.0"), setup=_setup_newer),
    case("rollback: a wrong fingerprint", 409, _rollback(fingerprint="f" * 64), setup=_setup_newer),
    case("rollback: without Deploy anyway", 409, _rollback(deploy_anyway=None), setup=_setup_newer),
    case(
        "rollback: an unknown environment",
        (404, 409),
        _rollback(environment=str(MISSING)),
        setup=_setup_newer,
    ),
    case(
        "rollback: an unknown environment, Production in the same state",
        (404, 409),
        _rollback(environment=str(MISSING)),
        setup=_setup_newer_also_in_production,
    ),
    case("rollback: an unknown tag", 404, _rollback(tag=MISSING), setup=_setup_newer),
    case("rollback: an unknown application", 404, _rollback(application=MISSING), setup=_setup_newer),
    case(
        "rollback: another application's tag",
        404,
        _rollback(tag=lambda c: c.extra["other tag"].pk),
        setup=_setup_other_application,
    ),
    # Blocking: a refusal answers 422 with its reason, the whole page for a plain form and the
    # section for htmx
    case("block: no reason", 422, _block(None), message="Not blocked: Say why"),
    case("block: no reason (htmx)", 422, _block(None), htmx=True, message="Not blocked: Say why"),
    case("block: a 10,000-character reason", 422, _block(LONG), message="Keep the reason under"),
    case(
        "block: a 10,000-character reason (htmx)",
        422,
        _block(LONG),
        htmx=True,
        message="Keep the reason under",
    ),
    case(
        "block: already blocked (htmx)",
        422,
        _block("again"),
        htmx=True,
        setup=_blocked,
        message="already blocked",
    ),
    case("unblock: not blocked", 422, _block("thaw", "unblock"), message="nothing to unblock"),
    case(
        "unblock: not blocked (htmx)", 422, _block("thaw", "unblock"), htmx=True, message="nothing to unblock"
    ),
    case(
        "unblock: no reason (htmx)",
        422,
        _block(None, "unblock"),
        htmx=True,
        setup=_blocked,
        message="Say why",
    ),
    case("block: an unknown application", 404, _block("x", application=MISSING)),
    case("block: an unknown environment", 404, _block("x", environment=MISSING)),
    # Merge (Pre-Production's hotfix into Quality Assurance)
    case("merge: an unknown application", 404, _merge(application=str(MISSING)), setup=_pre_hotfix),
    case("merge: an unknown source", 404, _merge(source=str(MISSING)), setup=_pre_hotfix),
    case(
        "merge: an application id that is not a number",
        (400, 404),
        _merge(application="abc"),
        setup=_pre_hotfix,
    ),
    case(
        "merge page: a target id that is not UTF-8",
        (400, 404),
        get(
            lambda c: (
                f"{reverse('hotfixes:merge')}?application={c.application.pk}&source={c.at(PRE).pk}&target=%ff"
            )
        ),
        setup=_pre_hotfix,
    ),
    case(
        "merge: into itself",
        (400, 403),
        _merge(source=lambda c: c.at(QA).pk),
        setup=_pre_hotfix,
    ),
    case("merge: a wrong fingerprint", 409, _merge(fingerprint="0" * 64), setup=_pre_hotfix),
    case("merge: nothing selected", 422, _merge(submitted="1"), setup=_pre_hotfix),
    case(
        "merge: a 10,000-character comment",
        (400, 422),
        _merge(comment=LONG),
        setup=_pre_hotfix,
    ),
    # Propagate and Mark Hotfix as Solved
    case("propagate: an unknown hotfix", 404, post(fixed(reverse("hotfixes:propagate", args=[MISSING])))),
    case("propagate: no fingerprints", 409, post(_hotfix_url("propagate"), {}), setup=_pre_hotfix),
    case(
        "propagate: wrong fingerprints",
        409,
        post(_hotfix_url("propagate"), {"fingerprint": ["a", "b"]}),
        setup=_pre_hotfix,
    ),
    case(
        "propagate: one fingerprint too many",
        409,
        post(_hotfix_url("propagate"), {"fingerprint": ["a", "b", "c"]}),
        setup=_pre_hotfix,
    ),
    case("solve: an unknown hotfix", 404, post(fixed(reverse("hotfixes:solve", args=[MISSING])))),
    case(
        "solve: without confirming what is missing",
        409,
        post(_hotfix_url("solve"), {}),
        setup=_pre_hotfix,
        message="Quality Assurance",
    ),
    case(
        "solve: already solved",
        302,
        post(_hotfix_url("solve"), {"confirm": "yes"}),
        setup=_solved,
        message="already marked solved",
    ),
    case(
        "solve: a 10,000-character note",
        (400, 422),
        post(_hotfix_url("solve"), {"confirm": "yes", "note": LONG}),
        setup=_pre_hotfix,
    ),
    case("hotfix page: an unknown hotfix", 404, get(fixed(reverse("hotfixes:hotfix", args=[MISSING])))),
    # Compare
    case("compare: no application", 404, _compare(application=None)),
    case("compare: an application id that is not a number", 404, _compare(application="abc")),
    case("compare: an unknown source", 404, _compare(source=str(MISSING))),
    case(
        "compare: an application id in superscript digits",
        404,
        _compare(application=BAD_DIGIT),
    ),
    case("compare file: no path", 404, _compare("compare-file", path=None), setup=_pre_hotfix),
    case(
        "compare file: a path in no version", 404, _compare("compare-file", path="nope.py"), setup=_pre_hotfix
    ),
    case(
        "compare file: a version that is not a number",
        404,
        _compare("compare-file", version="v2"),
        setup=_pre_hotfix,
    ),
    case("compare file: an unknown version", 404, _compare("compare-file", version="99"), setup=_pre_hotfix),
    case(
        "compare file: a base that is not a number",
        404,
        _compare("compare-file", base="x"),
        setup=_pre_hotfix,
    ),
    case(
        "compare file: an unknown module",
        404,
        _compare("compare-file", module=str(MISSING)),
        setup=_pre_hotfix,
    ),
    # Deployments, grid
    case(
        "deployment: an unknown deployment", 404, get(fixed(reverse("lifecycle:deployment", args=[MISSING])))
    ),
    case(
        "deployments: filters that are not UTF-8 or not numbers",
        200,
        get(
            fixed(
                reverse("lifecycle:deployments") + "?application=%ff&user=%fe&environment=x&status=%ff&page=z"
            )
        ),
    ),
    case(
        "deployments: 10,000-character filters",
        200,
        get(fixed(reverse("lifecycle:deployments")), {"application": LONG, "user": LONG, "page": LONG}),
    ),
    case(
        "grid: filters that are not UTF-8",
        200,
        get(fixed(reverse("lifecycle:pipeline") + "?q=%ff%fe&show=%ff")),
    ),
    case("grid: a 10,000-character filter", 200, get(fixed(reverse("lifecycle:pipeline")), {"q": LONG})),
    # API tokens
    case("token: no name", 422, post(fixed(reverse("tokens:create")), {})),
    case("token: a blank name", 422, post(fixed(reverse("tokens:create")), {"name": "   "})),
    case("token: a 10,000-character name", 422, post(fixed(reverse("tokens:create")), {"name": LONG})),
    case("token: a NUL in the name", 400, post(fixed(reverse("tokens:create")), {"name": "a\x00b"})),
    case("token: revoke an unknown token", 404, post(fixed(reverse("tokens:revoke", args=[MISSING])))),
    case(
        "token: revoke another user's token",
        404,
        post(lambda c: reverse("tokens:revoke", args=[c.extra["token"].pk])),
        setup=_other_token,
    ),
    case("token: GET the create URL", 405, get(fixed(reverse("tokens:create")))),
]


@pytest.fixture
def world(environments, release_manager, client, tmp_path):
    """Released App; the release manager logged in, acting in Quality Assurance with a draft open."""
    client.force_login(release_manager)
    client.raise_request_exception = False
    ctx = build_world(Ctx(environments, release_manager, client, tmp_path, QA))
    open_draft(release_manager, ctx.module, ctx.env)
    return ctx


def _check(response, expect, before, keeps=(), message=None, client=None):
    status = response.status_code
    assert status < 500, f"server error {status}"
    expected = expect if isinstance(expect, tuple) else (expect,)
    assert status in expected, f"answered {status}, expected {expected}: {response.content[:400]!r}"
    changed = [key for key in differences(before, snapshot()) if key not in keeps]
    assert changed == [], f"wrote {changed}"
    if status in (409, 422) and response["Content-Type"].startswith("text/html"):
        assert 'role="alert"' in response.content.decode(), "the refusal shows no message"
    if message:
        text = response.content.decode()
        if status == 302:
            text = client.get(response.url).content.decode()
        assert message in text, f"the answer does not say {message!r}"


@pytest.mark.parametrize("hostile_case", FORMS)
def test_the_console_refuses_hostile_input(hostile_case, world, settings):
    for name, value in hostile_case.settings.items():
        setattr(settings, name, value)
    if hostile_case.setup:
        hostile_case.setup(world)
    before = snapshot()
    response = send(world, hostile_case.request(world), htmx=hostile_case.htmx)
    _check(response, hostile_case.expect, before, hostile_case.keeps, hostile_case.message, world.client)


# ---------------------------------------------------------------------------
# Hostile zips, everywhere a zip comes in


@pytest.mark.parametrize("name", list(HOSTILE))
def test_the_upload_refuses_a_hostile_zip(name, world):
    data, _ = hostile_zip(name)
    before = snapshot()
    url = reverse("lifecycle:module-upload", args=[world.module.pk, world.env.pk])
    response = world.client.post(url, {"archive": upload("evil.zip", data=data)})
    _check(response, 422, before, message="nothing was published")


@pytest.mark.parametrize("name", list(HOSTILE))
def test_the_api_refuses_a_hostile_zip(name, world):
    data, code = hostile_zip(name)
    _, raw = create_token(world.user, "ci")
    before = snapshot()
    response = world.client.post(
        reverse("api:publish", args=[world.module.name, world.env.name]),
        data,
        content_type="application/zip",
        headers={"Authorization": f"Bearer {raw}"},
    )
    _check(response, (400, 413), before)
    if code:
        assert response.json()["code"] == code


@pytest.mark.parametrize("name", list(HOSTILE))
def test_the_publish_command_refuses_a_hostile_zip(name, world):
    data, _ = hostile_zip(name)
    path = world.tmp_path / "evil.zip"
    path.write_bytes(data)
    before = snapshot()
    assert (
        run_command(world, "publish", world.env.name, world.module.name, str(path), user=world.user.username)
        == 2
    )
    assert differences(before, snapshot()) == []


@pytest.mark.parametrize(
    ("arguments", "options", "code"),
    [
        (["Quality Assurance", "App-Core", "{tmp}/missing.zip"], {}, 2),
        (["Nowhere", "App-Core", "{zip}"], {}, 4),
        (["Quality Assurance", "Nothing", "{zip}"], {}, 4),
        (["Quality Assurance", "App-Core", "{zip}"], {"user": "nobody"}, 4),
        (["Quality Assurance", "App-Core", "{zip}"], {"base_version": 99}, 2),
        (["Quality Assurance", "App-Core", "{zip}"], {"base_version": 1, "comment": "stale"}, 5),
    ],
    ids=[
        "missing path",
        "unknown environment",
        "unknown module",
        "unknown user",
        "unknown base",
        "stale base",
    ],
)
def test_the_publish_command_refuses_bad_arguments(arguments, options, code, world):
    zip_path = world.tmp_path / "module.zip"
    zip_path.write_bytes(make_zip({"main.py": "print('cli')\n"}))
    change(world.module, world.env, "now v2 in QA")
    arguments = [a.format(tmp=world.tmp_path, zip=zip_path) for a in arguments]
    before = snapshot()
    options = {"user": world.user.username, **options}
    assert run_command(world, "publish", *arguments, **options) == code
    assert differences(before, snapshot()) == []


# ---------------------------------------------------------------------------
# The API's own hostile requests


def _api(world, method="post", module="App-Core", environment="Quality Assurance", query="", body=b"", **kw):
    headers = {"Authorization": f"Bearer {world.extra['raw']}", **kw.pop("headers", {})}
    url = reverse("api:publish", args=[module, environment]) + query
    if method == "get":
        return world.client.get(url, headers=headers)
    return world.client.post(
        url, body, content_type=kw.pop("content_type", "application/zip"), headers=headers
    )


ZIP = make_zip({"main.py": "print('api')\n"})

API_CASES = [
    ("a JSON body", {"body": b"{}", "content_type": "application/json"}, 415, "unsupported_media_type"),
    ("a form body", {"body": b"a=b", "content_type": "application/x-www-form-urlencoded"}, 415, None),
    ("an empty body", {"body": b""}, (400, 415), None),
    ("a 10,000-character comment", {"body": ZIP, "query": f"?comment={LONG}"}, 400, "invalid_comment"),
    ("a comment that is not UTF-8", {"body": b"x", "query": "?comment=%ff%fe"}, 400, "not_a_zip"),
    (
        "a base version that is not a number",
        {"body": ZIP, "query": "?base_version=abc"},
        400,
        "invalid_base_version",
    ),
    ("base version 0", {"body": ZIP, "query": "?base_version=0"}, 400, "invalid_base_version"),
    (
        "a base version that is not UTF-8",
        {"body": ZIP, "query": "?base_version=%ff"},
        400,
        "invalid_base_version",
    ),
    ("a stale base version", {"body": ZIP, "query": "?base_version=99"}, 409, "stale"),
    ("an unknown module", {"body": ZIP, "module": "Nothing"}, 404, "not_found"),
    ("a 10,000-character module name", {"body": ZIP, "module": LONG}, 404, "not_found"),
    ("an unknown environment", {"body": ZIP, "environment": "Nowhere"}, 404, "not_found"),
    ("GET", {"method": "get"}, 405, "method_not_allowed"),
    ("a 10,000-character token", {"body": ZIP, "headers": {"Authorization": f"Bearer sb_{LONG}"}}, 401, None),
]


@pytest.mark.parametrize(
    ("options", "status", "code"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES]
)
def test_the_api_refuses_hostile_requests(options, status, code, world):
    world.extra["raw"] = create_token(world.user, "ci")[1]
    before = snapshot()
    response = _api(world, **options)
    _check(response, status, before)
    assert response["Content-Type"] == "application/problem+json"
    if code:
        assert response.json()["code"] == code


def test_the_api_refuses_a_base_version_in_superscript_digits(world):
    world.extra["raw"] = create_token(world.user, "ci")[1]
    before = snapshot()
    _check(_api(world, body=ZIP, query=f"?base_version={BAD_DIGIT}"), 400, before)


def test_the_api_refuses_a_zip_over_the_limit(world, settings):
    settings.MODULE_MAX_ARCHIVE_BYTES = 50
    world.extra["raw"] = create_token(world.user, "ci")[1]
    before = snapshot()
    response = _api(world, body=ZIP)
    _check(response, 413, before)
    assert response.json()["code"] == "archive_too_large"


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/v1/modules/App-Core/versions/99/archive", 404),
        ("/api/v1/modules/Nothing/versions/1/archive", 404),
        ("/api/v1/modules/App-Core/environments/Nowhere/archive", 404),
        ("/api/v1/applications/Nothing", 404),
        ("/api/v1/applications/%ff%fe", 404),
        ("/api/v1/no/such/endpoint", 404),
    ],
)
def test_the_api_answers_unknown_objects_with_a_json_404(url, status, world):
    world.extra["raw"] = create_token(world.user, "ci")[1]
    before = snapshot()
    response = world.client.get(url, headers={"Authorization": f"Bearer {world.extra['raw']}"})
    _check(response, status, before)
    assert response.json()["code"] == "not_found"


# ---------------------------------------------------------------------------
# Other users' drafts


def test_another_users_draft_is_neither_shown_nor_touched(world, developer):
    """The developer's unpublished edit stays theirs: the release manager's editor starts from v1,
    acts on the release manager's own draft, and a form naming the developer's draft is refused."""
    theirs = open_draft(developer, world.module, world.env)
    add_file(theirs, "secret-wip.py", b"print('not yet')\n")
    theirs = Draft.objects.get(pk=theirs.pk)
    manifest = dict(theirs.manifest)
    client = world.client
    page = client.get(reverse("lifecycle:editor", args=[world.module.pk, world.env.pk]))
    assert page.status_code == 200
    assert b"secret-wip.py" not in page.content
    base = [world.module.pk, world.env.pk]

    def mine(path=None):
        return draft_fields(world.user, world.module, world.env, path)

    def url(name):
        return reverse(f"lifecycle:{name}", args=base)

    saved = client.post(url("editor-save"), {**mine("main.py"), "path": "main.py", "content": "mine\n"})
    assert saved.status_code == 302
    assert client.post(url("editor-delete"), {**mine(), "path": "secret-wip.py"}).status_code == 422
    # The developer's draft named outright, with its revision and file hash: stale for anyone else.
    their_form = {"draft": theirs.pk, "revision": theirs.revision, "from_hash": manifest["secret-wip.py"]}
    for name, data in [
        ("editor-save", {"path": "secret-wip.py", "content": "overwritten\n"}),
        ("editor-add", {"path": "added.py", "content": "x\n"}),
        ("editor-rename", {"path": "secret-wip.py", "new_path": "renamed.py"}),
        ("editor-delete", {"path": "secret-wip.py"}),
        ("editor-publish", {"comment": "theirs, published by someone else"}),
        ("editor-discard", {}),
    ]:
        assert client.post(url(name), {**their_form, **data}).status_code == 409, name
    assert client.post(url("editor-discard"), mine()).status_code == 302
    assert Draft.objects.get(pk=theirs.pk).manifest == manifest
    assert world.module.versions.count() == 1


# ---------------------------------------------------------------------------
# Text that is not UTF-8, published in a zip and then shown everywhere

NOT_UTF8 = {
    "bad.txt": b"\xff\xfe broken \xe9 text\n",
    "latin1.py": "prix = '5 €' # café\n".encode("cp1252"),
    "main.py": b"# App-Core\nprint('hello')\n\xff\n",
}


def test_files_that_are_not_utf8_are_accepted_as_binary_and_shown_without_error(world, environments):
    client = world.client
    qa, pre = environments[QA], environments[PRE]
    url = reverse("lifecycle:module-upload", args=[world.module.pk, pre.pk])
    response = client.post(url, {"archive": upload(files=NOT_UTF8)})
    assert response.status_code == 302
    hotfix = Hotfix.objects.open().get(environment=pre)
    module, app = world.module.pk, world.application.pk
    pages = [
        reverse("lifecycle:module", args=[module, pre.pk]) + "?path=bad.txt",
        reverse("lifecycle:module", args=[module, pre.pk]) + "?path=latin1.py",
        reverse("lifecycle:module", args=[module, pre.pk]) + "?path=main.py",
        reverse("lifecycle:module", args=[module, pre.pk]) + "?path=%ff",
        reverse("lifecycle:editor", args=[module, pre.pk]) + "?path=bad.txt",
        reverse("lifecycle:editor", args=[module, pre.pk]) + "?path=main.py",
        reverse("lifecycle:module-download", args=[module, pre.pk, 2]),
        reverse("hotfixes:diff", args=[module, 1, 2]),
        reverse("hotfixes:diff", args=[module, 2, 1]),
        reverse("lifecycle:application", args=[app]),
        f"{reverse('hotfixes:compare')}?application={app}&source={qa.pk}&target={pre.pk}",
        f"{reverse('hotfixes:compare-file')}?application={app}&source={qa.pk}&target={pre.pk}"
        f"&module={module}&version=2&base=1&path=main.py",
        f"{reverse('hotfixes:compare-file')}?application={app}&source={qa.pk}&target={pre.pk}"
        f"&module={module}&version=2&base=1&path=bad.txt",
        f"{reverse('hotfixes:merge')}?application={app}&source={pre.pk}&target={qa.pk}",
        reverse("hotfixes:propagate", args=[hotfix.pk]),
        reverse("hotfixes:hotfix", args=[hotfix.pk]),
        f"{reverse('lifecycle:deploy')}?source={pre.pk}&target={environments[3].pk}&application={app}",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, (page, response.status_code)
    editor = client.get(reverse("lifecycle:editor", args=[module, pre.pk]) + "?path=main.py").content.decode()
    assert (
        "A binary file, or text that is not UTF-8" in editor
    )  # downloaded or replaced, never edited as text


# ---------------------------------------------------------------------------
# NUL characters: SQLite stores them, PostgreSQL refuses them in text (DataError), so any free text
# or filter that reaches a query unchecked is a 500 there. Django's form fields refuse NUL; the
# views that read request.POST / request.GET directly do not.

ON_POSTGRES = django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
NUL = "a\x00b"


def _nul(name, request, *, setup=None, reaches_the_database=None):
    marks = []
    # RefuseNulMiddleware answers 400 before any of them reaches the database.
    return pytest.param(request, setup, id=name, marks=marks)


NUL_CASES = [
    _nul(
        "grid filter",
        get(fixed(reverse("lifecycle:pipeline") + "?q=a%00b")),
        reaches_the_database="views.pipeline filters name__icontains with request.GET['q']",
    ),
    _nul(
        "deployments filters",
        get(fixed(reverse("lifecycle:deployments") + "?application=a%00b&user=a%00b")),
        reaches_the_database="history_views._filtered filters with request.GET application/user",
    ),
    _nul(
        "module page path",
        get(_qs(module_url("module"), "path=a%00b")),
        reaches_the_database="views._file_view filters ModuleFile by request.GET['path']",
    ),
    _nul("editor path", get(_qs(module_url("editor"), "path=a%00b"))),
    _nul(
        "audit filters",
        get(fixed(reverse("lifecycle:audit") + "?user=a%00b&environment=a%00b&application=a%00b")),
        reaches_the_database="audit_views._filtered filters with request.GET user/environment/application",
    ),
    _nul(
        "compare file path",
        _compare("compare-file", path=NUL),
        setup=_pre_hotfix,
        reaches_the_database="compare_views.compare_file passes request.GET['path'] to file_diff's query",
    ),
    _nul(
        "block reason",
        _block(NUL),
        reaches_the_database="history_views.block_application stores request.POST['reason'] unchecked",
    ),
    _nul(
        "plan name",
        _plan(name=NUL),
        reaches_the_database="deploy_views.plan_save stores request.POST['name'] unchecked",
    ),
    _nul(
        "deploy notes",
        _deploy(notes=NUL),
        setup=_setup_dev_ahead,
        reaches_the_database="deploy_views.deploy_run stores request.POST['notes'] unchecked",
    ),
    _nul(
        "merge comment",
        _merge(comment=NUL),
        setup=_pre_hotfix,
        reaches_the_database="hotfixes/views.merge stores request.POST['comment'] unchecked",
    ),
    _nul(
        "solve note",
        post(_hotfix_url("solve"), {"confirm": "yes", "note": NUL}),
        setup=_pre_hotfix,
        reaches_the_database="hotfixes/views.mark_solved stores request.POST['note'] unchecked",
    ),
    _nul("rollback number", _rollback(number=NUL), setup=_setup_newer),
    _nul("editor comment", editor_post("editor-publish", {"comment": NUL})),
    _nul("editor content", editor_post("editor-save", {"path": "main.py", "content": NUL})),
    _nul(
        "upload comment", post(module_url("module-upload"), lambda c: {"archive": upload(), "comment": NUL})
    ),
    _nul("token name", post(fixed(reverse("tokens:create")), {"name": NUL})),
]


@pytest.mark.parametrize(("request_for", "setup"), NUL_CASES)
def test_nul_characters_are_refused_or_stored_never_a_500(request_for, setup, world):
    if setup:
        setup(world)
    before = snapshot()
    response = send(world, request_for(world))
    assert response.status_code < 500
    if response.status_code >= 400:
        assert differences(before, snapshot()) == []


API_NUL_CASES = [
    (
        "publish comment",
        "post",
        "/api/v1/modules/App-Core/environments/Quality%20Assurance/versions?comment=a%00b",
    ),
    ("application name", "get", "/api/v1/applications/a%00b"),
    ("module name", "get", "/api/v1/modules/a%00b/versions/1/archive"),
    ("environment name", "get", "/api/v1/modules/App-Core/environments/a%00b/archive"),
]


@pytest.mark.parametrize(("method", "url"), [c[1:] for c in API_NUL_CASES], ids=[c[0] for c in API_NUL_CASES])
def test_the_api_answers_nul_characters_without_a_500(method, url, world):
    _, raw = create_token(world.user, "ci")
    headers = {"Authorization": f"Bearer {raw}"}
    if method == "post":
        response = world.client.post(url, ZIP, content_type="application/zip", headers=headers)
    else:
        response = world.client.get(url, headers=headers)
    assert response.status_code < 500


def test_logging_in_with_a_nul_in_the_username_is_not_a_500(db):
    anonymous = Client(raise_request_exception=False)
    response = anonymous.post(reverse("login"), {"username": NUL, "password": "x"})
    assert response.status_code < 500
