"""MQTT 5.0 features: properties, aliases, expiry, subscription options,
shared subscriptions and flow control."""

import time

import pytest

import mqtt_raw as R
from pahoclient import V5, make_props


def _pprops(**kw):
    return make_props("PUBLISH", **kw)


# ---------------------------------------------------------------------------
# CONNACK properties
# ---------------------------------------------------------------------------

def test_connack_receive_maximum_present(raw):
    conn = raw()
    ack = conn.mqtt_connect("v5-connack", version=5)
    assert ack.reason == 0
    rmax = R.prop(ack.props, R.RECEIVE_MAXIMUM)
    assert rmax is not None, "CONNACK must carry Receive Maximum: %r" % ack.props
    assert 1 <= rmax <= 65535


@pytest.mark.broker_options(max_keepalive=10)
def test_server_keep_alive_caps_client_keepalive(raw):
    conn = raw()
    ack = conn.mqtt_connect("v5-ka", version=5, keepalive=60)
    assert ack.reason == 0
    assert R.prop(ack.props, R.SERVER_KEEP_ALIVE) == 10


# ---------------------------------------------------------------------------
# Topic aliases (client -> server)
# ---------------------------------------------------------------------------

def test_topic_alias_inbound(mk):
    sub = mk("alias-sub", version=V5)
    sub.subscribe("alias/#", 1)
    pub = mk("alias-pub", version=V5)
    assert (pub.connack_prop("TopicAliasMaximum") or 0) >= 1, "broker must accept topic aliases"
    pub.publish("alias/first", b"one", qos=1, props=_pprops(TopicAlias=1))
    pub.publish("", b"two", qos=1, props=_pprops(TopicAlias=1))
    pub.publish("alias/second", b"three", qos=1, props=_pprops(TopicAlias=1))  # re-map
    pub.publish("", b"four", qos=1, props=_pprops(TopicAlias=1))
    got = [(m.topic, m.payload) for m in sub.get_n(4)]
    assert got == [("alias/first", b"one"), ("alias/first", b"two"),
                   ("alias/second", b"three"), ("alias/second", b"four")]
    # The alias must not leak to the subscriber (it did not ask for aliases).
    assert all(not m.prop("TopicAlias") for m in sub.drain(0)), "no alias expected"


def _assert_protocol_error(conn, allowed=(0x81, 0x82, 0x94)):
    closed, packets = conn.wait_closed(3)
    assert closed, "broker must close the connection"
    for pkt in packets:
        assert pkt.type == R.DISCONNECT, "unexpected %r" % pkt
        assert R.parse_disconnect(pkt)[0] in allowed, pkt


def test_topic_alias_above_maximum_is_error(raw):
    conn = raw()
    ack = conn.mqtt_connect("alias-bad", version=5)
    limit = R.prop(ack.props, R.TOPIC_ALIAS_MAXIMUM, 0)
    conn.send(R.publish("alias/x", b"", version=5, props=[(R.TOPIC_ALIAS, limit + 1)]))
    _assert_protocol_error(conn)


def test_topic_alias_zero_is_error(raw):
    conn = raw()
    conn.mqtt_connect("alias-zero", version=5)
    conn.send(R.publish("alias/x", b"", version=5, props=[(R.TOPIC_ALIAS, 0)]))
    _assert_protocol_error(conn)


def test_unknown_topic_alias_is_error(raw):
    conn = raw()
    conn.mqtt_connect("alias-unknown", version=5)
    conn.send(R.publish("", b"", version=5, props=[(R.TOPIC_ALIAS, 1)]))
    _assert_protocol_error(conn)


# ---------------------------------------------------------------------------
# Message expiry
# ---------------------------------------------------------------------------

def test_message_expiry_forwarded(mk):
    sub = mk("exp-sub", version=V5)
    sub.subscribe("exp/live", 1)
    pub = mk("exp-pub", version=V5)
    pub.publish("exp/live", b"with-expiry", qos=1, props=_pprops(MessageExpiryInterval=60))
    pub.publish("exp/live", b"without-expiry", qos=1)
    a, b = sub.get_n(2)
    assert a.payload == b"with-expiry"
    assert a.prop("MessageExpiryInterval") is not None
    assert 58 <= a.prop("MessageExpiryInterval") <= 60
    assert b.prop("MessageExpiryInterval") is None


def test_message_expiry_counts_down_while_queued(mk):
    sub = mk("exp-sub", version=V5, clean=False, session_expiry=60)
    sub.subscribe("exp/q", 1)
    sub.disconnect()
    pub = mk("exp-pub", version=V5)
    pub.publish("exp/q", b"short", qos=1, props=_pprops(MessageExpiryInterval=1))
    pub.publish("exp/q", b"long", qos=1, props=_pprops(MessageExpiryInterval=10))
    time.sleep(2.2)
    back = mk("exp-sub", version=V5, clean=False, session_expiry=60)
    assert back.session_present is True
    m = back.get()
    assert m.payload == b"long", "the 1 s message should have expired while queued"
    remaining = m.prop("MessageExpiryInterval")
    assert remaining is not None and 1 <= remaining <= 8, remaining
    back.assert_no_message(0.3)


