"""Escaping: markup typed into any field the console shows comes back as text, on every page.

Every user-controlled field gets a payload followed by the field's name (so each field can be
found), then every page that shows them is read: the raw markup must never appear, the escaped
form must.

A file path cannot hold the payloads' `<`, `>` or `"` (a module must check out on Windows,
docs/rules.md), so paths get PATH_PAYLOAD instead: only characters a path may hold, each of them
one that HTML or a URL gives a meaning to. Everything else still gets the full payload.
"""

from urllib.parse import quote

import pytest
from django.urls import reverse
from django.utils.html import escape

from hotfixes.merging import prepare
from hotfixes.models import Hotfix
from lifecycle.deploying.switching import deploy_tag
from lifecycle.deploying.validation import validate
from lifecycle.models import AccessLevel, Application, DeploymentPlan, Environment, Module
from lifecycle.publishing import publish
from lifecycle.tagging import tag_environment
from tests.editor_forms import draft_fields
from tests.factories import make_user
from tests.security import upload
from tests.zips import make_zip

pytestmark = pytest.mark.django_db

PAYLOADS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
# Closes a single-quoted attribute and opens an event handler; `&lt;b&gt;` must not come back as
# markup; `&`, `#`, `%` and spaces must survive a link's query string.
PATH_PAYLOAD = "x' onmouseover='alert(1)' &lt;b&gt; #%41&"


class World:
    """Every shown field holds `payload + field name` (the file path `PATH_PAYLOAD + "path.py"`);
    `marks(*fields)` are their escaped forms."""

    def __init__(self, payload, client):
        self.payload, self.client = payload, client
        p = payload
        self.environments = [
            Environment.objects.create(name=f"{p}{name}", position=i + 1, is_production=name == "Prod")
            for i, name in enumerate(["Dev", "QA", "Pre", "Prod"])
        ]
        dev, qa, pre, prod = self.environments
        self.user = make_user("rm", {e: AccessLevel.FULL for e in self.environments}, is_staff=True)
        client.force_login(self.user)
        self.application = Application.objects.create(name=f"{p}app", description=f"{p}description")
        self.module = Module.objects.create(application=self.application, name=f"{p}module")
        self.path = f"{PATH_PAYLOAD}path.py"
        self.replies = {}

        def files(*lines):
            return {self.path: "".join(f"{line}\n" for line in lines).encode(), "main.py": b"print(1)\n"}

        publish(self.module, dev, files(f"{p}content", "second"), user=self.user, comment=f"{p}comment")
        tag = tag_environment(self.application, dev, "0.3", user=self.user, notes=f"{p}tag notes")
        for environment in self.environments[1:]:
            deploy_tag(tag, environment, user=self.user)
        # A hotfix in Pre-Production, merged into QA and solved; another one, open, in Production.
        publish(
            self.module, pre, files(f"{p}content", f"{p}hotfix"), user=self.user, comment=f"{p}hotfix comment"
        )
        self.pre_hotfix = Hotfix.objects.get(environment=pre)
        self.replies["merge"] = self._post(
            reverse("hotfixes:merge"),
            {
                "application": self.application.pk,
                "source": pre.pk,
                "target": qa.pk,
                "fingerprint": prepare(self.application, pre, qa).fingerprint,
                "action": "merge",
                "comment": f"{p}merge comment",
            },
        )
        self.replies["solve"] = self._post(
            reverse("hotfixes:solve", args=[self.pre_hotfix.pk]),
            {"confirm": "yes", "note": f"{p}solved note"},
        )
        publish(
            self.module,
            prod,
            files(f"{p}content", f"{p}prod fix"),
            user=self.user,
            comment=f"{p}prod comment",
        )
        self.prod_hotfix = Hotfix.objects.open().get(environment=prod)
        self.replies["block"] = self._post(
            reverse("lifecycle:block", args=[self.application.pk, prod.pk]), {"reason": f"{p}block reason"}
        )
        # A plan and a deployment from it, Development -> QA.
        publish(
            self.module, dev, files(f"{p}content", f"{p}next"), user=self.user, comment=f"{p}next comment"
        )
        deploy = {"source": dev.pk, "target": qa.pk, "application": self.application.pk}
        self.replies["plan"] = self._post(reverse("lifecycle:plan-save"), {**deploy, "name": f"{p}plan name"})
        plan = DeploymentPlan.objects.get()
        fingerprint = validate(dev, qa, [self.application]).fingerprint
        self.replies["deploy"] = self._post(
            reverse("lifecycle:deploy-run"),
            {
                **deploy,
                "fingerprint": fingerprint,
                "plan": plan.pk,
                "notes": f"{p}deploy notes\nline 2",
                "deploy_anyway": "on",
            },
        )
        self.deployment = self.application.deployment_items.get().deployment
        self.replies["token"] = self._post(reverse("tokens:create"), {"name": f"{p}token name"})

    def _post(self, url, data):
        response = self.client.post(url, data, follow=True)
        assert response.status_code == 200, (url, response.status_code)
        return response

    def marks(self, *fields):
        return [escape(self.path if field == "path.py" else self.payload + field) for field in fields]


