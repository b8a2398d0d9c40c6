"""JWT authentication: a JSON Web Token sent as the MQTT password.

The broker runs with `jwt_secret: S` (HS256; S at least 32 bytes) or
`jwt_public_key: FILE` (a PEM RSA or EC public key; RS*/PS*/ES*), optionally
`jwt_issuer` / `jwt_audience`, next to a password file and `allow_anonymous: false`
(all in the config file). Tokens are made here with PyJWT (`pip install pyjwt
cryptography`; CI installs both, and with CI=true a missing PyJWT fails instead of
skipping).

- A valid token (signature, `exp` required, `nbf`, `iat`, `iss` / `aud` when configured)
  logs in as its `sub`: CONNACK 0. The user name must be that `sub` or absent (MQTT 5 may
  send a password without a user name; 3.1.1 needs one, so it always sends `sub`).
- Expired, forged (wrong secret or key, tampered payload), `alg: none`, an HS256 token
  against a public-key-only broker (key confusion), a token for another user, one over
  8 kB: CONNACK 0x86 (MQTT 5) / 4 (3.1.1).
- Password-file users still log in with their passwords.
- A JWT key alone (no password file) turns anonymous access off: 0x87 / 5 without
  credentials, unless `allow_anonymous: true`.
- The public key file is read again when it changes (checked every 5 s, no SIGHUP).
- The `acl` claim ({"pub": [...], "sub": [...], "all": [...]}, `%u` / `%c` substituted)
  restricts that client: a PUBLISH outside `pub`/`all` gets PUBACK 0x87 (MQTT 5; 3.1.1
  acknowledges normally) and is not delivered; a SUBSCRIBE outside `sub`/`all` gets SUBACK
  0x87 / 0x80.

Mosquitto 2.0 has no built-in JWT authentication: the whole module is roost_only.
"""

import base64
import hashlib
import hmac
import json
import time

import pytest

import mqtt_raw as R
import support
from security_support import Listener, roundtrip, wait_until, write_atomically, write_password_file

pytestmark = pytest.mark.roost_only(reason="Mosquitto 2.0 has no built-in JWT authentication")

V311, V5 = 4, 5
BAD_CREDENTIALS = {V311: 4, V5: 0x86}
NOT_AUTHORIZED = {V311: 5, V5: 0x87}
SUBACK_REFUSED = {V311: 0x80, V5: 0x87}
PUBACK_REFUSED = {V311: 0, V5: 0x87}   # 3.1.1 has no way to say no: acknowledged, dropped

SECRET = "roost-interop-jwt-secret-0123456789-abcdefghijklmnopqrstuvwxyz"   # 64 bytes
PASSWORDS = {"admin": "admin-password", "carol": "carol-password"}
ISSUER = "https://issuer.example"
AUDIENCE = "roost-interop"


# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------

def pyjwt():
    """PyJWT with its cryptography backend, or skip (fail with CI=true)."""
    try:
        import jwt
        from cryptography.hazmat.primitives.asymmetric import ec, rsa   # noqa: F401
    except ImportError:
        support.missing("PyJWT with cryptography", "pip install pyjwt cryptography")
    return jwt


def claims(sub="alice", lifetime=300, **extra):
    now = int(time.time())
    body = {"sub": sub, "iat": now, "exp": now + lifetime}
    body.update(extra)
    return body


