"""MQTT over WebSocket: `--ws-listen HOST:PORT` and `--wss-listen HOST:PORT` (the TLS
certificate flags of test_tls.py), HTTP/1.1 upgrade at `/mqtt`, subprotocol `mqtt`,
binary frames carrying the MQTT byte stream (a packet may span frames, a frame may
hold several packets: MQTT 5 section 6).

Clients: paho-mqtt `transport="websockets"` (ws and wss), MQTT.js over ws / wss
(js/url_roundtrip.js), and a raw WebSocket client written with the standard library
(security_support.WsRawConn) to control the framing.

BROKER=mosquitto: runs against Mosquitto 2.0 (`protocol websockets` listeners).
Mosquitto (libwebsockets) answers any path, so the path checks are roost_only.
"""

import json
import os
import shutil
import subprocess
import time

import pytest

import mqtt_raw as R
import support
from security_support import (
    OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, Listener, WsHandshakeFailed,
    assert_served, client_context, http_get_status, roundtrip, tls_listener)

V311, V5 = 4, 5
HERE = os.path.dirname(os.path.abspath(__file__))
NODE_PATH = "/usr/share/nodejs"


@pytest.fixture
def ws_broker(launch):
    """tcp + ws listeners."""
    return launch([Listener("tcp"), Listener("ws")])


def ws_conn(raws, broker, version, client_id, **kwargs):
    conn = raws(broker.port_of("ws"), ws=True, **kwargs)
    ack = conn.mqtt_connect(client_id, version=version)
    assert ack.reason == 0
    return conn


# ---------------------------------------------------------------------------
# paho-mqtt
# ---------------------------------------------------------------------------

def test_paho_over_websockets(ws_broker, clients, version):
    ws_port, tcp_port = ws_broker.port_of("ws"), ws_broker.port_of("tcp")
    ws_sub = clients(ws_port, "ws-sub", version, transport="websockets")
    ws_pub = clients(ws_port, "ws-pub", version, transport="websockets")
    tcp_sub = clients(tcp_port, "tcp-sub", version)
    tcp_pub = clients(tcp_port, "tcp-pub", version)
    assert ws_sub.subscribe("ws/in", 2) == [2]
    tcp_sub.subscribe("ws/out", 1)
    roundtrip(ws_sub, tcp_pub, "ws/in", b"tcp to ws", qos=2)
    roundtrip(tcp_sub, ws_pub, "ws/out", b"ws to tcp", qos=1)
    roundtrip(ws_sub, ws_pub, "ws/in", b"ws to ws", qos=0)
    # Many TCP segments. (Mosquitto 2.0.11 stalls sending a ~300 kB message over WebSocket.)
    big = os.urandom(100_000)
    assert roundtrip(ws_sub, tcp_pub, "ws/in", big).payload == big
    assert roundtrip(tcp_sub, ws_pub, "ws/out", big).payload == big


def test_paho_over_secure_websockets(launch, clients, certs, version):
    b = launch([Listener("tcp"), tls_listener(certs, transport="wss")])
    wss_port = b.port_of("wss")
    sub = clients(wss_port, "wss-sub", version, transport="websockets", tls=client_context(certs))
    pub = clients(b.port_of("tcp"), "wss-tcp-pub", version)
    wss_pub = clients(wss_port, "wss-pub", version, transport="websockets", tls=client_context(certs))
    sub.subscribe("wss/#", 1)
    roundtrip(sub, pub, "wss/a", b"tcp to wss")
    roundtrip(sub, wss_pub, "wss/b", b"wss to wss", qos=2)


def test_wss_and_ws_and_tls_listeners_together(launch, clients, certs):
    b = launch([Listener("tcp"), Listener("ws"), tls_listener(certs, transport="tls"),
                tls_listener(certs, transport="wss")])
    ctx = client_context(certs)
    subs = [clients(b.port_of("tcp"), "all-tcp", V5),
            clients(b.port_of("ws"), "all-ws", V5, transport="websockets"),
            clients(b.port_of("tls"), "all-tls", V311, tls=ctx),
            clients(b.port_of("wss"), "all-wss", V311, transport="websockets", tls=client_context(certs))]
    for s in subs:
        s.subscribe("everyone", 1)
    for i, pub in enumerate(subs):
        pub.publish("everyone", b"from %d" % i, qos=1)
    for s in subs:
        got = sorted(m.payload for m in s.get_n(4))
        assert got == [b"from %d" % i for i in range(4)]


# ---------------------------------------------------------------------------
# MQTT.js
# ---------------------------------------------------------------------------

