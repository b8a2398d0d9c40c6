"""Fixtures for the Roost interop / acceptance suite.

Environment:
  BROKER     roost (default) or mosquitto
  ROOST_BIN  path of the roost executable (default: <repo>/.build/debug/roost;
             a relative path is taken relative to the repository root)
  MOSQUITTO_BIN  path of mosquitto (default: found on PATH, then /usr/sbin)
  CI         when "true", missing tools fail the run instead of skipping
  INTEROP_RUN_ROOST_ONLY=1  do not skip roost_only tests under BROKER=mosquitto
"""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import support

# Fixtures of the security and limits tests (certs, launch, clients, raws): security_support.py.
pytest_plugins = ["security_support"]

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
BROKER = os.environ.get("BROKER", "roost").strip().lower() or "roost"
STARTUP_TIMEOUT = 10.0
HARD_TEST_TIMEOUT = 30  # seconds, safety net; individual tests aim for < 10 s

# Per-test broker options: name -> (roost CLI flag, mosquitto.conf key).
# Use as @pytest.mark.broker_options(max_keepalive=10).
BROKER_OPTIONS = {
    "max_keepalive": ("--max-keepalive", "max_keepalive"),
    "max_queued_messages": ("--max-queued-messages", "max_queued_messages"),
}


def pytest_configure(config):
    if BROKER not in ("roost", "mosquitto"):
        raise pytest.UsageError("BROKER must be 'roost' or 'mosquitto', not %r" % BROKER)


def pytest_report_header(config):
    return "interop broker under test: %s (CI=%s)" % (BROKER, support.CI)


def pytest_collection_modifyitems(config, items):
    # INTEROP_RUN_ROOST_ONLY=1 runs them anyway (to re-check that Mosquitto still fails them).
    if BROKER != "mosquitto" or os.environ.get("INTEROP_RUN_ROOST_ONLY") == "1":
        return
    for item in items:
        marker = item.get_closest_marker("roost_only")
        if marker is not None:
            why = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            item.add_marker(pytest.mark.skip(
                reason="roost_only: %s" % why))


# ---------------------------------------------------------------------------
# Hard per-test timeout (no plugin needed)
# ---------------------------------------------------------------------------

class HardTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise HardTimeout("test exceeded the hard limit of %d s" % HARD_TEST_TIMEOUT)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(HARD_TEST_TIMEOUT)
    try:
        yield
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    broker = getattr(item, "_interop_broker", None)
    if report.failed and broker is not None:
        report.sections.append(("broker log (%s, port %d)" % (broker.kind, broker.port),
                                broker.log_tail()))


# ---------------------------------------------------------------------------
# Broker process
# ---------------------------------------------------------------------------

_handed_out_ports = set()


