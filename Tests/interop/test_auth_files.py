"""Password file (`--password-file F`, Mosquitto's format, e.g. made by mosquitto_passwd),
`roost passwd`, and the ACL file (`--acl-file F`, Mosquitto's acl_file format), including
their reload on SIGHUP.

Return codes: a wrong password or an unknown user gets CONNACK 0x86 (MQTT 5) / 4 (3.1.1);
no user name while anonymous clients are refused gets 0x87 / 5. A PUBLISH the ACL forbids
gets PUBACK / PUBREC 0x87 in MQTT 5 (acknowledged normally in 3.1.1) and is not delivered;
a SUBSCRIBE with nothing readable gets 0x87 / 0x80; a will to a forbidden topic is refused
at CONNECT (0x87 / 5).

BROKER=mosquitto: runs against Mosquitto 2.0 with password_file / acl_file /
allow_anonymous (per_listener_settings for per-listener allow_anonymous); the places where
Mosquitto 2.0.11 deviates are roost_only and say how.
"""

import subprocess
import time

import pytest

import mqtt_raw as R
from conftest import BROKER, roost_binary
from security_support import (
    Listener, mosquitto_tool, roundtrip, wait_until, write_atomically, write_password_file)

V311, V5 = 4, 5
BAD_CREDENTIALS = {V311: 4, V5: 0x86}
if BROKER == "mosquitto":
    # Mosquitto 2.0.11 answers a wrong password / unknown user with "not authorized" (5 / 0x87)
    # instead of "bad user name or password" (4 / 0x86); test_bad_credentials_reason_code
    # (roost_only) holds the difference, the other tests accept Mosquitto's code.
    BAD_CREDENTIALS = {V311: 5, V5: 0x87}
NOT_AUTHORIZED = {V311: 5, V5: 0x87}
SUBACK_REFUSED = {V311: 0x80, V5: 0x87}

PASSWORDS = {"alice": "alice-secret", "bob": "b0b: with spaces & colon", "admin": "admin-pw"}


def connack(raws, port, version, client_id, username=None, password=None, **kwargs):
    """CONNECT on a fresh raw connection; returns (reason, conn)."""
    conn = raws(port)
    if isinstance(password, str):
        password = password.encode()
    ack = conn.mqtt_connect(client_id, version=version, username=username, password=password, **kwargs)
    return ack.reason, conn


def assert_refused(raws, port, version, expected, **kwargs):
    reason, conn = connack(raws, port, version, "refused-%d" % version, **kwargs)
    assert reason == expected, "CONNACK %#x, expected %#x" % (reason, expected)
    closed, _ = conn.wait_closed(3)
    assert closed, "the broker must close the connection after a refusing CONNACK"


# ---------------------------------------------------------------------------
# Password file made by mosquitto_passwd
# ---------------------------------------------------------------------------

