"""Limits, each tripped while other clients keep being served: max_connections (global and
per listener), max_connection_rate, connect_timeout, max_packet_size, max_publish_rate,
max_subscriptions, max_topic_levels (default 128), max_topic_length, and their counters
under $SYS/broker/limits/ (plus $SYS/broker/packets/malformed). connect_timeout also covers a
stalled TLS handshake and a stalled WebSocket upgrade (test_connect_timeout_covers_handshakes).

Settings are given as flags (`--max-subscriptions 3`); test_limits_from_the_config_file
uses the config file keys.

BROKER=mosquitto: only max_packet_size runs against Mosquitto 2.0; the rest are roost_only
(Mosquitto lacks them, or, for a listener's max_connections, lets one client too many in).
"""

import socket
import ssl
import threading
import time

import pytest

import mqtt_raw as R
from security_support import (
    HOST, Listener, client_context, roundtrip, sys_counters, tls_listener, wait_until)

V311, V5 = 4, 5
TOPIC_TOO_LONG = {V5: 0x90}            # PUBACK: Topic Name invalid
FILTER_REFUSED = {V311: 0x80, V5: 0x8F}  # SUBACK: Topic Filter invalid
QUOTA = {V311: 0x80, V5: 0x97}         # SUBACK: Quota exceeded


class Served:
    """A subscriber and a publisher connected before a limit is tripped; check() proves
    that they are still served (publish, route, deliver) while it is."""

    def __init__(self, clients, port, tag="served", version=V5):
        self.sub = clients(port, "%s-sub" % tag, version)
        self.pub = clients(port, "%s-pub" % tag, version)
        self.topic = "%s/keepalive" % tag
        self.sub.subscribe(self.topic, 1)
        self.n = 0

    def check(self, timeout=3.0):
        self.n += 1
        start = time.monotonic()
        roundtrip(self.sub, self.pub, self.topic, b"served %d" % self.n, timeout=timeout)
        return time.monotonic() - start


def raw_connect(raws, port, version=V5, client_id="", timeout=3.0):
    """(CONNACK reason or None if the socket was closed without one, conn)."""
    try:
        conn = raws(port, timeout=timeout)
    except OSError:
        return None, None
    conn.send(R.connect(client_id, version=version))
    try:
        pkt = conn.read_packet(timeout)
    except (R.Closed, TimeoutError):
        return None, conn
    return R.parse_connack(pkt, version).reason, conn


def publish_reason(conn, topic, version, pid, payload=b"x"):
    conn.send(R.publish(topic, payload, qos=1, pid=pid, version=version))
    pkt = conn.expect(R.PUBACK, skip=(R.PUBLISH,))
    assert R.ack_pid(pkt) == pid
    return pkt.body[2] if version == V5 and len(pkt.body) > 2 else 0


def still_open(conn, version):
    conn.send(R.pingreq())
    conn.expect(R.PINGRESP, skip=(R.PUBLISH,))
    return True


# ---------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------

@pytest.mark.roost_only(reason="Roost's global max_connections (Mosquitto's is per listener)")
def test_global_max_connections(launch, raws, clients):
    b = launch([Listener("tcp"), Listener("tcp")], {"max_connections": 4})
    time.sleep(0.3)   # let the broker see the start-up probes close
    served = Served(clients, b.port)                  # 2 connections
    held = [raw_connect(raws, b.listeners[1].port, client_id="held-%d" % i) for i in range(2)]
    assert [reason for reason, _ in held] == [0, 0]
    for port in (b.listeners[0].port, b.listeners[1].port):   # the limit covers every listener
        reason, conn = raw_connect(raws, port, client_id="one-too-many")
        assert reason is None, "connection over max_connections got CONNACK %r" % reason
        closed, _ = conn.wait_closed(1)
        assert closed
    served.check()
    held[0][1].close()

    def one_more_gets_in():
        reason, conn = raw_connect(raws, b.port, client_id="after-close")
        return reason == 0
    wait_until(one_more_gets_in, timeout=5, what="a connection after one closed")
    served.check()


