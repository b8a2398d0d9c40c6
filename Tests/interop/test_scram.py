"""SCRAM-SHA-256 (RFC 5802 / RFC 7677) over MQTT 5 enhanced authentication.

The broker runs with `--password-file F`, where F holds a SCRAM entry for alice made by
`roost passwd --scram` and a `$7$` entry for bob made by `roost passwd`. A raw MQTT 5
client (the SCRAM client side is written here with hashlib / hmac) does:

    CONNECT  Authentication Method "SCRAM-SHA-256", Authentication Data client-first
    <- AUTH 0x18 (continue), same method, data server-first
    AUTH 0x18, same method, data client-final  ->
    <- CONNACK 0x00, same method, data server-final "v=..." (the client checks it)

Refusals: wrong password, unknown user and a user without SCRAM credentials all get
CONNACK 0x86 (bad user name or password) after the full exchange, so they cannot be told
apart; malformed SCRAM data (client-first or client-final) is also 0x86; an unknown method
gets CONNACK 0x8C (bad authentication method); an AUTH with another method in the middle
of the exchange is a protocol error (CONNACK or DISCONNECT 0x82). A SCRAM user can still
log in with a plain user name and password in CONNECT.

Mosquitto 2.0 has no SCRAM (it needs a plugin): the whole module is roost_only.
"""

import base64
import hashlib
import hmac
import os
import subprocess

import pytest

import mqtt_raw as R
from conftest import roost_binary
from security_support import Listener

pytestmark = pytest.mark.roost_only(reason="Mosquitto 2.0 has no built-in SCRAM-SHA-256 enhanced authentication")

METHOD = "SCRAM-SHA-256"
CONTINUE_AUTHENTICATION = 0x18
SUCCESS = 0x00
UNSPECIFIED_ERROR = 0x80
PROTOCOL_ERROR = 0x82
BAD_CREDENTIALS = 0x86
BAD_AUTHENTICATION_METHOD = 0x8C
NOT_AUTHORIZED = 0x87
TIMEOUT = 4.0

ALICE_PASSWORD = "secret"
BOB_PASSWORD = "bob-password"
ACL = """\
user alice
topic readwrite alice/#
"""


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