def _pages(w):
    dev, qa, pre, prod = w.environments
    app, module = w.application.pk, w.module.pk
    compare = f"?application={app}&source={qa.pk}&target={prod.pk}"
    path = f"path={quote(w.path)}"
    env_names = ("Dev", "QA", "Pre", "Prod")
    return [
        # (what, url, htmx, the fields it must show)
        ("grid", reverse("lifecycle:pipeline"), False, ("app", *env_names)),
        ("grid (htmx)", reverse("lifecycle:pipeline"), True, ("app",)),
        (
            "application page",
            reverse("lifecycle:application", args=[app]),
            False,
            ("app", "description", "module", "tag notes", "block reason", *env_names),
        ),
        (
            "module page",
            f"{reverse('lifecycle:module', args=[module, pre.pk])}?{path}",
            False,
            (
                "app",
                "module",
                "Pre",
                "path.py",
                "content",
                "hotfix",
                "comment",
                "hotfix comment",
                "merge comment",
            ),
        ),
        (
            "module page (htmx file)",
            f"{reverse('lifecycle:module', args=[module, pre.pk])}?{path}",
            True,
            ("path.py", "content", "hotfix"),
        ),
        (
            "editor",
            f"{reverse('lifecycle:editor', args=[module, prod.pk])}?{path}",
            False,
            ("path.py", "prod fix"),
        ),
        ("diff", reverse("hotfixes:diff", args=[module, 1, 2]), False, ("module", "path.py", "hotfix")),
        (
            "deploy dialog (blocked, undoes a hotfix)",
            f"{reverse('lifecycle:deploy')}?source={qa.pk}&target={prod.pk}&application={app}",
            False,
            ("app", "QA", "Prod", "block reason", "module"),
        ),
        (
            "deploy dialog (htmx, saved plans)",
            f"{reverse('lifecycle:deploy')}?source={dev.pk}&target={qa.pk}&application={app}",
            True,
            ("app", "Dev", "QA", "plan name"),
        ),
        (
            "deployment page",
            reverse("lifecycle:deployment", args=[w.deployment.pk]),
            False,
            ("app", "Dev", "QA", "plan name", "deploy notes"),
        ),
        ("deployment log (htmx)", reverse("lifecycle:deployment", args=[w.deployment.pk]), True, ("app",)),
        ("deployments", reverse("lifecycle:deployments"), False, ("app", "Dev", "QA")),
        (
            "compare",
            reverse("hotfixes:compare") + compare,
            False,
            ("app", "QA", "Prod", "module", "path.py", "prod fix"),
        ),
        (
            "compare file",
            f"{reverse('hotfixes:compare-file')}{compare}&module={module}&version=4&base=1&{path}",
            False,
            ("module", "path.py", "prod fix"),
        ),
        (
            "merge",
            f"{reverse('hotfixes:merge')}?application={app}&source={prod.pk}&target={pre.pk}",
            False,
            ("app", "Prod", "Pre", "module", "path.py", "prod fix"),
        ),
        (
            "hotfix page (solved)",
            reverse("hotfixes:hotfix", args=[w.pre_hotfix.pk]),
            False,
            ("app", "Pre", "module", "solved note"),
        ),
        (
            "propagate",
            reverse("hotfixes:propagate", args=[w.prod_hotfix.pk]),
            False,
            ("app", "Prod", "Pre", "module"),
        ),
        (
            "rollback",
            reverse("lifecycle:rollback", args=[app, w.application.tags.first().pk]),
            False,
            ("app",),
        ),
        ("tokens", reverse("tokens:list"), False, ("token name",)),
        ("audit", reverse("lifecycle:audit"), False, ("app", "block reason")),
    ]