def hs256(body, secret=SECRET, alg="HS256"):
    return pyjwt().encode(body, secret, algorithm=alg)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(body):
    """An `alg: none` token, built by hand (PyJWT refuses to make one for a key)."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return "%s.%s." % (header, b64url(json.dumps(body).encode()))


class KeyPair:
    """A private key (for signing here) and its public key as a PEM file (for the broker)."""

    def __init__(self, kind, directory):
        pyjwt()
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        if kind == "ES256":
            self.private = ec.generate_private_key(ec.SECP256R1())
        else:
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.alg = kind
        self.public_pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.path = directory / ("%s-public.pem" % kind.lower())
        self.path.write_bytes(self.public_pem)

    def sign(self, body, alg=None):
        return pyjwt().encode(body, self.private, algorithm=alg or self.alg)


# ---------------------------------------------------------------------------
# Brokers and clients
# ---------------------------------------------------------------------------

def start(launch, tmp_path, **jwt_settings):
    password_file = write_password_file(tmp_path / "passwd", PASSWORDS)
    settings = {"password_file": password_file, "allow_anonymous": False}
    settings.update(jwt_settings)
    return launch([Listener("tcp")], settings, style="config")


@pytest.fixture
def hmac_broker(launch, tmp_path):
    pyjwt()
    return start(launch, tmp_path, jwt_secret=SECRET)


def connack(raws, broker, version, token, username="alice", client_id=None):
    """CONNECT with `token` as the password; returns (reason, conn). username=None sends
    none (MQTT 5 only: 3.1.1 needs a user name with a password)."""
    conn = raws(broker.port)
    password = token.encode() if isinstance(token, str) else token
    ack = conn.mqtt_connect(client_id or "jwt-%d" % version, version=version, username=username,
                            password=password)
    return ack.reason, conn


def assert_refused(raws, broker, version, token, **kwargs):
    reason, conn = connack(raws, broker, version, token, **kwargs)
    assert reason == BAD_CREDENTIALS[version], "CONNACK %#x, expected %#x" % (reason, BAD_CREDENTIALS[version])
    closed, _ = conn.wait_closed(3)
    assert closed, "the broker must close the connection after a refusing CONNACK"


class Peer:
    """A raw client that publishes, subscribes and collects deliveries."""

    def __init__(self, raws, broker, version, client_id, username, password):
        self.version = version
        self.conn = raws(broker.port)
        self.pid = 0
        self.inbox = []
        ack = self.conn.mqtt_connect(client_id, version=version, username=username,
                                     password=password.encode() if password is not None else None)
        assert ack.reason == 0, "%s refused with %#x" % (client_id, ack.reason)

    def _next(self, ptype, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            pkt = self.conn.read_packet(max(0.05, deadline - time.monotonic()))
            if pkt.type == ptype:
                return pkt
            if pkt.type == R.PUBLISH:
                self._keep(pkt)
                continue
            raise AssertionError("expected %s, got %r" % (R.PACKET_NAMES[ptype], pkt))

    def _keep(self, pkt):
        msg = R.parse_publish(pkt, self.version)
        self.inbox.append(msg)
        if msg.qos == 1:
            self.conn.send(R.puback(msg.pid, self.version))

    def publish(self, topic, payload=b"x"):
        """QoS 1; the PUBACK's reason code (0 for 3.1.1; 0x10 counts as 0)."""
        self.pid += 1
        self.conn.send(R.publish(topic, payload, qos=1, pid=self.pid, version=self.version))
        pkt = self._next(R.PUBACK)
        assert R.ack_pid(pkt) == self.pid
        reason = pkt.body[2] if len(pkt.body) > 2 else 0
        return 0 if reason == 0x10 else reason

    def subscribe(self, *filters):
        self.pid += 1
        opts = R.sub_options(1) if self.version == V5 else 1
        self.conn.send(R.subscribe(self.pid, [(f, opts) for f in filters], self.version))
        got_pid, codes = R.parse_suback(self._next(R.SUBACK), self.version)
        assert got_pid == self.pid
        return codes

    def topics(self, wait=0.5):
        deadline = time.monotonic() + wait
        while True:
            try:
                pkt = self.conn.read_packet(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
            if pkt.type == R.PUBLISH:
                self._keep(pkt)
        got, self.inbox = self.inbox, []
        return sorted(m.topic for m in got)


def admin(raws, broker):
    """A password-file user with no ACL: sees everything published."""
    peer = Peer(raws, broker, V5, "jwt-observer", "admin", PASSWORDS["admin"])
    assert peer.subscribe("#") == [1]
    return peer


# ---------------------------------------------------------------------------
# HMAC
# ---------------------------------------------------------------------------

def test_valid_token_accepted(hmac_broker, raws, version):
    reason, _ = connack(raws, hmac_broker, version, hs256(claims()), username="alice")
    assert reason == 0, "CONNACK %#x" % reason


def test_valid_token_without_user_name_mqtt5(hmac_broker, raws):
    reason, _ = connack(raws, hmac_broker, V5, hs256(claims()), username=None, client_id="jwt-no-user")
    assert reason == 0, "CONNACK %#x" % reason
    reason, _ = connack(raws, hmac_broker, V5, hs256(claims()), username="", client_id="jwt-empty-user")
    assert reason == 0, "CONNACK %#x" % reason


def test_paho_clients_with_tokens(hmac_broker, clients, version):
    sub = clients(hmac_broker.port, "paho-jwt-alice", version, username="alice", password=hs256(claims()))
    pub = clients(hmac_broker.port, "paho-jwt-bob", version, username="bob", password=hs256(claims("bob")))
    sub.subscribe("jwt/t", 1)
    roundtrip(sub, pub, "jwt/t", b"token holders talk")
    refused = clients(hmac_broker.port, "paho-jwt-old", version, username="alice",
                      password=hs256(claims(lifetime=-3600)), expect_success=False)
    assert refused.connack_rc == BAD_CREDENTIALS[V5]   # paho reports 3.1.1 codes as MQTT 5 reasons


def test_user_name_must_be_the_subject(hmac_broker, raws, version):
    assert_refused(raws, hmac_broker, version, hs256(claims("alice")), username="bob")
    assert_refused(raws, hmac_broker, version, hs256(claims("alice")), username="admin")


def test_expired_token_refused(hmac_broker, raws, version):
    assert_refused(raws, hmac_broker, version, hs256(claims(lifetime=-120)))


def test_token_without_exp_refused(hmac_broker, raws, version):
    assert_refused(raws, hmac_broker, version, hs256({"sub": "alice"}))


def test_not_yet_valid_token_refused(hmac_broker, raws, version):
    assert_refused(raws, hmac_broker, version, hs256(claims(nbf=int(time.time()) + 600)))


def test_forged_tokens_refused(hmac_broker, raws, version):
    assert_refused(raws, hmac_broker, version, hs256(claims(), secret="x" * 64))
    header, _, signature = hs256(claims("alice")).split(".")
    tampered = "%s.%s.%s" % (header, b64url(json.dumps(claims("admin")).encode()), signature)
    assert_refused(raws, hmac_broker, version, tampered, username="admin")


def test_alg_none_refused(hmac_broker, raws, version):
    assert_refused(raws, hmac_broker, version, unsigned(claims()))


def test_oversized_token_refused(hmac_broker, raws, version):
    assert_refused(raws, hmac_broker, version, hs256(claims(padding="p" * 9000)))


def test_password_file_users_still_log_in(hmac_broker, raws, version):
    reason, _ = connack(raws, hmac_broker, version, PASSWORDS["carol"], username="carol")
    assert reason == 0
    assert_refused(raws, hmac_broker, version, "not-carols-password", username="carol")
    # A token for a password-file user name is a token like any other.
    reason, _ = connack(raws, hmac_broker, version, hs256(claims("carol")), username="carol",
                        client_id="carol-token")
    assert reason == 0


def test_no_credentials_still_not_authorized(hmac_broker, raws, version):
    conn = raws(hmac_broker.port)
    ack = conn.mqtt_connect("jwt-anon-%d" % version, version=version)
    assert ack.reason == NOT_AUTHORIZED[version]


@pytest.mark.parametrize("key", ["jwt_secret", "jwt_public_key"])
def test_anonymous_refused_with_only_a_jwt_key(launch, tmp_path, raws, version, key):
    """No password file and no allow_anonymous: a JWT key alone turns anonymous access off."""
    keys = KeyPair("ES256", tmp_path)
    value, sign = (SECRET, hs256) if key == "jwt_secret" else (keys.path, keys.sign)
    closed = launch([Listener("tcp")], {key: value}, style="config")
    conn = raws(closed.port)
    ack = conn.mqtt_connect("jwt-only-anon-%d" % version, version=version)
    assert ack.reason == NOT_AUTHORIZED[version], "anonymous CONNECT got %#x" % ack.reason
    assert conn.wait_closed(3)[0]
    reason, _ = connack(raws, closed, version, sign(claims()))
    assert reason == 0, "a valid token got %#x" % reason
    opened = launch([Listener("tcp")], {key: value, "allow_anonymous": True}, style="config")
    conn = raws(opened.port)
    ack = conn.mqtt_connect("jwt-only-anon-%d" % version, version=version)
    assert ack.reason == 0, "allow_anonymous: true, anonymous CONNECT got %#x" % ack.reason


# ---------------------------------------------------------------------------
# Public keys
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ES256", "RS256"])
def test_public_key_tokens(launch, tmp_path, raws, version, kind):
    keys = KeyPair(kind, tmp_path)
    broker = start(launch, tmp_path, jwt_public_key=keys.path)
    reason, _ = connack(raws, broker, version, keys.sign(claims()))
    assert reason == 0, "CONNACK %#x" % reason
    if kind == "RS256":
        reason, _ = connack(raws, broker, version, keys.sign(claims(), alg="PS256"), client_id="jwt-pss")
        assert reason == 0, "PS256: CONNACK %#x" % reason
    (tmp_path / "stranger").mkdir()
    stranger = KeyPair(kind, tmp_path / "stranger")
    assert_refused(raws, broker, version, stranger.sign(claims()))
    assert_refused(raws, broker, version, unsigned(claims()))


@pytest.mark.parametrize("kind", ["ES256", "RS256"])
def test_hmac_token_against_a_public_key_refused(launch, tmp_path, raws, version, kind):
    """Key confusion: an HS256 token whose secret is the broker's public key file."""
    keys = KeyPair(kind, tmp_path)
    broker = start(launch, tmp_path, jwt_public_key=keys.path)
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims()).encode())
    mac = hmac.new(keys.public_pem, ("%s.%s" % (header, payload)).encode(), hashlib.sha256).digest()
    assert_refused(raws, broker, version, "%s.%s.%s" % (header, payload, b64url(mac)))
    assert_refused(raws, broker, version, hs256(claims()))


