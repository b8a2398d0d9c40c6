"""Retained messages, MQTT 5.0 Retain Handling / Retain As Published, expiry."""

import time

import pytest

from pahoclient import V5, make_props


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_retained_stored_and_delivered_on_subscribe(mk, version, qos):
    live = mk("ret-live", version=version)
    live.subscribe("ret/a", 2)
    pub = mk("ret-pub", version=version)
    pub.publish("ret/a", b"retained-payload", qos=qos, retain=True)
    # An existing subscriber gets the message as a normal (non-retained) publish.
    m = live.get()
    assert (m.payload, m.qos, m.retain) == (b"retained-payload", qos, False)
    pub.disconnect()
    late = mk("ret-late", version=version)
    late.subscribe("ret/a", 2)
    m = late.get()
    assert (m.topic, m.payload, m.retain, m.qos) == ("ret/a", b"retained-payload", True, qos)
    late.assert_no_message(0.3)


def test_retained_replaced(mk, version):
    pub = mk("ret-pub", version=version)
    pub.publish("ret/r", b"first", qos=1, retain=True)
    pub.publish("ret/r", b"second", qos=1, retain=True)
    late = mk("ret-late", version=version)
    late.subscribe("ret/r", 1)
    m = late.get()
    assert (m.payload, m.retain) == (b"second", True)
    late.assert_no_message(0.4)


def test_retained_deleted_by_empty_payload(mk, version):
    pub = mk("ret-pub", version=version)
    live = mk("ret-live", version=version)
    pub.publish("ret/d", b"doomed", qos=1, retain=True)
    live.subscribe("ret/d", 1)
    assert live.get().payload == b"doomed"
    pub.publish("ret/d", b"", qos=1, retain=True)
    # The zero-length retained publish still reaches current subscribers.
    m = live.get()
    assert m.payload == b""
    late = mk("ret-late", version=version)
    late.subscribe("ret/d", 1)
    late.assert_no_message(0.5)


def test_non_retained_publish_is_not_stored(mk, version):
    pub = mk("ret-pub", version=version)
    pub.publish("ret/n", b"fleeting", qos=1, retain=False)
    late = mk("ret-late", version=version)
    late.subscribe("ret/n", 1)
    late.assert_no_message(0.5)


def test_non_retained_publish_keeps_existing_retained(mk, version):
    pub = mk("ret-pub", version=version)
    pub.publish("ret/k", b"kept", qos=1, retain=True)
    pub.publish("ret/k", b"live-only", qos=1, retain=False)
    late = mk("ret-late", version=version)
    late.subscribe("ret/k", 1)
    assert late.get().payload == b"kept"
    late.assert_no_message(0.3)


def test_wildcard_subscribe_gets_all_matching_retained(mk, version):
    pub = mk("ret-pub", version=version)
    for topic in ["ret/w/1", "ret/w/2", "ret/w/3/deep", "ret/other"]:
        pub.publish(topic, topic.encode(), qos=1, retain=True)
    late = mk("ret-late", version=version)
    late.subscribe("ret/w/+", 1)
    got = sorted(m.topic for m in late.get_n(2))
    assert got == ["ret/w/1", "ret/w/2"]
    late.assert_no_message(0.3)
    deep = mk("ret-deep", version=version)
    deep.subscribe("ret/#", 1)
    got = sorted((m.topic, m.payload) for m in deep.get_n(4))
    assert got == [(t, t.encode()) for t in ["ret/other", "ret/w/1", "ret/w/2", "ret/w/3/deep"]]


# ---------------------------------------------------------------------------
# MQTT 5.0 subscription options
# ---------------------------------------------------------------------------

def test_retain_handling_0_sends_on_every_subscribe(mk):
    pub = mk("ret-pub", version=V5)
    pub.publish("ret/rh", b"r", qos=1, retain=True)
    sub = mk("ret-rh0", version=V5)
    sub.subscribe("ret/rh", 1, retain_handling=0)
    assert sub.get().retain is True
    sub.subscribe("ret/rh", 1, retain_handling=0)
    m = sub.get()
    assert (m.payload, m.retain) == (b"r", True)


def test_retain_handling_1_sends_only_for_new_subscription(mk):
    pub = mk("ret-pub", version=V5)
    pub.publish("ret/rh", b"r", qos=1, retain=True)
    sub = mk("ret-rh1", version=V5)
    sub.subscribe("ret/rh", 1, retain_handling=1)
    assert sub.get().retain is True
    sub.subscribe("ret/rh", 1, retain_handling=1)
    sub.assert_no_message(0.5)
    sub.unsubscribe("ret/rh")
    sub.subscribe("ret/rh", 1, retain_handling=1)
    assert sub.get().payload == b"r"


def test_retain_handling_2_never_sends_retained(mk):
    pub = mk("ret-pub", version=V5)
    pub.publish("ret/rh", b"r", qos=1, retain=True)
    sub = mk("ret-rh2", version=V5)
    sub.subscribe("ret/rh", 1, retain_handling=2)
    sub.assert_no_message(0.5)
    # ...but live messages still flow.
    pub.publish("ret/rh", b"live", qos=1)
    assert sub.get().payload == b"live"


def test_retain_as_published(mk):
    rap = mk("ret-rap1", version=V5)
    plain = mk("ret-rap0", version=V5)
    rap.subscribe("ret/rap", 1, retain_as_published=True)
    plain.subscribe("ret/rap", 1, retain_as_published=False)
    pub = mk("ret-pub", version=V5)
    pub.publish("ret/rap", b"flagged", qos=1, retain=True)
    pub.publish("ret/rap", b"unflagged", qos=1, retain=False)
    a1, a2 = rap.get_n(2)
    assert [(a1.payload, a1.retain), (a2.payload, a2.retain)] == [(b"flagged", True), (b"unflagged", False)]
    b1, b2 = plain.get_n(2)
    assert [(b1.payload, b1.retain), (b2.payload, b2.retain)] == [(b"flagged", False), (b"unflagged", False)]


def test_retained_message_expires(mk):
    pub = mk("ret-pub", version=V5)
    pub.publish("ret/exp/short", b"short-lived", qos=1, retain=True,
                props=make_props("PUBLISH", MessageExpiryInterval=1))
    pub.publish("ret/exp/long", b"long-lived", qos=1, retain=True,
                props=make_props("PUBLISH", MessageExpiryInterval=30))
    time.sleep(2.2)
    late = mk("ret-late", version=V5)
    late.subscribe("ret/exp/#", 1)
    m = late.get()
    assert (m.topic, m.payload, m.retain) == ("ret/exp/long", b"long-lived", True)
    remaining = m.prop("MessageExpiryInterval")
    assert remaining is not None, "expiry interval must be forwarded"
    assert 1 <= remaining <= 29, "forwarded expiry must be reduced by the time waited (got %r)" % remaining
    late.assert_no_message(0.4)
