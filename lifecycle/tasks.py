"""Background work, as tasks of Django's Tasks framework (the django-tasks backport).

`manage.py db_worker` runs them from the database (settings.TASKS). Each task is
small: it loads its row and calls a domain function; the row holds the state, so
a task that runs twice, or after its worker died, does no harm.
"""

from __future__ import annotations

from django_tasks import task

from lifecycle.deploying import running


@task()
def run_deployment(deployment_id: int) -> str:
    return running.run_deployment(deployment_id).status
