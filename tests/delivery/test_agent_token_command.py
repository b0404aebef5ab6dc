"""manage.py agent_token ENVIRONMENT [--name NAME]: a token for scripts, printed as the last line."""

import io

import pytest
from django.core.management import CommandError, call_command, execute_from_command_line

from lifecycle.delivery import agent_tokens
from lifecycle.models import AgentToken, AuditEvent, Delivery
from tests.delivery.agent_support import make_agent_environment

pytestmark = pytest.mark.django_db


def run(*args):
    out = io.StringIO()
    call_command("agent_token", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize("delivery", [Delivery.AGENT, Delivery.WEBHOOK])
def test_it_prints_a_working_token_as_its_last_line(environments, delivery):
    production = make_agent_environment(environments[-1], delivery)
    output = run("Production", "--name", "web-1")
    raw = output.rstrip("\n").splitlines()[-1]
    token = agent_tokens.authenticate(raw)
    assert token is not None and token.environment == production and token.name == "web-1"
    assert "web-1" in output and "shown only now" in output
    event = AuditEvent.objects.get(action=AuditEvent.Action.AGENT_TOKEN_CREATED)
    assert event.environment == "Production" and event.username == ""


def test_the_name_defaults_to_the_host(environments):
    make_agent_environment(environments[-1])
    run("Production")
    assert AgentToken.objects.get().name.startswith("agent on ")


def test_it_refuses_an_environment_that_only_records(environments):
    with pytest.raises(CommandError, match="its delivery is 'record'") as refused:
        run("Production")
    assert refused.value.returncode != 0
    assert not AgentToken.objects.exists()


@pytest.mark.parametrize("name", ["Nowhere", "Prod\x00uction", "caf\udce9"])
def test_it_refuses_an_unknown_environment(environments, name):
    with pytest.raises(CommandError, match="No environment") as refused:
        run(name)
    assert refused.value.returncode == 4
    assert not AgentToken.objects.exists()


@pytest.mark.parametrize("name", ["", "x" * 101, "caf\udce9"])
def test_it_refuses_a_bad_name(environments, name):
    make_agent_environment(environments[-1])
    with pytest.raises(CommandError) as refused:
        run("Production", "--name", name)
    assert refused.value.returncode == 2
    assert not AgentToken.objects.exists()


def test_a_script_sees_a_non_zero_exit_status(environments):
    """Through manage.py's entry point, as a script runs it: exit status 2, not a traceback."""
    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(["manage.py", "agent_token", "Production"])
    assert exited.value.code == 2
