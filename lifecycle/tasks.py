"""Background work, as tasks of Django's Tasks framework (the django-tasks backport).

`manage.py db_worker` runs them from the database (settings.TASKS). Each task is
small: it loads its row and calls a domain function; the row holds the state, so
a task that runs twice, or after its worker died, does no harm.
"""

from __future__ import annotations

from django.db import transaction
from django_tasks import task
from django_tasks_db import DatabaseBackend

from lifecycle.deploying import leases, running


@task()
def run_deployment(deployment_id: int) -> str:
    return running.run_deployment(deployment_id).status


@task()
def watch_deployment(deployment_id: int) -> str:
    """The next worker pass: reap what stopped, and come back while the deployment is active."""
    return leases.watch(deployment_id)


@task()
def deliver_webhook(deployment_id: int, attempt: int) -> str:
    # Imported here: the webhook module sends HTTP and imports these tasks to schedule its retries.
    from lifecycle.delivery import webhooks

    return webhooks.deliver(deployment_id, attempt)


def enqueue(task_, *args, run_after=None) -> None:
    """Enqueue `task_` as part of the current transaction: it exists exactly when the change it follows.

    On the database backend the task is a row written in the transaction, so it
    commits (or rolls back) with it and no process crash in between loses it. Any
    other backend is told after the commit: the immediate one would otherwise run
    the task inside the transaction, before what it reacts to is visible.
    """
    if run_after is not None:
        task_ = task_.using(run_after=run_after)
    if isinstance(task_.get_backend(), DatabaseBackend):
        task_.enqueue(*args)
    else:
        transaction.on_commit(lambda: task_.enqueue(*args))
