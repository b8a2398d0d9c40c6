"""Durability: what the broker acknowledged survives SIGKILL or SIGTERM and a restart on the
same data directory.

Covered: sessions (client id, expiry, will and will delay), subscriptions with their options
and subscription identifiers, outgoing QoS 1/2 messages queued or in flight (resent with DUP=1
and the same packet id), inbound QoS 2 packet ids awaiting PUBREL, retained messages with
their expiry; expiry while the broker is down; the start-up errors of the store (directory in
use, damaged file, newer schema); a full disk (refuse, log, recover); `roost db stats`.

Roost only: Mosquitto loses acknowledged messages on SIGKILL by design (it writes its state
on an interval, not before it acknowledges).

Randomness (kill points, QoS mix, payloads) comes from one seed per run. Every test prints it
(shown with a failure) and the crash tests name it in their messages; rerun a failure with
ROOST_DURABILITY_SEED=<seed>.
"""

import os
import queue
import random
import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

import mqtt_raw as R
import support
from conftest import BROKER, Broker, free_port, roost_binary
from pahoclient import V311, V5, TestClient, make_props, mqtt

pytestmark = pytest.mark.roost_only(
    reason="Mosquitto keeps its state in memory between autosaves and loses acknowledged "
           "messages on SIGKILL by design; the tests also drive roost's own store flags")

SEED = int(os.environ.get("ROOST_DURABILITY_SEED") or random.SystemRandom().randrange(1, 2 ** 31))
UNLIMITED_QUEUE = ["--max-queued-messages", "0"]   # the crash tests must not hit the queue cap
_DEFAULT = object()


# ---------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------

@pytest.fixture
def rng(request):
    print("durability seed: ROOST_DURABILITY_SEED=%d (%s)" % (SEED, request.node.nodeid))
    return random.Random("%d/%s" % (SEED, request.node.nodeid))


@pytest.fixture
def durable(request, tmp_path):
    """Factory for roost brokers with a store: durable(data_dir=tmp/data, fsync=None, args=())
    -> a started conftest.Broker (cwd = tmp_path) that can kill() and restart()."""
    if BROKER != "roost":
        pytest.skip("the durability tests drive roost's --data-dir / --fsync / --persistence flags")
    made = []

    def factory(data_dir=_DEFAULT, fsync=None, args=(), start=True):
        extra = []
        if data_dir is _DEFAULT:
            data_dir = tmp_path / "data"
        if data_dir is not None:
            extra += ["--data-dir", str(data_dir)]
        if fsync:
            extra += ["--fsync", fsync]
        extra += [str(a) for a in args]
        broker = Broker("roost", tmp_path, {}, extra_args=extra)
        request.node._interop_broker = broker   # its log is attached to a failure
        made.append(broker)
        if start:
            broker.start()
        return broker

    yield factory
    for broker in made:
        broker.stop()


class _Clients:
    def __init__(self):
        self.made = []

    def paho(self, broker, client_id="", version=V5, connect=True, **kwargs):
        client = TestClient(broker.port, client_id=client_id, version=version, **kwargs)
        self.made.append(client)
        if connect:
            client.connect()
        return client

    def raw(self, broker, timeout=5.0):
        conn = R.RawConn(broker.port, timeout=timeout)
        self.made.append(conn)
        return conn

    def close_all(self):
        for client in self.made:
            if isinstance(client, TestClient):
                client.close_quietly()
            else:
                client.close()


@pytest.fixture
def clients():
    """Clients for brokers that restart: clients.paho(broker, id, version, ...), clients.raw(broker)."""
    made = _Clients()
    yield made
    made.close_all()


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def persistent(clients, broker, client_id, version, expiry=3600, **kwargs):
    """A paho client with a persistent session (5.0: clean start 0 + session expiry)."""
    if version == V5:
        return clients.paho(broker, client_id, V5, clean=False, session_expiry=expiry, **kwargs)
    return clients.paho(broker, client_id, V311, clean=False, **kwargs)


def raw_persistent(clients, broker, client_id, version, expiry=3600, receive_max=None, clean=False):
    """A raw connection with a persistent session; returns (conn, Connack)."""
    conn = clients.raw(broker)
    props = None
    if version == V5:
        props = [(R.SESSION_EXPIRY_INTERVAL, expiry)]
        if receive_max:
            props.append((R.RECEIVE_MAXIMUM, receive_max))
    ack = conn.mqtt_connect(client_id, version=version, clean=clean, props=props)
    assert ack.reason == 0, "CONNACK refused %#x" % ack.reason
    return conn, ack


def stop_broker(broker, how):
    """how: "term" (graceful: must exit 0) or "kill" (SIGKILL)."""
    if how == "term":
        code = broker.stop()
        assert code == 0, "SIGTERM: roost exited with %r, expected 0" % code
    else:
        broker.kill()


def ack_reason(pkt, version):
    """Reason code of a PUBACK/PUBREC/PUBREL/PUBCOMP (0 when absent or 3.1.1)."""
    return pkt.body[2] if version == V5 and len(pkt.body) > 2 else 0


def numbered(idx, qos, pad=0):
    return b"%d:%d:" % (idx, qos) + b"." * pad


def parse_numbered(payload):
    idx, qos, _ = payload.split(b":", 2)
    return int(idx), int(qos)


def receive_until(client, done, timeout, settle=0.5):
    """Messages of a paho client until done(list) or timeout, then whatever comes in `settle` s."""
    got = []
    deadline = time.monotonic() + timeout
    while not done(got):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            got.append(client.messages.get(timeout=min(0.2, remaining)))
        except queue.Empty:
            pass
    return got + client.drain(settle)


def has_all(acked, topics=(), prefix="dur/n"):
    """A done() for receive_until: every idx in acked (numbered messages on topics starting
    with prefix) and every topic in topics has arrived. Linear in the messages."""
    missing = set(acked)
    missing_topics = set(topics)
    state = {"n": 0}

    def done(ms):
        for m in ms[state["n"]:]:
            if m.topic.startswith(prefix):
                missing.discard(parse_numbered(m.payload)[0])
            missing_topics.discard(m.topic)
        state["n"] = len(ms)
        return not missing and not missing_topics
    return done


def already_received(client):
    """Messages a paho client has queued so far, without waiting."""
    got = []
    while True:
        try:
            got.append(client.messages.get_nowait())
        except queue.Empty:
            return got


def audit(received, acked, qos_of, seen=None, order="global"):
    """Checks a stream of numbered messages against what the publisher had acknowledged.

    received: paho Messages or raw Publishes (other topics are ignored); acked: indexes that
    must be there; qos_of: idx -> published QoS (also: what was published at all); seen: counts
    carried over from earlier streams (QoS 2 must stay unique across them).
    order: "global" (raw subscribers: PUBLISH arrival order) or "per-qos" (paho hands a QoS 2
    message to on_message only at PUBREL, after later QoS 1 messages; MQTT 4.6 orders per QoS).
    Returns (problems, seen)."""
    seen = dict(seen or {})
    problems = []
    firsts = []
    for m in received:
        if not m.topic.startswith("dur/n") and not m.topic.startswith("rep/n"):
            continue
        idx, qos = parse_numbered(m.payload)
        if idx not in qos_of:
            problems.append("message %d was delivered but never published" % idx)
            continue
        if qos != qos_of[idx] or m.qos != qos:
            problems.append("message %d published with QoS %d arrived with QoS %d" % (idx, qos_of[idx], m.qos))
        seen[idx] = seen.get(idx, 0) + 1
        if seen[idx] == 1:
            firsts.append(idx)
    missing = sorted(set(acked) - set(seen))
    if missing:
        problems.append("%d acknowledged message(s) missing, first ones: %s" % (len(missing), missing[:15]))
    dups = sorted(i for i, n in seen.items() if n > 1 and qos_of.get(i) == 2)
    if dups:
        problems.append("%d QoS 2 message(s) delivered more than once: %s" % (len(dups), dups[:15]))
    lanes = [firsts] if order == "global" else [[i for i in firsts if qos_of[i] == q] for q in (1, 2)]
    for lane in lanes:
        inversions = [(a, b) for a, b in zip(lane, lane[1:]) if b < a]
        if inversions:
            problems.append("not in publish order (%s, first appearances): %d inversions, e.g. %s"
                            % (order, len(inversions), inversions[:5]))
    return problems, seen


