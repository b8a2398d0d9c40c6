"""Persistent sessions, client identifiers and session takeover."""

import time

import pytest

import mqtt_raw as R
from pahoclient import V5, make_props

SUB_ID = "sess-sub"


def _persistent(mk, version, client_id=SUB_ID, **kw):
    if version == V5:
        return mk(client_id, version=V5, clean=False, session_expiry=60, **kw)
    return mk(client_id, version=version, clean=False, **kw)


def _raw_persistent_connect(conn, version, client_id):
    props = [(R.SESSION_EXPIRY_INTERVAL, 60)] if version == V5 else None
    return conn.mqtt_connect(client_id, version=version, clean=False, props=props)


@pytest.mark.parametrize("qos", [1, 2])
def test_persistent_session_queues_messages_while_offline(mk, version, qos):
    sub = _persistent(mk, version)
    assert sub.session_present is False, "a brand new session must not be reported as present"
    assert sub.subscribe("sess/q", qos) == [qos]
    sub.disconnect()
    pub = mk("sess-pub", version=version)
    for i in range(10):
        pub.publish("sess/q", b"queued-%d" % i, qos=qos)
    back = _persistent(mk, version)
    assert back.session_present is True
    msgs = back.get_n(10)
    assert [m.payload for m in msgs] == [b"queued-%d" % i for i in range(10)]
    assert {m.qos for m in msgs} == {qos}
    back.assert_no_message(0.3)
    # The subscription itself survived too.
    pub.publish("sess/q", b"live", qos=qos)
    assert back.get().payload == b"live"


def test_clean_session_discards_state(mk, version):
    sub = _persistent(mk, version)
    sub.subscribe("sess/q", 1)
    sub.disconnect()
    pub = mk("sess-pub", version=version)
    for i in range(10):
        pub.publish("sess/q", b"queued-%d" % i, qos=1)
    fresh = mk(SUB_ID, version=version, clean=True)
    assert fresh.session_present is False
    fresh.assert_no_message(0.5)
    pub.publish("sess/q", b"after-clean", qos=1)
    fresh.assert_no_message(0.4)


def test_unacked_qos1_redelivered_with_dup_on_resume(raw, mk, version):
    conn = raw()
    ack = _raw_persistent_connect(conn, version, "sess-raw")
    assert ack.session_present is False
    assert conn.mqtt_subscribe("sess/dup", qos=1, version=version) == [1]
    pub = mk("sess-pub", version=version)
    pub.publish("sess/dup", b"ack-me", qos=1)
    first = R.parse_publish(conn.expect(R.PUBLISH), version)
    assert (first.payload, first.qos, first.dup) == (b"ack-me", 1, False)
    conn.close()  # never acknowledged
    time.sleep(0.2)
    conn2 = raw()
    ack = _raw_persistent_connect(conn2, version, "sess-raw")
    assert ack.session_present is True
    again = R.parse_publish(conn2.expect(R.PUBLISH), version)
    assert (again.payload, again.qos, again.dup, again.pid) == (b"ack-me", 1, True, first.pid)
    conn2.send(R.puback(again.pid, version))
    assert conn2.is_open(0.3)


def test_unacked_qos2_pubrel_resent_on_resume(raw, mk, version):
    conn = raw()
    _raw_persistent_connect(conn, version, "sess-raw2")
    conn.mqtt_subscribe("sess/q2", qos=2, version=version)
    pub = mk("sess-pub", version=version)
    pub.publish("sess/q2", b"twice?", qos=2)
    p = R.parse_publish(conn.expect(R.PUBLISH), version)
    conn.send(R.pubrec(p.pid, version))
    assert R.ack_pid(conn.expect(R.PUBREL)) == p.pid
    conn.close()  # PUBCOMP never sent
    time.sleep(0.2)
    conn2 = raw()
    ack = _raw_persistent_connect(conn2, version, "sess-raw2")
    assert ack.session_present is True
    pkt = conn2.expect(R.PUBREL)
    assert pkt.flags == 0x02 and R.ack_pid(pkt) == p.pid
    conn2.send(R.pubcomp(p.pid, version))
    # The message itself must not be delivered a second time.
    closed, extra = conn2.wait_closed(0.5)
    assert not closed
    assert not [x for x in extra if x.type == R.PUBLISH]


# ---------------------------------------------------------------------------
# MQTT 5.0 session expiry
# ---------------------------------------------------------------------------

def test_v5_session_expiry_zero_ends_session_on_disconnect(mk):
    c = mk(SUB_ID, version=V5, clean=False, session_expiry=0)
    c.subscribe("sess/x", 1)
    c.disconnect()
    again = mk(SUB_ID, version=V5, clean=False, session_expiry=0)
    assert again.session_present is False