def _node():
    node = shutil.which("node") or shutil.which("nodejs")
    if not node or not os.path.isdir(os.path.join(NODE_PATH, "mqtt")):
        support.missing("node + MQTT.js", "apt-get install -y node-mqtt nodejs")
    return node


@pytest.mark.parametrize("scheme", ["ws", "wss"])
@pytest.mark.parametrize("protocol", [4, 5], ids=["v311", "v5"])
def test_mqttjs_over_websockets(launch, certs, scheme, protocol):
    listener = Listener("ws") if scheme == "ws" else tls_listener(certs, transport="wss")
    b = launch([Listener("tcp"), listener])
    url = "%s://127.0.0.1:%d/mqtt" % (scheme, listener.port)
    args = [_node(), os.path.join(HERE, "js", "url_roundtrip.js"), url, str(protocol)]
    if scheme == "wss":
        args.append(str(certs.ca_crt))
    out = subprocess.run(args, capture_output=True, text=True, timeout=20,
                         env=dict(os.environ, NODE_PATH=NODE_PATH))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["end"] == "done", result
    assert result["errors"] == [] and result["granted"] == [2]
    got = sorted((m["topic"], m["payload"], m["qos"]) for m in result["received"])
    assert got == [("q%d" % q, "ws-payload-%d" % q, q) for q in range(3)]
    assert b.alive()


# ---------------------------------------------------------------------------
# Raw framing
# ---------------------------------------------------------------------------

def test_upgrade_response_and_subprotocol(ws_broker):
    status, headers = http_get_status(ws_broker.port_of("ws"), "/mqtt")
    assert status == 101
    assert headers.get("upgrade", "").lower() == "websocket"
    assert headers.get("sec-websocket-protocol") == "mqtt"


def split_points(data, *cuts):
    out, last = [], 0
    for cut in cuts:
        out.append(data[last:cut])
        last = cut
    out.append(data[last:])
    return [chunk for chunk in out if chunk]


@pytest.mark.parametrize("framing", ["frames", "fragments", "byte-per-frame"])
def test_packet_split_across_frames_and_packets_sharing_a_frame(ws_broker, raws, version, framing):
    conn = raws(ws_broker.port_of("ws"), ws=True)
    connect = R.connect("split-%s" % framing, version=version, keepalive=30)
    if framing == "byte-per-frame":
        chunks = [connect[i:i + 1] for i in range(len(connect))]
    else:
        # Cut inside the fixed header, inside the protocol name and in the payload.
        chunks = split_points(connect, 1, 5, len(connect) - 3)
    if framing == "fragments":
        conn.send_fragmented(chunks, pause=0.05)
    else:
        conn.send_frames(chunks, pause=0.02 if framing == "frames" else 0)
    ack = R.parse_connack(conn.expect(R.CONNACK), version)
    assert ack.reason == 0
    # SUBSCRIBE, PUBLISH (QoS 1) and PINGREQ in a single frame.
    opts = R.sub_options(1) if version == V5 else 1
    batch = (R.subscribe(7, [("split/t", opts)], version=version)
             + R.publish("split/t", b"one frame, three packets", qos=1, pid=8, version=version)
             + R.pingreq())
    conn.send(batch)
    seen = {}
    deadline = time.monotonic() + 5
    while len(seen) < 4 and time.monotonic() < deadline:
        pkt = conn.read_packet(timeout=max(0.1, deadline - time.monotonic()))
        seen.setdefault(pkt.type, pkt)
    assert set(seen) == {R.SUBACK, R.PUBACK, R.PINGRESP, R.PUBLISH}, seen
    assert R.parse_suback(seen[R.SUBACK], version) == (7, [1])
    assert R.ack_pid(seen[R.PUBACK]) == 8
    msg = R.parse_publish(seen[R.PUBLISH], version)
    assert (msg.topic, msg.payload) == ("split/t", b"one frame, three packets")
    if msg.qos:
        conn.send(R.puback(msg.pid, version=version))


def test_large_publish_in_many_small_frames(ws_broker, raws, clients, version):
    tcp_sub = clients(ws_broker.port_of("tcp"), "frames-sub", version)
    tcp_sub.subscribe("frames/big", 1)
    conn = ws_conn(raws, ws_broker, version, "frames-pub")
    payload = os.urandom(100_000)
    data = R.publish("frames/big", payload, qos=1, pid=1, version=version)
    conn.send_frames([data[i:i + 1000] for i in range(0, len(data), 1000)])
    assert R.ack_pid(conn.expect(R.PUBACK)) == 1
    assert tcp_sub.get().payload == payload