class RawSubscriber:
    """A raw-socket persistent subscriber that completes every QoS 1/2 exchange and records
    each PUBLISH as it arrives (the real delivery order, unlike paho's on_message)."""

    def __init__(self, clients, broker, client_id, version, expiry=3600):
        self.version = version
        self.conn, ack = raw_persistent(clients, broker, client_id, version, expiry=expiry)
        self.session_present = ack.session_present

    def subscribe(self, topic, qos):
        return self.conn.mqtt_subscribe(topic, qos=qos, version=self.version)

    def disconnect(self):
        self.conn.send(R.disconnect(self.version))
        self.conn.wait_closed(1.0)
        self.conn.close()

    def receive(self, done, timeout, settle=0.5):
        got = []
        deadline = time.monotonic() + timeout
        quiet_until = None
        while True:
            now = time.monotonic()
            if quiet_until is None and (done(got) or now >= deadline):
                quiet_until = now + settle
            if quiet_until is not None and now >= quiet_until:
                return got
            try:
                pkt = self.conn.read_packet(timeout=min(0.2, (quiet_until or deadline) - now + 0.01))
            except TimeoutError:
                continue
            if pkt.type == R.PUBLISH:
                p = R.parse_publish(pkt, self.version)
                got.append(p)
                if p.qos == 1:
                    self.conn.send(R.puback(p.pid, self.version))
                elif p.qos == 2:
                    self.conn.send(R.pubrec(p.pid, self.version))
            elif pkt.type == R.PUBREL:
                self.conn.send(R.pubcomp(R.ack_pid(pkt), self.version))
            else:
                raise AssertionError("subscriber got %r" % pkt)


def receive(sub, done, timeout, settle=0.5):
    """receive_until for a paho client, RawSubscriber.receive for a raw one."""
    if isinstance(sub, RawSubscriber):
        return sub.receive(done, timeout, settle)
    return receive_until(sub, done, timeout, settle)


class KillSwitch:
    """SIGKILLs the broker once: when the publisher has `after_acks` acknowledgements, or
    `delay` seconds after the first acknowledgement (counting from start() let a slow machine
    kill it before anything was acknowledged, which proves nothing)."""

    def __init__(self, broker, after_acks=None, delay=None, count=lambda: None):
        self.broker = broker
        self.after_acks = after_acks
        self.delay = delay
        self.count = count
        self.fired = False
        self.fired_at = None
        self._lock = threading.Lock()
        self._timer = None

    def start(self):
        pass

    def acked(self, count):
        if self.after_acks is not None and count >= self.after_acks:
            self.fire()
        if self.delay is not None and count >= 1:
            with self._lock:
                if self._timer is None and not self.fired:
                    self._timer = threading.Timer(self.delay, self.fire)
                    self._timer.daemon = True
                    self._timer.start()

    def fire(self):
        with self._lock:
            if self.fired:
                return
            self.fired = True
            self.fired_at = self.count()
            if self.broker.alive():
                self.broker.proc.send_signal(signal.SIGKILL)

    def finish(self):
        """Waits for the timer (fires now if it never did) and reaps the broker."""
        if self._timer is not None:
            self._timer.join()
        self.fire()
        self.broker.kill()


class PahoPublisher:
    """paho publisher with a wide in-flight window; records which publishes got a success
    PUBACK (QoS 1) / PUBCOMP (QoS 2)."""

    def __init__(self, broker, version, client_id, window=100):
        self.client = TestClient(broker.port, client_id=client_id, version=version)
        self.client.c.max_inflight_messages_set(window)
        self.client.c.max_queued_messages_set(0)
        self.client.c.on_publish = self._on_publish
        self.acked_mids = []
        self.refused = {}
        self.on_ack = None
        self.sent = 0
        self.client.connect()

    def _on_publish(self, client, userdata, mid, reason_code, properties):
        value = getattr(reason_code, "value", reason_code)
        if value >= 0x80:
            self.refused[mid] = value
            return
        self.acked_mids.append(mid)
        if self.on_ack:
            self.on_ack(len(self.acked_mids))

    def count(self):
        return len(self.acked_mids)

    def run(self, messages, timeout=10.0):
        """messages: [(idx, qos, topic, payload)]; returns the set of acknowledged idx."""
        mids = []
        for idx, qos, topic, payload in messages:
            if self.client.disconnected.is_set():
                break
            info = self.client.c.publish(topic, payload, qos=qos)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                break
            mids.append((info.mid, idx))
        self.sent = len(mids)
        deadline = time.monotonic() + timeout
        while (time.monotonic() < deadline and not self.client.disconnected.is_set()
               and len(self.acked_mids) + len(self.refused) < len(mids)):
            time.sleep(0.01)
        by_mid = dict(mids)
        return {by_mid[mid] for mid in list(self.acked_mids) if mid in by_mid}

    def close(self):
        self.client.close_quietly()


class RawPublisher:
    """Raw-socket publisher that pipelines PUBLISHes (up to the broker's Receive Maximum in
    flight). A QoS 2 message counts as acknowledged at its PUBREC: from then on the broker owns
    it (and sends PUBREC only once it is stored)."""

    def __init__(self, broker, version, client_id, window=100):
        self.version = version
        self.conn = R.RawConn(broker.port)
        ack = self.conn.mqtt_connect(client_id, version=version)
        assert ack.reason == 0
        limit = R.prop(ack.props, R.RECEIVE_MAXIMUM, 65535) if version == V5 else 65535
        self.window = min(window, limit)
        self.acked = set()
        self.completed = set()
        self.refused = {}
        self.on_ack = None
        self.sent = 0
        self.stopped_by = None

    def count(self):
        return len(self.acked)

    def _ack(self, idx):
        self.acked.add(idx)
        if self.on_ack:
            self.on_ack(len(self.acked))

    def run(self, messages, timeout=10.0):
        conn, version = self.conn, self.version
        outstanding = {}          # pid -> (idx, qos), until PUBACK / PUBCOMP / a refusal
        i = 0
        deadline = time.monotonic() + timeout
        try:
            while (i < len(messages) or outstanding) and time.monotonic() < deadline:
                batch = bytearray()
                while i < len(messages) and len(outstanding) < self.window:
                    idx, qos, topic, payload = messages[i]
                    pid = i % 65535 + 1
                    batch += R.publish(topic, payload, qos=qos, pid=pid, version=version)
                    outstanding[pid] = (idx, qos)
                    i += 1
                if batch:
                    conn.send(bytes(batch))
                    if conn.send_failed:
                        self.stopped_by = "send failed"
                        break
                packets = [conn.read_packet(timeout=min(5.0, max(0.05, deadline - time.monotonic())))]
                while True:
                    more = conn._try_parse()
                    if more is None:
                        break
                    packets.append(more)
                replies = bytearray()
                for pkt in packets:
                    pid = R.ack_pid(pkt)
                    if pid not in outstanding:
                        raise AssertionError("ack for unknown packet id %d: %r" % (pid, pkt))
                    idx, qos = outstanding[pid]
                    reason = ack_reason(pkt, version)
                    if pkt.type == R.PUBACK and qos == 1:
                        del outstanding[pid]
                        if reason < 0x80:
                            self._ack(idx)
                        else:
                            self.refused[idx] = reason
                    elif pkt.type == R.PUBREC and qos == 2:
                        if reason < 0x80:
                            self._ack(idx)
                            replies += R.pubrel(pid, version)
                        else:
                            del outstanding[pid]
                            self.refused[idx] = reason
                    elif pkt.type == R.PUBCOMP and qos == 2:
                        del outstanding[pid]
                        self.completed.add(idx)
                    else:
                        raise AssertionError("unexpected %r for a QoS %d publish" % (pkt, qos))
                if replies:
                    conn.send(bytes(replies))
        except (R.Closed, TimeoutError, OSError) as exc:
            self.stopped_by = repr(exc)
        self.sent = i
        return set(self.acked)

    def close(self):
        self.conn.close()


def fresh_retained(clients, broker, topic_filter, version=V5, expect=None, timeout=3.0):
    """Retained messages a new clean subscriber gets for topic_filter, {topic: Message}."""
    c = clients.paho(broker, "", version) if version == V5 else clients.paho(broker, "dur-ret-check", V311)
    c.subscribe(topic_filter, 1)
    if expect is None:
        got = c.drain(1.0)
    else:
        got = receive_until(c, lambda ms: len(ms) >= expect, timeout, settle=0.4)
    c.disconnect()
    out = {}
    for m in got:
        assert m.topic not in out, "retained %s delivered twice to one new subscription" % m.topic
        out[m.topic] = m
    return out


