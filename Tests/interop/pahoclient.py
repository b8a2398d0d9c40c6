"""A small synchronous wrapper around paho-mqtt 2.x for the acceptance tests.

Every blocking call takes a timeout so a misbehaving broker fails a test
instead of hanging it.
"""

import queue
import socket
import threading
import time
from dataclasses import dataclass, field

from support import require_paho

mqtt = require_paho()
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.subscribeoptions import SubscribeOptions  # noqa: E402

V311 = 4
V5 = 5
_PROTOCOL = {V311: mqtt.MQTTv311, V5: mqtt.MQTTv5}

DEFAULT_TIMEOUT = 5.0


def make_props(packet_type, user_props=None, **values):
    """Build paho Properties, e.g. make_props("PUBLISH", MessageExpiryInterval=5).
    packet_type is a PacketTypes name ("CONNECT", "PUBLISH", "SUBSCRIBE", "WILLMESSAGE", ...)."""
    props = Properties(getattr(PacketTypes, packet_type))
    for name, value in values.items():
        setattr(props, name, value)
    if user_props:
        props.UserProperty = list(user_props)
    return props


def get_prop(props, name, default=None):
    if props is None:
        return default
    return getattr(props, name, default)


@dataclass
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    props: object = None
    received_at: float = field(default_factory=time.monotonic)

    def prop(self, name, default=None):
        return get_prop(self.props, name, default)

    @property
    def user_props(self):
        return list(self.prop("UserProperty", []) or [])

    @property
    def sub_ids(self):
        value = self.prop("SubscriptionIdentifier", [])
        if isinstance(value, int):
            return [value]
        return list(value or [])


class ConnectFailed(AssertionError):
    pass


