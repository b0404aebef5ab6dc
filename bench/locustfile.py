"""The users of the load test, for locust; bench/load.py prepares the server and runs this file.

Run it through `.venv/bin/python bench/load.py` (see bench/README.md): the driver builds the data
set, starts gunicorn and the worker on 127.0.0.1, logs in once and writes what the users need
(the session's cookies, the ids to put in URLs, the agent tokens) into the JSON file named by
BENCH_PLAN. It writes back into BENCH_RESULT the deployments the deployer started and what the
warm-up saw, for the driver to check in the database.

Four kinds of user, each a fixed number (BENCH_CLIENTS, BENCH_TABS, BENCH_AGENTS, one deployer):

- ActiveClient: a closed loop (no wait) rotating over bench/load.py's old mix: the full grid, the
  grid's htmx refresh without a revision (a full re-render), an application page, the compare dialog.
- IdleTab: an open grid nobody touches. It opens the page once, then every GRID_REFRESH_SECONDS
  sends the refresh the page itself sends (GridTab): the hx-get or hx-post of the element whose
  hx-trigger is "every …", its hx-vals, the hx-headers it inherits (the CSRF token), htmx's request
  headers and, for a conditional refresh (data-refresh, lifecycle/refresh.py), the revision and
  part hashes static/js/stageboard.js adds. A 204 keeps the page; a 200 replaces what it carries.
- AgentPoller: an agent polling GET /api/v1/agent/state with its token and the last ETag in
  If-None-Match, every BENCH_AGENT_INTERVAL seconds (docs/agent.md, "The protocol").
- Deployer: a Tag & Deploy Development -> Test through the deploy dialog every BENCH_DEPLOY_EVERY
  seconds, each on another application, and follows each deployment's log (htmx, every 0.5 s) in
  a greenlet of its own until it has ended, as the deployment page does.
"""

from __future__ import annotations

import html
import json
import os
import random
import re
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import gevent
from locust import FastHttpUser, between, constant, constant_pacing, events, task

PLAN = json.loads(Path(os.environ["BENCH_PLAN"]).read_text()) if os.environ.get("BENCH_PLAN") else {}
SETTINGS = PLAN.get("settings", {})
COOKIE = "; ".join(f"{name}={value}" for name, value in PLAN.get("cookies", {}).items())
WARMUP = float(SETTINGS.get("warmup", 0))
RESULT = {"deployments": [], "refused": 0, "ran out": False, "warm-up errors": {}}


@events.test_start.add_listener
def _start(environment, **_kwargs):
    """After the warm-up, reset the statistics: only the measured window is reported."""

    def reset():
        gevent.sleep(WARMUP)
        for error in environment.runner.stats.errors.values():
            key = f"{error.method} {error.name}: {error.error}"
            RESULT["warm-up errors"][key] = RESULT["warm-up errors"].get(key, 0) + error.occurrences
        environment.runner.stats.reset_all()

    if WARMUP:
        gevent.spawn(reset)


@events.quitting.add_listener
def _quit(environment, **_kwargs):
    if os.environ.get("BENCH_RESULT"):
        with open(os.environ["BENCH_RESULT"], "w") as result:
            json.dump(RESULT, result)


def fail_status(response) -> None:
    """Mark an unexpected answer failed, with the error behind a status 0 (no answer)."""
    error = getattr(response, "error", None) if not response.status_code else None
    response.failure(f"HTTP {response.status_code}" + (f": {error!r}" if error else ""))


def hidden_input(body: str, name: str) -> str | None:
    match = re.search(r'name="' + re.escape(name) + r'" value="([^"]*)"', body)
    if match is None:
        match = re.search(r'value="([^"]*)" name="' + re.escape(name) + r'"', body)
    return html.unescape(match.group(1)) if match else None


class Browser(FastHttpUser):
    """A user of the console: the driver's logged-in session, and a GET on a keep-alive connection the
    server has just closed is sent again once on a new one, as browsers do."""

    abstract = True
    max_retries = 1
    network_timeout = connection_timeout = float(SETTINGS.get("request_timeout", 30))

    def get(self, path: str, name: str, headers: dict | None = None):
        return self.client.get(
            path, name=name, headers={"Cookie": COOKIE, **(headers or {})}, catch_response=True
        )


