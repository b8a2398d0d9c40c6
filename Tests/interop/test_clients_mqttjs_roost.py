"""Interop with MQTT.js (Debian's node-mqtt) and with Roost's own `roost pub` / `roost sub`.

`roost pub` / `roost sub` are clients, so these tests also run against Mosquitto."""

import json
import os
import shutil
import subprocess
import time

import pytest

import support
from conftest import roost_binary

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_PATH = "/usr/share/nodejs"


def _node():
    node = shutil.which("node") or shutil.which("nodejs")
    if not node or not os.path.isdir(os.path.join(NODE_PATH, "mqtt")):
        support.missing("node + MQTT.js", "apt-get install -y node-mqtt nodejs")
    return node


@pytest.mark.parametrize("protocol", [4, 5], ids=["v311", "v5"])
def test_mqttjs_roundtrip(broker, protocol):
    env = dict(os.environ, NODE_PATH=NODE_PATH)
    out = subprocess.run([_node(), os.path.join(HERE, "js", "roundtrip.js"), str(broker.port), str(protocol)],
                         capture_output=True, text=True, timeout=20, env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["end"] == "done", result
    assert result["errors"] == []
    assert result["granted"] == [2]
    by_topic = {}
    for message in result["received"]:  # the later empty retained message (the clean-up) may arrive too
        by_topic.setdefault(message["topic"], message)
    assert by_topic["retained"]["payload"] == "kept" and by_topic["retained"]["retain"] is True
    for qos in (0, 1, 2):
        message = by_topic["q%d" % qos]
        assert message["payload"] == "payload-%d" % qos
        assert message["qos"] == qos
        if protocol == 5:
            assert message["userProperties"] == {"via": "mqtt.js"}


def _roost(*args, timeout=15, stdin=None):
    return subprocess.run([str(roost_binary()), *args], capture_output=True, timeout=timeout,
                          input=stdin)


def _start_sub(broker, *args):
    proc = subprocess.Popen([str(roost_binary()), "sub", "-p", str(broker.port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.6)  # let it subscribe
    return proc


@pytest.mark.parametrize("protocol", ["mqttv311", "mqttv5"])
@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_roost_pub_to_roost_sub(broker, protocol, qos):
    sub = _start_sub(broker, "-t", "cli/#", "-v", "-C", "3", "-q", qos, "-V", protocol, "-W", "10")
    for n in range(3):
        r = _roost("pub", "-p", str(broker.port), "-t", "cli/%d" % n, "-m", "hello %d" % n, "-q", qos, "-V", protocol)
        assert r.returncode == 0, r.stderr
    out, err = sub.communicate(timeout=15)
    assert sub.returncode == 0, err
    assert out.decode().splitlines() == ["cli/%d hello %d" % (n, n) for n in range(3)]


def test_roost_pub_lines_from_stdin_and_retained(broker):
    r = _roost("pub", "-p", str(broker.port), "-t", "lines", "-l", "-q", "1", stdin=b"one\ntwo\nthree\n")
    assert r.returncode == 0, r.stderr
    r = _roost("pub", "-p", str(broker.port), "-t", "state", "-m", "on", "-r", "-q", "1")
    assert r.returncode == 0, r.stderr
    r = _roost("sub", "-p", str(broker.port), "-t", "state", "-C", "1", "-W", "5")
    assert r.returncode == 0 and r.stdout == b"on\n"
    r = _roost("pub", "-p", str(broker.port), "-t", "state", "-r", "-n")
    assert r.returncode == 0
    r = _roost("sub", "-p", str(broker.port), "-t", "state", "-C", "1", "-W", "1")
    assert r.returncode == 27, "a timeout with no message exits 27, like mosquitto_sub"


def test_roost_sub_persistent_session_gets_what_it_missed(broker):
    r = _roost("sub", "-p", str(broker.port), "-t", "jobs", "-q", "1", "-c", "-i", "worker-1", "-E", "-V", "mqttv5", "-x", "300")
    assert r.returncode == 0, r.stderr
    for n in range(5):
        assert _roost("pub", "-p", str(broker.port), "-t", "jobs", "-m", "job %d" % n, "-q", "1").returncode == 0
    r = _roost("sub", "-p", str(broker.port), "-t", "jobs", "-q", "1", "-c", "-i", "worker-1", "-V", "mqttv5", "-x", "300", "-C", "5", "-W", "5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().splitlines() == ["job %d" % n for n in range(5)]


def test_roost_sub_will_on_kill(broker):
    watcher = _start_sub(broker, "-t", "wills/#", "-v", "-C", "1", "-W", "10")
    victim = _start_sub(broker, "-t", "nothing", "--will-topic", "wills/victim", "--will-payload", "gone", "-i", "victim")
    victim.kill()
    victim.wait(5)
    out, _ = watcher.communicate(timeout=15)
    assert out.decode().strip() == "wills/victim gone"


def test_roost_pub_refused_connection_exits_nonzero():
    r = _roost("pub", "-p", "1", "-t", "x", "-m", "y")
    assert r.returncode != 0
    assert r.stderr.strip()
