"""Hand-rolled MQTT 3.1.1 / 5.0 packet building and reading over raw sockets.

Used by the acceptance tests whenever a real client library would refuse to
produce the bytes we need (protocol errors, unusual flags) or when we need to
observe exactly what the broker sends back.

Protocol levels: 4 = MQTT 3.1.1, 5 = MQTT 5.0.
"""

import select
import socket
import struct
import time
from dataclasses import dataclass, field

# Control packet types
CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

PACKET_NAMES = {
    CONNECT: "CONNECT", CONNACK: "CONNACK", PUBLISH: "PUBLISH", PUBACK: "PUBACK",
    PUBREC: "PUBREC", PUBREL: "PUBREL", PUBCOMP: "PUBCOMP", SUBSCRIBE: "SUBSCRIBE",
    SUBACK: "SUBACK", UNSUBSCRIBE: "UNSUBSCRIBE", UNSUBACK: "UNSUBACK",
    PINGREQ: "PINGREQ", PINGRESP: "PINGRESP", DISCONNECT: "DISCONNECT", AUTH: "AUTH",
}

# MQTT 5.0 property identifiers
PAYLOAD_FORMAT_INDICATOR = 0x01
MESSAGE_EXPIRY_INTERVAL = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_IDENTIFIER = 0x0B
SESSION_EXPIRY_INTERVAL = 0x11
ASSIGNED_CLIENT_IDENTIFIER = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTHENTICATION_METHOD = 0x15
AUTHENTICATION_DATA = 0x16
REQUEST_PROBLEM_INFORMATION = 0x17
WILL_DELAY_INTERVAL = 0x18
REQUEST_RESPONSE_INFORMATION = 0x19
RESPONSE_INFORMATION = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28
SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29
SHARED_SUBSCRIPTION_AVAILABLE = 0x2A

_BYTE, _U16, _U32, _VARINT, _STR, _BIN, _PAIR = range(7)
PROPERTY_TYPES = {
    PAYLOAD_FORMAT_INDICATOR: _BYTE,
    MESSAGE_EXPIRY_INTERVAL: _U32,
    CONTENT_TYPE: _STR,
    RESPONSE_TOPIC: _STR,
    CORRELATION_DATA: _BIN,
    SUBSCRIPTION_IDENTIFIER: _VARINT,
    SESSION_EXPIRY_INTERVAL: _U32,
    ASSIGNED_CLIENT_IDENTIFIER: _STR,
    SERVER_KEEP_ALIVE: _U16,
    AUTHENTICATION_METHOD: _STR,
    AUTHENTICATION_DATA: _BIN,
    REQUEST_PROBLEM_INFORMATION: _BYTE,
    WILL_DELAY_INTERVAL: _U32,
    REQUEST_RESPONSE_INFORMATION: _BYTE,
    RESPONSE_INFORMATION: _STR,
    SERVER_REFERENCE: _STR,
    REASON_STRING: _STR,
    RECEIVE_MAXIMUM: _U16,
    TOPIC_ALIAS_MAXIMUM: _U16,
    TOPIC_ALIAS: _U16,
    MAXIMUM_QOS: _BYTE,
    RETAIN_AVAILABLE: _BYTE,
    USER_PROPERTY: _PAIR,
    MAXIMUM_PACKET_SIZE: _U32,
    WILDCARD_SUBSCRIPTION_AVAILABLE: _BYTE,
    SUBSCRIPTION_IDENTIFIER_AVAILABLE: _BYTE,
    SHARED_SUBSCRIPTION_AVAILABLE: _BYTE,
}


class MalformedPacket(Exception):
    """The broker sent bytes we could not decode."""


# ---------------------------------------------------------------------------
# Primitive encoders / decoders
# ---------------------------------------------------------------------------

def encode_varint(value):
    if value < 0 or value > 268_435_455:
        raise ValueError("varint out of range: %r" % value)
    out = bytearray()
    while True:
        byte = value % 128
        value //= 128
        if value:
            byte |= 0x80
        out.append(byte)
        if not value:
            return bytes(out)


def decode_varint(data, pos=0):
    """Return (value, new_pos). Raises MalformedPacket on > 4 bytes."""
    multiplier = 1
    value = 0
    for i in range(4):
        if pos >= len(data):
            raise MalformedPacket("truncated varint")
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            return value, pos
        multiplier *= 128
    raise MalformedPacket("varint longer than 4 bytes")