def run_roost(*args, timeout=15):
    """Runs roost to completion (start-up error cases); returns CompletedProcess."""
    try:
        return subprocess.run([str(roost_binary()), *map(str, args)], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError("roost %s did not exit within %d s (it should refuse to start); "
                             "stderr so far: %r" % (" ".join(map(str, args)), timeout, exc.stderr)) from None


def serve_once(data_dir, *extra, timeout=15):
    """roost serve on a fresh port and data_dir; for the cases where it must refuse to start."""
    return run_roost("serve", "--listen", "127.0.0.1:%d" % free_port(), "--data-dir", data_dir,
                     *extra, timeout=timeout)


def make_store(durable, clients, data_dir):
    """A real store: a persistent session with a queued message and a retained message;
    the broker stopped gracefully. Returns the roost.db path."""
    broker = durable(data_dir=data_dir)
    sub = persistent(clients, broker, "dur-store-maker", V5)
    sub.subscribe("mk/#", 1)
    sub.disconnect()
    pub = clients.paho(broker, "dur-store-pub", V5)
    pub.publish("mk/r", b"retained", qos=1, retain=True)
    pub.publish("mk/q", b"queued", qos=1)
    pub.disconnect()
    assert broker.stop() == 0
    db = Path(data_dir) / "roost.db"
    assert db.is_file(), "no roost.db in %s after a run: %s" % (data_dir, sorted(os.listdir(data_dir)))
    return db


# ---------------------------------------------------------------------------
# 1. SIGKILL while a persistent subscriber is offline
# ---------------------------------------------------------------------------

TOTAL = 1500
CRASH_CASES = [
    # subscriber (kind, version), publisher (kind, version), kill point, --fsync
    pytest.param("paho", V5, "paho", V5, ("acks", 50), None, id="paho5-sub-paho5-pub-kill-at-50"),
    pytest.param("paho", V5, "paho", V5, ("acks", 1000), None, id="paho5-sub-paho5-pub-kill-at-1000"),
    pytest.param("paho", V5, "raw", V311, ("acks", 300), None, id="paho5-sub-raw311-pub-kill-at-300"),
    pytest.param("raw", V5, "raw", V5, ("random-acks", None), "off", id="raw5-sub-raw5-pub-kill-random-fsync-off"),
    pytest.param("raw", V5, "paho", V311, ("acks", 300), None, id="raw5-sub-paho311-pub-kill-at-300"),
    pytest.param("paho", V311, "paho", V311, ("acks", 300), None, id="paho311-sub-paho311-pub-kill-at-300"),
    pytest.param("paho", V311, "paho", V5, ("delay", None), "normal",
                 id="paho311-sub-paho5-pub-kill-delay-fsync-normal"),
    pytest.param("paho", V311, "raw", V5, ("acks", 1000), "full", id="paho311-sub-raw5-pub-kill-at-1000-fsync-full"),
    pytest.param("raw", V311, "raw", V311, ("acks", 50), None, id="raw311-sub-raw311-pub-kill-at-50"),
]


def _subscriber(clients, broker, kind, version, client_id):
    if kind == "raw":
        return RawSubscriber(clients, broker, client_id, version)
    return persistent(clients, broker, client_id, version)


@pytest.mark.parametrize("sub_kind,sub_version,pub_kind,pub_version,kill_at,fsync", CRASH_CASES)
def test_crash_with_subscriber_offline_keeps_acknowledged(durable, clients, rng, sub_kind, sub_version, pub_kind,
                                                          pub_version, kill_at, fsync):
    broker = durable(fsync=fsync, args=UNLIMITED_QUEUE)
    sub = _subscriber(clients, broker, sub_kind, sub_version, "dur-sub")
    assert sub.session_present is False
    assert sub.subscribe("dur/#", 2) == [2]
    sub.disconnect()

    retainer = clients.paho(broker, "dur-retainer", pub_version)
    retained = {}
    for k in range(3):
        topic, payload = "dur/ret/%d" % k, b"retained-%d-%d" % (k, rng.randrange(10 ** 9))
        retainer.publish(topic, payload, qos=1 + k % 2, retain=True)
        retained[topic] = payload
    retainer.disconnect()

    qos_of = {i: rng.choice((1, 2)) for i in range(TOTAL)}
    messages = [(i, qos_of[i], "dur/n", numbered(i, qos_of[i], pad=rng.randrange(0, 200))) for i in range(TOTAL)]
    publisher = (PahoPublisher if pub_kind == "paho" else RawPublisher)(broker, pub_version, "dur-pub")
    kind, n = kill_at
    if kind == "acks":
        switch = KillSwitch(broker, after_acks=n + rng.randrange(0, n // 5 + 1), count=publisher.count)
    elif kind == "random-acks":
        switch = KillSwitch(broker, after_acks=rng.randrange(1, TOTAL - 100), count=publisher.count)
    else:
        # Short, from the first acknowledgement: a debug build acknowledges all 1500 in about 0.3 s.
        switch = KillSwitch(broker, delay=rng.uniform(0.01, 0.15), count=publisher.count)
    publisher.on_ack = switch.acked
    switch.start()
    acked = publisher.run(messages)
    switch.finish()
    publisher.close()
    context = ("seed %d, %s publisher v%d: %d sent, %d acknowledged, SIGKILL at %r acks (planned %s)"
               % (SEED, pub_kind, pub_version, publisher.sent, len(acked), switch.fired_at,
                  switch.after_acks if switch.after_acks is not None else "%.2fs" % switch.delay))
    print(context)
    assert acked, "nothing was acknowledged before the kill (%s)" % context

    broker.restart()
    back = _subscriber(clients, broker, sub_kind, sub_version, "dur-sub")
    assert back.session_present is True, "a returning persistent subscriber must get session present 1 (%s)" % context
    got = receive(back, has_all(acked, retained), timeout=10)
    problems, _ = audit(got, acked, qos_of, order="global" if sub_kind == "raw" else "per-qos")
    queued_retained = {m.topic: m.payload for m in got if m.topic.startswith("dur/ret/")}
    for topic, payload in retained.items():
        if queued_retained.get(topic) != payload:
            problems.append("queued copy of %s missing or wrong: %r" % (topic, queued_retained.get(topic)))
    assert not problems, "%s\n(%s)" % ("\n".join(problems), context)

    # The retained store survived too, and the subscription still routes new messages.
    stored = fresh_retained(clients, broker, "dur/ret/#", version=pub_version, expect=len(retained))
    assert {t: m.payload for t, m in stored.items()} == retained
    assert all(m.retain for m in stored.values())
    late = clients.paho(broker, "dur-late", pub_version)
    late.publish("dur/live", b"after-restart", qos=1)
    tail = receive(back, lambda ms: any(m.topic == "dur/live" for m in ms), timeout=5, settle=0)
    assert [m.payload for m in tail if m.topic == "dur/live"] == [b"after-restart"]


# ---------------------------------------------------------------------------
# 2. SIGKILL while a persistent subscriber is online with unacknowledged messages
# ---------------------------------------------------------------------------

ONLINE_COUNT = 20


def _online_plan(rng):
    """(qos, what the subscriber does) per message: the first five cover every case."""
    plan = [(1, "none"), (1, "ack"), (2, "none"), (2, "rec"), (2, "comp")]
    while len(plan) < ONLINE_COUNT:
        qos = rng.choice((1, 2))
        plan.append((qos, rng.choice(("none", "ack") if qos == 1 else ("none", "rec", "comp"))))
    return plan


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_crash_with_subscriber_online_resends_unacknowledged(durable, clients, rng, version):
    broker = durable()
    plan = _online_plan(rng)
    # 5.0: Receive Maximum 10 keeps some messages queued (never sent) at the kill.
    sub, _ = raw_persistent(clients, broker, "dur-online", version, receive_max=10)
    assert sub.mqtt_subscribe("don/#", qos=2, version=version) == [2]
    pub = clients.paho(broker, "dur-online-pub", version)
    for idx, (qos, _) in enumerate(plan):
        pub.publish("don/m", numbered(idx, qos), qos=qos)   # waits for PUBACK / PUBCOMP

    before = {}          # idx -> Publish as first received
    awaiting_rel = {}    # pid -> idx
    released = set()     # idx whose PUBREL arrived
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        try:
            pkt = sub.read_packet(timeout=0.6)
        except TimeoutError:
            break
        if pkt.type == R.PUBLISH:
            p = R.parse_publish(pkt, version)
            idx, qos = parse_numbered(p.payload)
            assert idx not in before, "message %d sent twice on one connection" % idx
            assert not p.dup, "first delivery of message %d has DUP=1" % idx
            before[idx] = p
            action = plan[idx][1]
            if p.qos == 1 and action == "ack":
                sub.send(R.puback(p.pid, version))
            elif p.qos == 2 and action in ("rec", "comp"):
                sub.send(R.pubrec(p.pid, version))
                awaiting_rel[p.pid] = idx
        elif pkt.type == R.PUBREL:
            idx = awaiting_rel.pop(R.ack_pid(pkt))
            released.add(idx)
            if plan[idx][1] == "comp":
                sub.send(R.pubcomp(R.ack_pid(pkt), version))
        else:
            raise AssertionError("unexpected %r" % pkt)
    assert before, "the online subscriber received nothing"
    assert not awaiting_rel, "no PUBREL for PUBREC'd message(s) %s" % sorted(awaiting_rel.values())
    summary = {idx: (plan[idx], before[idx].pid) for idx in sorted(before)}
    print("seed %d; before the kill (idx: ((qos, action), pid)): %s; never sent: %s"
          % (SEED, summary, sorted(set(range(ONLINE_COUNT)) - set(before))))
    time.sleep(0.3)      # let the subscriber's acks reach the disk: their fate is not the question
    broker.kill()
    broker.restart()

    sub2, ack = raw_persistent(clients, broker, "dur-online", version, receive_max=10)
    assert ack.session_present is True
    after = []           # Publish in arrival order
    rels = []
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            pkt = sub2.read_packet(timeout=1.0)
        except TimeoutError:
            break
        if pkt.type == R.PUBLISH:
            p = R.parse_publish(pkt, version)
            after.append(p)
            sub2.send(R.puback(p.pid, version) if p.qos == 1 else R.pubrec(p.pid, version))
        elif pkt.type == R.PUBREL:
            rels.append(R.ack_pid(pkt))
            sub2.send(R.pubcomp(R.ack_pid(pkt), version))
        else:
            raise AssertionError("unexpected %r" % pkt)

    problems = []
    after_idx = [parse_numbered(p.payload)[0] for p in after]
    by_idx = {}
    for p, idx in zip(after, after_idx):
        by_idx.setdefault(idx, []).append(p)
    for idx, (qos, action) in enumerate(plan):
        first = before.get(idx)
        again = by_idx.get(idx, [])
        if first is None:
            if not again:
                problems.append("message %d (QoS %d, queued at the kill) never delivered" % (idx, qos))
            elif qos == 2 and len(again) > 1:
                problems.append("message %d (QoS 2) delivered %d times after the restart" % (idx, len(again)))
            continue
        if action == "none":
            if not again:
                problems.append("unacknowledged message %d (QoS %d, pid %d) not resent" % (idx, qos, first.pid))
                continue
            p = again[0]
            if not p.dup:
                problems.append("resent message %d (QoS %d) has DUP=0" % (idx, qos))
            if qos == 2 and p.pid != first.pid:
                problems.append("resent QoS 2 message %d came with pid %d, was %d" % (idx, p.pid, first.pid))
            if qos == 2 and len(again) > 1:
                problems.append("message %d (QoS 2) resent %d times" % (idx, len(again)))
        elif action == "rec":
            if again:
                problems.append("message %d: PUBREL was received, yet the PUBLISH came again (dup=%s)"
                                % (idx, again[0].dup))
            if first.pid not in rels:
                problems.append("message %d: PUBREL for pid %d not resent (PUBRELs: %s)" % (idx, first.pid, rels))
        elif action == "comp" and again:
            problems.append("message %d: completed (PUBCOMP) before the kill, yet delivered again" % idx)
    firsts = list(dict.fromkeys(after_idx))
    if firsts != sorted(firsts):
        problems.append("after the restart, messages not in their original order: %s" % firsts)
    assert not problems, "seed %d\n%s\nafter the restart: %s; PUBRELs %s" % (
        SEED, "\n".join(problems), [(i, p.qos, p.pid, p.dup) for i, p in zip(after_idx, after)], rels)


# ---------------------------------------------------------------------------
# 3. Each stored kind across SIGTERM and SIGKILL
# ---------------------------------------------------------------------------

STOPS = pytest.mark.parametrize("stop", ["term", "kill"])


@STOPS
def test_subscription_options_and_identifiers_survive(durable, clients, stop):
    broker = durable()
    a = persistent(clients, broker, "dur-opts", V5)
    assert a.subscribe("opt/nl", 1, no_local=True, sub_id=11) == [1]
    assert a.subscribe("opt/rap", 1, retain_as_published=True, sub_id=12) == [1]
    assert a.subscribe("opt/q0", 0, sub_id=13) == [0]
    assert a.subscribe("opt/plain", 2, sub_id=268435455) == [2]
    a.disconnect()
    b = clients.paho(broker, "dur-opts-b", V5)
    b.publish("opt/rap", b"r1", qos=1, retain=True)     # queued for a, retain kept (RAP)
    b.publish("opt/nl", b"n1", qos=1)
    b.publish("opt/plain", b"p1", qos=2)
    b.disconnect()
    time.sleep(0.2)
    stop_broker(broker, stop)
    broker.restart()

    a = persistent(clients, broker, "dur-opts", V5)
    assert a.session_present is True
    queued = a.get_n(3)
    assert [(m.topic, m.payload, m.retain, m.sub_ids, m.qos) for m in queued] == [
        ("opt/rap", b"r1", True, [12], 1), ("opt/nl", b"n1", False, [11], 1),
        ("opt/plain", b"p1", False, [268435455], 2)]
    a.assert_no_message(0.3)

    a.publish("opt/nl", b"own", qos=1)          # No Local: not back to a
    b = clients.paho(broker, "dur-opts-b", V5)
    b.publish("opt/nl", b"n2", qos=1)
    b.publish("opt/q0", b"z", qos=2)            # granted QoS 0: downgraded
    b.publish("opt/rap", b"r2", qos=1, retain=True)
    b.publish("opt/plain", b"p2", qos=1)
    live = a.get_n(4)
    assert [(m.topic, m.payload, m.qos, m.retain, m.sub_ids) for m in live] == [
        ("opt/nl", b"n2", 1, False, [11]), ("opt/q0", b"z", 0, False, [13]),
        ("opt/rap", b"r2", 1, True, [12]), ("opt/plain", b"p2", 1, False, [268435455])]
    a.assert_no_message(0.3)


@STOPS
@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_inbound_qos2_packet_id_survives(durable, clients, stop, version):
    broker = durable()
    watcher = persistent(clients, broker, "dur-in-watch", V5)
    watcher.subscribe("din/#", 2)
    pub, _ = raw_persistent(clients, broker, "dur-in-pub", version)
    pub.send(R.publish("din/x", b"exactly-once", qos=2, pid=7, version=version))
    rec = pub.expect(R.PUBREC)
    assert R.ack_pid(rec) == 7 and ack_reason(rec, version) == 0
    assert watcher.get().payload == b"exactly-once"
    time.sleep(0.3)
    stop_broker(broker, stop)
    broker.restart()

    watcher = persistent(clients, broker, "dur-in-watch", V5)
    assert watcher.session_present is True
    pub, ack = raw_persistent(clients, broker, "dur-in-pub", version)
    assert ack.session_present is True
    pub.send(R.publish("din/x", b"exactly-once", qos=2, pid=7, dup=True, version=version))
    rec = pub.expect(R.PUBREC)
    assert R.ack_pid(rec) == 7 and ack_reason(rec, version) == 0, "PUBREC %r" % rec
    pub.send(R.pubrel(7, version))
    comp = pub.expect(R.PUBCOMP)
    assert R.ack_pid(comp) == 7
    assert ack_reason(comp, version) == 0, \
        "PUBCOMP reason %#x: the inbound packet id 7 was not kept across the restart" % ack_reason(comp, version)
    extra = watcher.drain(0.8)
    assert not extra, "the resent QoS 2 PUBLISH (DUP, id 7) was delivered again: %r" % [
        (m.topic, m.payload) for m in extra]
    # The id is free again: a new message with id 7 is delivered.
    pub.send(R.publish("din/x", b"next", qos=2, pid=7, version=version))
    assert R.ack_pid(pub.expect(R.PUBREC)) == 7
    pub.send(R.pubrel(7, version))
    assert R.ack_pid(pub.expect(R.PUBCOMP)) == 7
    assert watcher.get().payload == b"next"


@STOPS
def test_retained_messages_and_their_expiry_survive(durable, clients, stop):
    broker = durable()
    p = clients.paho(broker, "dur-ret-pub", V5)
    p.publish("dret/plain", b"plain", qos=1, retain=True)
    p.publish("dret/exp", b"expiring", qos=1, retain=True, props=make_props("PUBLISH", MessageExpiryInterval=60))
    p.publish("dret/q2", b"two", qos=2, retain=True)
    p.publish("dret/gone", b"deleted-later", qos=1, retain=True)
    p.publish("dret/gone", b"", qos=1, retain=True)
    p.publish("dret/replaced", b"old", qos=1, retain=True)
    p.publish("dret/replaced", b"new", qos=1, retain=True)
    published = time.monotonic()
    p.disconnect()
    time.sleep(0.2)
    stop_broker(broker, stop)
    broker.restart()

    got = fresh_retained(clients, broker, "dret/#", V5, expect=4)
    assert {t: m.payload for t, m in got.items()} == {
        "dret/plain": b"plain", "dret/exp": b"expiring", "dret/q2": b"two", "dret/replaced": b"new"}
    assert all(m.retain for m in got.values())
    assert got["dret/plain"].prop("MessageExpiryInterval") is None
    remaining = got["dret/exp"].prop("MessageExpiryInterval")
    elapsed = time.monotonic() - published
    assert remaining is not None and 60 - elapsed - 2 <= remaining <= 60, \
        "retained expiry after %.1f s: %r (expected about %.0f)" % (elapsed, remaining, 60 - elapsed)
    old = fresh_retained(clients, broker, "dret/#", V311, expect=4)
    assert sorted(old) == ["dret/exp", "dret/plain", "dret/q2", "dret/replaced"]


@STOPS
@pytest.mark.parametrize("returns", [False, True], ids=["will-fires", "client-returns"])
def test_pending_delayed_will_survives_restart(durable, clients, stop, returns):
    broker = durable()
    watcher = persistent(clients, broker, "dur-will-watch", V5)
    watcher.subscribe("dwill/#", 1)
    will = {"topic": "dwill/w", "payload": b"gone", "qos": 1,
            "props": make_props("WILLMESSAGE", WillDelayInterval=3)}
    w = clients.paho(broker, "dur-will", V5, clean=False, session_expiry=60, will=will)
    w.abort()                         # no DISCONNECT: the will is due in 3 s
    t0 = time.monotonic()
    time.sleep(0.4)
    stop_broker(broker, stop)
    early = [m for m in already_received(watcher) if m.topic == "dwill/w"]
    assert not early, "will published %.1f s after the drop, before its 3 s delay (at shutdown?)" % (
        early[0].received_at - t0)
    broker.restart()
    watcher = persistent(clients, broker, "dur-will-watch", V5)
    assert watcher.session_present is True
    if returns:
        back = clients.paho(broker, "dur-will", V5, clean=False, session_expiry=60)
        assert back.session_present is True
        extra = watcher.drain(max(0.5, t0 + 4.5 - time.monotonic()))
        assert not extra, "will published although the client came back within the delay: %r" % [
            (m.topic, m.payload) for m in extra]
    else:
        got = receive_until(watcher, lambda ms: any(m.topic == "dwill/w" for m in ms),
                            timeout=max(0.5, t0 + 7 - time.monotonic()), settle=0.5)
        wills = [m for m in got if m.topic == "dwill/w"]
        assert wills, "the delayed will was not published after the restart (7 s after the drop)"
        assert len(wills) == 1 and wills[0].payload == b"gone"
        at = wills[0].received_at - t0
        assert at >= 2.5, "will published %.1f s after the drop; its delay is 3 s" % at


@STOPS
def test_will_of_session_that_expired_while_down_is_published_at_start(durable, clients, stop):
    """Session expiry 2 s < will delay 30 s: the will is due when the session ends, which
    happens while the broker is down; it is published at the next start, once."""
    broker = durable()
    watcher = persistent(clients, broker, "dur-xwill-watch", V5)
    watcher.subscribe("xwill/#", 1)
    will = {"topic": "xwill/w", "payload": b"expired", "qos": 1,
            "props": make_props("WILLMESSAGE", WillDelayInterval=30)}
    w = clients.paho(broker, "dur-xwill", V5, clean=False, session_expiry=2, will=will)
    w.abort()
    dropped = time.monotonic()
    time.sleep(0.3)
    stop_broker(broker, stop)
    early = [m for m in already_received(watcher) if m.topic == "xwill/w"]
    assert not early, "will published at the drop/shutdown, before the session ended"
    time.sleep(max(0.0, dropped + 3.0 - time.monotonic()))
    broker.restart()
    watcher = persistent(clients, broker, "dur-xwill-watch", V5)
    assert watcher.session_present is True
    got = receive_until(watcher, lambda ms: any(m.topic == "xwill/w" for m in ms), timeout=4, settle=1.0)
    assert [(m.topic, m.payload) for m in got] == [("xwill/w", b"expired")], \
        "expected the will of the session that expired during the outage once, got %r" % [
            (m.topic, m.payload) for m in got]
    assert persistent(clients, broker, "dur-xwill", V5, expiry=2).session_present is False


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_will_of_client_connected_at_the_crash(durable, clients, version):
    """The will of a client that was connected when the broker died is published after the
    restart (the session counts as offline from then); a client that had disconnected
    normally before the crash has no will."""
    broker = durable()
    watcher = persistent(clients, broker, "dur-cwill-watch", V5)
    watcher.subscribe("cwill/#", 1)
    props = make_props("WILLMESSAGE", WillDelayInterval=1) if version == V5 else None
    persistent(clients, broker, "dur-cwill-on", version, expiry=60,          # stays connected
               will={"topic": "cwill/on", "payload": b"crashed", "qos": 1, "props": props})
    polite = persistent(clients, broker, "dur-cwill-off", version, expiry=60,
                        will={"topic": "cwill/off", "payload": b"never", "qos": 1, "props": props})
    polite.disconnect()
    time.sleep(0.3)
    broker.kill()
    restarted = time.monotonic()
    broker.restart()
    watcher = persistent(clients, broker, "dur-cwill-watch", V5)
    assert watcher.session_present is True
    got = receive_until(watcher, lambda ms: any(m.topic == "cwill/on" for m in ms), timeout=6, settle=1.0)
    assert [(m.topic, m.payload) for m in got] == [("cwill/on", b"crashed")], \
        "expected only the will of the client connected at the crash, got %r" % [(m.topic, m.payload) for m in got]
    if version == V5:
        at = got[0].received_at - restarted
        assert at >= 0.8, "will published %.1f s after the restart; its delay is 1 s" % at


# ---------------------------------------------------------------------------
# 4. Expiry while the broker is down
# ---------------------------------------------------------------------------

@STOPS
def test_session_expiry_runs_while_the_broker_is_down(durable, clients, stop):
    broker = durable()
    short = persistent(clients, broker, "dur-exp-short", V5, expiry=2)
    short.subscribe("sexp/#", 1)
    long_ = persistent(clients, broker, "dur-exp-long", V5, expiry=60)
    long_.subscribe("sexp/#", 1)
    old = persistent(clients, broker, "dur-exp-311", V311)
    old.subscribe("sexp/#", 1)
    live = persistent(clients, broker, "dur-exp-live", V5, expiry=2) if stop == "kill" else None
    for c in (short, long_, old):
        c.disconnect()
    gone_at = time.monotonic()
    time.sleep(0.3)
    stop_broker(broker, stop)
    time.sleep(max(0.0, gone_at + 2.8 - time.monotonic()))
    broker.restart()
    if live is not None:
        # Connected at the crash: its 2 s expiry counts from the restart, so it is still there.
        back = persistent(clients, broker, "dur-exp-live", V5, expiry=2)
        assert back.session_present is True, "session of a client connected at the crash expired during the outage"
    assert persistent(clients, broker, "dur-exp-short", V5, expiry=2).session_present is False, \
        "a session with expiry 2 s, offline for 2.8 s (broker down), was still present"
    assert persistent(clients, broker, "dur-exp-long", V5, expiry=60).session_present is True
    assert persistent(clients, broker, "dur-exp-311", V311).session_present is True


@STOPS
def test_message_expiry_runs_while_the_broker_is_down(durable, clients, stop):
    broker = durable()
    sub5 = persistent(clients, broker, "dur-mexp-5", V5)
    sub5.subscribe("mexp/#", 1)
    sub5.disconnect()
    sub3 = persistent(clients, broker, "dur-mexp-3", V311)
    sub3.subscribe("mexp/#", 1)
    sub3.disconnect()
    p = clients.paho(broker, "dur-mexp-pub", V5)

    def exp(seconds):
        return make_props("PUBLISH", MessageExpiryInterval=seconds)
    p.publish("mexp/short", b"s", qos=1, props=exp(2))
    p.publish("mexp/long", b"l", qos=2, props=exp(30))
    p.publish("mexp/none", b"n", qos=1)
    p.publish("mexp/rshort", b"rs", qos=1, retain=True, props=exp(2))
    p.publish("mexp/rlong", b"rl", qos=1, retain=True, props=exp(30))
    published = time.monotonic()
    p.disconnect()
    time.sleep(0.3)
    stop_broker(broker, stop)
    time.sleep(max(0.0, published + 3.0 - time.monotonic()))
    broker.restart()

    for cid, version in (("dur-mexp-5", V5), ("dur-mexp-3", V311)):
        back = persistent(clients, broker, cid, version)
        assert back.session_present is True
        got = receive_until(back, lambda ms: len(ms) >= 3, timeout=4, settle=0.6)
        assert [(m.topic, m.payload) for m in got] == [("mexp/long", b"l"), ("mexp/none", b"n"),
                                                      ("mexp/rlong", b"rl")], \
            "%s: expected only the unexpired queued messages, got %r" % (cid, [(m.topic, m.payload) for m in got])
        if version == V5:
            elapsed = time.monotonic() - published
            for m in (got[0], got[2]):
                remaining = m.prop("MessageExpiryInterval")
                assert remaining is not None and 30 - elapsed - 2 <= remaining <= 27, \
                    "%s: expiry %r after %.1f s (3 s of them with the broker down); expected about %.0f" % (
                        m.topic, remaining, elapsed, 30 - elapsed)
            assert got[1].prop("MessageExpiryInterval") is None
    retained = fresh_retained(clients, broker, "mexp/#", V5, expect=1)
    assert sorted(retained) == ["mexp/rlong"], "retained after the outage: %s" % sorted(retained)
    remaining = retained["mexp/rlong"].prop("MessageExpiryInterval")
    assert remaining is not None and remaining <= 27


# ---------------------------------------------------------------------------
# 5. Start-up errors: directory in use, damaged file, newer schema
# ---------------------------------------------------------------------------

def test_data_dir_in_use_is_refused_and_freed_by_a_crash(durable, clients, tmp_path):
    data = (tmp_path / "data").resolve()
    first = durable(data_dir=data)
    sub = persistent(clients, first, "dur-lock", V5)
    sub.subscribe("lock/#", 1)
    sub.disconnect()
    result = serve_once(data)
    assert result.returncode == 1, "second roost on a data dir in use: exit %r, stderr %r" % (
        result.returncode, result.stderr)
    expected = "roost: data directory %s is in use by another roost (pid %d" % (data, first.proc.pid)
    assert expected in result.stderr, "expected %r in stderr:\n%s" % (expected, result.stderr)
    # The first broker was not disturbed.
    assert first.alive()
    assert persistent(clients, first, "dur-lock", V5).session_present is True
    # A crashed owner does not keep the directory locked.
    first.kill()
    first.restart()
    assert persistent(clients, first, "dur-lock", V5).session_present is True


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_damaged_store_is_refused_and_left_alone(durable, clients, rng, tmp_path, damage):
    data = (tmp_path / "data").resolve()
    db = data / "roost.db"
    if damage == "garbage":
        data.mkdir()
        db.write_bytes(b"this is not a roost store\n" + rng.randbytes(48 * 1024))
    else:
        make_store(durable, clients, data)
        for suffix in ("-wal", "-shm"):      # a clean stop leaves none; if it did, keep it out of the way
            side = Path(str(db) + suffix)
            if side.exists() and side.stat().st_size:
                con = sqlite3.connect(str(db))
                con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                con.close()
        content = db.read_bytes()
        page = int.from_bytes(content[16:18], "big")
        page = 65536 if page == 1 else page
        assert len(content) >= 2 * page, "store too small to truncate (%d bytes)" % len(content)
        db.write_bytes(content[:page])       # the schema page only; every table page is gone
    before = db.read_bytes()
    result = serve_once(data)
    assert result.returncode == 1, "damaged store (%s): exit %r, stderr %r" % (damage, result.returncode, result.stderr)
    assert str(db) in result.stderr and "damaged" in result.stderr, \
        "the message must name %s and say 'damaged':\n%s" % (db, result.stderr)
    assert db.read_bytes() == before, "roost changed the damaged file"


def test_newer_schema_is_refused(durable, clients, tmp_path):
    data = (tmp_path / "data").resolve()
    db = make_store(durable, clients, data)
    con = sqlite3.connect(str(db))
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    size = db.stat().st_size
    result = serve_once(data)
    assert result.returncode == 1, "store of a newer roost: exit %r, stderr %r" % (result.returncode, result.stderr)
    assert "newer" in result.stderr, "the message must say the store is newer:\n%s" % result.stderr
    con = sqlite3.connect(str(db))
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 99, "roost rewrote the newer store's version"
    finally:
        con.close()
    assert db.stat().st_size >= size


# ---------------------------------------------------------------------------
# 6. Full disk
# ---------------------------------------------------------------------------

STORE_WORDS = ("store", "roost.db", "database", "sqlite", "disk", "full")


def _store_errors(broker):
    lines = broker.log_path.read_text(errors="replace").splitlines()
    return [line for line in lines
            if re.search(r"\b(error|critical)\b", line, re.I) and any(w in line.lower() for w in STORE_WORDS)]


def _fill(path, mount, leave):
    st = os.statvfs(mount)
    size = st.f_bavail * st.f_frsize - leave
    chunk = b"\0" * 65536
    with open(path, "wb") as f:
        while size > 0:
            f.write(chunk[:min(size, len(chunk))])
            size -= len(chunk)
        f.flush()
        os.fsync(f.fileno())


@pytest.mark.parametrize("then", ["subscriber-returns", "kill-restart-then-subscriber-returns"])
def test_full_disk_refuses_logs_and_recovers(durable, clients, rng, tmp_path, then):
    """A 4 MB tmpfs with 256 kB left. The phases go on after a failed check (so one run shows
    refusal, log, recovery and delivery); the test fails at the end with every problem."""
    if os.geteuid() != 0:
        support.missing("root (to mount a small tmpfs)", "run the interop suite as root")
    support.require_tool("mount", "apt-get install -y mount")
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        support.missing("a tmpfs mount (%s)" % mounted.stderr.strip(), "needs CAP_SYS_ADMIN")
    broker = None
    problems = []
    try:
        broker = durable(data_dir=mnt / "data")
        sub = persistent(clients, broker, "dur-full-sub", V5)
        sub.subscribe("full/#", 1)
        sub.disconnect()
        pub = clients.raw(broker)
        assert pub.mqtt_connect("dur-full-pub", version=V5).reason == 0
        _fill(mnt / "filler", mnt, 256 * 1024)
        start = time.monotonic()

        pending = {}    # pid -> idx, until its PUBACK
        results = {}    # idx -> (reason, seconds after start)
        payloads = {}

        def pump(until, wait):
            deadline = time.monotonic() + wait
            while not until():
                try:
                    pkt = pub.read_packet(timeout=max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    return
                if pkt.type == R.PINGRESP:
                    continue
                assert pkt.type == R.PUBACK, "publisher got %r" % pkt
                results[pending.pop(R.ack_pid(pkt))] = (ack_reason(pkt, V5), time.monotonic() - start)

        def send(idx):
            payloads[idx] = b"%d:" % idx + rng.randbytes(8192)
            pending[idx + 1] = idx
            pub.send(R.publish("full/m", payloads[idx], qos=1, pid=idx + 1, version=V5))

        # Phase 1: 8 kB messages until one gets no PUBACK within 1 s: its commit failed, and
        # its ack (with every later answer on that connection, acks go out in order) waits for
        # the retry. It must not be refused: the broker still holds the message.
        idx = 0
        while idx < 160 and time.monotonic() - start < 6:
            send(idx)
            pump(lambda: idx in results, 1.0)
            idx += 1
            if idx - 1 not in results:
                break
        full_at = idx
        held = sorted(pending.values())
        odd = {i: r for i, (r, _) in results.items() if r != 0}
        if odd:
            problems.append("unexpected PUBACK reasons while the disk filled: %s" % odd)
        if not held:
            problems.append("the disk never filled: %d 8 kB publishes all acknowledged in %.1f s" % (
                idx, time.monotonic() - start))
        # A publisher with nothing waiting is refused at once (MQTT 5: 0x97 or 0x80).
        fresh = clients.raw(broker)
        assert fresh.mqtt_connect("dur-full-pub2", version=V5).reason == 0
        fresh.send(R.publish("full/m", b"refused", qos=1, pid=1, version=V5))
        try:
            answer = fresh.read_packet(timeout=2.0)
            if answer.type != R.PUBACK or ack_reason(answer, V5) not in (0x97, 0x80):
                problems.append("a new MQTT 5 publish while the disk is full got %r, not PUBACK 0x97/0x80" % answer)
        except TimeoutError:
            problems.append("a new MQTT 5 publish while the disk is full got no PUBACK within 2 s")
        pub.send(R.pingreq())
        pump(lambda: False, 0.3)
        if pub.eof:
            problems.append("the broker closed the publisher's connection on a full disk")
        if not _store_errors(broker):
            problems.append("no error about the store in the broker log on a full disk")

        # Phase 2: a 3.1.1 publisher gets no PUBACK while the store fails.
        old = clients.raw(broker)
        assert old.mqtt_connect("dur-full-311", version=V311).reason == 0
        old.send(R.publish("full/m", b"from 3.1.1", qos=1, pid=1, version=V311))
        _, answers = old.wait_closed(1.5)
        if [a for a in answers if a.type == R.PUBACK]:
            problems.append("3.1.1 publish acknowledged while the store fails")

        # Phase 3: space returns; new publishes get 0x00 within about 5 s.
        (mnt / "filler").unlink()
        freed = time.monotonic()
        recovered = None
        while time.monotonic() - freed < 8 and recovered is None:
            send(idx)
            sent_idx = idx
            idx += 1
            pump(lambda: sent_idx in results, 0.5)
            if results.get(sent_idx, (None,))[0] == 0:
                recovered = time.monotonic() - freed
        assert recovered is not None, "no PUBACK 0x00 within 8 s of freeing the disk; %s\nresults %s" % (
            "; ".join(problems), {i: results[i] for i in sorted(results)[-10:]})
        if recovered > 6:
            problems.append("recovery took %.1f s (expected within about 5 s)" % recovered)
        for _ in range(5):
            send(idx)
            sent_idx = idx
            idx += 1
            pump(lambda: sent_idx in results, 3.0)
            if results.get(sent_idx, (None,))[0] != 0:
                problems.append("publish %d after recovery: %r" % (sent_idx, results.get(sent_idx)))
        pump(lambda: not pending, 2.0)
        if pending:
            problems.append("MQTT 5 publishes never answered: %s" % sorted(pending.values()))
        # The held ones were acknowledged (0x00) once their commit went through.
        not_ok = {i: results.get(i) for i in held if results.get(i, (None,))[0] != 0}
        if not_ok:
            problems.append("publishes held while the disk was full were not acknowledged after it: %s" % not_ok)
        acked = sorted(i for i, (r, _) in results.items() if r == 0)
        print("disk full after %d publishes; space back at %.1f s; recovered %.1f s later; %d acknowledged"
              % (full_at, freed - start, recovered, len(acked)))

        # Phase 4: everything acknowledged is delivered (after a crash, too).
        if then.startswith("kill"):
            broker.kill()
            broker.restart()
        back = persistent(clients, broker, "dur-full-sub", V5)
        assert back.session_present is True
        got = receive_until(back, lambda ms: set(acked) <= {int(m.payload.split(b":", 1)[0]) for m in ms
                                                            if m.payload != b"from 3.1.1"},
                            timeout=8, settle=0.3)
        by_idx = {}
        for m in got:
            if m.payload != b"from 3.1.1":
                by_idx.setdefault(int(m.payload.split(b":", 1)[0]), m.payload)
        missing = [i for i in acked if i not in by_idx]
        if missing:
            problems.append("acknowledged messages missing: %s" % missing)
        damaged = [i for i in acked if i in by_idx and by_idx[i] != payloads[i]]
        if damaged:
            problems.append("messages with the wrong content: %s" % damaged)
        assert not problems, "\n".join(problems)
    finally:
        if broker is not None:
            broker.stop()
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ---------------------------------------------------------------------------
# Acknowledgement means stored; defaults, switches and the stats command
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_connack_suback_unsuback_mean_stored(durable, clients, version):
    """Kill the broker the moment the acknowledgement arrives: the change must be on disk."""
    broker = durable(fsync="off")   # still in the page cache at a SIGKILL
    conn, ack = raw_persistent(clients, broker, "dur-ackd", version)
    assert ack.session_present is False
    broker.kill()
    broker.restart()
    conn, ack = raw_persistent(clients, broker, "dur-ackd", version)
    assert ack.session_present is True, "CONNACK of a new persistent session came before it was stored"

    conn.send(R.subscribe(1, [("ackd/a", 1), ("ackd/b", 1)], version))
    conn.expect(R.SUBACK)
    broker.kill()
    broker.restart()
    conn, ack = raw_persistent(clients, broker, "dur-ackd", version)
    assert ack.session_present is True
    p = clients.paho(broker, "dur-ackd-pub", V5)
    p.publish("ackd/a", b"a1", qos=1)
    p.publish("ackd/b", b"b1", qos=1)
    got = []
    for _ in range(2):
        pub = R.parse_publish(conn.expect(R.PUBLISH), version)
        conn.send(R.puback(pub.pid, version))
        got.append(pub.payload)
    assert got == [b"a1", b"b1"], "SUBACK came before the subscriptions were stored: %r" % got

    conn.send(R.unsubscribe(2, ["ackd/a"], version))
    conn.expect(R.UNSUBACK)
    broker.kill()
    broker.restart()
    conn, ack = raw_persistent(clients, broker, "dur-ackd", version)
    assert ack.session_present is True
    p = clients.paho(broker, "dur-ackd-pub", V5)
    p.publish("ackd/a", b"a2", qos=1)
    p.publish("ackd/b", b"b2", qos=1)
    pub = R.parse_publish(conn.expect(R.PUBLISH), version)
    assert pub.payload == b"b2", "UNSUBACK came before the unsubscribe was stored: got %r" % pub.payload


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_qos2_handshake_acks_mean_stored(durable, clients, version):
    """PUBREL to a subscriber means "released" is stored; PUBCOMP to a publisher means its
    inbound id is gone from the store. Killed the moment both arrived."""
    broker = durable(fsync="off")
    sub, _ = raw_persistent(clients, broker, "dur-q2-sub", version)
    assert sub.mqtt_subscribe("q2s/#", qos=2, version=version) == [2]
    pub, _ = raw_persistent(clients, broker, "dur-q2-pub", version)
    pub.send(R.publish("q2s/a", b"first", qos=2, pid=7, version=version))
    assert R.ack_pid(pub.expect(R.PUBREC)) == 7
    pub.send(R.pubrel(7, version))
    assert R.ack_pid(pub.expect(R.PUBCOMP)) == 7
    first = R.parse_publish(sub.expect(R.PUBLISH), version)
    assert first.payload == b"first"
    sub.send(R.pubrec(first.pid, version))
    assert R.ack_pid(sub.expect(R.PUBREL)) == first.pid
    broker.kill()
    broker.restart()

    sub, ack = raw_persistent(clients, broker, "dur-q2-sub", version)
    assert ack.session_present is True
    pkt = sub.expect(R.PUBREL, timeout=3)   # a PUBLISH here: resent after PUBREL [MQTT-4.3.3]
    assert R.ack_pid(pkt) == first.pid
    sub.send(R.pubcomp(first.pid, version))
    pub, ack = raw_persistent(clients, broker, "dur-q2-pub", version)
    assert ack.session_present is True
    pub.send(R.publish("q2s/a", b"second", qos=2, pid=7, version=version))   # new message, same id
    assert R.ack_pid(pub.expect(R.PUBREC)) == 7
    pub.send(R.pubrel(7, version))
    assert R.ack_pid(pub.expect(R.PUBCOMP)) == 7
    try:
        second = R.parse_publish(sub.expect(R.PUBLISH, timeout=3), version)
    except TimeoutError:
        raise AssertionError("a new QoS 2 message with id 7 was swallowed: the id was still stored "
                             "as awaiting PUBREL although PUBCOMP had been sent") from None
    assert second.payload == b"second" and not second.dup


def test_repeated_crashes_keep_every_acknowledged_message(durable, clients, rng):
    """Three kill/restart cycles; between them the subscriber drains its queue. Catches a
    queue position (seq) or packet id reused after a restart."""
    broker = durable(args=UNLIMITED_QUEUE)
    sub = persistent(clients, broker, "dur-rep", V5)
    sub.subscribe("rep/#", 2)
    sub.disconnect()
    qos_of = {}
    seen = {}
    base = 0
    for cycle in range(3):
        version = (V5, V311, V5)[cycle]
        messages = []
        for i in range(base, base + 300):
            qos_of[i] = rng.choice((1, 2))
            messages.append((i, qos_of[i], "rep/n", numbered(i, qos_of[i])))
        base += 300
        publisher = RawPublisher(broker, version, "dur-rep-pub")
        switch = KillSwitch(broker, after_acks=rng.randrange(20, 260), count=publisher.count)
        publisher.on_ack = switch.acked
        acked = publisher.run(messages)
        switch.finish()
        publisher.close()
        broker.restart()
        back = persistent(clients, broker, "dur-rep", V5)
        assert back.session_present is True, "cycle %d" % cycle
        got = receive_until(back, has_all(acked, prefix="rep/n"), timeout=6)
        # QoS 1 repeats of earlier cycles are allowed; QoS 2 must stay unique across all cycles.
        problems, seen = audit(got, acked, qos_of, seen, order="per-qos")
        assert not problems, "seed %d, cycle %d (%d acked, kill at %r acks):\n%s" % (
            SEED, cycle, len(acked), switch.fired_at, "\n".join(problems))
        back.disconnect()
        time.sleep(0.3)


@pytest.mark.parametrize("version", [V311, V5], ids=["v311", "v5"])
def test_long_queue_comes_back_complete_and_in_order(durable, clients, rng, version):
    """3000 acknowledged messages for an offline session (more than are kept in memory),
    SIGKILL, restart: all of them, in order, QoS 2 once, through a raw subscriber."""
    broker = durable(args=UNLIMITED_QUEUE)
    sub = RawSubscriber(clients, broker, "dur-long", version)
    assert sub.subscribe("dur/#", 2) == [2]
    sub.disconnect()
    count = 3000
    qos_of = {i: rng.choice((1, 2)) for i in range(count)}
    publisher = RawPublisher(broker, V5 if version == V311 else V311, "dur-long-pub")
    acked = publisher.run([(i, qos_of[i], "dur/n", numbered(i, qos_of[i], pad=64)) for i in range(count)],
                          timeout=12)
    publisher.close()
    assert len(acked) == count, "only %d of %d acknowledged (%s)" % (len(acked), count, publisher.stopped_by)
    time.sleep(0.2)
    broker.kill()
    broker.restart()
    back = RawSubscriber(clients, broker, "dur-long", version)
    assert back.session_present is True
    got = back.receive(has_all(acked), timeout=12, settle=0.5)
    problems, _ = audit(got, acked, qos_of, order="global")
    assert not problems, "seed %d\n%s" % (SEED, "\n".join(problems))


def test_store_is_on_by_default_in_roost_data(durable, clients, tmp_path):
    broker = durable(data_dir=None)
    sub = persistent(clients, broker, "dur-default", V311)
    sub.subscribe("ddef/#", 1)
    sub.disconnect()
    clients.paho(broker, "dur-default-pub", V311).publish("ddef/x", b"kept", qos=1)
    assert (tmp_path / "roost-data" / "roost.db").is_file(), \
        "no ./roost-data/roost.db in the broker's working directory: %s" % sorted(os.listdir(tmp_path))
    broker.kill()
    broker.restart()
    back = persistent(clients, broker, "dur-default", V311)
    assert back.session_present is True
    assert back.get().payload == b"kept"


def test_persistence_false_keeps_nothing(durable, clients, tmp_path):
    broker = durable(data_dir=None, args=["--persistence", "false"])
    sub = persistent(clients, broker, "dur-nostore", V5)
    sub.subscribe("dno/#", 1)
    sub.disconnect()
    clients.paho(broker, "dur-nostore-pub", V5).publish("dno/r", b"r", qos=1, retain=True)
    assert broker.stop() == 0
    broker.restart()
    assert persistent(clients, broker, "dur-nostore", V5).session_present is False
    assert fresh_retained(clients, broker, "dno/#", V5) == {}
    assert not (tmp_path / "roost-data").exists(), "--persistence false still created ./roost-data"


def test_bad_fsync_value_is_a_configuration_error():
    if BROKER != "roost":
        pytest.skip("roost CLI")
    for good in ("full", "normal", "off"):
        result = run_roost("serve", "--fsync", good, "--persistence", "true", "--check-config")
        assert result.returncode == 0, "--fsync %s refused: %s" % (good, result.stderr)
    result = run_roost("serve", "--fsync", "sometimes", "--check-config")
    assert result.returncode == 2
    assert "fsync" in result.stderr and "'sometimes'" in result.stderr


def _stat(text, key):
    # one per line: "sessions: 2", "queued messages: 5", "sessions 2", "2 sessions"
    for pattern in (r"(?im)^\W*%s\b[^\d\n]{0,30}?(\d+)" % key, r"(?im)^\W*(\d+)\s+%s\b" % key):
        m = re.search(pattern, text)
        if m:
            return int(m.group(1))
    return None


def test_db_stats_counts(durable, clients, tmp_path):
    data = tmp_path / "data"
    broker = durable(data_dir=data, args=["--sys-interval", "0"])
    a = persistent(clients, broker, "dur-stats-a", V5)
    a.subscribe("st/a", 1)
    a.subscribe("st/x", 2)
    a.disconnect()
    b = persistent(clients, broker, "dur-stats-b", V311)
    b.subscribe("st/b", 1)
    b.disconnect()
    clients.paho(broker, "", V5).disconnect()   # a clean session is not stored
    p = clients.paho(broker, "dur-stats-pub", V5)
    for i in range(5):
        p.publish("st/a", b"%d" % i, qos=1)
    p.publish("st/r1", b"r", qos=1, retain=True)
    p.publish("st/r2", b"r", qos=1, retain=True)
    p.disconnect()
    assert broker.stop() == 0
    result = run_roost("db", "stats", "--data-dir", data)
    assert result.returncode == 0, "roost db stats: exit %r\n%s%s" % (result.returncode, result.stdout, result.stderr)
    counts = {key: _stat(result.stdout, key) for key in ("sessions", "subscriptions", "queued", "retained")}
    assert counts == {"sessions": 2, "subscriptions": 3, "queued": 5, "retained": 2}, \
        "roost db stats printed:\n%s" % result.stdout


def test_db_dump_shows_sessions_queues_and_payloads(durable, clients, tmp_path):
    data = tmp_path / "data"
    broker = durable(data_dir=data, args=["--sys-interval", "0"])
    sub = persistent(clients, broker, "dur-dump-sub", V5)
    sub.subscribe("dump/#", 1)
    sub.disconnect()
    p = clients.paho(broker, "dur-dump-pub", V5)
    p.publish("dump/queued", b"queued-payload-1", qos=1)
    p.publish("dump/kept", b"retained-payload", qos=1, retain=True)
    p.disconnect()
    # A dump reads beside a running broker (WAL readers do not block the writer).
    result = run_roost("db", "dump", "--data-dir", data, "--payloads")
    assert result.returncode == 0, "roost db dump: exit %r\n%s%s" % (result.returncode, result.stdout, result.stderr)
    for expected in ("dur-dump-sub", "dump/#", "dump/queued", "queued-payload-1", "dump/kept", "retained-payload"):
        assert expected in result.stdout, "%r missing from roost db dump:\n%s" % (expected, result.stdout)
    without = run_roost("db", "dump", "--data-dir", data)
    assert "queued-payload-1" not in without.stdout, "payloads only with --payloads"
    assert broker.stop() == 0
    missing = run_roost("db", "dump", "--data-dir", tmp_path / "nothing-here")
    assert missing.returncode == 1 and "roost:" in missing.stderr, (missing.returncode, missing.stderr)
