"""Two deployments into one target at once on a SQLite file: run in a child process by test_sqlite_locking.

`python -m tests.lifecycle.sqlite_race` with DATABASE_URL=sqlite:////path/db.sqlite3 creates the
tables in that file, then races two deployments into one target: first through the domain function,
then as two HTTP posts through the whole request stack. It prints one JSON line: what each side got.

The test database on SQLite is in memory, so locking only shows on a real file opened through the
real settings, with one connection per thread: hence a child process.
"""

import json
import re
import threading
from functools import partial

import django

django.setup()

from django.conf import settings  # noqa: E402  (after setup)
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from lifecycle.deploying.running import run_deployment, start_deployment  # noqa: E402
from lifecycle.deploying.validation import DeploymentRefused, validate  # noqa: E402
from lifecycle.models import AccessLevel  # noqa: E402
from tests.factories import make_environments, make_user, publish_files, released_application  # noqa: E402

ROUNDS = 3
REFUSAL = re.compile(
    r"Deployment \d+ into [\w ]+ by \w+ is running since [\d:]+; try again when it has finished\."
    r"|[\w ]+ changed after this plan was validated\. Validate it again\."
)


class NoMigrations(dict):
    """Tables straight from the models, as pytest-django's --nomigrations: ten times faster."""

    def __contains__(self, app_label):
        return True

    def __getitem__(self, app_label):
        return None


def race(*actions):
    """Run the actions in threads released at the same moment, each on its own connection."""
    barrier = threading.Barrier(len(actions))
    outcomes = [None] * len(actions)

    def run(index, action):
        try:
            barrier.wait(timeout=10)
            outcomes[index] = action()
        except Exception as error:  # noqa: BLE001  (the outcome under test)
            outcomes[index] = ["error", f"{type(error).__name__}: {error}"]
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def start(source, target, application, user, fingerprint):
    try:
        deployment = start_deployment(source, target, [application], user=user, fingerprint=fingerprint)
    except DeploymentRefused as refusal:
        return ["refused", str(refusal)]
    return ["started", deployment.pk]


def post(client, data):
    response = client.post(reverse("lifecycle:deploy-run"), data)
    found = REFUSAL.search(response.content.decode(errors="replace"))
    return [response.status_code, found.group(0) if found else ""]


def main():
    settings.MIGRATION_MODULES = NoMigrations()
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # As in the suite.
    call_command("migrate", verbosity=0, run_syncdb=True, skip_checks=True)
    dev, qa, *_ = environments = make_environments()
    users = [make_user(name, {e: AccessLevel.FULL for e in environments}) for name in ("alice", "bob")]
    application, (core,), _ = released_application("Shop", environments)
    report = {"options": settings.DATABASES["default"]["OPTIONS"], "domain": [], "http": []}

    for round_ in range(ROUNDS):
        publish_files(core, dev, {"main.py": f"print('domain {round_}')\n"})
        fingerprint = validate(dev, qa, [application]).fingerprint
        outcomes = race(*(partial(start, dev, qa, application, user, fingerprint) for user in users))
        report["domain"].append(outcomes)
        for kind, detail in outcomes:
            if kind == "started":
                run_deployment(detail)  # Finish it, so that the next round may deploy.

    clients = [Client(raise_request_exception=False) for _ in users]
    for client, user in zip(clients, users, strict=True):
        client.force_login(user)
    for round_ in range(ROUNDS):
        publish_files(core, dev, {"main.py": f"print('http {round_}')\n"})
        data = {
            "source": dev.pk,
            "target": qa.pk,
            "application": application.pk,
            "fingerprint": validate(dev, qa, [application]).fingerprint,
        }
        report["http"].append(race(*(partial(post, client, data) for client in clients)))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
