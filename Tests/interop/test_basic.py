"""Connect, publish/subscribe at every QoS, ordering and topic matching."""

import random

import pytest

import mqtt_raw as R
from pahoclient import V5

BINARY_PAYLOAD = bytes(range(256)) + b"\x00\xff\x00 tail \xe2\x82\xac"


# ---------------------------------------------------------------------------
# CONNECT / CONNACK
# ---------------------------------------------------------------------------

def test_connect_connack(mk, version):
    c = mk("basic-connect", version=version)
    assert c.connack_rc == 0
    assert c.session_present is False


def test_connack_bytes_raw(raw, version):
    conn = raw()
    conn.send(R.connect("raw-connack", version=version, keepalive=30))
    pkt = conn.expect(R.CONNACK)
    assert pkt.flags == 0, "CONNACK fixed header flags must be 0"
    if version == 4:
        assert pkt.body == b"\x00\x00", "3.1.1 CONNACK must be exactly 20 02 00 00"
    else:
        ack = R.parse_connack(pkt, 5)
        assert (ack.session_present, ack.reason) == (False, 0)


def test_pingreq_pingresp(raw, version):
    conn = raw()
    conn.mqtt_connect("raw-ping", version=version, keepalive=30)
    for _ in range(3):
        conn.send(R.pingreq())
        pkt = conn.expect(R.PINGRESP, timeout=3)
        assert pkt.body == b"" and pkt.flags == 0


# ---------------------------------------------------------------------------
# Publish / subscribe
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pubsub_end_to_end(mk, version, qos):
    sub = mk("basic-sub", version=version)
    pub = mk("basic-pub", version=version)
    assert sub.subscribe("roost/basic/qos", qos) == [qos]
    pub.publish("roost/basic/qos", BINARY_PAYLOAD, qos=qos)
    msg = sub.get()
    assert msg.topic == "roost/basic/qos"
    assert msg.payload == BINARY_PAYLOAD
    assert msg.qos == qos
    assert msg.retain is False
    sub.assert_no_message(0.3)


def test_empty_and_large_payloads(mk, version):
    sub = mk("basic-sub", version=version)
    pub = mk("basic-pub", version=version)
    sub.subscribe("roost/basic/size", 1)
    big = random.Random(7).randbytes(300_000)
    pub.publish("roost/basic/size", b"", qos=1)
    pub.publish("roost/basic/size", big, qos=1)
    first, second = sub.get_n(2)
    assert first.payload == b""
    assert len(second.payload) == len(big) and second.payload == big


def test_subscriber_gets_min_of_pub_and_sub_qos(mk, version):
    sub = mk("basic-sub", version=version)
    pub = mk("basic-pub", version=version)
    assert sub.subscribe("roost/down/1", 1) == [1]
    assert sub.subscribe("roost/down/2", 2) == [2]
    pub.publish("roost/down/1", b"two-on-one", qos=2)
    pub.publish("roost/down/2", b"zero-on-two", qos=0)
    a, b = sub.get_n(2)
    assert (a.topic, a.payload, a.qos) == ("roost/down/1", b"two-on-one", 1)
    assert (b.topic, b.payload, b.qos) == ("roost/down/2", b"zero-on-two", 0)


def test_suback_lists_granted_qos_per_filter(mk, version):
    sub = mk("basic-sub", version=version)
    granted = sub.subscribe([("roost/m/0", 0), ("roost/m/1", 1), ("roost/m/2", 2)])
    assert granted == [0, 1, 2]


def test_resubscribe_replaces_existing_subscription(mk, version):
    sub = mk("basic-sub", version=version)
    pub = mk("basic-pub", version=version)
    assert sub.subscribe("roost/resub", 0) == [0]
    assert sub.subscribe("roost/resub", 1) == [1]
    pub.publish("roost/resub", b"once", qos=1)
    msg = sub.get()
    assert (msg.payload, msg.qos) == (b"once", 1)
    sub.assert_no_message(0.4)


def test_unsubscribe_stops_delivery(mk, version):
    sub = mk("basic-sub", version=version)
    pub = mk("basic-pub", version=version)
    sub.subscribe("roost/unsub/+", 1)
    pub.publish("roost/unsub/a", b"before", qos=1)
    assert sub.get().payload == b"before"
    codes = sub.unsubscribe("roost/unsub/+")
    if version == V5:
        assert codes == [0]
    pub.publish("roost/unsub/a", b"after", qos=1)
    sub.assert_no_message(0.5)