def roost_passwd(*args):
    binary = roost_binary()
    if not binary.exists():
        pytest.fail("Roost binary not found at %s" % binary, pytrace=False)
    res = subprocess.run([str(binary), "passwd", *map(str, args)], capture_output=True, text=True,
                         timeout=15, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, "roost passwd %s -> %d: %s" % (" ".join(map(str, args)), res.returncode, res.stderr)


@pytest.fixture
def scram_broker(launch, tmp_path):
    path = tmp_path / "passwd"
    roost_passwd("-c", "--scram", "-b", path, "alice", ALICE_PASSWORD)
    roost_passwd("-b", path, "bob", BOB_PASSWORD)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("alice:SCRAM-SHA-256$4096:"), lines[0]
    assert lines[1].startswith("bob:$7$"), lines[1]
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    return launch([Listener("tcp")], {"password_file": path, "acl_file": acl})


# ---------------------------------------------------------------------------
# Packets
# ---------------------------------------------------------------------------

def auth_packet(reason, method, data):
    """AUTH (type 15): reason code, properties (Authentication Method, Authentication Data)."""
    props = [(R.AUTHENTICATION_METHOD, method), (R.AUTHENTICATION_DATA, data)]
    return R.packet(R.AUTH, 0, bytes([reason]) + R.encode_properties(props))


def parse_auth(pkt):
    """(reason, props) of an AUTH packet; an empty body means reason 0 (success)."""
    assert pkt.type == R.AUTH, "expected AUTH, got %r" % (pkt,)
    if not pkt.body:
        return 0, []
    props = []
    if len(pkt.body) > 1:
        props, _ = R.decode_properties(pkt.body, 1)
    return pkt.body[0], props


def scram_connect(conn, data, method=METHOD, client_id="scram-client"):
    props = [(R.AUTHENTICATION_METHOD, method)]
    if data is not None:
        props.append((R.AUTHENTICATION_DATA, data))
    conn.send(R.connect(client_id=client_id, version=5, props=props))


def read_reply(conn):
    """The broker's next packet: AUTH, CONNACK or DISCONNECT."""
    pkt = conn.read_packet(TIMEOUT)
    assert pkt.type in (R.AUTH, R.CONNACK, R.DISCONNECT), "unexpected %r" % (pkt,)
    return pkt


def assert_refused(conn, pkt, expected):
    """pkt is a CONNACK with reason `expected`; the broker then closes the connection."""
    assert pkt.type == R.CONNACK, "expected CONNACK %#x, got %r" % (expected, pkt)
    ack = R.parse_connack(pkt, 5)
    assert ack.reason == expected, "CONNACK %#x, expected %#x" % (ack.reason, expected)
    closed, _ = conn.wait_closed(3)
    assert closed, "the broker must close the connection after a refusing CONNACK"


# ---------------------------------------------------------------------------
# SCRAM client side (RFC 5802 section 3)
# ---------------------------------------------------------------------------

class ScramClient:
    def __init__(self, user, password):
        self.user = user
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.gs2_header = "n,,"
        self.first_bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), self.nonce)
        self.server_signature = None

    def client_first(self):
        return (self.gs2_header + self.first_bare).encode()

    @staticmethod
    def parse_attributes(message):
        attributes = {}
        for part in message.split(","):
            assert len(part) >= 2 and part[1] == "=", "bad SCRAM attribute %r in %r" % (part, message)
            attributes.setdefault(part[0], part[2:])
        return attributes

    def check_server_first(self, data):
        """Parses server-first; returns (combined nonce, salt, iterations)."""
        message = data.decode()
        attributes = self.parse_attributes(message)
        nonce, salt, iterations = attributes["r"], base64.b64decode(attributes["s"], validate=True), int(attributes["i"])
        assert nonce.startswith(self.nonce) and len(nonce) > len(self.nonce), message
        assert iterations >= 4096, message
        assert len(salt) >= 1, message
        return nonce, salt, iterations

    def client_final(self, server_first, password=None, nonce=None):
        combined, salt, iterations = self.check_server_first(server_first)
        password = self.password if password is None else password.encode()
        without_proof = "c=%s,r=%s" % (base64.b64encode(self.gs2_header.encode()).decode(), nonce or combined)
        auth_message = ",".join([self.first_bare, server_first.decode(), without_proof]).encode()
        salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        signature = hmac.new(stored_key, auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.server_signature = hmac.new(server_key, auth_message, "sha256").digest()
        return ("%s,p=%s" % (without_proof, base64.b64encode(proof).decode())).encode()

    def verify_server_final(self, data):
        attributes = self.parse_attributes(data.decode())
        assert "e" not in attributes, "server-final reports an error: %r" % data
        assert hmac.compare_digest(base64.b64decode(attributes["v"], validate=True), self.server_signature), \
            "the server signature does not verify: the broker does not know alice's ServerKey"


def server_first_of(conn, client):
    """Reads the AUTH continue after CONNECT; returns the server-first-message."""
    pkt = read_reply(conn)
    assert pkt.type == R.AUTH, "expected AUTH (continue authentication), got %r" % (pkt,)
    reason, props = parse_auth(pkt)
    assert reason == CONTINUE_AUTHENTICATION, "AUTH reason %#x, expected 0x18" % reason
    assert R.prop(props, R.AUTHENTICATION_METHOD) == METHOD
    data = R.prop(props, R.AUTHENTICATION_DATA)
    assert data, "AUTH without Authentication Data"
    client.check_server_first(data)
    return data


def full_exchange(raws, port, user, password, client_id="scram-client"):
    """Runs the whole exchange with `password`; returns (conn, client, reply to client-final)."""
    conn = raws(port)
    client = ScramClient(user, password)
    scram_connect(conn, client.client_first(), client_id=client_id)
    server_first = server_first_of(conn, client)
    conn.send(auth_packet(CONTINUE_AUTHENTICATION, METHOD, client.client_final(server_first)))
    return conn, client, read_reply(conn)


def publish_and_receive(conn, topic, payload, pid):
    """QoS 1 PUBLISH on conn (subscribed to topic); returns (PUBACK reason, payloads received)."""
    conn.send(R.publish(topic, payload, qos=1, pid=pid, version=5))
    puback_reason, received = None, []
    for _ in range(4):
        try:
            pkt = conn.read_packet(1.5 if puback_reason is not None else TIMEOUT)
        except TimeoutError:
            break
        if pkt.type == R.PUBACK:
            assert R.ack_pid(pkt) == pid
            puback_reason = pkt.body[2] if len(pkt.body) > 2 else 0
        elif pkt.type == R.PUBLISH:
            message = R.parse_publish(pkt, 5)
            received.append(message.payload)
            if message.qos == 1:
                conn.send(R.puback(message.pid, version=5))
        if puback_reason is not None and (received or puback_reason != 0):
            break
    return puback_reason, received


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def test_scram_login_then_publish_and_subscribe_under_alices_acl(scram_broker, raws):
    conn, client, pkt = full_exchange(raws, scram_broker.port, "alice", ALICE_PASSWORD)
    assert pkt.type == R.CONNACK, "expected CONNACK, got %r" % (pkt,)
    ack = R.parse_connack(pkt, 5)
    assert ack.reason == SUCCESS, "CONNACK %#x" % ack.reason
    assert R.prop(ack.props, R.AUTHENTICATION_METHOD) == METHOD
    server_final = R.prop(ack.props, R.AUTHENTICATION_DATA)
    assert server_final and server_final.startswith(b"v="), server_final
    client.verify_server_final(server_final)

    assert conn.mqtt_subscribe("alice/#", qos=1, version=5) == [1]
    reason, received = publish_and_receive(conn, "alice/news", b"hello", pid=7)
    assert reason == 0 and received == [b"hello"], (reason, received)
    # The ACL grants alice only alice/#: the identity is the SCRAM user.
    reason, _ = publish_and_receive(conn, "bob/news", b"nope", pid=8)
    assert reason == NOT_AUTHORIZED, "PUBACK %#x for a topic alice may not write" % reason


def test_wrong_password_is_bad_credentials(scram_broker, raws):
    conn, _, pkt = full_exchange(raws, scram_broker.port, "alice", "Secret")
    assert_refused(conn, pkt, BAD_CREDENTIALS)


@pytest.mark.parametrize("user", ["mallory", "bob"], ids=["unknown-user", "user-without-scram-entry"])
def test_unknown_and_non_scram_users_look_like_a_wrong_password(scram_broker, raws, user):
    """The server-first looks like alice's (16-byte salt, 4096 iterations); the refusal is
    the same 0x86 as for a wrong password, after the final step."""
    password = BOB_PASSWORD if user == "bob" else "whatever"
    conn = raws(scram_broker.port)
    client = ScramClient(user, password)
    scram_connect(conn, client.client_first())
    server_first = server_first_of(conn, client)
    _, salt, iterations = client.check_server_first(server_first)
    assert len(salt) == 16 and iterations == 4096, server_first
    conn.send(auth_packet(CONTINUE_AUTHENTICATION, METHOD, client.client_final(server_first)))
    assert_refused(conn, read_reply(conn), BAD_CREDENTIALS)

    alice = raws(scram_broker.port)
    reference = ScramClient("alice", ALICE_PASSWORD)
    scram_connect(alice, reference.client_first(), client_id="alice-reference")
    alice_first = reference.check_server_first(server_first_of(alice, reference))
    assert len(alice_first[1]) == len(salt) and alice_first[2] == iterations


@pytest.mark.parametrize("method", ["SCRAM-SHA-1", "FOO"])
def test_unknown_method_is_bad_authentication_method(scram_broker, raws, method):
    conn = raws(scram_broker.port)
    scram_connect(conn, ScramClient("alice", ALICE_PASSWORD).client_first(), method=method)
    assert_refused(conn, read_reply(conn), BAD_AUTHENTICATION_METHOD)


def test_other_method_in_the_middle_is_a_protocol_error(scram_broker, raws):
    conn = raws(scram_broker.port)
    client = ScramClient("alice", ALICE_PASSWORD)
    scram_connect(conn, client.client_first())
    server_first = server_first_of(conn, client)
    conn.send(auth_packet(CONTINUE_AUTHENTICATION, "SCRAM-SHA-1", client.client_final(server_first)))
    pkt = read_reply(conn)
    if pkt.type == R.DISCONNECT:
        reason, _ = R.parse_disconnect(pkt)
        assert reason == PROTOCOL_ERROR, "DISCONNECT %#x, expected 0x82" % reason
        closed, _ = conn.wait_closed(3)
        assert closed
    else:
        assert_refused(conn, pkt, PROTOCOL_ERROR)


@pytest.mark.parametrize("data", [
    b"hello",
    b"",
    b"p=tls-unique,,n=alice,r=abc",
    b"n,,n=alice",
    b"n,,n=al=ice,r=abc",
    b"n,,n=alice,r=a b",
    b"n,,\xff\xfe",
], ids=["garbage", "empty", "channel-binding", "no-nonce", "bad-escape", "bad-nonce", "not-utf8"])
def test_malformed_client_first_is_bad_credentials(scram_broker, raws, data):
    conn = raws(scram_broker.port)
    scram_connect(conn, data)
    assert_refused(conn, read_reply(conn), BAD_CREDENTIALS)


def test_missing_client_first_is_bad_credentials(scram_broker, raws):
    conn = raws(scram_broker.port)
    scram_connect(conn, None)
    assert_refused(conn, read_reply(conn), BAD_CREDENTIALS)


@pytest.mark.parametrize("kind", ["garbage", "wrong-nonce", "wrong-binding"])
def test_malformed_client_final_is_bad_credentials(scram_broker, raws, kind):
    conn = raws(scram_broker.port)
    client = ScramClient("alice", ALICE_PASSWORD)
    scram_connect(conn, client.client_first())
    server_first = server_first_of(conn, client)
    if kind == "garbage":
        final = b"this is not scram"
    elif kind == "wrong-nonce":
        final = client.client_final(server_first, nonce=client.nonce + "x")
    else:
        final = client.client_final(server_first).replace(b"c=biws,", b"c=eSws,", 1)
    conn.send(auth_packet(CONTINUE_AUTHENTICATION, METHOD, final))
    assert_refused(conn, read_reply(conn), BAD_CREDENTIALS)


def test_scram_user_can_log_in_with_a_plain_password(scram_broker, raws):
    for user, password, expected in [("alice", ALICE_PASSWORD, SUCCESS), ("alice", "Secret", BAD_CREDENTIALS),
                                     ("bob", BOB_PASSWORD, SUCCESS)]:
        conn = raws(scram_broker.port)
        ack = conn.mqtt_connect("plain-" + user, version=5, username=user, password=password.encode(),
                                timeout=TIMEOUT)
        assert ack.reason == expected, "%s: CONNACK %#x, expected %#x" % (user, ack.reason, expected)
    conn = raws(scram_broker.port)
    assert conn.mqtt_connect("plain-alice-311", version=4, username="alice",
                             password=ALICE_PASSWORD.encode()).reason == 0
