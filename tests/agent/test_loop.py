"""The agent's loop: it survives Stageboard down or answering nonsense, backs off, stops on SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.agent.agent_double import AGENT_PATH, make_agent, sa


def closed_port():
    """A port on which nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def answering():
    """Start a real HTTP server answering every request with (status, body); yields its URL maker."""
    servers = []

    def start(status, body=b"", delay=None):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if delay is not None:
                    delay.wait(10)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_backoff_doubles_per_failure_up_to_the_cap():
    assert [sa.backoff(failures, 5, jitter=0) for failures in range(7)] == [5, 5, 10, 20, 40, 60, 60]
    assert 4.5 <= sa.backoff(1, 5) <= 5
    assert sa.backoff(50, 5, jitter=0) == sa.MAX_BACKOFF_SECONDS


def test_a_server_that_is_down_is_retried_with_backoff(tmp_path):
    agent = sa.Agent(
        f"http://127.0.0.1:{closed_port()}", "sba_x", str(tmp_path), interval=1, log=lambda line: None
    )
    lines = []
    agent.log = lines.append
    waits = []
    try:
        assert agent.run(sleep=waits.append, passes=5) == 1
    finally:
        agent.close()
    assert len(waits) == 4
    for wait, full in zip(waits, [1, 2, 4, 8], strict=True):
        assert full * 0.9 <= wait <= full
    assert sum("Connection refused" in line for line in lines) == 5
    assert "retrying in" in lines[1]


@pytest.mark.parametrize(
    "status, body, reason",
    [
        (500, b'{"error": {"code": "oops", "message": "it broke"}}', "500 it broke"),
        (502, b"<html>bad gateway</html>", "502"),
        (200, b"{not json", "not JSON"),
        (200, b'{"applications": "none"}', "no list of applications"),
        (200, b'{"applications": [{"name": "A", "modules": [{"name": 3}]}]}', "malformed module"),
        (401, b'{"error": {"code": "unauthorized", "message": "revoked token"}}', "401"),
    ],
)
def test_a_bad_answer_fails_the_pass_without_crashing(tmp_path, answering, status, body, reason):
    agent = make_agent(tmp_path)
    agent.client = sa.Client(answering(status, body), "sba_x", timeout=5)
    try:
        assert agent.run_pass() is False
    finally:
        agent.close()
    assert any(reason in line for line in agent.lines), agent.lines
    assert os.listdir(tmp_path) == []


def test_a_server_that_does_not_answer_times_out(tmp_path, answering):
    release = threading.Event()
    agent = make_agent(tmp_path)
    agent.client = sa.Client(answering(200, b"{}", delay=release), "sba_x", timeout=0.3)
    try:
        assert agent.run_pass() is False
    finally:
        release.set()
        agent.close()
    assert any("timed out" in line for line in agent.lines), agent.lines


def test_a_redirect_is_not_followed_with_the_token(tmp_path, answering):
    agent = make_agent(tmp_path)
    agent.client = sa.Client(answering(302, b""), "sba_x", timeout=5)
    try:
        assert agent.run_pass() is False
    finally:
        agent.close()
    assert any("302" in line for line in agent.lines), agent.lines


# ---------------------------------------------------------------------------
# The command line


def run_agent(*args, **kwargs):
    return subprocess.run(
        [sys.executable, str(AGENT_PATH), *args], capture_output=True, text=True, timeout=60, **kwargs
    )


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "token"
    path.write_text("sba_example\n")
    path.chmod(0o600)
    return path


def test_once_exits_1_when_the_server_is_down(tmp_path, token_file):
    server = f"http://127.0.0.1:{closed_port()}"
    done = run_agent(
        "--server", server, "--token-file", str(token_file), "--root", str(tmp_path / "root"), "--once"
    )
    assert done.returncode == 1
    assert "Connection refused" in done.stderr
    assert "warning" not in done.stderr
    assert all(line[:4].isdigit() and "stageboard-agent: " in line for line in done.stderr.splitlines())


def test_a_world_readable_token_file_is_warned_about(tmp_path, token_file):
    token_file.chmod(0o644)
    server = f"http://127.0.0.1:{closed_port()}"
    done = run_agent(
        "--server", server, "--token-file", str(token_file), "--root", str(tmp_path / "r"), "--once"
    )
    assert done.returncode == 1
    assert "can be read by every user of this machine" in done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--token-file", "/nonexistent/token"], "cannot read the token"),
        (["--server", "ftp://example.com"], "must start with http:// or https://"),
        (["--interval", "0"], "must be positive"),
    ],
)
def test_bad_arguments_exit_2(tmp_path, token_file, args, message):
    base = {"--server": "http://127.0.0.1:9", "--token-file": str(token_file), "--root": str(tmp_path / "r")}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    done = run_agent(*[part for pair in base.items() for part in pair], "--once")
    assert done.returncode == 2
    assert message in done.stderr


def test_a_second_agent_on_the_same_root_refuses_to_start(tmp_path, token_file):
    import fcntl

    root = tmp_path / "root"
    root.mkdir()
    with open(root / sa.LOCK_FILE, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        done = run_agent(
            "--server", "http://127.0.0.1:9", "--token-file", str(token_file), "--root", str(root), "--once"
        )
    assert done.returncode == 2
    assert "another agent is already running" in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_loop_cleanly(tmp_path, token_file, signum):
    server = f"http://127.0.0.1:{closed_port()}"
    process = subprocess.Popen(
        [sys.executable, str(AGENT_PATH), "--server", server, "--token-file", str(token_file)]
        + ["--root", str(tmp_path / "root"), "--interval", "30"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in process.stderr:
            if "retrying in" in line:
                break
        process.send_signal(signum)
        rest = process.stderr.read()
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
    assert f"received {signal.Signals(signum).name}" in rest
    assert rest.rstrip().endswith("stageboard-agent: stopped")


def test_an_application_whose_name_cannot_be_a_folder_is_refused_once_without_backing_off(tmp_path):
    """'Sales/EU' is a valid application name in Stageboard; the agent cannot make it a folder.

    It must not fail the pass (the backoff would delay every other application of the
    environment, and show the agent offline), and it says so once, not at every pass.
    """
    state = {
        "environment": "Production",
        "revision": 1,
        "applications": [
            {
                "name": "Sales/EU",
                "version": "1.0.0",
                "deployment": 3,
                "generation": 0,
                "modules": [{"name": "Sales-Web", "version": 1, "tree_hash": "0" * 64}],
            }
        ],
    }
    reports = []

    class Stageboard(BaseHTTPRequestHandler):
        def do_GET(self):
            self._answer(200, state)

        def do_POST(self):
            reports.append(self.rfile.read(int(self.headers["Content-Length"])))
            self._answer(200, {"drift_uploads": []})

        def _answer(self, status, payload):
            body = sa.json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("ETag", '"1-1"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Stageboard)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lines = []
        agent = sa.Agent(
            f"http://127.0.0.1:{server.server_address[1]}", "sba_test", str(tmp_path), log=lines.append
        )
        assert agent.run_pass() is True
        assert agent.run_pass() is True
    finally:
        server.shutdown()
        server.server_close()
    refusals = [line for line in lines if "Sales/EU not applied" in line]
    assert len(refusals) == 1 and "contains '/'" in refusals[0]
    assert not os.path.exists(tmp_path / "Sales")
    assert reports, "the agent still reports (its sign of life and the refusal for the deployment's log)"
    assert b"Sales/EU not applied" in reports[0]
