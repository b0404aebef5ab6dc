import re
from datetime import timedelta

from django.utils import timezone

from lifecycle.models import AccessLevel, Deployment
from tests.e2e.conftest import log_in, screenshot
from tests.factories import make_environments, make_user


def test_the_timer_of_a_running_deployment_advances_while_its_log_poll_is_slow(page, transactional_db):
    """Polls of the log re-render the timer; between them, or while one hangs, the page ticks it."""
    environments = make_environments()
    user = make_user("rm", {environment: AccessLevel.FULL for environment in environments})
    deployment = Deployment.objects.create(
        source=environments[0],
        target=environments[1],
        started_by=user,
        started_at=timezone.now() - timedelta(seconds=70),
        # Its worker renewed the lease just now: viewing it must not sweep it as stopped.
        heartbeat_at=timezone.now(),
        worker="web-1:4242",
    )
    log_in(page, "rm", "pw-rm")
    held, busy = [], [True]

    def poll(route):
        # A busy server: the log's polls get no answer for now.
        if busy[0] and route.request.headers.get("hx-request"):
            held.append(route)
        else:
            route.continue_()

    page.route(re.compile(rf"/deployments/{deployment.pk}/(\?log_after=\d+)?$"), poll)  # polls send log_after
    page.goto(f"/deployments/{deployment.pk}/")
    shown = seconds_shown(page)
    assert 70 <= shown < 90
    wait_for_timer(page, shown + 2)
    assert held, "the log was polled"
    screenshot(page, "deployment-running")

    # The answers arrive: the server's figure takes over and keeps going.
    busy[0] = False
    for route in held:
        route.continue_()
    wait_for_timer(page, shown + 4)


# The seconds the timer shows ("1 min 12 s" is 72).
SECONDS = """(() => {
  const text = document.querySelector('#status .running-timer').textContent;
  const [, minutes, seconds] = text.match(/(\\d+) min (\\d+) s/);
  return 60 * Number(minutes) + Number(seconds);
})()"""


def seconds_shown(page):
    return page.evaluate(SECONDS)


def wait_for_timer(page, at_least, seconds=5):
    """Wait until the timer shows `at_least`; read from here, since the page's policy forbids eval."""
    for _ in range(seconds * 5):
        if seconds_shown(page) >= at_least:
            return
        page.wait_for_timeout(200)
    raise AssertionError(f"the timer still shows {seconds_shown(page)} s, not {at_least} s or more")