@pytest.mark.roost_only(reason="Mosquitto 2.0.11 lets max_connections + 1 clients in on a listener")
def test_listener_max_connections(launch, raws, clients, version):
    limited = Listener("tcp", max_connections=2)
    free = Listener("tcp")
    launch([limited, free], style="config")
    time.sleep(0.3)   # let the broker see the start-up probes close
    first = [raw_connect(raws, limited.port, version, "limited-%d" % i) for i in range(2)]
    assert [reason for reason, _ in first] == [0, 0]
    reason, conn = raw_connect(raws, limited.port, version, "limited-extra")
    assert reason is None or reason >= 0x80 or (version == V311 and reason != 0), \
        "a third connection on a listener with max_connections 2 was accepted"
    if conn is not None:
        closed, _ = conn.wait_closed(2)
        assert closed
    # The other listener is not limited, and the two first connections keep working.
    others = [raw_connect(raws, free.port, version, "free-%d" % i) for i in range(4)]
    assert [reason for reason, _ in others] == [0] * 4
    served = Served(clients, free.port, "listener-limit", version)
    sub_conn = first[0][1]
    assert sub_conn.mqtt_subscribe("limited/t", qos=1, version=version) == [1]
    assert publish_reason(first[1][1], "limited/t", version, 1, b"on the limited listener") in (0, 0x10)
    got = R.parse_publish(sub_conn.expect(R.PUBLISH), version)
    assert got.payload == b"on the limited listener"
    served.check()


@pytest.mark.roost_only(reason="max_connection_rate is Roost's")
def test_max_connection_rate(launch, raws, clients):
    b = launch([Listener("tcp")], {"max_connection_rate": 5})
    served = Served(clients, b.port)
    time.sleep(1.2)   # the start-up probe and `served` belong to an earlier second
    socks = []
    for _ in range(20):
        try:
            socks.append(raws(b.port, timeout=2))
        except OSError:
            socks.append(None)
    for i, conn in enumerate(socks):
        if conn is not None:
            conn.send(R.connect("burst-%d" % i, version=V5))
    accepted = refused = 0
    for conn in socks:
        if conn is None:
            refused += 1
            continue
        try:
            pkt = conn.read_packet(2)
            accepted += R.parse_connack(pkt, V5).reason == 0
        except (R.Closed, TimeoutError):
            closed, _ = conn.wait_closed(0.1)
            assert closed or conn.eof, "a connection over the rate was neither served nor closed"
            refused += 1
    assert 1 <= accepted <= 10, "accepted %d of 20 connections at max_connection_rate 5" % accepted
    assert refused >= 10
    served.check()                      # connected clients are not affected
    time.sleep(1.2)
    reason, _ = raw_connect(raws, b.port, client_id="next-second")
    assert reason == 0, "connections must be accepted again once the rate is back under the limit"


@pytest.mark.roost_only(reason="connect_timeout is Roost's")
def test_connect_timeout_closes_silent_sockets_only(launch, raws, clients):
    b = launch([Listener("tcp")], {"connect_timeout": 1})
    served = Served(clients, b.port)
    silent = [raws(b.port) for _ in range(5)]
    half = raws(b.port)
    half.send(R.connect("half", version=V5)[:5])      # an incomplete CONNECT counts as none
    start = time.monotonic()
    served.check()
    for conn in silent + [half]:
        closed, packets = conn.wait_closed(4)
        assert closed, "a socket without CONNECT was kept open past connect_timeout"
        assert not any(p.type == R.CONNACK for p in packets)
    assert time.monotonic() - start < 4
    late = raws(b.port)
    time.sleep(0.5)
    assert late.mqtt_connect("in-time", version=V5).reason == 0
    time.sleep(1.0)
    assert still_open(late, V5), "a connected client must not be closed by connect_timeout"
    served.check()


