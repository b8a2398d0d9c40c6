"""Process lifecycle: graceful shutdown on SIGTERM / SIGINT, and configuration errors."""

import signal
import subprocess

import pytest

from conftest import BROKER, roost_binary

V5 = 5

pytestmark = pytest.mark.roost_only(reason="Roost's own shutdown and CLI behaviour")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_shutdown_tells_mqtt5_clients_and_exits_zero(broker, mk, sig):
    client = mk("stays-connected", version=V5)
    broker.expected_exit = True
    broker.proc.send_signal(sig)
    assert client.disconnected.wait(5), "no DISCONNECT / close within 5 s of the signal"
    assert client.disconnect_rc == 0x8B, "expected DISCONNECT 0x8B (server shutting down), got %r" % client.disconnect_rc
    assert broker.proc.wait(10) == 0
    assert "shutting down" in broker.log_tail()


def _serve(*args, timeout=20):
    return subprocess.run([str(roost_binary()), "serve", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_bad_flag_value_names_key_value_and_allowed():
    result = _serve("--max-qos", "3", "--check-config")
    assert result.returncode == 2
    assert "max_qos" in result.stderr and "'3'" in result.stderr and "0...2" in result.stderr


def test_unknown_key_is_refused():
    result = _serve("--max-qso", "1", "--check-config")
    assert result.returncode == 2
    assert "max_qso" in result.stderr and "did you mean max_qos" in result.stderr


def test_config_file_error_names_file_and_line(tmp_path):
    config = tmp_path / "roost.yaml"
    config.write_text("# comment\nmax_keepalive: 60\nretain_available: maybe\n")
    result = _serve("--config", str(config), "--check-config")
    assert result.returncode == 2
    assert "retain_available" in result.stderr and "%s:3" % config in result.stderr


def test_environment_and_flag_precedence(tmp_path):
    config = tmp_path / "roost.yaml"
    config.write_text("listen:\n  - 127.0.0.1:1999\nmax_keepalive: 60\n")
    result = subprocess.run([str(roost_binary()), "serve", "--config", str(config), "--check-config",
                             "--listen", "127.0.0.1:2001"],
                            capture_output=True, text=True, timeout=20,
                            env={"ROOST_LISTEN": "127.0.0.1:2000", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    assert "127.0.0.1:2001" in result.stdout and "1999" not in result.stdout


def test_listener_that_cannot_bind_fails_clearly(broker):
    result = _serve("--listen", "%s:%d" % (broker.host, broker.port))
    assert result.returncode != 0
    assert "could not start" in result.stderr


def test_non_loopback_anonymous_listener_warns(tmp_path):
    """A listener reachable from other hosts that accepts anonymous clients says so at start."""
    import socket as _socket
    import time as _time
    with _socket.socket() as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "roost.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(roost_binary()), "serve", "--listen", "0.0.0.0:%d" % port],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            deadline = _time.monotonic() + 10
            while b"listening" not in log.read_bytes() and _time.monotonic() < deadline:
                _time.sleep(0.05)
        finally:
            proc.terminate()
            proc.wait(10)
    text = log.read_text()
    assert "warning" in text and "anonymous" in text, text


def test_wills_are_published_on_shutdown(broker, mk):
    """Clients did not send DISCONNECT when the broker stops, so their wills go out [MQTT-3.1.2-8]."""
    watcher = mk("will-watcher", version=V5)
    watcher.subscribe("wills/#", 1)
    victim = mk("will-victim", version=V5, will={"topic": "wills/victim", "payload": b"broker stopped", "qos": 1})
    broker.expected_exit = True
    broker.proc.send_signal(signal.SIGTERM)
    got = watcher.get(timeout=5)
    assert got.topic == "wills/victim" and got.payload == b"broker stopped"