def encode_string(value):
    if isinstance(value, str):
        value = value.encode("utf-8")
    return struct.pack("!H", len(value)) + value


encode_binary = encode_string


def _decode_bin(data, pos):
    if pos + 2 > len(data):
        raise MalformedPacket("truncated length prefix")
    (n,) = struct.unpack_from("!H", data, pos)
    pos += 2
    if pos + n > len(data):
        raise MalformedPacket("truncated string/binary")
    return bytes(data[pos:pos + n]), pos + n


def _decode_str(data, pos):
    raw, pos = _decode_bin(data, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as exc:
        raise MalformedPacket("invalid UTF-8 from broker: %r" % raw) from exc


def encode_properties(props):
    """props: None or an iterable of (identifier, value) pairs (order kept,
    repeats allowed, e.g. several USER_PROPERTY entries)."""
    body = bytearray()
    for ident, value in props or ():
        kind = PROPERTY_TYPES[ident]
        body += encode_varint(ident)
        if kind == _BYTE:
            body.append(value)
        elif kind == _U16:
            body += struct.pack("!H", value)
        elif kind == _U32:
            body += struct.pack("!I", value)
        elif kind == _VARINT:
            body += encode_varint(value)
        elif kind in (_STR, _BIN):
            body += encode_string(value)
        elif kind == _PAIR:
            body += encode_string(value[0]) + encode_string(value[1])
    return encode_varint(len(body)) + bytes(body)


def decode_properties(data, pos):
    """Return (list of (identifier, value), new_pos)."""
    length, pos = decode_varint(data, pos)
    end = pos + length
    if end > len(data):
        raise MalformedPacket("property length beyond packet")
    props = []
    while pos < end:
        ident, pos = decode_varint(data, pos)
        kind = PROPERTY_TYPES.get(ident)
        if kind is None:
            raise MalformedPacket("unknown property id 0x%02x" % ident)
        if kind == _BYTE:
            value = data[pos]
            pos += 1
        elif kind == _U16:
            (value,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif kind == _U32:
            (value,) = struct.unpack_from("!I", data, pos)
            pos += 4
        elif kind == _VARINT:
            value, pos = decode_varint(data, pos)
        elif kind == _STR:
            value, pos = _decode_str(data, pos)
        elif kind == _BIN:
            value, pos = _decode_bin(data, pos)
        else:
            k, pos = _decode_str(data, pos)
            v, pos = _decode_str(data, pos)
            value = (k, v)
        props.append((ident, value))
    if pos != end:
        raise MalformedPacket("property block overran its length")
    return props, pos


def prop(props, ident, default=None):
    """Last value of a property in a decoded list."""
    found = default
    for key, value in props or ():
        if key == ident:
            found = value
    return found


def prop_all(props, ident):
    return [value for key, value in props or () if key == ident]


# ---------------------------------------------------------------------------
# Packet builders
# ---------------------------------------------------------------------------

def packet(ptype, flags, body=b""):
    return bytes([(ptype << 4) | (flags & 0x0F)]) + encode_varint(len(body)) + bytes(body)


def connect(client_id="", version=4, clean=True, keepalive=10, will=None,
            username=None, password=None, props=None, proto_name="MQTT",
            level=None, reserved_flag=False):
    """Build a CONNECT packet.

    will: dict(topic=..., payload=b"", qos=0, retain=False, props=[...])
    level: override the protocol level byte (default: version).
    """
    flags = 0
    if clean:
        flags |= 0x02
    if reserved_flag:
        flags |= 0x01
    if will is not None:
        flags |= 0x04 | ((will.get("qos", 0) & 0x03) << 3)
        if will.get("retain"):
            flags |= 0x20
    if password is not None:
        flags |= 0x40
    if username is not None:
        flags |= 0x80
    body = bytearray()
    body += encode_string(proto_name)
    body.append(version if level is None else level)
    body.append(flags)
    body += struct.pack("!H", keepalive)
    if version == 5:
        body += encode_properties(props)
    body += encode_string(client_id)
    if will is not None:
        if version == 5:
            body += encode_properties(will.get("props"))
        body += encode_string(will["topic"])
        body += encode_binary(will.get("payload", b""))
    if username is not None:
        body += encode_string(username)
    if password is not None:
        body += encode_binary(password)
    return packet(CONNECT, 0, body)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, pid=None,
            props=None, version=4, flags=None):
    if flags is None:
        flags = (0x08 if dup else 0) | ((qos & 0x03) << 1) | (0x01 if retain else 0)
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    body = bytearray(encode_string(topic))
    if qos > 0 or (flags >> 1) & 0x03:
        body += struct.pack("!H", pid if pid is not None else 1)
    if version == 5:
        body += encode_properties(props)
    body += payload
    return packet(PUBLISH, flags, body)


def subscribe(pid, subscriptions, version=4, props=None, flags=0x02):
    """subscriptions: list of (topic_filter, options_byte). For 3.1.1 the
    options byte is just the requested QoS."""
    body = bytearray(struct.pack("!H", pid))
    if version == 5:
        body += encode_properties(props)
    for topic, options in subscriptions:
        body += encode_string(topic)
        body.append(options)
    return packet(SUBSCRIBE, flags, body)


def sub_options(qos=0, no_local=False, retain_as_published=False, retain_handling=0):
    return (qos & 0x03) | (0x04 if no_local else 0) | (0x08 if retain_as_published else 0) \
        | ((retain_handling & 0x03) << 4)


def unsubscribe(pid, topics, version=4, props=None):
    body = bytearray(struct.pack("!H", pid))
    if version == 5:
        body += encode_properties(props)
    for topic in topics:
        body += encode_string(topic)
    return packet(UNSUBSCRIBE, 0x02, body)


def _ack(ptype, flags, pid, version, reason, props):
    body = bytearray(struct.pack("!H", pid))
    if version == 5 and (reason or props):
        body.append(reason or 0)
        if props:
            body += encode_properties(props)
    return packet(ptype, flags, body)


def puback(pid, version=4, reason=0, props=None):
    return _ack(PUBACK, 0, pid, version, reason, props)


def pubrec(pid, version=4, reason=0, props=None):
    return _ack(PUBREC, 0, pid, version, reason, props)


def pubrel(pid, version=4, reason=0, props=None):
    return _ack(PUBREL, 0x02, pid, version, reason, props)


def pubcomp(pid, version=4, reason=0, props=None):
    return _ack(PUBCOMP, 0, pid, version, reason, props)


def pingreq():
    return packet(PINGREQ, 0)


def disconnect(version=4, reason=None, props=None):
    if version != 5 or (reason is None and not props):
        return packet(DISCONNECT, 0)
    body = bytes([reason or 0])
    if props:
        body += encode_properties(props)
    return packet(DISCONNECT, 0, body)


# ---------------------------------------------------------------------------
# Packet parsing
# ---------------------------------------------------------------------------

@dataclass
class Packet:
    type: int
    flags: int
    body: bytes

    @property
    def name(self):
        return PACKET_NAMES.get(self.type, "TYPE%d" % self.type)

    def __repr__(self):
        return "<%s flags=%#x body=%s>" % (self.name, self.flags, self.body.hex())


@dataclass
class Connack:
    session_present: bool
    reason: int
    props: list = field(default_factory=list)


@dataclass
class Publish:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    pid: int
    props: list = field(default_factory=list)


def parse_connack(pkt, version=4):
    assert pkt.type == CONNACK, "expected CONNACK, got %r" % (pkt,)
    body = pkt.body
    if len(body) < 2:
        raise MalformedPacket("short CONNACK")
    props = []
    if version == 5 and len(body) > 2:
        props, _ = decode_properties(body, 2)
    return Connack(bool(body[0] & 0x01), body[1], props)


def parse_publish(pkt, version=4):
    assert pkt.type == PUBLISH, "expected PUBLISH, got %r" % (pkt,)
    qos = (pkt.flags >> 1) & 0x03
    topic, pos = _decode_str(pkt.body, 0)
    pid = 0
    if qos:
        (pid,) = struct.unpack_from("!H", pkt.body, pos)
        pos += 2
    props = []
    if version == 5:
        props, pos = decode_properties(pkt.body, pos)
    return Publish(topic, bytes(pkt.body[pos:]), qos, bool(pkt.flags & 0x01),
                   bool(pkt.flags & 0x08), pid, props)


def parse_suback(pkt, version=4):
    """Return (pid, [reason codes])."""
    assert pkt.type in (SUBACK, UNSUBACK), "expected SUBACK/UNSUBACK, got %r" % (pkt,)
    (pid,) = struct.unpack_from("!H", pkt.body, 0)
    pos = 2
    if version == 5:
        _, pos = decode_properties(pkt.body, pos)
    return pid, list(pkt.body[pos:])


def parse_disconnect(pkt):
    """Return (reason code, props) of a 5.0 DISCONNECT."""
    assert pkt.type == DISCONNECT, "expected DISCONNECT, got %r" % (pkt,)
    if not pkt.body:
        return 0, []
    props = []
    if len(pkt.body) > 1:
        props, _ = decode_properties(pkt.body, 1)
    return pkt.body[0], props


def ack_pid(pkt):
    (pid,) = struct.unpack_from("!H", pkt.body, 0)
    return pid


# ---------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------

class Closed(Exception):
    """The broker closed the connection."""


class RawConn:
    """A blocking TCP connection speaking MQTT byte by byte."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.send_failed = False

    # -- sending -----------------------------------------------------------
    def send(self, data):
        """Send bytes; a broker that already closed the socket is recorded,
        not raised (tests then check for closure)."""
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.send_failed = True

    # -- receiving ---------------------------------------------------------
    def _fill(self, deadline):
        """Read more bytes into the buffer. Returns False on EOF; raises
        TimeoutError when the deadline passes."""
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from broker")
        ready, _, _ = select.select([self.sock], [], [], remaining)
        if not ready:
            raise TimeoutError("no data from broker")
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ConnectionAbortedError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _try_parse(self):
        """Return a Packet if a complete one is buffered, else None."""
        if len(self.buf) < 2:
            return None
        try:
            length, pos = decode_varint(self.buf, 1)
        except MalformedPacket as exc:
            if len(self.buf) >= 5:
                raise
            if "truncated" in str(exc):
                return None
            raise
        if len(self.buf) < pos + length:
            return None
        first = self.buf[0]
        pkt = Packet(first >> 4, first & 0x0F, bytes(self.buf[pos:pos + length]))
        del self.buf[:pos + length]
        return pkt

    def read_packet(self, timeout=5.0):
        """Next packet from the broker. Raises Closed on EOF and TimeoutError
        on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = self._try_parse()
            if pkt is not None:
                return pkt
            if not self._fill(deadline):
                if self.buf:
                    raise Closed("connection closed with partial packet %s" % self.buf.hex())
                raise Closed("connection closed by broker")

    def expect(self, ptype, timeout=5.0, skip=()):
        """Read until a packet of type ptype arrives (types in skip are
        ignored; anything else is an assertion failure)."""
        deadline = time.monotonic() + timeout
        while True:
            pkt = self.read_packet(max(0.0, deadline - time.monotonic()))
            if pkt.type == ptype:
                return pkt
            if pkt.type in skip:
                continue
            raise AssertionError("expected %s, got %r" % (PACKET_NAMES[ptype], pkt))

    def wait_closed(self, timeout=5.0):
        """Wait for the broker to close the connection.

        Returns (closed, packets) where packets are whatever the broker sent
        before closing (e.g. a DISCONNECT or CONNACK)."""
        deadline = time.monotonic() + timeout
        packets = []
        while True:
            try:
                packets.append(self.read_packet(max(0.0, deadline - time.monotonic())))
            except Closed:
                return True, packets
            except MalformedPacket:
                # Garbage from the broker still counts; keep draining.
                self.buf.clear()
            except TimeoutError:
                return False, packets

    def is_open(self, wait=0.2):
        """True if the broker has not closed the connection within `wait`
        seconds (packets received meanwhile are kept in `self.pending`)."""
        closed, packets = self.wait_closed(wait)
        self.pending = getattr(self, "pending", []) + packets
        return not closed

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- conveniences --------------------------------------------------------
    def mqtt_connect(self, client_id="", version=4, timeout=5.0, **kw):
        """Send CONNECT, wait for CONNACK and return the parsed Connack."""
        self.send(connect(client_id=client_id, version=version, **kw))
        return parse_connack(self.expect(CONNACK, timeout), version)

    def mqtt_subscribe(self, topic, qos=0, version=4, pid=1, timeout=5.0, **opts):
        options = sub_options(qos, **opts) if version == 5 else qos
        self.send(subscribe(pid, [(topic, options)], version))
        got_pid, codes = parse_suback(self.expect(SUBACK, timeout), version)
        assert got_pid == pid
        return codes

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