# What a stalled client sends before it stops, per transport: (TLS first?, bytes). Each
# socket is closed by connect_timeout, whether it stalls in the TLS handshake, in the
# WebSocket upgrade or before its CONNECT.
STALLS = {
    "tcp": [(False, b""), (False, R.connect("half", version=V5)[:5])],
    # Nothing; a TLS record header announcing a ClientHello that never comes; a finished
    # handshake and no CONNECT.
    "tls": [(False, b""), (False, b"\x16\x03\x01\x00\xc8"), (True, b"")],
    # Nothing; an upgrade request without its final empty line.
    "ws": [(False, b""), (False, b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")],
    # Nothing (no ClientHello); a finished TLS handshake, then half an upgrade request.
    "wss": [(False, b""), (True, b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\n")],
}


def stalled_socket(port, tls_ctx, data):
    raw = socket.create_connection((HOST, port), timeout=5)
    sock = tls_ctx.wrap_socket(raw, server_hostname=HOST) if tls_ctx is not None else raw
    if data:
        sock.sendall(data)
    return sock


def seconds_until_closed(sock, opened, timeout):
    """Seconds from `opened` until the broker closed `sock` (EOF, reset or a TLS error), or
    None if it is still open after `timeout` seconds from now."""
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(4096):
                return time.monotonic() - opened
        except (socket.timeout, ssl.SSLWantReadError):
            if time.monotonic() >= deadline:
                return None
        except (OSError, ssl.SSLError):
            return time.monotonic() - opened


@pytest.mark.roost_only(reason="connect_timeout and its $SYS counter are Roost's")
@pytest.mark.parametrize("transport", ["tcp", "tls", "ws", "wss"])
def test_connect_timeout_covers_handshakes(launch, clients, certs, transport):
    """Sockets stalled in the TLS handshake, the WebSocket upgrade or before CONNECT are
    closed after connect_timeout, each counted in $SYS/broker/limits/connect_timeout and
    logged at info with its address; clients on the same listener keep being served."""
    tls = transport in ("tls", "wss")
    stalled_on = tls_listener(certs, transport) if tls else Listener(transport)
    b = launch([stalled_on, Listener("tcp")], {"connect_timeout": 1, "sys_interval": 1})
    time.sleep(0.3)   # the start-up probes are closed
    watcher = clients(b.listeners[1].port, "timeout-watch", V5)
    watcher.subscribe("$SYS/broker/limits/connect_timeout", 0)
    kwargs = {"transport": "websockets" if transport in ("ws", "wss") else "tcp"}
    if tls:
        kwargs["tls"] = client_context(certs)
    sub = clients(stalled_on.port, "timeout-sub", V5, **kwargs)
    sub.subscribe("stall/t", 1)
    pub = clients(stalled_on.port, "timeout-pub", V5, **kwargs)

    ctx = client_context(certs)
    opened = time.monotonic()
    stalled = [stalled_socket(stalled_on.port, ctx if handshake else None, data)
               for handshake, data in STALLS[transport]]
    local_ports = [sock.getsockname()[1] for sock in stalled]
    try:
        roundtrip(sub, pub, "stall/t", b"while others stall")
        for sock, (handshake, data) in zip(stalled, STALLS[transport]):
            after = seconds_until_closed(sock, opened, 5)
            assert after is not None, "a socket stalled with %r (TLS done: %s) was kept open" % (data, handshake)
            assert 0.8 <= after < 4, "closed after %.2fs with connect_timeout 1" % after
    finally:
        for sock in stalled:
            sock.close()
    roundtrip(sub, pub, "stall/t", b"after the stalled ones were closed")
    assert not sub.disconnected.is_set() and not pub.disconnected.is_set()

    expected = len(STALLS[transport])
    values = sys_counters(watcher, lambda v: v.get("limits/connect_timeout", 0) >= expected)
    assert values.get("limits/connect_timeout") == expected, values
    lines = [line for line in b.log_text().splitlines() if "connect_timeout" in line and " info " in line]
    for port in local_ports:
        assert any("%s:%d" % (HOST, port) in line for line in lines), \
            "no info line with the address %s:%d in %r" % (HOST, port, lines)


def test_max_packet_size(launch, raws, clients, version):
    b = launch([Listener("tcp")], {"max_packet_size": 1024})
    served = Served(clients, b.port)
    conn = raws(b.port)
    assert conn.mqtt_connect("big-sender", version=version).reason == 0
    assert publish_reason(conn, "size/ok", version, 1, b"x" * 500) in (0, 0x10)
    conn.send(R.publish("size/big", b"x" * 2000, qos=1, pid=2, version=version))
    closed, packets = conn.wait_closed(3)
    assert closed, "a packet over max_packet_size must close the connection"
    for pkt in packets:
        assert pkt.type == R.DISCONNECT, "unexpected %r" % pkt
        assert R.parse_disconnect(pkt)[0] == 0x95
    if version == V5:
        assert [p.type for p in packets] == [R.DISCONNECT], "MQTT 5: DISCONNECT 0x95 before the close"
    served.check()


# ---------------------------------------------------------------------------
# Publish rate
# ---------------------------------------------------------------------------

@pytest.mark.roost_only(reason="max_publish_rate is Roost's")
def test_max_publish_rate_throttles_without_dropping(launch, raws, clients, version):
    rate, count = 10, 35
    b = launch([Listener("tcp")], {"max_publish_rate": rate})
    sub = clients(b.port, "rate-sub", V5)
    sub.subscribe("rate/#", 0)
    other = clients(b.port, "rate-other", version)
    flood = raws(b.port)
    assert flood.mqtt_connect("rate-flood", version=version).reason == 0
    burst = b"".join(R.publish("rate/flood", b"%03d" % i, qos=0, version=version) for i in range(count))
    start = time.monotonic()
    flood.send(burst)                 # all at once; the broker reads them at `rate` per second

    latencies = []

    def other_publishes():
        for i in range(5):
            sent = time.monotonic()
            other.publish("rate/other", b"other %d" % i, qos=1, timeout=2)
            latencies.append(time.monotonic() - sent)
            time.sleep(0.25)
    worker = threading.Thread(target=other_publishes, daemon=True)
    worker.start()

    flood_got, other_got, other_seen = [], [], {}
    deadline = start + 8
    while len(flood_got) < count or len(other_got) < 5:
        remaining = deadline - time.monotonic()
        assert remaining > 0, "got %d/%d throttled and %d/5 other messages" % (
            len(flood_got), count, len(other_got))
        m = sub.get(timeout=remaining)
        if m.topic == "rate/flood":
            flood_got.append(m.payload)
        else:
            other_got.append(m.payload)
            other_seen[m.payload] = time.monotonic()
    elapsed_flood = time.monotonic() - start
    worker.join(3)
    assert flood_got == [b"%03d" % i for i in range(count)], "throttled messages lost or reordered"
    # 35 at 10 per second: at least 2 s with a one-second burst allowance or with fixed one-second
    # windows (10 + 10 + 10 + 5 spans three window starts); a little slack for timing.
    assert elapsed_flood >= 1.8, "%d PUBLISH at max_publish_rate %d took only %.2fs" % (count, rate, elapsed_flood)
    # The other client was not slowed down.
    assert len(latencies) == 5 and max(latencies) < 0.5, "other client's PUBACK latencies %r" % latencies
    assert still_open(flood, version)


# ---------------------------------------------------------------------------
# Subscriptions and topics
# ---------------------------------------------------------------------------

@pytest.mark.roost_only(reason="max_subscriptions is Roost's")
def test_max_subscriptions(launch, raws, clients, version):
    b = launch([Listener("tcp")], {"max_subscriptions": 3})
    served = Served(clients, b.port)
    conn = raws(b.port)
    assert conn.mqtt_connect("many-subs", version=version).reason == 0
    opt = R.sub_options(1) if version == V5 else 1

    def subscribe(pid, *filters):
        conn.send(R.subscribe(pid, [(f, opt) for f in filters], version))
        got_pid, codes = R.parse_suback(conn.expect(R.SUBACK), version)
        assert got_pid == pid
        return codes

    assert subscribe(1, "s/a", "s/b") == [1, 1]
    assert subscribe(2, "s/c") == [1]
    assert subscribe(3, "s/d") == [QUOTA[version]]
    assert subscribe(4, "s/e", "s/f") == [QUOTA[version]] * 2
    assert subscribe(5, "s/a") == [1], "subscribing again to a filter it has replaces it: not a new one"
    served.check()
    # Still within its three: messages arrive for those only.
    pub = clients(b.port, "subs-pub", version)
    for t in ("s/a", "s/d", "s/c"):
        pub.publish(t, t.encode(), qos=1)
    got = sorted(R.parse_publish(conn.expect(R.PUBLISH), version).topic for _ in range(2))
    assert got == ["s/a", "s/c"]
    closed, extra = conn.wait_closed(0.5)
    assert not closed and extra == [], "unexpected %r (closed=%s)" % (extra, closed)
    # Unsubscribing frees a place.
    conn.send(R.unsubscribe(6, ["s/b"], version))
    conn.expect(R.UNSUBACK, skip=(R.PUBLISH,))
    assert subscribe(7, "s/d") == [1]
    # The limit is per client.
    other = clients(b.port, "subs-other", version)
    assert other.subscribe([("o/1", 0), ("o/2", 0), ("o/3", 0)]) == [0, 0, 0]
    served.check()


@pytest.mark.roost_only(reason="max_topic_levels is Roost's")
def test_max_topic_levels(launch, raws, clients, version):
    b = launch([Listener("tcp")], {"max_topic_levels": 4})
    served = Served(clients, b.port)
    watcher = clients(b.port, "levels-watch", V5)
    watcher.subscribe("#", 0)
    conn = raws(b.port)
    assert conn.mqtt_connect("levels", version=version).reason == 0
    assert publish_reason(conn, "a/b/c/d", version, 1) in (0, 0x10)
    if version == V5:
        assert publish_reason(conn, "a/b/c/d/e", version, 2) == TOPIC_TOO_LONG[V5]
    conn.send(R.publish("a/b/c/d/e/f", b"qos0", qos=0, version=version))   # dropped
    assert still_open(conn, version)
    topics = [m.topic for m in watcher.drain(0.5) if not m.topic.startswith("served")]
    assert topics == ["a/b/c/d"]
    conn.send(R.subscribe(3, [("a/+/c/d", 0), ("a/b/c/d/e", 0), ("+/+/+/+/+", 0), ("x/#", 0)], version))
    _, codes = R.parse_suback(conn.expect(R.SUBACK), version)
    refused = FILTER_REFUSED[version]
    assert codes == [0, refused, refused, 0]
    served.check()


@pytest.mark.roost_only(reason="max_topic_length is Roost's")
def test_max_topic_length_in_bytes(launch, raws, clients, version):
    b = launch([Listener("tcp")], {"max_topic_length": 32})
    served = Served(clients, b.port)
    watcher = clients(b.port, "length-watch", V5)
    watcher.subscribe("len/#", 0)
    conn = raws(b.port)
    assert conn.mqtt_connect("length", version=version).reason == 0
    ok = "len/" + "x" * 28                 # 32 bytes
    too_long = "len/" + "x" * 29           # 33 bytes
    multibyte = "len/" + "\u00e9" * 15     # 19 characters, 34 bytes
    assert len(ok.encode()) == 32 and len(multibyte.encode()) == 34
    assert publish_reason(conn, ok, version, 1) in (0, 0x10)
    if version == V5:
        assert publish_reason(conn, too_long, version, 2) == TOPIC_TOO_LONG[V5]
        assert publish_reason(conn, multibyte, version, 3) == TOPIC_TOO_LONG[V5]
    conn.send(R.publish(too_long, b"qos0", qos=0, version=version))
    conn.send(R.publish(multibyte, b"qos0", qos=0, version=version))
    assert still_open(conn, version)
    assert [m.topic for m in watcher.drain(0.5)] == [ok]
    conn.send(R.subscribe(4, [(ok, 0), (too_long, 0), ("len/" + "+/" * 14 + "#", 0)], version))
    _, codes = R.parse_suback(conn.expect(R.SUBACK), version)
    assert codes == [0, FILTER_REFUSED[version], FILTER_REFUSED[version]]
    served.check()


@pytest.mark.roost_only(reason="max_topic_levels (default 128) is Roost's")
def test_default_max_topic_levels_is_128(launch, raws, clients):
    b = launch([Listener("tcp")])
    watcher = clients(b.port, "deep-watch", V5)
    watcher.subscribe("deep/#", 0)
    conn = raws(b.port)
    assert conn.mqtt_connect("deep", version=V5).reason == 0
    at_limit = "deep/" + "/".join(["l"] * 127)           # 128 levels
    over = at_limit + "/l"                               # 129 levels
    assert publish_reason(conn, at_limit, V5, 1) in (0, 0x10)
    assert publish_reason(conn, over, V5, 2) == TOPIC_TOO_LONG[V5]
    assert [m.topic for m in watcher.drain(0.5)] == [at_limit]
    conn.send(R.subscribe(3, [(at_limit, 0), (over, 0)], V5))
    assert R.parse_suback(conn.expect(R.SUBACK), V5)[1] == [0, FILTER_REFUSED[V5]]


@pytest.mark.roost_only(reason="Roost's limit keys in the config file")
def test_limits_from_the_config_file(launch, raws, clients):
    b = launch([Listener("tcp")], {"max_subscriptions": 1, "max_topic_levels": 2}, style="config")
    conn = raws(b.port)
    assert conn.mqtt_connect("cfg-limits", version=V5).reason == 0
    assert conn.mqtt_subscribe("c/1", qos=0, version=V5, pid=1) == [0]
    assert conn.mqtt_subscribe("c/2", qos=0, version=V5, pid=2) == [QUOTA[V5]]
    assert publish_reason(conn, "a/b/c", V5, 3) == TOPIC_TOO_LONG[V5]
    Served(clients, b.port).check()


@pytest.mark.roost_only(reason="Roost's $SYS/broker/limits/... counters")
def test_limit_counters_in_sys(launch, raws, clients):
    b = launch([Listener("tcp")], {"max_subscriptions": 1, "max_topic_levels": 5, "sys_interval": 1})
    conn = raws(b.port)
    assert conn.mqtt_connect("trips", version=V5).reason == 0
    assert conn.mqtt_subscribe("t/1", qos=0, version=V5, pid=1) == [0]
    assert conn.mqtt_subscribe("t/2", qos=0, version=V5, pid=2) == [QUOTA[V5]]
    assert publish_reason(conn, "a/b/c/d/e/f", V5, 3) == TOPIC_TOO_LONG[V5]
    watcher = clients(b.port, "sys-limits", V5)
    watcher.subscribe("$SYS/broker/limits/#", 0)
    values = {}
    deadline = time.monotonic() + 4

    def topic_counters():
        return [t for t, v in values.items() if "topic" in t and isinstance(v, int) and v >= 1]
    while time.monotonic() < deadline and not (
            values.get("$SYS/broker/limits/max_subscriptions", 0) >= 1 and topic_counters()):
        for m in watcher.drain(0.3):
            try:
                values[m.topic] = int(m.payload)
            except ValueError:
                values[m.topic] = m.payload
    assert values.get("$SYS/broker/limits/max_subscriptions", 0) >= 1, values
    # The name of the topic limit's counter is not fixed by the spec: e.g. .../max_topic_levels.
    assert topic_counters(), "no $SYS/broker/limits/... counter for the topic limit: %r" % values


@pytest.mark.roost_only(reason="Roost's $SYS/broker/limits/... counters")
def test_max_connections_counter_in_sys(launch, raws, clients):
    """Both the broker's and a listener's max_connections count in limits/max_connections."""
    first, small = Listener("tcp"), Listener("tcp", max_connections=1)
    b = launch([first, small], {"max_connections": 4, "sys_interval": 1}, style="config")
    time.sleep(0.3)   # the start-up probes are closed
    watcher = clients(first.port, "sys-conns", V5)                       # 1
    watcher.subscribe("$SYS/broker/limits/#", 0)
    assert raw_connect(raws, small.port, client_id="small-held")[0] == 0   # 2
    reason, _ = raw_connect(raws, small.port, client_id="small-over")
    assert reason is None, "over the listener's max_connections: CONNACK %r" % reason
    held = [raw_connect(raws, first.port, client_id="held-%d" % i)[0] for i in range(2)]   # 3, 4
    assert held == [0, 0]
    for i in range(2):
        reason, _ = raw_connect(raws, first.port, client_id="over-%d" % i)
        assert reason is None, "over the broker's max_connections: CONNACK %r" % reason
    values = sys_counters(watcher, lambda v: v.get("limits/max_connections", 0) >= 3)
    assert values.get("limits/max_connections") == 3, values
    assert values.get("limits/max_connection_rate") == 0, values


@pytest.mark.roost_only(reason="Roost's $SYS/broker/limits/... counters")
def test_max_connection_rate_counter_in_sys(launch, raws, clients):
    b = launch([Listener("tcp")], {"max_connection_rate": 5, "sys_interval": 1})
    watcher = clients(b.port, "sys-rate", V5)
    watcher.subscribe("$SYS/broker/limits/#", 0)
    time.sleep(1.2)   # the start-up probe and the watcher belong to an earlier second
    refused = 0
    for i in range(15):
        reason, conn = raw_connect(raws, b.port, client_id="burst-%d" % i)
        if reason is None:
            refused += 1
        else:
            assert reason == 0
    assert refused >= 5, "only %d of 15 connections in a burst refused at max_connection_rate 5" % refused
    values = sys_counters(watcher, lambda v: v.get("limits/max_connection_rate", 0) >= refused)
    assert values.get("limits/max_connection_rate") == refused, values
    assert values.get("limits/max_connections") == 0, values


@pytest.mark.roost_only(reason="Roost's $SYS counters for max_packet_size and malformed packets")
def test_packet_size_and_malformed_counters_in_sys(launch, raws, clients, version):
    """A packet over max_packet_size counts in limits/max_packet_size (before CONNECT and
    after); a malformed one in packets/malformed."""
    b = launch([Listener("tcp")], {"max_packet_size": 1024, "sys_interval": 1})
    watcher = clients(b.port, "sys-packets", V5)
    watcher.subscribe([("$SYS/broker/limits/#", 0), ("$SYS/broker/packets/#", 0)])
    big_connect = raws(b.port)
    big_connect.send(R.connect("c" * 1500, version=version))
    assert big_connect.wait_closed(3)[0], "a CONNECT over max_packet_size must close the connection"
    big = raws(b.port)
    assert big.mqtt_connect("big-sender", version=version).reason == 0
    big.send(R.publish("size/big", b"x" * 2000, qos=1, pid=1, version=version))
    assert big.wait_closed(3)[0], "a PUBLISH over max_packet_size must close the connection"
    bad = raws(b.port)
    assert bad.mqtt_connect("bad-sender", version=version).reason == 0
    bad.send(R.publish("bad/qos3", b"", flags=0x06, pid=1, version=version))   # QoS 3
    assert bad.wait_closed(3)[0], "a malformed PUBLISH must close the connection"

    values = sys_counters(watcher, lambda v: v.get("limits/max_packet_size", 0) >= 2
                          and v.get("packets/malformed", 0) >= 1)
    assert values.get("limits/max_packet_size") == 2, values
    assert values.get("packets/malformed") == 1, values
