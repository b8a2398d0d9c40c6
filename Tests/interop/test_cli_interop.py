"""Interop with the Mosquitto command line clients (mosquitto_pub / mosquitto_sub)."""

import queue
import shutil
import subprocess
import threading
import time

import pytest

from pahoclient import V311, V5, make_props
from support import require_tool

MOSQUITTO_PUB = shutil.which("mosquitto_pub")
MOSQUITTO_SUB = shutil.which("mosquitto_sub")
# mosquitto_sub's stdout is block-buffered on a pipe; line buffering lets us see
# its "received SUBACK" debug line as soon as it happens.
STDBUF = shutil.which("stdbuf")


@pytest.fixture(autouse=True)
def _cli_tools():
    """Skip (or, with CI=true, fail) each test here when a CLI tool is missing,
    without stopping the rest of the suite."""
    require_tool("mosquitto_pub")
    require_tool("mosquitto_sub")
    require_tool("stdbuf", "apt-get install -y coreutils")

CLI_VERSION = {V311: "mqttv311", V5: "mqttv5"}
MSG_PREFIX = "MSG|"


class CliSub:
    """mosquitto_sub run in debug mode so we can tell when its SUBACK arrived."""

    def __init__(self, broker, topic, version, qos=0, count=None, extra=(), fmt=None, verbose=False):
        cmd = [STDBUF, "-oL", MOSQUITTO_SUB, "-h", broker.host, "-p", str(broker.port), "-t", topic,
               "-q", str(qos), "-V", CLI_VERSION[version], "-d", "-k", "10", "-W", "9"]
        if count is not None:
            cmd += ["-C", str(count)]
        if verbose:
            cmd.append("-v")
        if fmt is not None:
            cmd += ["-F", MSG_PREFIX + fmt]
        cmd += list(extra)
        self.cmd = cmd
        self.lines = queue.Queue()
        self.all_lines = []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw_line in self.proc.stdout:
            self.lines.put(raw_line.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def wait_subscribed(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("mosquitto_sub not subscribed within %.1fs: %r"
                                     % (timeout, self.all_lines)) from None
            if line is None:
                raise AssertionError("mosquitto_sub exited early (rc=%s): %r"
                                     % (self.proc.wait(), self.all_lines))
            self.all_lines.append(line)
            if "received SUBACK" in line:
                return

    def finish(self, timeout=10.0):
        """Wait for exit; return (returncode, every output line)."""
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("mosquitto_sub did not exit within %.1fs: %r" % (timeout, self.all_lines))
        self._reader.join(2)
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.all_lines.append(line)
        return rc, self.all_lines

    def messages(self):
        return [line[len(MSG_PREFIX):] for line in self.all_lines if line.startswith(MSG_PREFIX)]

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def cli_sub(broker):
    made = []

    def factory(*args, **kwargs):
        s = CliSub(broker, *args, **kwargs)
        made.append(s)
        return s

    yield factory
    for s in made:
        s.kill()


def cli_pub(broker, topic, version, *args, stdin=None, qos=0):
    cmd = [MOSQUITTO_PUB, "-h", broker.host, "-p", str(broker.port), "-t", topic, "-q", str(qos),
           "-V", CLI_VERSION[version]] + list(args)
    res = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    assert res.returncode == 0, "%s failed (%d): %s" % (" ".join(cmd), res.returncode, res.stdout.decode())
    return res


@pytest.mark.parametrize("qos", [1, 2])
def test_cli_pub_to_cli_sub(broker, cli_sub, version, qos):
    sub = cli_sub("cli/t/#", version, qos=qos, count=3, verbose=True)
    sub.wait_subscribed()
    cli_pub(broker, "cli/t/one", version, "-m", "first message", qos=qos)
    cli_pub(broker, "cli/t/two", version, "-l", stdin=b"second\nthird\n", qos=qos)
    rc, lines = sub.finish()
    assert rc == 0, lines
    got = [line for line in lines if line.startswith("cli/t/")]
    assert got == ["cli/t/one first message", "cli/t/two second", "cli/t/two third"]
    received = [line for line in lines if "received PUBLISH" in line]
    assert len(received) == 3 and all("q%d" % qos in line for line in received), received


def test_cli_retained(broker, cli_sub, mk, version):
    cli_pub(broker, "cli/ret", version, "-r", "-m", "kept value", qos=1)
    sub = cli_sub("cli/ret", version, qos=1, count=1, fmt="%t|%r|%p")
    rc, _ = sub.finish()
    assert rc == 0
    assert sub.messages() == ["cli/ret|1|kept value"]
    # Clear it with a zero-length retained message (-n).
    cli_pub(broker, "cli/ret", version, "-r", "-n", qos=1)
    late = mk("cli-late", version=version)
    late.subscribe("cli/ret", 1)
    late.assert_no_message(0.5)


def test_cli_binary_payload_to_paho(broker, mk, version, tmp_path):
    payload = bytes(range(256)) * 4
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    sub = mk("cli-paho-sub", version=version)
    sub.subscribe("cli/bin", 2)
    cli_pub(broker, "cli/bin", version, "-f", str(path), qos=2)
    m = sub.get()
    assert (m.payload, m.qos) == (payload, 2)


def test_paho_to_cli_sub_hex_payload(broker, cli_sub, mk, version):
    sub = cli_sub("cli/hex", version, qos=1, count=1, fmt="%q|%x")
    sub.wait_subscribed()
    pub = mk("cli-paho-pub", version=version)
    pub.publish("cli/hex", b"\x00\x01binary\xff", qos=1)
    rc, _ = sub.finish()
    assert rc == 0
    assert sub.messages() == ["1|" + b"\x00\x01binary\xff".hex()]


def test_cli_v5_user_properties_round_trip(broker, cli_sub, mk):
    paho_sub = mk("cli-up-sub", version=V5)
    paho_sub.subscribe("cli/up", 1)
    cli_pub(broker, "cli/up", V5, "-m", "x", "-D", "publish", "user-property", "k1", "v1",
            "-D", "publish", "user-property", "k2", "v2", qos=1)
    assert paho_sub.get().user_props == [("k1", "v1"), ("k2", "v2")]

    sub = cli_sub("cli/up2", V5, qos=1, count=1, fmt="%P|%p")
    sub.wait_subscribed()
    pub = mk("cli-up-pub", version=V5)
    pub.publish("cli/up2", b"y", qos=1, props=make_props("PUBLISH", user_props=[("a", "1"), ("b", "2")]))
    rc, _ = sub.finish()
    assert rc == 0
    assert sub.messages() == ["a:1 b:2|y"]