def test_broker_sends_binary_frames(ws_broker, raws, clients, version):
    conn = ws_conn(raws, ws_broker, version, "binary-frames")
    conn.mqtt_subscribe("bin/t", qos=0, version=version)
    pub = clients(ws_broker.port_of("tcp"), "binary-pub", version)
    pub.publish("bin/t", b"\x00\xff", qos=0)
    msg = R.parse_publish(conn.expect(R.PUBLISH), version)
    assert msg.payload == b"\x00\xff"
    opcodes = {opcode for _, opcode, _ in conn.frames}
    assert opcodes <= {OP_BINARY, OP_CONT}, "MQTT must travel in binary frames, got opcodes %r" % opcodes


def test_websocket_ping_is_answered(ws_broker, raws, version):
    conn = ws_conn(raws, ws_broker, version, "ws-ping")
    conn.send_frame(OP_PING, b"are you there")
    fin, opcode, payload = conn.next_frame()
    assert (opcode, payload) == (OP_PONG, b"are you there")
    conn.send(R.pingreq())
    assert conn.expect(R.PINGRESP)


@pytest.mark.roost_only(reason="Mosquitto 2.0.11 takes MQTT from text frames too")
def test_text_frame_closes_the_connection(ws_broker, raws, clients, version):
    """[MQTT-6.0.0-1] MQTT goes in binary frames; any other data frame closes the connection."""
    conn = ws_conn(raws, ws_broker, version, "ws-text")
    conn.send_frame(OP_TEXT, R.pingreq())
    closed, packets = conn.wait_closed(5)
    assert closed, "a text frame did not close the connection"
    assert R.PINGRESP not in [p.type for p in packets], "a text frame was taken as MQTT"
    assert_served(ws_broker.port_of("ws"), "after-text", transport="websockets")


def test_websocket_close_without_disconnect_sends_the_will(ws_broker, raws, clients, version):
    watcher = clients(ws_broker.port_of("tcp"), "ws-will-watch", version)
    watcher.subscribe("ws/will", 1)
    conn = raws(ws_broker.port_of("ws"), ws=True)
    ack = conn.mqtt_connect("ws-will", version=version, will=dict(topic="ws/will", payload=b"ws gone", qos=1))
    assert ack.reason == 0
    conn.send_frame(OP_CLOSE, b"\x03\xe8")   # 1000, normal closure, but no MQTT DISCONNECT
    closed, _ = conn.wait_closed(5)
    assert closed
    assert any(op == OP_CLOSE for _, op, _ in conn.frames), "the broker should answer the close frame"
    m = watcher.get()
    assert (m.topic, m.payload) == ("ws/will", b"ws gone")


@pytest.mark.roost_only(reason="Mosquitto (libwebsockets) accepts any HTTP path")
@pytest.mark.parametrize("path", ["/", "/other", "/mqtt/extra", "/MQTT"])
def test_wrong_path_gets_404(ws_broker, clients, path):
    status, _ = http_get_status(ws_broker.port_of("ws"), path)
    assert status == 404
    assert_served(ws_broker.port_of("ws"), "after-404", transport="websockets")


@pytest.mark.roost_only(reason="Mosquitto (libwebsockets) accepts any HTTP path")
def test_wrong_path_gets_404_on_wss(launch, certs):
    b = launch([Listener("tcp"), tls_listener(certs, transport="wss")])
    status, _ = http_get_status(b.port_of("wss"), "/nope", ssl_context=client_context(certs))
    assert status == 404
    status, headers = http_get_status(b.port_of("wss"), "/mqtt", ssl_context=client_context(certs))
    assert status == 101 and headers.get("sec-websocket-protocol") == "mqtt"


@pytest.mark.roost_only(reason="Roost's listener `path` setting (config file)")
def test_listener_path_from_config(launch, raws, clients):
    b = launch([Listener("tcp"), Listener("ws", path="/custom/mqtt")], style="config")
    port = b.port_of("ws")
    assert http_get_status(port, "/mqtt")[0] == 404
    with pytest.raises(WsHandshakeFailed) as refused:
        raws(port, ws=True, path="/mqtt")
    assert refused.value.status == 404
    conn = raws(port, ws=True, path="/custom/mqtt")
    assert conn.mqtt_connect("custom-path", version=V5).reason == 0
    c = clients(port, "custom-paho", V311, transport="websockets", ws_path="/custom/mqtt")
    assert c.connack_rc == 0
