"""Regression tests for bugs found in Roost; each names what went wrong."""

import mqtt_raw as raw_mqtt

V311 = 4
V5 = 5


def test_publish_and_disconnect_in_one_segment_are_both_handled(broker, mk, raw):
    """mosquitto_pub writes PUBLISH and DISCONNECT back to back. Roost once queued the message
    for the subscriber but lost the wake-up, because no read-complete event follows a close;
    the subscriber then got nothing, ever again."""
    sub = mk("segment-sub", version=V5)
    sub.subscribe("seg/t", 0)
    for n in range(20):
        conn = raw()
        data = (raw_mqtt.connect("segment-pub-%d" % n, version=V311)
                + raw_mqtt.publish("seg/t", b"m%d" % n, qos=0)
                + raw_mqtt.disconnect(version=V311))
        conn.send(data)
        conn.wait_closed(3)
        conn.close()
    got = sub.get_n(20, timeout=5)
    assert [m.payload for m in got] == [b"m%d" % n for n in range(20)]
