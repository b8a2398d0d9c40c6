"""The HTTP authentication service (`auth_http_url`): one POST per CONNECT, cached.

A small HTTP service runs in the test (Python's http.server on 127.0.0.1), answering
`{"result": "allow" | "deny" | "ignore", "acl": {...}}` as each test tells it, or slowly,
or with an error status, or not at all (its port closed). The broker runs with a password
file and `allow_anonymous: false` beside it.

- allow: CONNACK 0; deny: 0x86 (5) / 4 (3.1.1); ignore: the password file decides.
- The request is JSON with clientid, username, password, remote_address, listener, protocol.
- A service that is down, slow (beyond `auth_http_timeout`) or answers 500 / garbage:
  refused (`auth_http_on_error: deny`, the default) or left to the password file (`ignore`).
  Other clients (password-file users on another listener) are served meanwhile.
- Answers are cached (`auth_http_cache`): the same credentials again do not reach the
  service; other credentials do.
- `acl` restricts that client (publish PUBACK 0x87, subscribe SUBACK 0x87 / 0x80).
- The service alone (no password file) turns anonymous access off: 0x87 / 5 without
  credentials, and the service is not asked; `allow_anonymous: true` lets them in.

Mosquitto 2.0 has no built-in HTTP authentication: the whole module is roost_only.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import mqtt_raw as R
from conftest import free_port
from security_support import Listener, write_password_file

pytestmark = pytest.mark.roost_only(reason="Mosquitto 2.0 has no built-in HTTP authentication")

V311, V5 = 4, 5
BAD_CREDENTIALS = {V311: 4, V5: 0x86}
NOT_AUTHORIZED = {V311: 5, V5: 0x87}
PASSWORDS = {"carol": "carol-password"}


class Service:
    """An HTTP authentication service whose answer each test sets."""

    def __init__(self):
        self.requests = []
        self.answer = {"result": "allow"}
        self.status = 200
        self.delay = 0.0
        self.raw = None
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                service.requests.append((self.path, self.headers.get("Content-Type"), json.loads(body)))
                if service.delay:
                    time.sleep(service.delay)
                data = service.raw if service.raw is not None else json.dumps(service.answer).encode()
                try:
                    self.send_response(service.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/mqtt/auth" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def service():
    s = Service()
    yield s
    s.stop()


def start(launch, tmp_path, url, **settings):
    password_file = write_password_file(tmp_path / "passwd", PASSWORDS)
    config = {"password_file": password_file, "allow_anonymous": False, "auth_http_url": url}
    config.update(settings)
    return launch([Listener("tcp")], config, style="config")


def connack(raws, broker, version, username, password, client_id="hook-client"):
    conn = raws(broker.port)
    ack = conn.mqtt_connect(client_id, version=version, username=username,
                            password=password.encode() if password is not None else None)
    return ack.reason, conn


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_allow_and_deny(launch, raws, tmp_path, service, version):
    broker = start(launch, tmp_path, service.url, auth_http_cache=0)
    reason, conn = connack(raws, broker, version, "dave", "dave-secret", client_id="dave-1")
    assert reason == 0
    path, content_type, body = service.requests[-1]
    assert path == "/mqtt/auth" and content_type == "application/json"
    assert body["clientid"] == "dave-1" and body["username"] == "dave" and body["password"] == "dave-secret"
    assert body["listener"] == "tcp" and body["protocol"] == "mqtt"
    assert body["remote_address"].startswith("127.0.0.1:")
    # A round trip works for the allowed client.
    conn.send(R.subscribe(1, [("hook/t", R.sub_options(0) if version == V5 else 0)], version))
    assert conn.read_packet(5).type == R.SUBACK
    conn.send(R.publish("hook/t", b"via hook", qos=0, version=version))
    msg = R.parse_publish(conn.read_packet(5), version)
    assert msg.payload == b"via hook"

    service.answer = {"result": "deny"}
    reason, refused = connack(raws, broker, version, "dave", "wrong", client_id="dave-2")
    assert reason == BAD_CREDENTIALS[version]
    assert refused.wait_closed(3)[0]


def test_ignore_leaves_it_to_the_password_file(launch, raws, tmp_path, service):
    service.answer = {"result": "ignore"}
    broker = start(launch, tmp_path, service.url, auth_http_cache=0)
    assert connack(raws, broker, V5, "carol", "carol-password")[0] == 0
    assert connack(raws, broker, V5, "carol", "nope", client_id="c2")[0] == 0x86
    assert connack(raws, broker, V5, "eve", "anything", client_id="c3")[0] == 0x86
    assert len(service.requests) == 3


def test_answers_are_cached(launch, raws, tmp_path, service):
    broker = start(launch, tmp_path, service.url, auth_http_cache=60)
    for _ in range(3):
        reason, conn = connack(raws, broker, V5, "dave", "dave-secret", client_id="same")
        assert reason == 0
        conn.close()
    assert len(service.requests) == 1, "the same credentials are answered from the cache"
    assert connack(raws, broker, V5, "dave", "other-secret", client_id="same")[0] == 0
    assert len(service.requests) == 2, "other credentials ask again"


@pytest.mark.parametrize("failure", ["down", "slow", "status500", "garbage"])
def test_service_failures_deny_by_default(launch, raws, tmp_path, service, failure):
    url = service.url
    if failure == "down":
        url = "http://127.0.0.1:%d/auth" % free_port()
    elif failure == "slow":
        service.delay = 3.0
    elif failure == "status500":
        service.status = 500
    else:
        service.raw = b"<html>not json</html>"
    broker = start(launch, tmp_path, url, auth_http_timeout=500, auth_http_cache=0)
    started = time.monotonic()
    reason, conn = connack(raws, broker, V5, "dave", "dave-secret")
    assert reason == 0x86
    assert time.monotonic() - started < 2.5, "the timeout bounds the wait"
    # ... and with on_error: ignore, the password file decides.


@pytest.mark.parametrize("failure", ["down", "slow"])
def test_service_failures_with_on_error_ignore(launch, raws, tmp_path, service, failure):
    url = service.url if failure == "slow" else "http://127.0.0.1:%d/auth" % free_port()
    if failure == "slow":
        service.delay = 3.0
    broker = start(launch, tmp_path, url, auth_http_timeout=500, auth_http_cache=0, auth_http_on_error="ignore")
    assert connack(raws, broker, V5, "carol", "carol-password")[0] == 0
    assert connack(raws, broker, V5, "dave", "dave-secret", client_id="d")[0] == 0x86


def test_a_slow_service_does_not_hold_up_other_clients(launch, raws, tmp_path, service):
    """While one CONNECT waits for the service, connected clients are served at once."""
    broker = start(launch, tmp_path, service.url, auth_http_timeout=3000, auth_http_cache=0)
    reason, fast = connack(raws, broker, V5, "dave", "dave-secret", client_id="first")
    assert reason == 0
    service.delay = 2.0
    waiting = raws(broker.port)
    waiting.send(R.connect("second", version=V5, username="erin", password=b"x"))
    time.sleep(0.2)
    started = time.monotonic()
    fast.send(R.pingreq())
    assert fast.read_packet(1).type == R.PINGRESP
    assert time.monotonic() - started < 0.5
    ack = waiting.read_packet(5)
    assert ack.type == R.CONNACK


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_acl_in_the_answer_restricts_the_client(launch, raws, tmp_path, service, version):
    service.answer = {"result": "allow", "acl": {"pub": ["devices/%c/up"], "sub": ["devices/%c/down", "public/#"]}}
    broker = start(launch, tmp_path, service.url, auth_http_cache=0)
    reason, conn = connack(raws, broker, version, "dave", "dave-secret", client_id="dev7")
    assert reason == 0
    opts = R.sub_options(1) if version == V5 else 1
    conn.send(R.subscribe(1, [("devices/dev7/down", opts), ("devices/other/down", opts), ("#", opts)], version))
    pid, codes = R.parse_suback(conn.read_packet(5), version)
    refused = 0x87 if version == V5 else 0x80
    assert codes == [1, refused, 1]
    conn.send(R.publish("devices/dev7/up", b"ok", qos=1, pid=2, version=version))
    conn.send(R.publish("devices/dev8/up", b"no", qos=1, pid=3, version=version))
    acks = {}
    delivered = []
    deadline = time.monotonic() + 5
    while len(acks) < 2 and time.monotonic() < deadline:
        pkt = conn.read_packet(5)
        if pkt.type == R.PUBACK:
            acks[R.ack_pid(pkt)] = pkt.body[2] if len(pkt.body) > 2 else 0
        elif pkt.type == R.PUBLISH:
            delivered.append(R.parse_publish(pkt, version).topic)
    assert acks[2] in (0, 0x10)
    assert acks[3] == (0x87 if version == V5 else 0)


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_anonymous_refused_with_only_an_http_service(launch, raws, service, version):
    """No password file and no allow_anonymous: the HTTP service alone turns anonymous access off."""
    service.answer = {"result": "allow"}
    closed = launch([Listener("tcp")], {"auth_http_url": service.url}, style="config")
    conn = raws(closed.port)
    ack = conn.mqtt_connect("hook-anon-%d" % version, version=version)
    assert ack.reason == NOT_AUTHORIZED[version], "anonymous CONNECT got %#x" % ack.reason
    assert conn.wait_closed(3)[0]
    assert service.requests == [], "an anonymous CONNECT was sent to the service: %r" % service.requests
    reason, _ = connack(raws, closed, version, "dave", "dave-password")
    assert reason == 0, "a user the service allows got %#x" % reason
    # With allow_anonymous: true the anonymous rules decide where the service says "ignore".
    service.answer = {"result": "ignore"}
    opened = launch([Listener("tcp")], {"auth_http_url": service.url, "allow_anonymous": True}, style="config")
    conn = raws(opened.port)
    ack = conn.mqtt_connect("hook-anon-open-%d" % version, version=version)
    assert ack.reason == 0, "allow_anonymous: true, anonymous CONNECT got %#x" % ack.reason