# ---------------------------------------------------------------------------
# Properties passed through
# ---------------------------------------------------------------------------

def test_user_properties_passed_through_in_order(mk):
    sub = mk("up-sub", version=V5)
    sub.subscribe("up/t", 2)
    pub = mk("up-pub", version=V5)
    user = [("z", "last-letter"), ("a", "1"), ("a", "1"), ("a", "2"), ("ключ", "значение"), ("empty", "")]
    pub.publish("up/t", b"x", qos=2, props=_pprops(user_props=user))
    assert sub.get().user_props == user


def test_request_response_properties_passed_through(mk):
    sub = mk("rr-sub", version=V5)
    sub.subscribe("rr/req", 1)
    pub = mk("rr-pub", version=V5)
    corr = bytes(range(32))
    pub.publish("rr/req", "héllo".encode(), qos=1,
                props=_pprops(ResponseTopic="rr/resp/42", CorrelationData=corr,
                              ContentType="text/plain; charset=utf-8", PayloadFormatIndicator=1))
    m = sub.get()
    assert m.prop("ResponseTopic") == "rr/resp/42"
    assert m.prop("CorrelationData") == corr
    assert m.prop("ContentType") == "text/plain; charset=utf-8"
    assert m.prop("PayloadFormatIndicator") == 1
    # Complete the round trip using the response topic.
    pub.subscribe("rr/resp/+", 1)
    sub.publish(m.prop("ResponseTopic"), b"answer", qos=1,
                props=_pprops(CorrelationData=m.prop("CorrelationData")))
    r = pub.get()
    assert (r.topic, r.payload, r.prop("CorrelationData")) == ("rr/resp/42", b"answer", corr)


def test_subscription_identifiers_delivered(mk):
    sub = mk("sid-sub", version=V5)
    sub.subscribe("sid/+", 1, sub_id=7)
    sub.subscribe("plain/#", 1)
    sub.subscribe("big/#", 1, sub_id=268_435_455)
    pub = mk("sid-pub", version=V5)
    pub.publish("sid/a", b"1", qos=1)
    pub.publish("plain/a", b"2", qos=1)
    pub.publish("big/a", b"3", qos=1)
    a, b, c = sub.get_n(3)
    assert (a.topic, a.sub_ids) == ("sid/a", [7])
    assert (b.topic, b.sub_ids) == ("plain/a", [])
    assert (c.topic, c.sub_ids) == ("big/a", [268_435_455])


def test_subscription_identifiers_for_overlapping_subscriptions(mk):
    sub = mk("sid-sub", version=V5)
    sub.subscribe("sov/+", 1, sub_id=1)
    sub.subscribe("sov/#", 1, sub_id=2)
    pub = mk("sid-pub", version=V5)
    pub.publish("sov/a", b"x", qos=1)
    copies = [sub.get()] + sub.drain(0.5)
    ids = sorted(i for m in copies for i in m.sub_ids)
    assert ids == [1, 2], "each matching subscription's identifier must be delivered once: %r" % ids


def test_no_local(mk):
    me = mk("nl-me", version=V5)
    other = mk("nl-other", version=V5)
    me.subscribe("nl/t", 1, no_local=True)
    other.subscribe("nl/t", 1)
    me.publish("nl/t", b"from-me", qos=1)
    other.publish("nl/t", b"from-other", qos=1)
    assert [m.payload for m in other.get_n(2)] == [b"from-me", b"from-other"]
    m = me.get()
    assert m.payload == b"from-other"
    me.assert_no_message(0.4)


# ---------------------------------------------------------------------------
# Shared subscriptions
# ---------------------------------------------------------------------------

def test_shared_subscription_distributes_messages(mk):
    a = mk("share-a", version=V5)
    b = mk("share-b", version=V5)
    everyone = mk("share-plain", version=V5)
    other_group = mk("share-other-group", version=V5)
    assert a.subscribe("$share/g/sh/t", 1) == [1]
    assert b.subscribe("$share/g/sh/t", 1) == [1]
    everyone.subscribe("sh/t", 1)
    other_group.subscribe("$share/h/sh/+", 1)
    pub = mk("share-pub", version=V5)
    n = 20
    for i in range(n):
        pub.publish("sh/t", b"%d" % i, qos=1)
    assert sorted(int(m.payload) for m in everyone.get_n(n)) == list(range(n))
    assert sorted(int(m.payload) for m in other_group.get_n(n)) == list(range(n))
    got_a = [int(m.payload) for m in a.drain(1.0)]
    got_b = [int(m.payload) for m in b.drain(0.3)]
    assert sorted(got_a + got_b) == list(range(n)), "each message exactly once per group: a=%r b=%r" % (got_a, got_b)
    assert got_a and got_b, "both group members should get some messages: a=%r b=%r" % (got_a, got_b)
    for m in everyone.drain(0):
        assert m.topic == "sh/t"