def _problems(what, html, world, fields):
    problems = []
    for raw in (world.payload, PATH_PAYLOAD):
        if raw in html:
            at = html.index(raw)
            problems.append(f"{what}: raw markup at …{html[max(at - 80, 0) : at + 40]!r}")
    for field, mark in zip(fields, world.marks(*fields), strict=True):
        if mark not in html:
            problems.append(f"{what}: {field!r} not shown escaped")
    return problems


@pytest.mark.parametrize("payload", PAYLOADS, ids=["script", "attribute"])
def test_every_page_escapes_what_users_typed(payload, client):
    world = World(payload, client)
    problems = []
    for what, url, htmx, fields in _pages(world):
        response = client.get(url, headers={"HX-Request": "true"} if htmx else {})
        if response.status_code not in (200, 286):  # 286: htmx "stop polling", the log of an ended deployment
            problems.append(f"{what}: status {response.status_code}")
            continue
        problems += _problems(what, response.content.decode(), world, fields)
    assert problems == []


@pytest.mark.parametrize("payload", PAYLOADS, ids=["script", "attribute"])
def test_the_messages_after_each_action_are_escaped(payload, client):
    world = World(payload, client)
    expected = {
        "merge": ("module", "Pre", "QA"),
        "solve": ("app", "Pre"),
        "block": ("app", "Prod", "block reason"),
        "plan": ("plan name",),
        "deploy": ("app", "deploy notes"),
        "token": ("token name",),
    }
    problems = []
    for action, fields in expected.items():
        html = world.replies[action].content.decode()
        problems += _problems(f"after {action}", html, world, fields)
    assert problems == []


@pytest.mark.parametrize("payload", PAYLOADS, ids=["script", "attribute"])
def test_refusals_that_quote_the_input_escape_it(payload, client):
    """Error messages repeat the bad path or name: that repetition is escaped too.

    A bad path is tried twice: with the payload (refused for its '<' or '"') and with only
    characters a path may hold (refused for leaving the module). The editor's forms carry what
    its page showed, so that they reach the path check instead of being refused as stale (409).
    """
    world = World(payload, client)
    dev, qa, pre, prod = world.environments
    module = [world.module.pk, qa.pk]
    form = draft_fields(world.user, world.module, qa, world.path)
    bad_paths = {"": f"../{payload}path", " (portable characters)": f"../{PATH_PAYLOAD}path"}
    answers = {}  # what -> (the answer, what it must quote back escaped, the status it must have)
    for kind, bad_path in bad_paths.items():
        answers[f"editor add{kind}"] = (
            client.post(reverse("lifecycle:editor-add", args=module), {**form, "path": bad_path}),
            bad_path,
            422,
        )
        answers[f"editor rename{kind}"] = (
            client.post(
                reverse("lifecycle:editor-rename", args=module),
                {**form, "path": world.path, "new_path": bad_path},
            ),
            bad_path,
            422,
        )
        answers[f"upload{kind}"] = (
            client.post(
                reverse("lifecycle:module-upload", args=module),
                {"archive": upload(data=make_zip({bad_path: "x"})), "comment": payload},
            ),
            bad_path,
            422,
        )
    answers |= {
        "deploy number": (
            client.post(
                reverse("lifecycle:deploy-run"),
                {
                    "source": dev.pk,
                    "target": qa.pk,
                    "application": world.application.pk,
                    f"number-{world.application.pk}": payload[:30],
                    "fingerprint": "x",
                    "notes": payload,
                },
            ),
            payload[:20],
            None,
        ),
        "block again": (
            client.post(
                reverse("lifecycle:block", args=[world.application.pk, prod.pk]),
                {"reason": payload},
                headers={"HX-Request": "true"},
            ),
            payload[:20],
            None,
        ),
        "solve without confirming": (
            client.post(reverse("hotfixes:solve", args=[world.prod_hotfix.pk])),
            None,
            None,
        ),
        "token name too long": (
            client.post(reverse("tokens:create"), {"name": payload * 10}),
            payload[:20],
            None,
        ),
    }
    problems = []
    for what, (response, quoted, status) in answers.items():
        assert 400 <= response.status_code < 500, (what, response.status_code)
        if status is not None and response.status_code != status:
            problems.append(f"{what}: status {response.status_code}, not {status}")
        html = response.content.decode()
        if payload in html or PATH_PAYLOAD in html:
            problems.append(f"{what}: raw markup")
        if quoted is not None and escape(quoted) not in html:
            problems.append(f"{what}: the input is not quoted back escaped")
    assert problems == []
