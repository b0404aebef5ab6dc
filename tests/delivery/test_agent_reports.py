"""Reports are checked whole before anything is written: hostile or broken ones get a 400 naming the field.

Each case sends a report that is well formed except for one value, and checks
that nothing changed: no live row, no log line, no drift, the token's interval
as it was.
"""

import json

import pytest

from lifecycle.delivery import reports
from lifecycle.deploying.running import run_deployment, start_deployment
from lifecycle.deploying.validation import validate
from lifecycle.models import AgentToken, Deployment, DeploymentLogLine, Drift, LiveApplication
from tests.delivery.agent_support import (
    assert_error,
    bearer,
    make_agent_environment,
    new_token,
    post_json,
    reports_url,
)
from tests.factories import publish_files, released_application

pytestmark = pytest.mark.django_db

HASH = "a" * 64


@pytest.fixture
def waiting(environments, release_manager):
    """Shop's deployment into Production (an agent environment) waits for its agent."""
    application, (cart,), _ = released_application("Shop", environments, module_names=("Cart",))
    pre, production = environments[2], make_agent_environment(environments[3])
    publish_files(cart, pre, {"main.py": "next"}, user=release_manager)
    validation = validate(pre, production, [application])
    deployment = start_deployment(
        pre, production, [application], user=release_manager, fingerprint=validation.fingerprint
    )
    run_deployment(deployment.pk)
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.WAITING
    return deployment, new_token(production)


def good_report(deployment_id):
    return {
        "interval": 5,
        "agent": "stageboard-agent/1 on web-1",
        "applications": [
            {
                "name": "Shop",
                "deployment": deployment_id,
                "generation": 0,
                "version": "0.3.1",
                "applied": {"Shop-Cart": HASH},
                "live": {"Shop-Cart": HASH},
                "hook": {"exit_status": 0, "output": "ok"},
                "log": ["switched current to 0.3.1-aaaaaaaa"],
            }
        ],
    }


def with_app(**changes):
    def change(report):
        report["applications"][0].update(changes)
        return report

    return change


def without_app_field(name):
    def change(report):
        del report["applications"][0][name]
        return report

    return change


def with_top(**changes):
    def change(report):
        report.update(changes)
        return report

    return change


HOSTILE_REPORTS = {
    "not an object": lambda r: [r],
    "applications not a list": with_top(applications={"Shop": {}}),
    "no applications": lambda r: {"interval": 5},
    "unknown top-level field": with_top(admin=True),
    "interval a string": with_top(interval="5"),
    "interval a float": with_top(interval=5.0),
    "interval a boolean": with_top(interval=True),
    "interval zero": with_top(interval=0),
    "interval negative": with_top(interval=-5),
    "interval huge": with_top(interval=10**12),
    "agent not a string": with_top(agent=["web-1"]),
    "agent too long": with_top(agent="a" * 201),
    "agent with NUL": with_top(agent="web\x00-1"),
    "application not an object": with_top(applications=["Shop"]),
    "application unknown field": with_app(secret="x"),
    "application without name": without_app_field("name"),
    "name empty": with_app(name=""),
    "name a number": with_app(name=5),
    "name too long": with_app(name="S" * 101),
    "name with NUL": with_app(name="Shop\x00"),
    "name a lone surrogate": with_app(name="Shop\ud800"),
    "deployment negative": with_app(deployment=-1),
    "deployment zero": with_app(deployment=0),
    "deployment a string": with_app(deployment="17"),
    "deployment huge": with_app(deployment=2**64),
    "generation negative": with_app(generation=-1),
    "generation a float": with_app(generation=1.5),
    "generation huge": with_app(generation=2**40),
    "version a number": with_app(version=1.4),
    "version too long": with_app(version="1" * 41),
    "applied a list": with_app(applied=[HASH]),
    "applied hash too short": with_app(applied={"Shop-Cart": "abc"}),
    "applied hash upper case": with_app(applied={"Shop-Cart": "A" * 64}),
    "applied hash a number": with_app(applied={"Shop-Cart": 5}),
    "applied module name empty": with_app(applied={"": HASH}),
    "applied module name too long": with_app(applied={"M" * 101: HASH}),
    "live module name with NUL": with_app(live={"Shop\x00Cart": HASH}),
    "live too many modules": with_app(live={f"m{i}": HASH for i in range(5001)}),
    "hook a string": with_app(hook="exit 0"),
    "hook without exit status": with_app(hook={"output": "x"}),
    "hook exit status a string": with_app(hook={"exit_status": "0", "output": ""}),
    "hook exit status null": with_app(hook={"exit_status": None}),
    "hook exit status huge": with_app(hook={"exit_status": 2**40}),
    "hook unknown field": with_app(hook={"exit_status": 0, "command": "rm -rf /"}),
    "hook output a list": with_app(hook={"exit_status": 0, "output": ["x"]}),
    "log a string": with_app(log="downloaded"),
    "log too many lines": with_app(log=["x"] * 201),
    "log line too long": with_app(log=["x" * 501]),
    "log line a number": with_app(log=[5]),
    "log line with NUL": with_app(log=["a\x00b"]),
    "log line a lone surrogate": with_app(log=["\udcff"]),
    "application twice": lambda r: r | {"applications": r["applications"] * 2},
}


