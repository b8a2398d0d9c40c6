"""`roost bench` against real brokers: Roost (`roost serve`) and Mosquitto, each started here.

Runs `roost bench pubsub` and `roost bench conn` for about 2 s against each broker and checks
the `--json` summary: messages flowed, nothing lost at QoS 1, every connection opened. Then
`roost bench pub` and `roost bench sub` as two processes (the payload header carries a wall
clock time, so latency works across processes), and the exit status on failure.

Mosquitto is started with its own minimal configuration (no per-message logging, which would
make it the bottleneck). When CI=true a missing mosquitto fails these tests instead of
skipping them.
"""

import json
import subprocess
import time

import pytest

import support
from conftest import Broker, free_port, mosquitto_binary, roost_binary

BENCH_TIMEOUT = 25


class Mosquitto:
    """A mosquitto on a free port with `listener PORT 127.0.0.1` and `allow_anonymous true`."""

    def __init__(self, workdir):
        binary = mosquitto_binary()
        if not binary:
            support.missing("mosquitto", "apt-get install -y mosquitto")
        self.port = free_port()
        conf = workdir / "mosquitto-bench.conf"
        conf.write_text("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n" % self.port)
        self.log = open(workdir / "mosquitto-bench.log", "wb")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        import socket
        while True:
            if self.proc.poll() is not None:
                pytest.fail("mosquitto exited at start with code %s" % self.proc.returncode)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail("mosquitto did not listen on port %d" % self.port)
                time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


@pytest.fixture(params=["roost", "mosquitto"])
def target(request, tmp_path):
    """A broker for the bench to load: (kind, port)."""
    if request.param == "roost":
        broker = Broker("roost", tmp_path, {})
        request.node._interop_broker = broker
        broker.start()
        yield "roost", broker.port
        broker.stop()
    else:
        broker = Mosquitto(tmp_path)
        yield "mosquitto", broker.port
        broker.stop()


def bench(*args, expect_status=0):
    """Runs `roost bench ARGS --json` and returns the parsed summary."""
    binary = roost_binary()
    if not binary.exists():
        pytest.fail("Roost binary not found at %s (swift build, or set ROOST_BIN)" % binary, pytrace=False)
    command = [str(binary), "bench", *[str(arg) for arg in args], "--json", "--quiet"]
    result = subprocess.run(command, capture_output=True, timeout=BENCH_TIMEOUT)
    assert result.returncode == expect_status, (
        "%s exited with %d:\nstdout: %s\nstderr: %s"
        % (" ".join(command), result.returncode, result.stdout.decode(errors="replace"),
           result.stderr.decode(errors="replace")))
    return json.loads(result.stdout)


def test_pubsub_qos1_loses_nothing(target):
    kind, port = target
    summary = bench("pubsub", "-p", port, "-c", 4, "-n", 2, "-q", 1, "-r", 500, "-d", 2, "--threads", 2)
    assert summary["scenario"] == "pubsub"
    assert summary["ok"] is True, summary
    assert summary["connections"]["succeeded"] == 6
    assert summary["sent"] > 2000, summary  # 4 publishers x 500 msg/s x 2 s = 4000
    assert summary["acknowledged"] == summary["sent"]
    assert summary["expected"] == 2 * summary["sent"]
    assert summary["received"] == summary["expected"], summary
    assert summary["lost"] == 0
    assert summary["duplicates"] == 0
    assert summary["out_of_order"] == 0
    assert summary["malformed"] == 0
    assert summary["latency_us"]["count"] == summary["received"]
    assert 0 < summary["latency_us"]["p50_us"] <= summary["latency_us"]["p99_us"] <= summary["latency_us"]["max_us"]


def test_pubsub_unpaced_qos0_mqtt5(target):
    kind, port = target
    summary = bench("pubsub", "-p", port, "-c", 2, "-n", 2, "-f", "roost-bench/%i", "-q", 0,
                    "-V", "mqttv5", "-s", 128, "-d", 1.5)
    assert summary["ok"] is True, summary
    assert summary["mqtt_version"] == "5.0"
    assert summary["payload_size"] == 128
    assert summary["sent"] > 0
    assert summary["expected"] == summary["sent"], "pairs: each message to one subscriber"
    assert summary["received"] > 0
    assert summary["duplicates"] == 0


def test_conn_opens_every_connection(target):
    kind, port = target
    summary = bench("conn", "-p", port, "-c", 200, "--connect-rate", 1000, "-d", 1, "-k", 30)
    assert summary["scenario"] == "conn"
    assert summary["ok"] is True, summary
    connections = summary["connections"]
    assert connections["attempted"] == 200
    assert connections["succeeded"] == 200
    assert connections["failed"] == 0
    assert connections["dropped"] == 0
    assert connections["latency_us"]["count"] == 200
    assert 50 < connections["rate_per_s"] < 1500, connections


def test_pub_and_sub_in_two_processes(target, tmp_path):
    kind, port = target
    binary = roost_binary()
    progress = tmp_path / "sub.stderr"
    with open(progress, "wb") as stderr:
        sub = subprocess.Popen([str(binary), "bench", "sub", "-p", str(port), "-q", "1", "-d", "6", "--json"],
                               stdout=subprocess.PIPE, stderr=stderr)
    try:
        # The progress line counts the subscriber once its SUBACK is in.
        deadline = time.monotonic() + 10
        while "conn 1" not in progress.read_text(errors="replace"):
            assert sub.poll() is None, progress.read_text(errors="replace")
            assert time.monotonic() < deadline, "the subscriber did not connect"
            time.sleep(0.1)
        published = bench("pub", "-p", port, "-c", 2, "-q", 1, "-r", 300, "-d", 1.5)
        stdout, _ = sub.communicate(timeout=15)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    assert sub.returncode == 0, stdout
    received = json.loads(stdout)
    assert published["ok"] is True, published
    assert published["sent"] > 500
    assert published["acknowledged"] == published["sent"]
    assert received["received"] == published["sent"], (published, received)
    assert received["lost"] == 0
    assert received["duplicates"] == 0
    assert received["out_of_order"] == 0
    assert received["malformed"] == 0
    assert received["latency_us"]["count"] == received["received"]


def test_exit_status_when_nothing_listens():
    port = free_port()
    summary = bench("conn", "-p", port, "-c", 5, "-d", 0, expect_status=1)
    assert summary["ok"] is False
    assert summary["connections"]["failed"] == 5
    assert summary["failures"] == ["5 connection(s) failed"]
    assert summary["errors"], summary


def test_payload_smaller_than_the_header_is_refused():
    binary = roost_binary()
    result = subprocess.run([str(binary), "bench", "pub", "-s", "10", "-d", "1"], capture_output=True, timeout=10)
    assert result.returncode == 64, result
    assert b"header" in result.stderr