def test_v5_session_expires_after_interval(mk):
    c = mk(SUB_ID, version=V5, clean=False, session_expiry=1)
    c.subscribe("sess/x", 1)
    c.disconnect()
    time.sleep(2.5)
    again = mk(SUB_ID, version=V5, clean=False, session_expiry=60)
    assert again.session_present is False


def test_v5_disconnect_can_shorten_session_expiry(mk):
    c = mk(SUB_ID, version=V5, clean=False, session_expiry=60)
    c.subscribe("sess/x", 1)
    c.disconnect(props=make_props("DISCONNECT", SessionExpiryInterval=0))
    time.sleep(0.3)
    again = mk(SUB_ID, version=V5, clean=False, session_expiry=60)
    assert again.session_present is False


@pytest.mark.broker_options(max_queued_messages=5)
def test_offline_queue_is_bounded(mk, version):
    sub = _persistent(mk, version)
    sub.subscribe("sess/bounded", 1)
    sub.disconnect()
    pub = mk("sess-pub", version=version)
    for i in range(20):
        pub.publish("sess/bounded", b"%d" % i, qos=1)
    back = _persistent(mk, version)
    assert back.session_present is True
    got = [int(m.payload) for m in back.drain(1.0)]
    assert 1 <= len(got) <= 5, "expected at most 5 queued messages, got %r" % got
    assert got == sorted(set(got)), "queued messages out of order or duplicated: %r" % got


# ---------------------------------------------------------------------------
# Client identifiers
# ---------------------------------------------------------------------------

def test_v5_empty_client_id_gets_assigned_identifier(mk):
    a = mk("", version=V5)
    b = mk("", version=V5)
    assert a.assigned_client_id, "CONNACK must carry an Assigned Client Identifier"
    assert b.assigned_client_id
    assert a.assigned_client_id != b.assigned_client_id


def test_v5_raw_empty_client_id_assigned(raw):
    conn = raw()
    ack = conn.mqtt_connect("", version=5)
    assert ack.reason == 0
    assigned = R.prop(ack.props, R.ASSIGNED_CLIENT_IDENTIFIER)
    assert isinstance(assigned, str) and assigned


def test_v311_empty_client_id_with_clean_session_accepted(raw):
    conn = raw()
    conn.send(R.connect("", version=4, clean=True))
    assert conn.expect(R.CONNACK).body == b"\x00\x00"


def test_v311_empty_client_id_without_clean_session_rejected(raw):
    conn = raw()
    conn.send(R.connect("", version=4, clean=False))
    pkt = conn.expect(R.CONNACK)
    assert pkt.body == b"\x00\x02", "expected CONNACK 0x02 (identifier rejected), got %s" % pkt.body.hex()
    closed, _ = conn.wait_closed(3)
    assert closed


# ---------------------------------------------------------------------------
# Takeover
# ---------------------------------------------------------------------------

def _takeover(raw, mk, version):
    first = raw()
    assert first.mqtt_connect("sess-twin", version=version).reason == 0
    second = mk("sess-twin", version=version)
    assert second.connack_rc == 0
    closed, packets = first.wait_closed(3)
    assert closed, "the first connection must be closed on takeover"
    return second, packets


def test_takeover_closes_first_connection(raw, mk, version):
    second, packets = _takeover(raw, mk, version)
    if version == V5:
        # Roost must send DISCONNECT 0x8E (see the roost_only test below);
        # anything sent at all must be exactly that.
        for pkt in packets:
            assert pkt.type == R.DISCONNECT and R.parse_disconnect(pkt)[0] == 0x8E, pkt
    else:
        assert not packets, "3.1.1 has no server DISCONNECT: %r" % packets
    # The new connection works.
    second.subscribe("sess/twin", 1)
    second.publish("sess/twin", b"still-here", qos=1)
    assert second.get().payload == b"still-here"


@pytest.mark.roost_only(reason="Mosquitto 2.0.11 closes the old connection without sending "
                               "DISCONNECT 0x8E (MQTT 5.0 MQTT-3.1.4-3)")
def test_v5_takeover_sends_disconnect_session_taken_over(raw, mk):
    _, packets = _takeover(raw, mk, V5)
    assert [p.type for p in packets] == [R.DISCONNECT], "expected exactly one DISCONNECT, got %r" % packets
    reason, _ = R.parse_disconnect(packets[0])
    assert reason == 0x8E, "expected Session taken over (0x8E), got %#x" % reason


def test_takeover_continues_persistent_session(raw, mk, version):
    first = raw()
    _raw_persistent_connect(first, version, "sess-twin")
    first.mqtt_subscribe("sess/twin", qos=1, version=version)
    second = _persistent(mk, version, client_id="sess-twin")
    assert second.session_present is True
    closed, _ = first.wait_closed(3)
    assert closed
    pub = mk("sess-pub", version=version)
    pub.publish("sess/twin", b"routed-to-second", qos=1)
    assert second.get().payload == b"routed-to-second"