class TestClient:
    """One paho client connected to the broker under test."""

    __test__ = False  # not a pytest test class

    def __init__(self, port, client_id="", version=V5, clean=True, session_expiry=None,
                 keepalive=10, will=None, connect_props=None, host="127.0.0.1"):
        self.port = port
        self.host = host
        self.version = version
        self.clean = clean
        self.keepalive = keepalive
        self.session_expiry = session_expiry
        self.connect_props = connect_props
        kwargs = dict(callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
                      client_id=client_id, protocol=_PROTOCOL[version],
                      reconnect_on_failure=False)
        if version != V5:
            kwargs["clean_session"] = clean
        self.c = mqtt.Client(**kwargs)
        if will is not None:
            self.c.will_set(will["topic"], will.get("payload", b""), will.get("qos", 0),
                            will.get("retain", False), will.get("props"))
        self.messages = queue.Queue()
        self._cond = threading.Condition()
        self._acks = {}          # mid -> list of int reason codes (SUBACK/UNSUBACK)
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack_rc = None
        self.session_present = None
        self.connack_props = None
        self.disconnect_rc = None
        self.disconnect_props = None
        self.c.on_connect = self._on_connect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_ack
        self.c.on_unsubscribe = self._on_ack
        self.c.on_disconnect = self._on_disconnect

    # -- callbacks (network thread) -------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack_rc = reason_code.value if hasattr(reason_code, "value") else int(reason_code)
        self.session_present = bool(flags.session_present)
        self.connack_props = properties
        self.connected.set()

    def _on_message(self, client, userdata, msg):
        self.messages.put(Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain),
                                  bool(msg.dup), getattr(msg, "properties", None)))

    def _on_ack(self, client, userdata, mid, reason_code_list, properties):
        with self._cond:
            self._acks[mid] = [rc.value if hasattr(rc, "value") else int(rc)
                               for rc in reason_code_list]
            self._cond.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnect_rc = reason_code.value if hasattr(reason_code, "value") else reason_code
        self.disconnect_props = properties
        self.disconnected.set()

    # -- connection -----------------------------------------------------------
    def connect(self, timeout=DEFAULT_TIMEOUT, expect_success=True):
        kwargs = {}
        if self.version == V5:
            props = self.connect_props or make_props("CONNECT")
            if self.session_expiry is not None:
                props.SessionExpiryInterval = self.session_expiry
            kwargs["clean_start"] = self.clean
            kwargs["properties"] = props
        self.c.connect(self.host, self.port, keepalive=self.keepalive, **kwargs)
        self.c.loop_start()
        if not self.connected.wait(timeout):
            raise ConnectFailed("no CONNACK within %.1fs" % timeout)
        if expect_success and self.connack_rc != 0:
            raise ConnectFailed("CONNACK refused: reason %#x" % self.connack_rc)
        return self

    @property
    def assigned_client_id(self):
        return get_prop(self.connack_props, "AssignedClientIdentifier")

    def connack_prop(self, name, default=None):
        return get_prop(self.connack_props, name, default)

    def disconnect(self, reason_code=None, props=None, timeout=DEFAULT_TIMEOUT):
        """Clean DISCONNECT. reason_code is an int (5.0 only)."""
        kwargs = {}
        if reason_code is not None:
            from paho.mqtt.reasoncodes import ReasonCode
            kwargs["reasoncode"] = ReasonCode(PacketTypes.DISCONNECT, identifier=reason_code)
        if props is not None:
            kwargs["properties"] = props
        self.c.disconnect(**kwargs)
        self.disconnected.wait(timeout)
        self.c.loop_stop()

    def abort(self, timeout=DEFAULT_TIMEOUT):
        """Drop the TCP connection without sending DISCONNECT."""
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.disconnected.wait(timeout)
        self.c.loop_stop()

    def close_quietly(self):
        try:
            if self.connected.is_set() and not self.disconnected.is_set():
                self.c.disconnect()
                self.disconnected.wait(2)
            self.c.loop_stop()
        except Exception:  # noqa: BLE001 - teardown must not raise
            pass

    # -- subscribe / unsubscribe ---------------------------------------------
    def _wait_ack(self, mid, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while mid not in self._acks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("no SUBACK/UNSUBACK for mid %d within %.1fs" % (mid, timeout))
                self._cond.wait(remaining)
            return self._acks.pop(mid)

    def subscribe(self, topic, qos=0, no_local=False, retain_as_published=False,
                  retain_handling=0, sub_id=None, props=None, timeout=DEFAULT_TIMEOUT):
        """Subscribe to one filter (str) or several ([(filter, qos), ...]).
        Returns the list of granted QoS / reason codes from the SUBACK."""
        if self.version == V5:
            if sub_id is not None:
                props = props or make_props("SUBSCRIBE")
                props.SubscriptionIdentifier = sub_id

            def opts(q):
                return SubscribeOptions(qos=q, noLocal=no_local, retainAsPublished=retain_as_published,
                                        retainHandling=retain_handling)
            if isinstance(topic, str):
                rc, mid = self.c.subscribe(topic, options=opts(qos), properties=props)
            else:
                rc, mid = self.c.subscribe([(t, opts(q)) for t, q in topic], properties=props)
        else:
            if isinstance(topic, str):
                rc, mid = self.c.subscribe(topic, qos)
            else:
                rc, mid = self.c.subscribe(list(topic))
        assert rc == mqtt.MQTT_ERR_SUCCESS, "subscribe() failed locally: %s" % rc
        return self._wait_ack(mid, timeout)

    def unsubscribe(self, topic, timeout=DEFAULT_TIMEOUT):
        rc, mid = self.c.unsubscribe(topic)
        assert rc == mqtt.MQTT_ERR_SUCCESS, "unsubscribe() failed locally: %s" % rc
        return self._wait_ack(mid, timeout)

    # -- publish --------------------------------------------------------------
    def publish(self, topic, payload=b"", qos=0, retain=False, props=None, wait=True,
                timeout=DEFAULT_TIMEOUT):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, "publish() failed locally: %s" % info.rc
        if wait:
            info.wait_for_publish(timeout)
            assert info.is_published(), "publish to %r (QoS %d) not acknowledged within %.1fs" % (
                topic, qos, timeout)
        return info

    # -- receive --------------------------------------------------------------
    def get(self, timeout=DEFAULT_TIMEOUT):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message received within %.1fs" % timeout) from None

    def get_n(self, n, timeout=DEFAULT_TIMEOUT):
        """Exactly n messages, all within one overall timeout."""
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < n:
            remaining = deadline - time.monotonic()
            try:
                got.append(self.messages.get(timeout=max(0.0, remaining)))
            except queue.Empty:
                raise AssertionError("got %d of %d messages within %.1fs: %r" % (
                    len(got), n, timeout, [(m.topic, m.payload[:40]) for m in got])) from None
        return got

    def drain(self, wait=0.3):
        """All messages that arrive within `wait` seconds."""
        deadline = time.monotonic() + wait
        got = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return got
            try:
                got.append(self.messages.get(timeout=remaining))
            except queue.Empty:
                return got

    def assert_no_message(self, wait=0.5):
        extra = self.drain(wait)
        assert not extra, "unexpected message(s): %r" % [(m.topic, m.payload[:40], m.retain) for m in extra]