def test_public_key_file_reloaded_when_it_changes(launch, tmp_path, raws):
    """Without SIGHUP: once the key file holds another key (checked every 5 s), tokens of the
    new key are accepted and those of the old one refused; open connections stay up."""
    old = KeyPair("ES256", tmp_path)
    (tmp_path / "next").mkdir()
    new = KeyPair("ES256", tmp_path / "next")
    # The polling below fails logins on purpose: no login back-off for them.
    broker = start(launch, tmp_path, jwt_public_key=old.path, auth_backoff_after=0)
    reason, kept = connack(raws, broker, V5, old.sign(claims()), client_id="jwt-before")
    assert reason == 0
    assert_refused(raws, broker, V5, new.sign(claims()), client_id="jwt-new-early")
    write_atomically(old.path, new.public_pem.decode())

    def new_key_accepted():
        return connack(raws, broker, V5, new.sign(claims()), client_id="jwt-new")[0] == 0
    wait_until(new_key_accepted, timeout=12, interval=0.5, what="a token of the new key accepted without SIGHUP")
    assert_refused(raws, broker, V5, old.sign(claims()), client_id="jwt-old-late")
    assert kept.is_open(0.1), "the reload dropped a connection"


def test_issuer_and_audience(launch, tmp_path, raws, version):
    keys = KeyPair("ES256", tmp_path)
    broker = start(launch, tmp_path, jwt_public_key=keys.path, jwt_issuer=ISSUER, jwt_audience=AUDIENCE)
    reason, _ = connack(raws, broker, version, keys.sign(claims(iss=ISSUER, aud=AUDIENCE)))
    assert reason == 0, "CONNACK %#x" % reason
    reason, _ = connack(raws, broker, version, keys.sign(claims(iss=ISSUER, aud=["other", AUDIENCE])),
                        client_id="jwt-aud-list")
    assert reason == 0, "CONNACK %#x" % reason
    assert_refused(raws, broker, version, keys.sign(claims(iss="https://evil.example", aud=AUDIENCE)))
    assert_refused(raws, broker, version, keys.sign(claims(iss=ISSUER, aud="another-service")))
    assert_refused(raws, broker, version, keys.sign(claims(aud=AUDIENCE)))
    assert_refused(raws, broker, version, keys.sign(claims(iss=ISSUER)))


