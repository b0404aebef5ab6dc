"""`make run` starts the web server, a worker and the demo agents through honcho and the Procfile.

These check the wiring that no other test runs: the Procfile's agents use the token files and
folders `manage.py demo_agents` prepares, talk to the address the web process serves, and
`make run` prepares all of that before honcho starts them.
"""

import re
import shlex
import subprocess
from pathlib import Path

import pytest
from django.core.management import get_commands, load_command_class
from honcho.environ import parse_procfile

from lifecycle.demo import ENVIRONMENTS, agent_slug

ROOT = Path(__file__).resolve().parents[1]
AGENT = "agent/stageboard_agent.py"


@pytest.fixture(scope="module")
def processes():
    """Process name -> its command split into words, as honcho reads the Procfile."""
    procfile = parse_procfile((ROOT / "Procfile").read_text())
    return {name: shlex.split(command) for name, command in procfile.processes.items()}


def option(words, name):
    return words[words.index(name) + 1]


def test_the_procfile_runs_a_web_server_a_worker_and_one_agent_per_demo_environment(processes):
    assert list(processes) == ["web", "worker", *(agent_slug(name) for name in ENVIRONMENTS)]
    assert processes["web"][:3] == [".venv/bin/python", "manage.py", "runserver"]
    assert processes["worker"][:3] == [".venv/bin/python", "manage.py", "db_worker"]
    assert get_commands()["db_worker"] == "django_tasks_db"


def test_each_agent_reads_the_token_and_writes_the_folder_demo_agents_prepares(processes):
    command = load_command_class("lifecycle", "demo_agents")
    var_dir = Path(command.create_parser("manage.py", "demo_agents").parse_args([]).var_dir)

    for name in ENVIRONMENTS:
        slug = agent_slug(name)
        words = processes[slug]
        assert words[:2] == ["python3", AGENT]
        assert ROOT / option(words, "--token-file") == var_dir / "agents" / f"{slug}.token"
        assert ROOT / option(words, "--root") == var_dir / "environments" / slug


def test_the_agents_poll_the_address_the_web_process_serves(processes):
    address = processes["web"][3]

    for name in ENVIRONMENTS:
        assert option(processes[agent_slug(name)], "--server") == f"http://{address}"


def test_the_agent_accepts_every_option_the_procfile_gives_it(processes):
    for name in ENVIRONMENTS:
        interpreter, script, *arguments = processes[agent_slug(name)]
        # With the Procfile's own interpreter: the agent needs nothing but the standard library.
        usage = subprocess.run(
            [interpreter, ROOT / script, "--help"], capture_output=True, text=True, check=True, timeout=30
        ).stdout

        assert {word for word in arguments if word.startswith("--")} <= set(
            re.findall(r"--[a-z][a-z-]*", usage)
        )


def test_make_run_prepares_the_database_and_the_agents_before_honcho_starts_them():
    # -n: print the commands without running them.
    dry_run = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout
    steps = [line for line in dry_run.splitlines() if "manage.py" in line or "honcho" in line]

    assert [line.split("manage.py ")[-1] if "manage.py" in line else "honcho" for line in steps] == [
        "migrate --noinput",
        "load_demo",
        "demo_agents",
        "ensure_admin",
        "honcho",
    ]
    assert all(line.startswith("DEBUG=${DEBUG:-true} ") for line in steps)
    assert steps[-1].endswith(".venv/bin/honcho start")