class ActiveClient(Browser):
    """bench/load.py's mix: one request after the other, rotating over the four kinds of page."""

    fixed_count = int(SETTINGS.get("clients", 0))
    # A person reads a page before the next click (--think MIN:MAX); 0 is a closed loop, a stress test.
    _think = [float(value) for value in str(SETTINGS.get("think", "0")).split(":")]
    wait_time = between(_think[0], _think[-1]) if _think[-1] > 0 else constant(0)
    KINDS = ("grid", "fragment", "app", "compare")
    number = 0

    def on_start(self):
        ActiveClient.number += 1
        self.turn = ActiveClient.number
        self.rng = random.Random(SETTINGS.get("seed", 7) * 1000 + self.turn)

    @task
    def next_page(self):
        kind = self.KINDS[self.turn % len(self.KINDS)]
        self.turn += 1
        if kind == "grid":
            with self.get("/", "grid GET /") as response:
                self.check_grid(response, page=True)
        elif kind == "fragment":
            headers = {"HX-Request": "true", "HX-Target": "grid", "HX-Trigger": "grid"}
            with self.get("/", "fragment GET / (HX-Request)", headers) as response:
                self.check_grid(response, page=False)
        elif kind == "app":
            app_id = self.rng.choice(PLAN["app_ids"])
            with self.get(f"/applications/{app_id}/", "app page GET /applications/<id>/") as response:
                name = PLAN["app_names"][str(app_id)]
                if response.status_code != 200:
                    fail_status(response)
                elif f"<h1>{name}</h1>" not in response.text:
                    response.failure("not the application page")
        else:
            app_id, source, target = self.rng.choice(PLAN["compare_pairs"])
            query = urlencode({"application": app_id, "source": source, "target": target})
            headers = {"HX-Request": "true", "HX-Target": "dialog-body"}
            with self.get(f"/compare/?{query}", "compare GET /compare/?… (HX-Request)", headers) as response:
                name = PLAN["app_names"][str(app_id)]
                if response.status_code != 200:
                    fail_status(response)
                elif f"Compare {name}:" not in response.text or "</html>" in response.text:
                    response.failure("not the compare dialog")

    @staticmethod
    def check_grid(response, *, page: bool) -> None:
        if response.status_code != 200:
            fail_status(response)
            return
        body = response.text
        if PLAN["first_app_name"] not in body:
            response.failure(f"no {PLAN['first_app_name']} in the grid")
        elif page and "</html>" not in body:
            response.failure("not a full page")
        elif not page and ("</html>" in body or 'id="grid"' not in body):
            response.failure("not the grid fragment")


REFRESHER = re.compile(r"<[a-z]+\b[^>]*\bhx-trigger=\"every [^\"]*\"[^>]*>", re.S)
ATTRIBUTE = re.compile(r"""\s([a-z-]+)(?:="([^"]*)"|='([^']*)')?""")
TAG = re.compile(r"<[a-z]+\b[^>]*>")


def attributes(tag: str) -> dict[str, str]:
    return {name: html.unescape(double or single) for name, double, single in ATTRIBUTE.findall(tag)}