def assert_nothing_recorded(deployment, lines_before):
    assert not LiveApplication.objects.exists()
    assert DeploymentLogLine.objects.filter(deployment=deployment).count() == lines_before
    assert not Drift.objects.exists()
    assert AgentToken.objects.get().interval_seconds == 5
    deployment.refresh_from_db()
    assert deployment.status == Deployment.Status.WAITING


@pytest.mark.parametrize("case", HOSTILE_REPORTS, ids=list(HOSTILE_REPORTS))
def test_a_hostile_report_is_refused_whole(client, waiting, case):
    deployment, raw = waiting
    AgentToken.objects.update(interval_seconds=5)
    lines_before = deployment.log_lines.count()
    report = HOSTILE_REPORTS[case](good_report(deployment.pk))
    error = assert_error(post_json(client, reports_url(), report, raw), 400, "invalid_report")
    assert "Nothing was recorded" in error["message"]
    assert len(error["message"]) < 500  # Names the problem; never echoes a huge value back.
    assert_nothing_recorded(deployment, lines_before)


BAD_BODIES = {
    "not JSON": b"interval=5",
    "truncated": b'{"applications": [',
    "not UTF-8": b'{"applications": [], "agent": "\xff\xfe"}',
    "a key twice": b'{"applications": [], "applications": [{"name": "Shop"}]}',
    "NaN": b'{"applications": [], "interval": NaN}',
    "Infinity": b'{"applications": [], "interval": Infinity}',
    "a number of 5,000 digits": b'{"applications": [], "interval": ' + b"9" * 5000 + b"}",
    "nested 100,000 deep": b'{"applications": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "only spaces": b"   ",
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_a_body_that_is_not_json_is_refused(client, waiting, case):
    deployment, raw = waiting
    lines_before = deployment.log_lines.count()
    assert_error(post_json(client, reports_url(), BAD_BODIES[case], raw), 400)
    assert_nothing_recorded(deployment, lines_before)


def test_a_body_over_one_megabyte_is_refused_unread(client, waiting):
    deployment, raw = waiting
    report = good_report(deployment.pk)
    report["agent"] = "x" * (1024 * 1024)
    error = assert_error(post_json(client, reports_url(), report, raw), 413, "request_too_large")
    assert "1 MB" in error["message"]
    assert_nothing_recorded(deployment, deployment.log_lines.count())


def test_a_report_must_be_sent_as_json(client, waiting):
    deployment, raw = waiting
    body = json.dumps(good_report(deployment.pk))
    response = client.post(reports_url(), data=body, content_type="text/plain", headers=bearer(raw))
    assert_error(response, 415, "unsupported_media_type")
    form = client.post(reports_url(), data={"applications": "[]"}, headers=bearer(raw))
    assert_error(form, 415, "unsupported_media_type")
    assert_error(client.get(reports_url(), headers=bearer(raw)), 405, "method_not_allowed")
    assert not LiveApplication.objects.exists()


def test_the_limits_themselves_are_accepted(client, waiting):
    deployment, raw = waiting
    report = good_report(deployment.pk)
    report["agent"] = "a" * 200
    report["interval"] = 86400
    report["applications"][0].update(
        version="1" * 40,
        log=["x" * 500] * 200,
        hook={"exit_status": -9, "output": "\x00killed\udcff" + "z" * 10_000},
    )
    assert post_json(client, reports_url(), report, raw).status_code == 200
    live = LiveApplication.objects.get()
    assert live.hook_exit_status == -9
    assert live.hook_output == "z" * 4096  # The last 4 KB kept.
    assert deployment.log_lines.filter(message__endswith="x" * 500).count() == 200
    assert AgentToken.objects.get().interval_seconds == 86400


def test_hook_output_that_a_database_cannot_store_is_replaced_not_refused(client, waiting):
    deployment, raw = waiting
    report = good_report(deployment.pk)
    report["applications"][0]["hook"] = {"exit_status": 1, "output": "a\x00b\ud800c"}
    assert post_json(client, reports_url(), report, raw).status_code == 200
    assert LiveApplication.objects.get().hook_output == "a\ufffdb?c"


def test_optional_fields_may_be_left_out(client, waiting):
    deployment, raw = waiting
    response = post_json(client, reports_url(), {"applications": [{"name": "Shop"}]}, raw)
    assert response.status_code == 200, response.content
    live = LiveApplication.objects.get()
    assert (live.applied, live.live, live.hook_exit_status, live.deployment_id) == ({}, {}, None, None)
    assert post_json(client, reports_url(), {"applications": []}, raw).json() == {"drift_uploads": []}


def test_one_report_adds_a_bounded_number_of_log_lines(client, waiting, monkeypatch):
    monkeypatch.setattr(reports, "MAX_REPORT_LOG_LINES", 150)
    deployment, raw = waiting
    before = deployment.log_lines.count()
    report = good_report(deployment.pk)
    report["applications"][0]["log"] = [f"line {n}" for n in range(200)]
    assert post_json(client, reports_url(), report, raw).status_code == 200
    added = list(deployment.log_lines.order_by("id").values_list("message", flat=True)[before:])
    assert len(added) == 151
    assert added[149].endswith("line 149")
    assert added[150] == "stageboard-agent/1 on web-1: 51 more lines of this report were not kept."
