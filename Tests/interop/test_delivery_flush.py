"""delivery_flush_interval with real clients (paho): a subscriber written to less than the
interval ago gets its next messages together, at most about the interval later, in order and
at their QoS; a subscriber that receives less often is written at once; the publisher's own
acknowledgements are never held. Set as a flag and in the config file.

roost_only: Mosquitto has no such setting.
"""

import time

import pytest

from security_support import Listener

INTERVAL_MS = 400


@pytest.mark.roost_only(reason="delivery_flush_interval is Roost's")
@pytest.mark.parametrize("style", ["flags", "config"])
@pytest.mark.parametrize("version", [4, 5])
def test_deliveries_within_the_interval_go_out_together(launch, clients, style, version):
    b = launch([Listener("tcp")], {"delivery_flush_interval": INTERVAL_MS}, style=style)
    sub = clients(b.port, "flush-sub-%d" % version, version)
    pub = clients(b.port, "flush-pub-%d" % version, version)
    sub.subscribe("flush/t", 1)

    start = time.monotonic()
    pub.publish("flush/t", b"1", qos=1)
    first = sub.get(timeout=3)
    assert first.payload == b"1"
    assert first.received_at - start < INTERVAL_MS / 2000, "the first message is written at once"

    # Within the interval: these wait for it, and go out together.
    sent = time.monotonic()
    pub.publish("flush/t", b"2", qos=1)      # waits for its PUBACK: acks are not held
    pub.publish("flush/t", b"3", qos=0)
    acked = time.monotonic() - sent
    assert acked < INTERVAL_MS / 2000, "the publisher's PUBACK was held back (%.3f s)" % acked
    rest = sub.get_n(2, timeout=5)
    assert [m.payload for m in rest] == [b"2", b"3"]
    assert [m.qos for m in rest] == [1, 0]
    waited = rest[0].received_at - first.received_at
    assert INTERVAL_MS / 2000 <= waited <= INTERVAL_MS / 1000 + 1.0, "waited %.3f s" % waited
    assert abs(rest[1].received_at - rest[0].received_at) < 0.1, "one write carries both"

    # Quiet for longer than the interval: written at once again.
    time.sleep(INTERVAL_MS / 1000 + 0.2)
    again = time.monotonic()
    pub.publish("flush/t", b"4", qos=1)
    fourth = sub.get(timeout=3)
    assert fourth.payload == b"4"
    assert fourth.received_at - again < INTERVAL_MS / 2000

