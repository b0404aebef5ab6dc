"""The hook: its environment, its exit status, the last 4 KB of its output, and its timeout."""

import os

import pytest

from tests.agent.agent_double import Source, desired, make_agent, sa


@pytest.fixture
def root(tmp_path):
    path = tmp_path / "root"
    path.mkdir()
    return path


def apply_with_hook(root, hook, timeout=30):
    agent = make_agent(root, hook=hook, hook_timeout=timeout)
    source = Source()
    try:
        app = desired("Shop", "1.4.0", [source.add("Shop-Core", 1, {"main.py": b"1\n"})], deployment=17)
        assert agent.apply(app, "Production", source), agent.lines
        return agent.state["applications"]["Shop"]["unreported_hook"], agent
    finally:
        agent.close()


def test_the_hook_gets_its_environment_and_runs_in_the_release(root):
    hook = (
        'echo "$STAGEBOARD_APPLICATION|$STAGEBOARD_VERSION|$STAGEBOARD_ENVIRONMENT|'
        '$STAGEBOARD_RELEASE_DIR|$(pwd)"'
    )
    result, _ = apply_with_hook(root, hook)
    release = os.path.join(str(root), "Shop", os.readlink(root / "Shop" / "current"))
    assert result == {"exit_status": 0, "output": f"Shop|1.4.0|Production|{release}|{release}\n"}
    assert os.path.isfile(os.path.join(release, "Shop-Core", "main.py"))


def test_a_failing_hook_is_reported_with_its_status_and_output(root):
    result, agent = apply_with_hook(root, "echo 'migrating...'; echo 'boom' >&2; exit 3")
    assert result == {"exit_status": 3, "output": "migrating...\nboom\n"}
    # The release is applied all the same: the hook failing is the deployment's error, not the files'.
    assert agent.state["applications"]["Shop"]["version"] == "1.4.0"
    assert "the hook exited with status 3" in agent.lines


def test_only_the_last_4_kb_of_output_is_kept(root):
    result, _ = apply_with_hook(root, "head -c 100000 /dev/zero | tr '\\0' x; echo; echo THE-END")
    assert len(result["output"].encode()) == sa.HOOK_OUTPUT_BYTES
    assert result["output"].endswith("x\nTHE-END\n")


def test_a_cut_through_a_multibyte_character_is_dropped_not_garbled(tmp_path):
    result = sa.run_hook("for i in $(seq 3000); do printf 'é'; done", dict(os.environ), str(tmp_path), 30)
    assert len(result["output"].encode()) <= sa.HOOK_OUTPUT_BYTES
    assert set(result["output"]) == {"é"}


def test_a_hook_over_its_timeout_is_killed_with_its_children(tmp_path):
    pid_file = tmp_path / "child.pid"
    command = f"echo started; sleep 60 & echo $! > {pid_file}; wait"
    result = sa.run_hook(command, dict(os.environ), str(tmp_path), 0.5)
    assert result["exit_status"] == sa.HOOK_TIMEOUT_STATUS == -9
    assert result["output"].startswith("started\n")
    assert result["output"].endswith("longer than 0.5 s and was killed")
    child = int(pid_file.read_text())
    assert not _alive(child)


def test_a_hook_that_cannot_run_reports_the_shell_status(tmp_path):
    result = sa.run_hook("/nonexistent/command", dict(os.environ), str(tmp_path), 30)
    assert result["exit_status"] == 127
    assert "not found" in result["output"]


def test_no_hook_reports_none(root):
    agent = make_agent(root)
    source = Source()
    try:
        assert agent.apply(desired("Shop", "1.0", [source.add("Shop-Core", 1, {"a": b"1"})]), "Dev", source)
        assert "unreported_hook" not in agent.state["applications"]["Shop"]
    finally:
        agent.close()


def _alive(pid):
    """Whether `pid` still runs (a zombie waiting to be reaped does not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_nul_in_the_hooks_environment_is_a_failed_hook_not_a_crashed_pass(tmp_path):
    """A version label carrying a NUL (from a hostile or broken server) cannot go into an environment."""
    result = sa.run_hook("true", {"STAGEBOARD_VERSION": "1.0\x00evil"}, str(tmp_path), timeout=5)
    assert result["exit_status"] == 127 and "could not start" in result["output"]