class GridTab:
    """What an open grid page holds for its self-refresh, read from its HTML as htmx and
    static/js/stageboard.js read it: the element whose hx-trigger is "every …" (its hx-get or hx-post,
    hx-vals, id, and the hx-headers it inherits from <body>), and for a region marked data-refresh
    (lifecycle/refresh.py) the revision it shows and the hash of each part it shows."""

    def __init__(self, page: str):
        match = REFRESHER.search(page)
        if match is None:
            raise ValueError('the grid declares no self-refresh (hx-trigger="every …")')
        element = attributes(match.group(0))
        self.method = "POST" if "hx-post" in element else "GET"
        self.path = element.get("hx-post") or element.get("hx-get")
        if not self.path:
            raise ValueError("the grid's self-refresh has neither hx-get nor hx-post")
        self.headers = {"HX-Request": "true"}
        body = re.search(r"<body\b[^>]*>", page)
        for tag in (body.group(0) if body else "", match.group(0)):
            self.headers.update(json.loads(attributes(tag).get("hx-headers") or "{}"))
        if element.get("id"):
            self.headers["HX-Target"] = self.headers["HX-Trigger"] = element["id"]
        self.values = json.loads(element.get("hx-vals") or "{}")
        self.conditional = "data-refresh" in element
        self.target = "#" + element.get("id", "")
        self.revision, self.parts = "", {}
        self.read(page, whole=True)

    def read(self, text: str, *, whole: bool) -> None:
        """Take what an answer (or the page) carries: the revision shown and the parts' hashes."""
        if whole:
            self.parts = {}
        for tag in TAG.findall(text):
            found = attributes(tag)
            if "data-revision" in found:
                self.revision = found["data-revision"]
            if found.get("id") and "data-hash" in found:
                self.parts[found["id"]] = found["data-hash"]

    def values_to_send(self) -> dict[str, str]:
        values = dict(self.values)
        if self.conditional:  # static/js/stageboard.js, htmx:configRequest
            values["revision"] = self.revision
            values["parts"] = ",".join(f"{part}:{digest}" for part, digest in self.parts.items())
        return values


class IdleTab(Browser):
    """An open grid in a tab nobody touches: only the page's own refresh, every GRID_REFRESH_SECONDS."""

    fixed_count = int(SETTINGS.get("tabs", 0))
    wait_time = constant_pacing(float(SETTINGS.get("refresh_seconds", 5)))

    def on_start(self):
        # Tabs were opened at different moments: spread the first full pages over the warm-up.
        gevent.sleep(random.uniform(0, max(WARMUP - 2, 0)))
        self.tab = None
        with self.get("/", "tab: open GET /") as response:
            if response.status_code != 200:
                fail_status(response)
                return
            try:
                self.tab = GridTab(response.text)
            except ValueError as error:
                response.failure(str(error))

    @task
    def refresh(self):
        tab = self.tab
        if tab is None:
            return
        values = tab.values_to_send()
        # A new connection for each refresh: the browser's kept-alive one has long been closed by
        # gunicorn (keep-alive 2 s, the refresh every 5 s).
        headers = {**tab.headers, "Cookie": COOKIE, "HX-Current-URL": f"{self.host}/", "Connection": "close"}
        name = f"tab: refresh {tab.method} {urlsplit(tab.path).path} (HX)"
        if tab.method == "GET":
            path = tab.path + (("&" if "?" in tab.path else "?") + urlencode(values) if values else "")
            request = self.client.get(path, name=name, headers=headers, catch_response=True)
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            request = self.client.post(
                tab.path, data=urlencode(values), name=name, headers=headers, catch_response=True
            )
        with request as response:
            if response.status_code == 204:  # nothing changed: htmx keeps the page
                return
            if response.status_code != 200:
                fail_status(response)
                return
            if "</html>" in response.text:
                response.failure("a full page, not a fragment")
                return
            retarget = response.headers.get("HX-Retarget")
            whole = not tab.conditional or retarget == tab.target  # the whole grid, else out-of-band parts
            if whole and REFRESHER.search(response.text):
                self.tab = GridTab(response.text)
                self.tab.headers = tab.headers  # <body> is not in a fragment: its hx-headers stay
            else:
                tab.read(response.text, whole=whole)


class AgentPoller(FastHttpUser):
    """An agent: GET /api/v1/agent/state with its token, If-None-Match with the last ETag."""

    fixed_count = int(SETTINGS.get("agents", 0))
    wait_time = constant_pacing(float(SETTINGS.get("agent_interval", 5)))
    max_retries = 1
    network_timeout = connection_timeout = float(SETTINGS.get("request_timeout", 30))
    number = 0

    def on_start(self):
        tokens = PLAN["agent_tokens"]
        self.token = tokens[AgentPoller.number % len(tokens)]
        AgentPoller.number += 1
        self.etag = None
        gevent.sleep(random.uniform(0, float(SETTINGS.get("agent_interval", 5))))

    @task
    def poll(self):
        headers = {"Authorization": f"Bearer {self.token}", "Connection": "close"}  # the agent's urllib
        if self.etag:
            headers["If-None-Match"] = self.etag
        name = "agent state GET /api/v1/agent/state" + (" (If-None-Match)" if self.etag else " (first)")
        with self.client.get(
            "/api/v1/agent/state", name=name, headers=headers, catch_response=True
        ) as response:
            if response.status_code == 304 and self.etag:
                return
            if response.status_code != 200:
                fail_status(response)
            elif not response.headers.get("ETag"):
                response.failure("200 without an ETag")
            else:
                self.etag = response.headers["ETag"]


class Deployer(Browser):
    """A Tag & Deploy Development -> Test every BENCH_DEPLOY_EVERY seconds, through the deploy dialog."""

    fixed_count = 1 if float(SETTINGS.get("deploy_every", 0)) else 0
    wait_time = constant_pacing(float(SETTINGS.get("deploy_every", 2) or 2))
    max_retries = 0  # never post twice: every request on a new connection instead
    queue: list[int] = []

    def on_start(self):
        gevent.sleep(WARMUP)  # deployments start with the measured window
        Deployer.queue = list(PLAN["deployable"])
        self.headers = {"HX-Request": "true", "Connection": "close"}

    @task
    def deploy(self):
        if not self.queue:
            RESULT["ran out"] = True
            return
        application = self.queue.pop(0)
        source, target = PLAN["source"], PLAN["target"]
        query = urlencode({"source": source, "target": target, "application": application})
        headers = {**self.headers, "HX-Target": "dialog-body"}
        with self.get(f"/deploy/?{query}", "deploy dialog GET /deploy/?… (HX)", headers) as response:
            body = response.text or ""
            token, fingerprint = hidden_input(body, "csrfmiddlewaretoken"), hidden_input(body, "fingerprint")
            if response.status_code != 200:
                fail_status(response)
                return
            if not token or not fingerprint or 'id="deploy-button"' not in body:
                response.failure(f"the deploy dialog of application {application} offers no deployment")
                return
        form = {
            "csrfmiddlewaretoken": token,
            "source": source,
            "target": target,
            "fingerprint": fingerprint,
            "application": application,
            "notes": "bench/locustfile.py",
        }
        number = hidden_input(body, f"number-{application}")
        if number is not None:
            form[f"number-{application}"] = number
        headers = {
            **self.headers,
            "Cookie": COOKIE,
            "HX-Target": "plan",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        with self.client.post(
            "/deploy/run",
            data=urlencode(form),
            name="deploy run POST /deploy/run (HX)",
            headers=headers,
            catch_response=True,
            allow_redirects=False,
        ) as response:
            if response.status_code == 409:
                match = re.search(r'class="form-errors" role="alert"><p>(.*?)</p>', response.text or "", re.S)
                message = html.unescape(match.group(1)) if match else "(no message)"
                if "is running since" in message:  # one deployment per target: tried again later
                    RESULT["refused"] += 1
                    self.queue.append(application)
                    response.success()
                else:
                    response.failure(f"refused: {message}")
                return
            location = response.headers.get("HX-Redirect") or response.headers.get("Location") or ""
            match = re.fullmatch(r"/deployments/(\d+)/", location)
            if response.status_code not in {200, 302} or match is None:
                response.failure(f"HTTP {response.status_code} without a redirect to the deployment")
                return
        deployment = int(match.group(1))
        RESULT["deployments"].append(deployment)
        gevent.spawn(self.follow, deployment)

    def follow(self, deployment: int) -> None:
        """The deployment page's log, polled every 0.5 s until the deployment has ended."""
        headers = {**self.headers, "HX-Target": "log"}
        while True:
            path = f"/deployments/{deployment}/"
            with self.get(path, "deployment log GET /deployments/<id>/ (HX)", headers) as response:
                if response.status_code not in {200, 286}:  # 286: htmx's "stop polling", once it has ended
                    fail_status(response)
                    return
                match = re.search(r'class="deploy-status deploy-status-(\w+)"', response.text or "")
                if match is None:
                    response.failure("no status badge")
                    return
                response.success()  # locust counts htmx's 286 as a failure by itself
                if match.group(1) != "running":
                    return
            gevent.sleep(0.5)