def free_port():
    """A port free now and never handed out before in this run: the kernel may give the same
    ephemeral port to two probes in a row (seen: a test's TCP and WSS listeners got one port)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out_ports:
            _handed_out_ports.add(port)
            return port
    raise RuntimeError("no fresh free port after 100 tries")


def roost_binary():
    value = os.environ.get("ROOST_BIN")
    path = Path(value) if value else REPO_ROOT / ".build" / "debug" / "roost"
    if not path.is_absolute():
        path = REPO_ROOT / path
    return path


def mosquitto_binary():
    value = os.environ.get("MOSQUITTO_BIN")
    if value:
        return value
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


class Broker:
    def __init__(self, kind, workdir, options, extra_args=()):
        """extra_args: more roost CLI arguments (e.g. ["--data-dir", DIR]); roost only."""
        self.kind = kind
        self.host = "127.0.0.1"
        self.port = free_port()
        self.workdir = Path(workdir)
        self.options = options
        self.log_path = self.workdir / ("%s.log" % kind)
        self.proc = None
        self.command = None
        self.extra_args = [str(arg) for arg in extra_args]
        self.starts = 0
        if self.extra_args and kind != "roost":
            raise pytest.UsageError("extra_args are roost CLI arguments, not for %s" % kind)

    def _command(self):
        if self.kind == "roost":
            binary = roost_binary()
            if not binary.exists():
                pytest.fail("Roost binary not found at %s (build it with `swift build` in %s, "
                            "or set ROOST_BIN)" % (binary, REPO_ROOT), pytrace=False)
            cmd = [str(binary), "serve", "--listen", "%s:%d" % (self.host, self.port)]
            for name, value in self.options.items():
                cmd += [BROKER_OPTIONS[name][0], str(value)]
            return cmd + self.extra_args
        binary = mosquitto_binary()
        if not binary:
            support.missing("mosquitto", "apt-get install -y mosquitto")
        conf = self.workdir / "mosquitto.conf"
        lines = [
            "listener %d %s" % (self.port, self.host),
            "allow_anonymous true",
            "persistence false",
            "log_dest stderr",
            "log_type all",
            "log_timestamp_format %H:%M:%S",
        ]
        for name, value in self.options.items():
            lines.append("%s %s" % (BROKER_OPTIONS[name][1], value))
        conf.write_text("\n".join(lines) + "\n")
        return [binary, "-c", str(conf)]

    def start(self):
        self.command = self._command()
        # A restart appends to the log of the earlier run(s).
        self._log = open(self.log_path, "ab" if self.starts else "wb")
        self.starts += 1
        self._log.write(("$ %s\n" % " ".join(self.command)).encode())
        self._log.flush()
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=str(self.workdir))
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                pytest.fail("broker exited during startup with code %s:\n%s"
                            % (self.proc.returncode, self.log_tail()), pytrace=False)
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("broker did not accept connections on port %d within %.0fs:\n%s"
                            % (self.port, STARTUP_TIMEOUT, self.log_tail()), pytrace=False)
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM (SIGKILL after 5 s); returns the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def kill(self):
        """SIGKILL (no shutdown at all) and reap; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self._log.close()
        return self.proc.returncode

    def restart(self):
        """Start again with the same command, port and work dir, after stop() or kill()."""
        if self.alive():
            raise RuntimeError("restart() while the broker still runs; stop() or kill() it first")
        self._log.close()
        return self.start()

    def log_tail(self, lines=150):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return "<no broker log: %s>" % exc
        tail = text.splitlines()[-lines:]
        return "\n".join(tail)


@pytest.fixture
def broker(request, tmp_path):
    """A fresh broker for each test (state isolation)."""
    marker = request.node.get_closest_marker("broker_options")
    options = dict(marker.kwargs) if marker else {}
    unknown = set(options) - set(BROKER_OPTIONS)
    if unknown:
        raise pytest.UsageError("unknown broker option(s): %s" % ", ".join(sorted(unknown)))
    b = Broker(BROKER, tmp_path, options)
    request.node._interop_broker = b
    b.start()
    yield b
    crashed = not b.alive() and not getattr(b, "expected_exit", False)
    b.stop()
    if crashed:
        pytest.fail("broker exited while the test ran (code %s)" % b.proc.returncode, pytrace=False)


@pytest.fixture(params=[4, 5], ids=["v311", "v5"])
def version(request):
    """MQTT protocol level: 4 = 3.1.1, 5 = 5.0."""
    return request.param


@pytest.fixture
def mk(broker):
    """Factory for connected paho clients: mk(client_id, version=5, **TestClient kwargs)."""
    from pahoclient import TestClient
    made = []

    def factory(client_id="", version=5, connect=True, **kwargs):
        client = TestClient(broker.port, client_id=client_id, version=version, **kwargs)
        made.append(client)
        if connect:
            client.connect()
        return client

    yield factory
    for client in made:
        client.close_quietly()


@pytest.fixture
def raw(broker):
    """Factory for raw socket connections: raw() -> mqtt_raw.RawConn."""
    from mqtt_raw import RawConn
    made = []

    def factory(timeout=5.0):
        conn = RawConn(broker.port, timeout=timeout)
        made.append(conn)
        return conn

    yield factory
    for conn in made:
        conn.close()