# ---------------------------------------------------------------------------
# The acl claim
# ---------------------------------------------------------------------------

ACL = {"pub": ["devices/%c/up", "chat/%u"], "sub": ["devices/%c/down", "news/#"], "all": ["shared/+"]}


def acl_peer(raws, broker, version, acl=ACL):
    token = hs256(claims("alice", acl=acl))
    return Peer(raws, broker, version, "dev1-%d" % version, "alice", token)


def test_acl_claim_restricts_publishing(hmac_broker, raws, version):
    observer = admin(raws, hmac_broker)
    alice = acl_peer(raws, hmac_broker, version)
    cid = "dev1-%d" % version
    allowed = ["devices/%s/up" % cid, "chat/alice", "shared/x"]
    forbidden = ["devices/other/up", "chat/bob", "news/today", "devices/%s/down" % cid, "shared/x/y"]
    for topic in allowed:
        assert alice.publish(topic) == 0, topic
    for topic in forbidden:
        assert alice.publish(topic) == PUBACK_REFUSED[version], topic
    assert observer.topics(0.8) == sorted(allowed)


def test_acl_claim_restricts_subscribing(hmac_broker, raws, version):
    alice = acl_peer(raws, hmac_broker, version)
    cid = "dev1-%d" % version
    refused = SUBACK_REFUSED[version]
    codes = alice.subscribe("devices/%s/down" % cid, "news/+/x", "shared/y", "chat/alice",
                            "devices/other/down", "secret/#")
    assert codes == [1, 1, 1, refused, refused, refused]
    # A wider filter that covers some allowed topics is granted; only those are delivered.
    assert alice.subscribe("#") == [1]
    observer = admin(raws, hmac_broker)
    for topic in ("news/a", "devices/%s/down" % cid, "secret/b", "chat/alice", "shared/c"):
        assert observer.publish(topic) == 0
    assert set(alice.topics(0.8)) == {"news/a", "devices/%s/down" % cid, "shared/c"}


def test_token_without_acl_claim_is_not_restricted(hmac_broker, raws, version):
    observer = admin(raws, hmac_broker)
    alice = Peer(raws, hmac_broker, version, "free-%d" % version, "alice", hs256(claims()))
    assert alice.publish("anything/at/all") == 0
    assert alice.subscribe("secret/#") == [1]
    assert observer.topics(0.5) == ["anything/at/all"]