@pytest.mark.parametrize("qos", [1, 2])
def test_ordering_200_messages(mk, version, qos):
    sub = mk("order-sub", version=version)
    pub = mk("order-pub", version=version)
    sub.subscribe("roost/order", qos)
    infos = [pub.publish("roost/order", b"%d" % i, qos=qos, wait=False) for i in range(200)]
    for info in infos:
        info.wait_for_publish(10)
        assert info.is_published()
    msgs = sub.get_n(200, timeout=10)
    assert {m.qos for m in msgs} == {qos}
    got = [int(m.payload) for m in msgs]
    if qos == 2:
        assert got == list(range(200)), "QoS 2 messages out of order or duplicated"
    else:
        first_seen = list(dict.fromkeys(got))
        assert first_seen == list(range(200)), "QoS 1 messages out of order or missing"
    sub.assert_no_message(0.3)


def test_burst_of_large_messages_in_order(mk, version):
    sub = mk("burst-sub", version=version)
    pub = mk("burst-pub", version=version)
    sub.subscribe("roost/burst", 1)
    body = bytes(range(256)) * 64  # 16 KiB
    count = 300
    infos = [pub.publish("roost/burst", body + b"%d" % i, qos=1, wait=False) for i in range(count)]
    for info in infos:
        info.wait_for_publish(10)
    msgs = sub.get_n(count, timeout=10)
    assert all(m.payload[:len(body)] == body for m in msgs), "payload corrupted"
    got = [int(m.payload[len(body):]) for m in msgs]
    assert got == list(range(count)), "large messages duplicated or out of order"
    sub.assert_no_message(0.3)


# ---------------------------------------------------------------------------
# Raw QoS flows (exact packets)
# ---------------------------------------------------------------------------

def test_raw_qos1_and_qos2_publish_flows(raw, version):
    conn = raw()
    conn.mqtt_connect("raw-flows", version=version)
    conn.send(R.publish("roost/raw/q1", b"x", qos=1, pid=17, version=version))
    assert R.ack_pid(conn.expect(R.PUBACK)) == 17
    conn.send(R.publish("roost/raw/q2", b"y", qos=2, pid=18, version=version))
    assert R.ack_pid(conn.expect(R.PUBREC)) == 18
    conn.send(R.pubrel(18, version))
    pkt = conn.expect(R.PUBCOMP)
    assert R.ack_pid(pkt) == 18 and pkt.flags == 0


def test_raw_subscriber_qos2_receive_flow(raw, mk, version):
    conn = raw()
    conn.mqtt_connect("raw-q2-sub", version=version)
    assert conn.mqtt_subscribe("roost/raw/in", qos=2, version=version) == [2]
    pub = mk("raw-q2-pub", version=version)
    pub.publish("roost/raw/in", b"exactly-once", qos=2)
    p = R.parse_publish(conn.expect(R.PUBLISH), version)
    assert (p.topic, p.payload, p.qos, p.dup) == ("roost/raw/in", b"exactly-once", 2, False)
    assert p.pid != 0
    conn.send(R.pubrec(p.pid, version))
    rel = conn.expect(R.PUBREL)
    assert rel.flags == 0x02 and R.ack_pid(rel) == p.pid
    conn.send(R.pubcomp(p.pid, version))
    # Connection is still healthy afterwards.
    conn.send(R.pingreq())
    conn.expect(R.PINGRESP)


# ---------------------------------------------------------------------------
# Wildcards and $-topics
# ---------------------------------------------------------------------------

def _collect_until_sentinel(client, sentinel_topic, timeout=5):
    got = []
    while True:
        msg = client.get(timeout)
        if msg.topic == sentinel_topic:
            return got
        got.append(msg.topic)


def test_single_level_wildcard(mk, version):
    sub = mk("wild-sub", version=version)
    pub = mk("wild-pub", version=version)
    sub.subscribe("a/+/c", 1)
    sub.subscribe("end", 1)
    topics = ["a/b/c", "a/b/d", "a/b/c/d", "a/c", "a//c", "x/b/c", "a/xyz/c", "a/b"]
    for t in topics:
        pub.publish(t, b"m", qos=1)
    pub.publish("end", b"", qos=1)
    assert _collect_until_sentinel(sub, "end") == ["a/b/c", "a//c", "a/xyz/c"]


def test_multi_level_wildcard_matches_parent(mk, version):
    sub = mk("wild-sub", version=version)
    pub = mk("wild-pub", version=version)
    sub.subscribe("sport/#", 1)
    sub.subscribe("end", 1)
    topics = ["sport", "sport/tennis", "sport/tennis/player1", "sports", "sport2/x", "sport/", "Sport/x"]
    for t in topics:
        pub.publish(t, b"m", qos=1)
    pub.publish("end", b"", qos=1)
    assert _collect_until_sentinel(sub, "end") == ["sport", "sport/tennis", "sport/tennis/player1", "sport/"]


def test_plus_matches_empty_level_but_not_parent(mk, version):
    sub = mk("wild-sub", version=version)
    pub = mk("wild-pub", version=version)
    sub.subscribe("sport/+", 1)
    sub.subscribe("end", 1)
    for t in ["sport", "sport/", "sport/x", "sport/x/y"]:
        pub.publish(t, b"m", qos=1)
    pub.publish("end", b"", qos=1)
    assert _collect_until_sentinel(sub, "end") == ["sport/", "sport/x"]


def test_hash_subscriber_gets_everything_but_dollar_topics(mk, version):
    everything = mk("hash-sub", version=version)
    plus = mk("plus-sub", version=version)
    dollar = mk("dollar-sub", version=version)
    pub = mk("dollar-pub", version=version)
    everything.subscribe("#", 1)
    plus.subscribe("+/x", 1)
    dollar.subscribe("$test/#", 1)
    # A '#' subscriber must not see broker $SYS traffic either (Mosquitto has retained $SYS topics).
    early = everything.drain(0.5)
    assert not [m.topic for m in early if m.topic.startswith("$")]
    pub.publish("$test/x", b"dollar", qos=1)
    pub.publish("normal/x", b"normal", qos=1)
    got_all = everything.get()
    assert (got_all.topic, got_all.payload) == ("normal/x", b"normal")
    got_plus = plus.get()
    assert (got_plus.topic, got_plus.payload) == ("normal/x", b"normal")
    got_dollar = dollar.get()
    assert (got_dollar.topic, got_dollar.payload) == ("$test/x", b"dollar")
    leftovers = everything.drain(0.3) + plus.drain(0.0)
    assert not [m.topic for m in leftovers if m.topic.startswith("$")]


def _overlap_setup(mk):
    sub = mk("overlap-sub", version=V5)
    pub = mk("overlap-pub", version=V5)
    assert sub.subscribe("ov/#", 0) == [0]
    assert sub.subscribe("ov/+", 2) == [2]
    assert sub.subscribe("ov/a", 1) == [1]
    pub.publish("ov/a", b"overlap", qos=2)
    return sub


def test_overlapping_subscriptions_respect_max_qos(mk):
    # MQTT 5.0 3.3.4: MUST deliver respecting the maximum QoS of all matching
    # subscriptions; MAY send extra copies (one per further subscription).
    sub = _overlap_setup(mk)
    copies = [sub.get()] + sub.drain(0.5)
    assert all((m.topic, m.payload) == ("ov/a", b"overlap") for m in copies)
    assert 2 in [m.qos for m in copies]
    assert len(copies) <= 3


@pytest.mark.roost_only(reason="Mosquitto sends one copy per matching subscription (allowed by "
                               "MQTT 5.0 3.3.4); Roost delivers a single copy at the maximum QoS")
def test_overlapping_subscriptions_delivered_once_at_max_qos(mk):
    sub = _overlap_setup(mk)
    msg = sub.get()
    assert (msg.topic, msg.payload, msg.qos) == ("ov/a", b"overlap", 2)
    sub.assert_no_message(0.5)


def test_publisher_receives_own_message_by_default(mk, version):
    c = mk("self-sub", version=version)
    c.subscribe("roost/self", 1)
    c.publish("roost/self", b"echo", qos=1)
    assert c.get().payload == b"echo"


def test_topics_are_case_sensitive_and_utf8(mk, version):
    sub = mk("utf8-sub", version=version)
    pub = mk("utf8-pub", version=version)
    topic = "roost/ünïcødé/€/日本"
    sub.subscribe(topic, 1)
    sub.subscribe("end", 1)
    pub.publish(topic.upper(), b"wrong-case", qos=1)
    pub.publish(topic, b"right", qos=1)
    pub.publish("end", b"", qos=1)
    assert _collect_until_sentinel(sub, "end") == [topic]