def mosquitto_passwd(*args):
    tool = mosquitto_tool("mosquitto_passwd")
    res = subprocess.run([tool, *map(str, args)], capture_output=True, timeout=10, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, "mosquitto_passwd %s: %s" % (" ".join(map(str, args)), res.stderr)
    return res


@pytest.fixture(params=["sha512-pbkdf2", "sha512"])
def mosq_pwfile(request, tmp_path):
    """A password file made by mosquitto_passwd (both of its hash formats)."""
    path = tmp_path / ("passwd-%s" % request.param)
    first = True
    for user, password in PASSWORDS.items():
        mosquitto_passwd("-H", request.param, *(["-c"] if first else []), "-b", path, user, password)
        first = False
    return path


@pytest.fixture
def pw_broker(launch, mosq_pwfile):
    return launch([Listener("tcp")], {"password_file": mosq_pwfile})


def test_good_password_accepted(pw_broker, raws, clients, version):
    for user, password in PASSWORDS.items():
        reason, _ = connack(raws, pw_broker.port, version, "ok-%s" % user, username=user, password=password)
        assert reason == 0, "%s refused with %#x" % (user, reason)
    sub = clients(pw_broker.port, "paho-alice", version, username="alice", password=PASSWORDS["alice"])
    pub = clients(pw_broker.port, "paho-bob", version, username="bob", password=PASSWORDS["bob"])
    sub.subscribe("auth/t", 1)
    roundtrip(sub, pub, "auth/t", b"authenticated")


def test_wrong_password_refused(pw_broker, raws, clients, version):
    assert_refused(raws, pw_broker.port, version, BAD_CREDENTIALS[version],
                   username="alice", password="alice-secreT")
    assert_refused(raws, pw_broker.port, version, BAD_CREDENTIALS[version],
                   username="alice", password=PASSWORDS["bob"])
    c = clients(pw_broker.port, "paho-wrong", version, username="bob", password="nope", expect_success=False)
    assert c.connack_rc == BAD_CREDENTIALS[V5]   # paho reports 3.1.1 return codes as MQTT 5 reasons


@pytest.mark.roost_only(reason="Mosquitto 2.0.11 answers bad credentials with 0x87 / 5 (not authorized)")
def test_bad_credentials_reason_code(pw_broker, raws, version):
    expected = {V311: 4, V5: 0x86}[version]
    assert_refused(raws, pw_broker.port, version, expected, username="alice", password="wrong")
    assert_refused(raws, pw_broker.port, version, expected, username="nobody", password="x")
    assert_refused(raws, pw_broker.port, version, {V311: 5, V5: 0x87}[version])


def test_unknown_user_refused(pw_broker, raws, version):
    assert_refused(raws, pw_broker.port, version, BAD_CREDENTIALS[version],
                   username="mallory", password="alice-secret")
    # User names are case sensitive.
    assert_refused(raws, pw_broker.port, version, BAD_CREDENTIALS[version],
                   username="Alice", password=PASSWORDS["alice"])


def test_user_name_without_password_refused(pw_broker, raws, version):
    assert_refused(raws, pw_broker.port, version, BAD_CREDENTIALS[version], username="alice")


def test_anonymous_refused_once_a_password_file_is_given(pw_broker, raws, version):
    assert_refused(raws, pw_broker.port, version, NOT_AUTHORIZED[version])


def test_anonymous_allowed_with_the_flag(launch, mosq_pwfile, raws, clients, version):
    b = launch([Listener("tcp")], {"password_file": mosq_pwfile, "allow_anonymous": True})
    reason, _ = connack(raws, b.port, version, "anon-ok")
    assert reason == 0
    # Users still need their right password.
    assert_refused(raws, b.port, version, BAD_CREDENTIALS[version], username="alice", password="wrong")
    anon = clients(b.port, "anon-paho", version)
    alice = clients(b.port, "alice-paho", version, username="alice", password=PASSWORDS["alice"])
    anon.subscribe("mixed/t", 1)
    roundtrip(anon, alice, "mixed/t", b"user to anonymous")


@pytest.mark.roost_only(reason="Roost's config file spelling (password_file:, allow_anonymous:)")
@pytest.mark.parametrize("allow", [True, False])
def test_password_file_and_allow_anonymous_in_config_file(launch, mosq_pwfile, raws, version, allow):
    b = launch([Listener("tcp")], {"password_file": mosq_pwfile, "allow_anonymous": allow}, style="config")
    reason, _ = connack(raws, b.port, version, "cfg-anon")
    assert reason == (0 if allow else NOT_AUTHORIZED[version])
    reason, _ = connack(raws, b.port, version, "cfg-alice", username="alice", password=PASSWORDS["alice"])
    assert reason == 0


def test_per_listener_allow_anonymous(launch, mosq_pwfile, raws, version):
    """allow_anonymous on a listener overrides the global one (config file)."""
    strict, lenient = Listener("tcp", allow_anonymous=False), Listener("tcp", allow_anonymous=True)
    b = launch([strict, lenient], {"password_file": mosq_pwfile}, style="config")
    assert_refused(raws, strict.port, version, NOT_AUTHORIZED[version])
    assert connack(raws, lenient.port, version, "lenient-anon")[0] == 0
    for port in (strict.port, lenient.port):
        reason, _ = connack(raws, port, version, "both-alice-%d" % port, username="alice",
                            password=PASSWORDS["alice"])
        assert reason == 0
        assert_refused(raws, port, version, BAD_CREDENTIALS[version], username="alice", password="x")
    assert b.alive()


def test_password_file_reload_on_sighup(launch, tmp_path, raws, clients, version):
    path = tmp_path / "passwd"
    mosquitto_passwd("-c", "-b", path, "alice", PASSWORDS["alice"])
    b = launch([Listener("tcp")], {"password_file": path})
    alice = clients(b.port, "reload-alice", version, username="alice", password=PASSWORDS["alice"])
    alice.subscribe("reload/#", 1)
    assert_refused(raws, b.port, version, BAD_CREDENTIALS[version], username="carol", password="carol-pw")

    mosquitto_passwd("-b", path, "carol", "carol-pw")
    b.hup()

    def carol_gets_in():
        reason, conn = connack(raws, b.port, version, "carol-try", username="carol", password="carol-pw")
        conn.close()
        return reason == 0
    wait_until(carol_gets_in, timeout=5, interval=0.2, what="the user added before SIGHUP logging in")
    # The connection made before the reload is still up and served.
    assert not alice.disconnected.is_set(), "SIGHUP dropped a connection"
    carol = clients(b.port, "reload-carol", version, username="carol", password="carol-pw")
    roundtrip(alice, carol, "reload/x", b"after reload")

    # A changed password: the old one stops working, the new one works.
    mosquitto_passwd("-b", path, "carol", "carol-new")
    b.hup()

    def old_password_refused():
        reason, conn = connack(raws, b.port, version, "carol-old", username="carol", password="carol-pw")
        conn.close()
        return reason == BAD_CREDENTIALS[version]
    wait_until(old_password_refused, timeout=5, interval=0.2, what="the old password refused after SIGHUP")
    assert connack(raws, b.port, version, "carol-new", username="carol", password="carol-new")[0] == 0
    roundtrip(alice, alice, "reload/y", b"alice still connected")


# ---------------------------------------------------------------------------
# roost passwd
# ---------------------------------------------------------------------------

def roost_passwd(*args):
    binary = roost_binary()
    if not binary.exists():
        pytest.fail("Roost binary not found at %s" % binary, pytrace=False)
    res = subprocess.run([str(binary), "passwd", *map(str, args)], capture_output=True, text=True,
                         timeout=15, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, "roost passwd %s -> %d: %s" % (" ".join(map(str, args)), res.returncode, res.stderr)
    return res


def users_in(path):
    return [line.split(":", 1)[0] for line in path.read_text().splitlines() if line.strip()]


def check_logins(raws, port, good, bad, version=V5, kind="roost"):
    # Mosquitto 2.0 answers a wrong password with "not authorized" (0x87 / 5), Roost with
    # "bad user name or password" (0x86 / 4); either way the client must be refused.
    refused = {BAD_CREDENTIALS[version]} if kind == "roost" else {BAD_CREDENTIALS[version], NOT_AUTHORIZED[version]}
    for user, password in good.items():
        reason, _ = connack(raws, port, version, "good-" + user, username=user, password=password)
        assert reason == 0, "%s/%r refused with %#x" % (user, password, reason)
    for user, password in bad.items():
        reason, _ = connack(raws, port, version, "bad-" + user, username=user, password=password)
        assert reason in refused, "%s/%r: CONNACK %#x" % (user, password, reason)


def test_roost_passwd_create_add_replace_delete(launch, raws, tmp_path):
    """`roost passwd` (-c create, -b batch, -D delete) against the broker under test."""
    # '!' and '-' are not in base64's alphabet: a password found in the file is a plaintext one,
    # never a chance run of characters in a salt or hash.
    path = tmp_path / "roost-passwd"
    roost_passwd("-c", "-b", path, "alice", "a1-!")
    assert users_in(path) == ["alice"]
    roost_passwd("-b", path, "bob", "b1-!")
    roost_passwd("-b", path, "carol", "c1-!")
    roost_passwd("-b", path, "alice", "a2-!")           # replace
    assert sorted(users_in(path)) == ["alice", "bob", "carol"]
    assert users_in(path).count("alice") == 1
    roost_passwd("-D", path, "bob")
    assert sorted(users_in(path)) == ["alice", "carol"]
    text = path.read_text()
    assert "a2-!" not in text and "c1-!" not in text, "passwords must be hashed"
    assert all(line.split(":", 1)[1].startswith("$7$") for line in text.splitlines() if line), text
    b = launch([Listener("tcp")], {"password_file": path})
    check_logins(raws, b.port, good={"alice": "a2-!", "carol": "c1-!"},
                 bad={"alice": "a1-!", "bob": "b1-!", "carol": "a2-!"})
    # -c starts a new file.
    roost_passwd("-c", "-b", path, "dave", "d1-!")
    assert users_in(path) == ["dave"]


def test_roost_passwd_file_works_with_real_mosquitto(launch, raws, tmp_path):
    path = tmp_path / "for-mosquitto"
    roost_passwd("-c", "-b", path, "alice", "wonderland")
    roost_passwd("-b", path, "bob", PASSWORDS["bob"])
    m = launch([Listener("tcp")], {"password_file": path}, kind="mosquitto")
    check_logins(raws, m.port, good={"alice": "wonderland", "bob": PASSWORDS["bob"]},
                 bad={"alice": "Wonderland", "carol": "x"}, kind="mosquitto")
    check_logins(raws, m.port, good={"alice": "wonderland"}, bad={"bob": "b"}, version=V311, kind="mosquitto")


def test_files_edited_by_both_tools_work_with_both_brokers(launch, raws, tmp_path):
    """mosquitto_passwd and roost passwd update each other's files; Roost and Mosquitto accept them."""
    path = tmp_path / "shared-passwd"
    mosquitto_passwd("-c", "-b", path, "alice", "from-mosquitto")
    roost_passwd("-b", path, "bob", "from-roost")
    mosquitto_passwd("-b", path, "carol", "mosquitto-again")
    roost_passwd("-b", path, "alice", "alice-by-roost")      # roost replaces a mosquitto_passwd entry
    mosquitto_passwd("-D", path, "carol")
    roost_passwd("-b", path, "carol", "carol-by-roost")
    mosquitto_passwd("-b", path, "bob", "bob-by-mosquitto")   # mosquitto_passwd replaces a roost entry
    roost_passwd("-D", path, "bob")
    mosquitto_passwd("-b", path, "bob", "bob-final")
    assert sorted(users_in(path)) == ["alice", "bob", "carol"]
    good = {"alice": "alice-by-roost", "bob": "bob-final", "carol": "carol-by-roost"}
    bad = {"alice": "from-mosquitto", "bob": "from-roost", "carol": "mosquitto-again"}
    for kind in ("roost", "mosquitto"):
        b = launch([Listener("tcp")], {"password_file": path}, kind=kind)
        check_logins(raws, b.port, good, bad, kind=kind)
        b.stop()


def test_password_file_made_here_works(launch, raws, tmp_path, version):
    """The $7$ lines security_support writes (used by the ACL tests) are accepted."""
    path = write_password_file(tmp_path / "py-passwd", PASSWORDS)
    b = launch([Listener("tcp")], {"password_file": path})
    check_logins(raws, b.port, good=PASSWORDS, bad={"alice": "x"}, version=version)


# ---------------------------------------------------------------------------
# ACL file
# ---------------------------------------------------------------------------

ACL = """\
# Topic lines before the first user line: anonymous clients only.
topic read public/#
topic write inbox/anon

user alice
topic readwrite alice/#
topic deny alice/secret/#
topic read news/#
topic write reports/alice
topic plain/alice

user bob
topic deny bob/locked/#
topic readwrite bob/#
topic read news/#

user admin
topic readwrite #
topic readwrite $SYS/#

# Patterns: everyone, anonymous included.
pattern readwrite users/%u/#
pattern deny users/%u/private/#
pattern write clients/%c/out
pattern read clients/%c/in
"""


@pytest.fixture
def acl_broker(launch, tmp_path):
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    pw = write_password_file(tmp_path / "passwd", PASSWORDS)
    b = launch([Listener("tcp")], {"password_file": pw, "acl_file": acl, "allow_anonymous": True})
    b.acl_path = acl
    return b


class Peer:
    """A raw connection as one user, with publish helpers that return the broker's reason code
    and keep PUBLISH packets that arrive meanwhile."""

    def __init__(self, raws, broker, version, user=None, client_id=None, **kwargs):
        self.version = version
        self.conn = raws(broker.port)
        self.inbox = []
        self.pid = 0
        password = PASSWORDS[user].encode() if user else None
        ack = self.conn.mqtt_connect(client_id or "%s-%d" % (user or "anon", version), version=version,
                                     username=user, password=password, **kwargs)
        self.connack = ack.reason

    def next_pid(self):
        self.pid += 1
        return self.pid

    def _until(self, ptype, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            pkt = self.conn.read_packet(max(0.05, deadline - time.monotonic()))
            if pkt.type == ptype:
                return pkt
            if pkt.type in (R.PUBLISH, R.PUBREL):
                self._keep(pkt)
                continue
            raise AssertionError("expected %s, got %r" % (R.PACKET_NAMES[ptype], pkt))

    def _keep(self, pkt):
        """Acknowledge a delivery (PUBLISH) or finish one (PUBREL) and keep the message."""
        if pkt.type == R.PUBREL:
            self.conn.send(R.pubcomp(R.ack_pid(pkt), self.version))
            return
        msg = R.parse_publish(pkt, self.version)
        self.inbox.append(msg)
        if msg.qos == 1:
            self.conn.send(R.puback(msg.pid, self.version))
        elif msg.qos == 2:
            self.conn.send(R.pubrec(msg.pid, self.version))

    def publish(self, topic, payload=b"x", qos=1, retain=False):
        """Returns the reason code of PUBACK (QoS 1) / PUBREC (QoS 2), 0 for 3.1.1; None for QoS 0."""
        pid = self.next_pid() if qos else None
        self.conn.send(R.publish(topic, payload, qos=qos, retain=retain, pid=pid, version=self.version))
        if qos == 0:
            return None
        pkt = self._until(R.PUBACK if qos == 1 else R.PUBREC)
        assert R.ack_pid(pkt) == pid
        reason = pkt.body[2] if len(pkt.body) > 2 else 0
        if reason == 0x10:   # "no matching subscribers" is a success too
            reason = 0
        if qos == 2 and reason < 0x80:
            self.conn.send(R.pubrel(pid, self.version))
            self._until(R.PUBCOMP)
        return reason

    def subscribe(self, *filters, qos=1):
        pid = self.next_pid()
        opts = R.sub_options(qos) if self.version == V5 else qos
        self.conn.send(R.subscribe(pid, [(f, opts) for f in filters], self.version))
        got_pid, codes = R.parse_suback(self._until(R.SUBACK), self.version)
        assert got_pid == pid
        return codes

    def received(self, wait=0.5):
        """Topics (and payloads) delivered within `wait` seconds, including those seen earlier."""
        deadline = time.monotonic() + wait
        while True:
            try:
                pkt = self.conn.read_packet(max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break
            if pkt.type in (R.PUBLISH, R.PUBREL):
                self._keep(pkt)
        got, self.inbox = self.inbox, []
        return got

    def topics(self, wait=0.5):
        return sorted(m.topic for m in self.received(wait))


def peer(raws, broker, version, user=None, **kwargs):
    p = Peer(raws, broker, version, user, **kwargs)
    assert p.connack == 0, "%s refused with %#x" % (user, p.connack)
    return p


def granted(codes):
    return [c < 0x80 for c in codes]


# Mosquitto 2.0.11 grants every SUBSCRIBE and applies the ACL only when delivering, so under
# BROKER=mosquitto only the deliveries are checked; test_acl_subscribe_reason_codes (roost_only)
# holds Roost's SUBACK codes.
CHECK_SUBACK = BROKER != "mosquitto"


def expect_granted(codes, expected):
    if CHECK_SUBACK:
        assert granted(codes) == expected, "SUBACK %r, expected granted=%r" % (codes, expected)


# (topic, alice may read, alice may write)
ALICE_TOPICS = [
    ("alice/notes", True, True),        # topic readwrite alice/#
    ("alice/secret/key", False, False),  # topic deny alice/secret/# (after the readwrite: deny wins)
    ("news/today", True, False),         # topic read
    ("reports/alice", False, True),      # topic write
    ("plain/alice", True, True),         # topic without access: readwrite
    ("public/board", False, False),      # anonymous-only line
    ("bob/notes", False, False),         # another user's
    ("users/alice/x", True, True),       # pattern readwrite users/%u/#
    ("users/alice/private/x", False, False),  # pattern deny
    ("users/bob/x", False, False),       # %u is bob there
    ("clients/alice-dev/out", False, True),   # pattern write clients/%c/out
    ("clients/alice-dev/in", True, False),    # pattern read clients/%c/in
    ("clients/other/out", False, False),
]


@pytest.mark.parametrize("topic,can_read,can_write", ALICE_TOPICS, ids=[t[0] for t in ALICE_TOPICS])
def test_acl_rule_kinds(acl_broker, raws, version, topic, can_read, can_write):
    admin = peer(raws, acl_broker, V5, "admin")
    assert admin.subscribe("#") == [1]
    alice = peer(raws, acl_broker, version, "alice", client_id="alice-dev")

    codes = alice.subscribe(topic)
    if CHECK_SUBACK:
        assert codes == ([1] if can_read else [SUBACK_REFUSED[version]]), \
            "SUBSCRIBE %s: %r" % (topic, codes)
    reason = alice.publish(topic, b"by alice")
    assert reason == (0 if can_write or version == V311 else 0x87), "PUBLISH %s: %#x" % (topic, reason)
    delivered = [m.topic for m in admin.received(0.5)]
    assert delivered == ([topic] if can_write else []), "admin saw %r" % delivered
    # Readable: what someone else publishes there reaches alice.
    assert admin.publish(topic, b"by admin") == 0
    got = [m.payload for m in alice.received(0.5) if m.topic == topic]
    if can_read:
        assert got[-1:] == [b"by admin"], got
    else:
        assert got == []


def test_acl_publish_denied_mqtt5_reason_codes(acl_broker, raws):
    admin = peer(raws, acl_broker, V5, "admin")
    admin.subscribe("#")
    alice = peer(raws, acl_broker, V5, "alice")
    assert alice.publish("news/today", qos=1) == 0x87          # PUBACK 0x87
    assert alice.publish("news/today", qos=2) == 0x87          # PUBREC 0x87, the flow ends there
    assert alice.publish("news/today", qos=0) is None
    assert alice.publish("alice/ok", b"allowed", qos=2) == 0
    assert [m.topic for m in admin.received(0.5)] == ["alice/ok"]
    # The connection is still fine.
    alice.conn.send(R.pingreq())
    assert alice._until(R.PINGRESP)


def test_acl_publish_denied_mqtt311_acknowledged_not_delivered(acl_broker, raws):
    admin = peer(raws, acl_broker, V5, "admin")
    admin.subscribe("#")
    alice = peer(raws, acl_broker, V311, "alice")
    for qos in (0, 1, 2):
        assert alice.publish("news/today", b"q%d" % qos, qos=qos) in (None, 0)
    assert alice.publish("alice/ok", b"allowed", qos=1) == 0
    assert [m.topic for m in admin.received(0.5)] == ["alice/ok"]


@pytest.mark.roost_only(reason="Mosquitto 2.0.11 grants every SUBSCRIBE and filters at delivery")
def test_acl_subscribe_reason_codes(acl_broker, raws, version):
    alice = peer(raws, acl_broker, version, "alice")
    refused = SUBACK_REFUSED[version]
    codes = alice.subscribe("alice/#", "bob/#", "news/+", "reports/alice", "alice/secret/#", "#", "+/secret/x")
    # "#" and "+/secret/x" include readable topics (alice/..., news/...; alice/secret/x is denied
    # but e.g. news/secret/x is readable), so they are granted.
    assert codes == [1, refused, 1, refused, refused, 1, 1]
    anon = peer(raws, acl_broker, version, client_id="anon-sub")
    assert anon.subscribe("public/#", "inbox/anon", "alice/#") == [1, refused, refused]


def test_acl_wider_filter_delivers_only_readable_topics(acl_broker, raws, version):
    admin = peer(raws, acl_broker, V5, "admin")
    alice = peer(raws, acl_broker, version, "alice")
    expect_granted(alice.subscribe("#"), [True])
    expect_granted(alice.subscribe("alice/#"), [True])   # also covers alice/secret/# (denied)
    for topic in ("alice/a", "alice/secret/b", "news/c", "reports/alice", "bob/d", "public/e",
                  "users/alice/f", "users/alice/private/g"):
        assert admin.publish(topic, b"to everyone") == 0
    topics = sorted(set(alice.topics(0.8)))
    assert topics == ["alice/a", "news/c", "users/alice/f"]


def test_acl_anonymous_rules(acl_broker, raws, version):
    admin = peer(raws, acl_broker, V5, "admin")
    admin.subscribe("#")
    anon = peer(raws, acl_broker, version, client_id="anon-dev")
    expect_granted(anon.subscribe("public/#", "inbox/anon", "alice/#"), [True, False, False])
    assert anon.publish("inbox/anon", b"hello") == 0
    assert anon.publish("public/board") == (0x87 if version == V5 else 0)
    # Patterns apply to anonymous clients too (%c).
    assert anon.publish("clients/anon-dev/out") == 0
    assert sorted(m.topic for m in admin.received(0.5)) == ["clients/anon-dev/out", "inbox/anon"]
    assert admin.publish("public/board", b"news") == 0
    assert [m.topic for m in anon.received(0.5)] == ["public/board"]
    # The anonymous lines do not apply to users.
    alice = peer(raws, acl_broker, version, "alice")
    expect_granted(alice.subscribe("public/#"), [False])
    assert alice.publish("inbox/anon") == (0x87 if version == V5 else 0)


def test_acl_deny_wins_whatever_the_order(acl_broker, raws, version):
    admin = peer(raws, acl_broker, V5, "admin")
    admin.subscribe("#")
    bob = peer(raws, acl_broker, version, "bob")
    denied = 0x87 if version == V5 else 0
    # deny listed before the readwrite
    assert bob.publish("bob/locked/door") == denied
    assert bob.publish("bob/open") == 0
    expect_granted(bob.subscribe("bob/locked/#", "bob/open"), [False, True])
    # pattern deny after pattern readwrite
    assert bob.publish("users/bob/private/diary") == denied
    assert bob.publish("users/bob/public") == 0
    assert sorted(m.topic for m in admin.received(0.5)) == ["bob/open", "users/bob/public"]


@pytest.mark.roost_only(reason="Mosquitto 2.0.11 accepts the CONNECT and drops the will when it is due")
def test_acl_will_to_forbidden_topic_refused_at_connect(acl_broker, raws, version):
    p = Peer(raws, acl_broker, version, "alice", will=dict(topic="news/alice-gone", payload=b"bye"))
    assert p.connack == NOT_AUTHORIZED[version]
    closed, _ = p.conn.wait_closed(3)
    assert closed
    p = Peer(raws, acl_broker, version, client_id="anon-will", will=dict(topic="alice/x", payload=b"bye"))
    assert p.connack == NOT_AUTHORIZED[version]


def test_acl_will_only_to_writable_topics(acl_broker, raws, version):
    admin = peer(raws, acl_broker, V5, "admin")
    admin.subscribe("#")
    # A will to a writable topic is accepted and published when the connection dies.
    ok = peer(raws, acl_broker, version, "alice", client_id="alice-will",
              will=dict(topic="alice/gone", payload=b"bye", qos=1))
    ok.conn.close()
    assert [(m.topic, m.payload) for m in admin.received(2.0)] == [("alice/gone", b"bye")]
    # One to a forbidden topic is never published (Roost refuses the CONNECT; see above).
    bad = Peer(raws, acl_broker, version, "alice", client_id="alice-bad-will",
               will=dict(topic="news/alice-gone", payload=b"bye", qos=1))
    bad.conn.close()
    assert admin.received(1.0) == []


def test_acl_retained_messages_only_where_readable(acl_broker, raws, version):
    admin = peer(raws, acl_broker, V5, "admin")
    for topic in ("news/r", "bob/r", "alice/secret/r", "alice/r", "public/r"):
        assert admin.publish(topic, b"kept " + topic.encode(), retain=True) == 0
    alice = peer(raws, acl_broker, version, "alice")
    expect_granted(alice.subscribe("#"), [True])
    got = sorted((m.topic, m.retain) for m in alice.received(0.8))
    assert got == [("alice/r", True), ("news/r", True)]
    expect_granted(alice.subscribe("bob/r"), [False])
    assert alice.received(0.3) == []
    # A retained PUBLISH that the ACL refuses does not replace the stored one.
    alice.publish("news/r", b"overwritten?", retain=True)
    fresh = peer(raws, acl_broker, V5, "admin", client_id="admin-2")
    fresh.subscribe("news/r")
    assert [m.payload for m in fresh.received(0.5)] == [b"kept news/r"]


def test_nobody_publishes_to_sys_topics(acl_broker, raws, version):
    watcher = peer(raws, acl_broker, V5, "admin", client_id="sys-watch")
    expect_granted(watcher.subscribe("$SYS/broker/fake/#"), [True])
    for user in ("admin", None):
        p = peer(raws, acl_broker, version, user, client_id="sys-pub-%s" % user)
        reason = p.publish("$SYS/broker/fake/uptime", b"0")
        assert reason == (0x87 if version == V5 else 0)
    assert watcher.received(0.5) == []


def test_acl_reload_on_sighup(acl_broker, raws, version):
    admin = peer(raws, acl_broker, V5, "admin")
    admin.subscribe("extra/#")
    alice = peer(raws, acl_broker, version, "alice")
    denied = 0x87 if version == V5 else 0
    assert alice.publish("extra/one") == denied
    expect_granted(alice.subscribe("extra/feed"), [False])
    assert admin.received(0.3) == []

    text = ACL.replace("topic plain/alice\n", "topic plain/alice\ntopic readwrite extra/#\n")
    write_atomically(acl_broker.acl_path, text)
    acl_broker.hup()

    def now_allowed():
        alice.publish("extra/one", b"after reload")
        return [m for m in admin.received(0.2) if m.payload == b"after reload"]
    wait_until(now_allowed, timeout=5, interval=0.2, what="a rule added before SIGHUP allowing a publish")
    expect_granted(alice.subscribe("extra/feed"), [True])
    assert admin.publish("extra/feed", b"to alice") == 0
    assert [m.payload for m in alice.received(0.5) if m.topic == "extra/feed"] == [b"to alice"]

    # Removing the rule again takes it away from the same connection.
    write_atomically(acl_broker.acl_path, ACL)
    acl_broker.hup()

    def denied_again():
        alice.publish("extra/one", b"after second reload")
        return not [m for m in admin.received(0.2) if m.payload == b"after second reload"]
    wait_until(denied_again, timeout=5, interval=0.2, what="the removed rule no longer allowing a publish")
    assert alice.conn.is_open(0.1), "SIGHUP dropped the connection"


@pytest.mark.roost_only(reason="Mosquitto reloads its files on SIGHUP only")
def test_files_reloaded_when_they_change(acl_broker, raws, tmp_path):
    """An edited ACL file takes effect without SIGHUP (checked every 5 s). The password file:
    test_password_file_reloaded_when_it_changes."""
    admin = peer(raws, acl_broker, V5, "admin")
    admin.subscribe("extra/#")
    alice = peer(raws, acl_broker, V5, "alice")
    assert alice.publish("extra/one") == 0x87
    write_atomically(acl_broker.acl_path, ACL.replace("topic plain/alice\n", "topic plain/alice\ntopic readwrite extra/#\n"))

    def now_allowed():
        alice.publish("extra/one", b"after edit")
        return [m for m in admin.received(0.2) if m.payload == b"after edit"]
    wait_until(now_allowed, timeout=12, interval=0.5, what="an edited ACL file taking effect without SIGHUP")
    assert alice.conn.is_open(0.1), "the reload dropped the connection"


@pytest.mark.roost_only(reason="Mosquitto reloads its files on SIGHUP only")
def test_password_file_reloaded_when_it_changes(launch, raws, tmp_path):
    """An edited password file takes effect without SIGHUP (checked every 5 s): a user added
    with `roost passwd` logs in, a deleted one is refused, and open connections stay up."""
    pw = write_password_file(tmp_path / "passwd", PASSWORDS)
    # The polling below fails logins on purpose: no login back-off for them.
    b = launch([Listener("tcp")], {"password_file": pw, "auth_backoff_after": 0})
    bob = peer(raws, b, V5, "bob")
    assert connack(raws, b.port, V5, "dave-early", username="dave", password="dave-pw")[0] == BAD_CREDENTIALS[V5]
    # Both edits reach the broker at once: made on a copy that replaces the file.
    edited = tmp_path / "passwd.edited"
    edited.write_text(pw.read_text())
    roost_passwd("-b", edited, "dave", "dave-pw")
    roost_passwd("-D", edited, "bob")
    edited.replace(pw)

    def dave_logs_in():
        return connack(raws, b.port, V5, "dave", username="dave", password="dave-pw")[0] == 0
    wait_until(dave_logs_in, timeout=12, interval=0.5, what="a user added to the password file logging in without SIGHUP")
    reason, _ = connack(raws, b.port, V5, "bob-again", username="bob", password=PASSWORDS["bob"])
    assert reason == BAD_CREDENTIALS[V5], "a deleted user logged in: CONNACK %#x" % reason
    assert bob.conn.is_open(0.1), "the reload dropped the connection of the deleted user"


@pytest.mark.roost_only(reason="Roost's $SYS/broker/security/... counters")
def test_security_counters_in_sys(launch, tmp_path, raws):
    acl = tmp_path / "acl"
    acl.write_text(ACL)
    pw = write_password_file(tmp_path / "passwd", PASSWORDS)
    b = launch([Listener("tcp")], {"password_file": pw, "acl_file": acl, "sys_interval": 1})
    assert_refused(raws, b.port, V5, 0x86, username="alice", password="wrong")
    assert_refused(raws, b.port, V5, 0x87)
    alice = peer(raws, b, V5, "alice")
    assert alice.publish("bob/x") == 0x87
    admin = peer(raws, b, V5, "admin")
    expect_granted(admin.subscribe("$SYS/broker/security/#"), [True])
    deadline = time.monotonic() + 4
    counters = {}
    while time.monotonic() < deadline and not any(v > 0 for v in counters.values()):
        for m in admin.received(0.5):
            try:
                counters[m.topic] = int(m.payload)
            except ValueError:
                pass
    assert any(v > 0 for v in counters.values()), "no non-zero counter under $SYS/broker/security/: %r" % counters