def test_shared_subscription_message_topic_is_real_topic(mk):
    a = mk("share-a", version=V5)
    a.subscribe("$share/grp/st/#", 1)
    pub = mk("share-pub", version=V5)
    pub.publish("st/x/y", b"p", qos=1)
    m = a.get()
    assert (m.topic, m.payload) == ("st/x/y", b"p")


@pytest.mark.roost_only(reason="Mosquitto 2.0.11 accepts No Local on a shared subscription "
                               "instead of treating it as a Protocol Error (MQTT-3.8.3-4)")
def test_shared_subscription_with_no_local_is_protocol_error(raw):
    conn = raw()
    conn.mqtt_connect("share-nl", version=5)
    conn.send(R.subscribe(1, [("$share/g/nl/t", R.sub_options(1, no_local=True))], version=5))
    closed, packets = conn.wait_closed(3)
    assert closed, "No Local on a shared subscription is a Protocol Error (MQTT-3.8.3-4)"
    for pkt in packets:
        assert pkt.type == R.DISCONNECT and R.parse_disconnect(pkt)[0] == 0x82, pkt


# ---------------------------------------------------------------------------
# Flow control and size limits
# ---------------------------------------------------------------------------

def _receive_max_setup(raw, mk):
    conn = raw()
    conn.mqtt_connect("rm-sub", version=5, props=[(R.RECEIVE_MAXIMUM, 2)])
    conn.mqtt_subscribe("rm/t", qos=1, version=5)
    pub = mk("rm-pub", version=V5)
    for i in range(5):
        pub.publish("rm/t", b"%d" % i, qos=1)
    first = [R.parse_publish(conn.expect(R.PUBLISH), 5) for _ in range(2)]
    assert [p.payload for p in first] == [b"0", b"1"]
    closed, extra = conn.wait_closed(0.6)
    assert not closed and not extra, "more than Receive Maximum (2) unacknowledged: %r" % extra
    return conn, first


def test_server_respects_client_receive_maximum(raw, mk):
    conn, first = _receive_max_setup(raw, mk)
    got = [p.payload for p in first]
    for p in first:
        conn.send(R.puback(p.pid, 5))
    while len(got) < 5:
        p = R.parse_publish(conn.expect(R.PUBLISH), 5)
        got.append(p.payload)
        conn.send(R.puback(p.pid, 5))
    assert got == [b"0", b"1", b"2", b"3", b"4"]
    closed, extra = conn.wait_closed(0.3)
    assert not closed and not extra


@pytest.mark.roost_only(reason="Mosquitto 2.0.11 sends two new PUBLISH packets for one PUBACK, "
                               "exceeding the client's Receive Maximum (MQTT-3.3.4-9)")
def test_receive_maximum_window_slides_one_per_ack(raw, mk):
    conn, first = _receive_max_setup(raw, mk)
    conn.send(R.puback(first[0].pid, 5))
    nxt = R.parse_publish(conn.expect(R.PUBLISH), 5)
    assert nxt.payload == b"2"
    closed, extra = conn.wait_closed(0.4)
    assert not closed and not extra, "only one new message may follow one PUBACK: %r" % extra
    for p in first[1:] + [nxt]:
        conn.send(R.puback(p.pid, 5))
    rest = [R.parse_publish(conn.expect(R.PUBLISH), 5).payload for _ in range(2)]
    assert rest == [b"3", b"4"]


def test_maximum_packet_size_respected(mk):
    sub = mk("mps-sub", version=V5, connect_props=make_props("CONNECT", MaximumPacketSize=100))
    sub.subscribe("mps/t", 1)
    pub = mk("mps-pub", version=V5)
    pub.publish("mps/t", b"L" * 500, qos=1)
    pub.publish("mps/t", b"S" * 50, qos=1)
    m = sub.get()
    assert m.payload == b"S" * 50, "the 500-byte message must be dropped for this subscriber"
    sub.assert_no_message(0.3)
    assert not sub.disconnected.is_set()


def test_unsubscribe_reason_codes(mk):
    c = mk("unsub-rc", version=V5)
    c.subscribe("ur/a", 1)
    assert c.unsubscribe(["ur/a", "ur/never"]) == [0x00, 0x11]


def test_puback_for_publish_without_subscribers_is_success(raw):
    conn = raw()
    conn.mqtt_connect("pa-none", version=5)
    conn.send(R.publish("nobody/listens", b"x", qos=1, pid=5, version=5))
    pkt = conn.expect(R.PUBACK)
    assert R.ack_pid(pkt) == 5
    reason = pkt.body[2] if len(pkt.body) > 2 else 0
    assert reason in (0x00, 0x10), "expected Success or No matching subscribers, got %#x" % reason
