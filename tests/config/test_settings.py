"""Start-up configuration, checked in fresh processes with controlled environments."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-production-secret-key-with-plenty-of-entropy-9f8e7d6c5b4a3f2e1d0c",
    "ALLOWED_HOSTS": "stageboard.example.com",
    "DATABASE_URL": "sqlite:///" + str(ROOT / "unused.sqlite3"),
}


def manage(*args, **overrides):
    environment = {
        key: value
        for key, value in os.environ.items()
        if key
        not in {
            "DEBUG",
            "SECRET_KEY",
            "HTTPS",
            "STATIC_MANIFEST",
            "ALLOWED_HOSTS",
            "GRID_REFRESH_SECONDS",
            "DATABASE_URL",
            "CONN_MAX_AGE",
            "CONN_HEALTH_CHECKS",
            # Set by the browser tests for Playwright's event loop; never in production.
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
    }
    environment.update(overrides)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_passes_check_deploy_with_production_values():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_it_refuses_to_start_without_a_secret_key_in_production():
    result = manage("check", **{**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_it_starts_without_a_secret_key_in_debug():
    result = manage("check", **{**PRODUCTION, "SECRET_KEY": "", "DEBUG": "true"})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DEBUG", "maybe"),
        ("DATABASE_URL", "nonsense://"),
        ("GRID_REFRESH_SECONDS", "soon"),
        ("HTTPS", "sure"),
        ("CONN_MAX_AGE", "long"),
        ("CONN_MAX_AGE", "-5"),
        ("CONN_HEALTH_CHECKS", "often"),
    ],
)
def test_it_names_a_malformed_variable(name, value):
    result = manage("check", **{**PRODUCTION, name: value})
    assert result.returncode != 0
    assert f"environment variable {name} is malformed" in result.stderr


CONNECTION = (
    "from django.db import connection as c; "
    "print(c.settings_dict['CONN_MAX_AGE'], c.settings_dict['CONN_HEALTH_CHECKS'])"
)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, "60 True"),  # Kept open by default, and checked before reuse.
        ({"CONN_MAX_AGE": "0", "CONN_HEALTH_CHECKS": "false"}, "0 False"),
        (
            {"DATABASE_URL": "postgres://u@db.internal:5432/s?conn_max_age=300", "CONN_MAX_AGE": "5"},
            "300 True",
        ),
    ],
)
def test_database_connections_stay_open_unless_configured_otherwise(overrides, expected):
    result = manage("shell", "-c", CONNECTION, **{**PRODUCTION, **overrides})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected
