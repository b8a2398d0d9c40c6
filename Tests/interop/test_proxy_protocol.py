"""PROXY protocol (v1 text, v2 binary) on Roost's listeners: `proxy_protocol: true` on a
`listeners:` entry, the top-level `proxy_protocol: true` (every listener) or the flag
`--proxy-protocol true`.

- HAProxy (`mode tcp`, `send-proxy` and `send-proxy-v2`) in front of a tcp listener, and
  (`send-proxy-v2`, TLS passed through) in front of tls and wss listeners: clients connect to
  HAProxy from 127.0.0.5, HAProxy connects to Roost from 127.0.0.3, and Roost's log names
  127.0.0.5 for them (`client connected` at debug level, `connection refused`), never 127.0.0.3.
- Headers written here: v1 TCP4 / TCP6 / UNKNOWN, v2 PROXY IPv4 / IPv6, v2 LOCAL, v2 with
  TLVs, each with the CONNECT in the same write, in a later write, byte by byte, and split
  across the header's end; LOCAL and UNKNOWN use the socket's own address.
- Rejections: no header, malformed v1 / v2 headers, a header not finished within
  `connect_timeout`; `$SYS/broker/security/proxy_protocol/rejected`.
- The login back-off (`auth_backoff_after`) is keyed on the address from the header.
- A listener without proxy_protocol treats a PROXY header as garbage.

Every address used is on 127.0.0.0/8, also the ones only claimed inside a header.

Needs HAProxy for the tests that run it: `apt-get install -y haproxy` (HAPROXY_BIN, else
`haproxy` on PATH, else /usr/sbin/haproxy); missing, they skip, or fail with CI=true.
Mosquitto 2.0 has no PROXY protocol: the module is skipped under BROKER=mosquitto.
"""

import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest

import mqtt_raw as R
import support
from conftest import BROKER, free_port
from security_support import (
    Listener, TlsRawConn, client_context, mosquitto_tool, roundtrip, tls_listener, wait_until,
    write_password_file)

if BROKER == "mosquitto" and os.environ.get("INTEROP_RUN_ROOST_ONLY") != "1":
    pytest.skip("roost_only: Mosquitto 2.0 has no PROXY protocol", allow_module_level=True)

pytestmark = pytest.mark.roost_only(reason="Mosquitto 2.0 has no PROXY protocol")

V311, V5 = 4, 5
HOST = "127.0.0.1"
CLIENT_SOURCE = "127.0.0.5"     # the real client, in front of HAProxy
PROXY_SOURCE = "127.0.0.3"      # HAProxy's own address towards Roost
RAW_SOURCE = "127.0.0.9"        # this file's raw connections (the socket address Roost sees)
DEBUG = ["--log-level", "debug"]
USER, PASSWORD = "alice", "in-wonderland"
BAD_CREDENTIALS = {V311: 4, V5: 0x86}
REJECTED_TOPIC = "$SYS/broker/security/proxy_protocol/rejected"


# ---------------------------------------------------------------------------
# PROXY protocol headers
# ---------------------------------------------------------------------------

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
LOCAL, PROXY = 0x20, 0x21                       # version 2 | command
UNSPEC, TCP_OVER_V4, TCP_OVER_V6 = 0x00, 0x11, 0x21   # family | transport


def v1(protocol, src=None, dst=None, sport=None, dport=None):
    """A v1 line: `PROXY TCP4 src dst sport dport\\r\\n` (without addresses if src is None)."""
    words = ["PROXY", protocol]
    if src is not None:
        words += [src, dst, str(sport), str(dport)]
    return (" ".join(words) + "\r\n").encode()


def v2_addresses(family, src, dst, sport, dport):
    if family == TCP_OVER_V4:
        return socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    if family == TCP_OVER_V6:
        return (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                + struct.pack("!HH", sport, dport))
    return b""


def v2(command=PROXY, family=TCP_OVER_V4, src="127.0.0.66", dst=HOST, sport=40001, dport=1883,
       tlvs=b"", block=None, length=None):
    """A v2 header; `block` replaces the address block, `length` the length field."""
    body = (v2_addresses(family, src, dst, sport, dport) if block is None else block) + tlvs
    return V2_SIGNATURE + bytes([command, family]) + struct.pack("!H", len(body) if length is None else length) + body


def tlv(kind, value):
    return bytes([kind]) + struct.pack("!H", len(value)) + value


TLVS = b"".join([
    tlv(0x01, b"mqtt"),                                       # PP2_TYPE_ALPN
    tlv(0x02, b"localhost"),                                  # PP2_TYPE_AUTHORITY
    tlv(0x05, bytes(range(16))),                              # PP2_TYPE_UNIQUE_ID
    tlv(0x20, b"\x01" + struct.pack("!I", 0) + tlv(0x21, b"TLSv1.3")),   # PP2_TYPE_SSL, SSL_VERSION
    tlv(0x04, b"\x00\x00\x00"),                               # PP2_TYPE_NOOP
    tlv(0xE1, b"roost"),                                      # a custom type
])


# ---------------------------------------------------------------------------
# Connections, logs
# ---------------------------------------------------------------------------

class SourcedRawConn(R.RawConn):
    """mqtt_raw.RawConn from a chosen 127.0.0.x source address."""

    def __init__(self, port, source=RAW_SOURCE, host=HOST, timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout, source_address=(source, 0))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False
        self.send_failed = False

    @property
    def local(self):
        """(host, port) of this end: what Roost sees as the peer without a header."""
        return tuple(self.sock.getsockname()[:2])

    def send_in_pieces(self, pieces, pause=0.02):
        for i, piece in enumerate(pieces):
            if i:
                time.sleep(pause)
            self.send(piece)


class ProxiedTlsConn(TlsRawConn):
    """A TLS connection that sends `header` in clear before the TLS handshake (like HAProxy's
    send-proxy in front of a TLS port)."""

    def __init__(self, port, ctx, header, source=RAW_SOURCE, timeout=5.0):
        raw = socket.create_connection((HOST, port), timeout=timeout, source_address=(source, 0))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            raw.sendall(header)
            self.local = tuple(raw.getsockname()[:2])
            self.sock = ctx.wrap_socket(raw, server_hostname=HOST)
        except BaseException:
            raw.close()
            raise
        self.buf = bytearray()
        self.eof = False
        self.send_failed = False
        self.tls_error = None


@pytest.fixture
def sourced():
    """Factory: sourced(port, source=RAW_SOURCE) -> SourcedRawConn; closed after the test."""
    made = []

    def factory(port, source=RAW_SOURCE, timeout=5.0):
        conn = SourcedRawConn(port, source, timeout=timeout)
        made.append(conn)
        return conn

    yield factory
    for conn in made:
        conn.close()


def proxied(listener, enabled=True):
    """`listener` with its `proxy_protocol` key (a config file key: launch with style="config")."""
    listener.options["proxy_protocol"] = enabled
    return listener


def bound(client, source=CLIENT_SOURCE):
    """A paho client (sec_client, not yet connected) that binds its socket to `source` first."""
    connect = client.c.connect

    def connect_from_source(host, port=1883, keepalive=60, **kwargs):
        return connect(host, port, keepalive, bind_address=source, **kwargs)
    client.c.connect = connect_from_source
    return client


def paho_local(client):
    """(host, port) of a connected paho client's socket (tcp, tls or websockets)."""
    sock = client.c.socket()
    sock = getattr(sock, "_socket", sock)     # paho's WebSocket wrapper
    return tuple(sock.getsockname()[:2])


REMOTE = re.compile(r"\bremote=(\S+)")


def split_remote(text):
    """'127.0.0.5:4242' / '[::1]:4242' / '::1:4242' -> (host, port); port None if unreadable."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    try:
        return host, int(port)
    except ValueError:
        return text, None


def client_lines(b, message, client_id):
    """The broker's log lines with `message` for the client id."""
    named = re.compile(r"\bmqtt\.client_id=%s(?:\s|$)" % re.escape(client_id))
    return [line for line in b.log_text().splitlines() if message in line and named.search(line)]


def logged_remote(b, message, client_id, timeout=3.0):
    """(host, port) of `remote=` in the broker's `message` line for client_id (waits for it)."""
    def find():
        for line in client_lines(b, message, client_id):
            found = REMOTE.search(line)
            if found:
                return split_remote(found.group(1))
        return None
    return wait_until(find, timeout=timeout, interval=0.05,
                      what="a %r log line with remote= for client %r" % (message, client_id))


def connack(conn, version, timeout=5.0):
    return R.parse_connack(conn.expect(R.CONNACK, timeout), version)


def still_open(conn):
    conn.send(R.pingreq())
    conn.expect(R.PINGRESP, timeout=3)
    return True


def assert_closed_without_connack(conn, what, within=2.0):
    closed, packets = conn.wait_closed(within)
    assert not any(p.type == R.CONNACK for p in packets), "%s: got a CONNACK (%r)" % (what, packets)
    assert closed, "%s: the connection was still open after %.1fs" % (what, within)


def sys_counter(clients, port, topic, at_least, timeout=5.0):
    """The value of a $SYS counter once it is >= at_least (subscribed over the plain `port`)."""
    watcher = clients(port, "sys-watch-%d" % port, V5)
    watcher.subscribe(topic, 0)
    seen = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in watcher.drain(0.3):
            if m.topic == topic:
                seen.append(int(m.payload))
                if seen[-1] >= at_least:
                    return seen[-1]
    raise AssertionError("%s did not reach %d within %.1fs (values seen: %r)" % (topic, at_least, timeout, seen))


# ---------------------------------------------------------------------------
# HAProxy
# ---------------------------------------------------------------------------

def haproxy_binary():
    """HAPROXY_BIN, else haproxy on PATH, else /usr/sbin/haproxy; or skip (fail with CI=true)."""
    path = os.environ.get("HAPROXY_BIN") or shutil.which("haproxy")
    if not path and os.path.exists("/usr/sbin/haproxy"):
        path = "/usr/sbin/haproxy"
    if not path or not os.access(path, os.X_OK):
        support.missing("haproxy%s" % (" (%s)" % path if path else ""), "apt-get install -y haproxy")
    return path


def haproxy_config(front_port, backend_port, send_proxy, source=PROXY_SOURCE):
    return "\n".join([
        "# generated by the interop tests (test_proxy_protocol.py)",
        "global",
        "    maxconn 256",
        "    nbthread 1",
        "    log stderr format raw local0 info",
        "defaults",
        "    mode tcp",
        "    log global",
        "    option tcplog",
        "    timeout connect 3s",
        "    timeout client 30s",
        "    timeout server 30s",
        "frontend mqtt_in",
        "    bind %s:%d" % (HOST, front_port),
        "    default_backend roost",
        "backend roost",
        "    server roost %s:%d %s source %s" % (HOST, backend_port, send_proxy, source),
    ]) + "\n"


class Haproxy:
    """`haproxy -db -f haproxy.cfg`: a tcp frontend on a free port, one server (Roost) reached
    from PROXY_SOURCE with `send_proxy` (send-proxy or send-proxy-v2)."""

    def __init__(self, workdir, backend_port, send_proxy):
        self.binary = haproxy_binary()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.config_path = self.workdir / "haproxy.cfg"
        self.config_path.write_text(haproxy_config(self.port, backend_port, send_proxy))
        self.log_path = self.workdir / "haproxy.log"
        self.proc = None
        self._log = None

    def start(self, timeout=5.0):
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary, "-db", "-f", str(self.config_path)], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, cwd=str(self.workdir))
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail("haproxy exited at start-up with code %s:\n%s\n%s"
                            % (self.proc.returncode, self.config_path.read_text(), self.log_tail()), pytrace=False)
            try:
                # The probe reaches Roost as a header from 127.0.0.1 and an end of stream.
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("haproxy did not listen on port %d within %.0fs:\n%s"
                            % (self.port, timeout, self.log_tail()), pytrace=False)
            time.sleep(0.05)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()

    def log_tail(self, lines=40):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return "<no haproxy log: %s>" % exc

    def explain(self, exc):
        return AssertionError("%s: %s\n--- haproxy log (%s) ---\n%s" % (type(exc).__name__, exc, self.log_path,
                                                                       self.log_tail()))


@pytest.fixture
def haproxy(tmp_path):
    """Factory: haproxy(backend_port, send_proxy="send-proxy-v2") -> a started Haproxy; stopped
    after the test."""
    haproxy_binary()            # skip (or fail with CI=true) before any broker is started
    made = []

    def factory(backend_port, send_proxy="send-proxy-v2"):
        h = Haproxy(tmp_path / ("haproxy%d" % len(made)), backend_port, send_proxy)
        made.append(h)
        return h.start()

    yield factory
    for h in made:
        h.stop()


PROXY_ADDRESS = re.compile(r"(?<![\d.])%s(?!\d)" % re.escape(PROXY_SOURCE))


def no_proxy_address_for(b, client_ids):
    """Log lines that give HAProxy's address for one of the clients (should be none)."""
    bad = []
    for line in b.log_text().splitlines():
        about_client = "client connected" in line or "connection refused" in line or any(
            re.search(r"\bmqtt\.client_id=%s(?:\s|$)" % re.escape(cid), line) for cid in client_ids)
        if about_client and PROXY_ADDRESS.search(line):
            bad.append(line)
    return bad


# ---------------------------------------------------------------------------
# 1. HAProxy in front of a tcp listener
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("send_proxy", ["send-proxy-v2", "send-proxy"])
def test_haproxy_in_front_of_a_tcp_listener(launch, clients, sourced, haproxy, tmp_path, send_proxy):
    pw = write_password_file(tmp_path / "passwd", {USER: PASSWORD})
    lst = proxied(Listener("tcp"))
    b = launch([lst], {"password_file": pw}, style="config", extra_args=DEBUG)
    hp = haproxy(lst.port, send_proxy)
    try:
        sub = bound(clients(hp.port, "hap-sub", V5, connect=False, username=USER, password=PASSWORD)).connect()
        pub = bound(clients(hp.port, "hap-pub", V311, connect=False, username=USER, password=PASSWORD)).connect()
        assert paho_local(sub)[0] == CLIENT_SOURCE and paho_local(pub)[0] == CLIENT_SOURCE
        assert sub.subscribe("hap/#", 1) == [1]
        roundtrip(sub, pub, "hap/t", b"through haproxy (%s)" % send_proxy.encode())
        roundtrip(sub, sub, "hap/self", b"and back", qos=0)
        # A bad password, also from 127.0.0.5 through HAProxy.
        bad = sourced(hp.port, source=CLIENT_SOURCE)
        bad.send(R.connect("hap-bad", version=V5, username=USER, password="not-the-password"))
        assert connack(bad, V5).reason == BAD_CREDENTIALS[V5]
        assert_closed_without_connack(bad, "a refused login")
    except Exception as exc:
        raise hp.explain(exc) from exc
    # Roost names the real client (the address and port HAProxy saw), not HAProxy.
    assert logged_remote(b, "client connected", "hap-sub") == paho_local(sub)
    assert logged_remote(b, "client connected", "hap-pub") == paho_local(pub)
    assert logged_remote(b, "connection refused", "hap-bad") == bad.local
    assert no_proxy_address_for(b, ["hap-sub", "hap-pub", "hap-bad"]) == []


# ---------------------------------------------------------------------------
# 2. Headers written here, delivered whole, late, byte by byte, split
# ---------------------------------------------------------------------------

# kind -> (header for the listener's port, the address Roost must use: None = the socket's own)
HEADERS = {
    "v1-tcp4": (lambda port: v1("TCP4", "127.0.0.66", HOST, 40001, port), ("127.0.0.66", 40001)),
    "v1-tcp6": (lambda port: v1("TCP6", "::1", "::1", 40002, port), ("::1", 40002)),
    "v1-unknown": (lambda port: b"PROXY UNKNOWN\r\n", None),
    "v1-unknown-with-addresses": (lambda port: v1("UNKNOWN", "127.0.0.44", HOST, 40003, port), None),
    "v2-proxy-ipv4": (lambda port: v2(PROXY, TCP_OVER_V4, "127.0.0.67", HOST, 40004, port), ("127.0.0.67", 40004)),
    "v2-proxy-ipv6": (lambda port: v2(PROXY, TCP_OVER_V6, "::1", "::1", 40005, port), ("::1", 40005)),
    "v2-local": (lambda port: v2(LOCAL, UNSPEC), None),
    "v2-local-with-addresses": (lambda port: v2(LOCAL, TCP_OVER_V4, "127.0.0.45", HOST, 40006, port), None),
    "v2-proxy-with-tlvs": (lambda port: v2(PROXY, TCP_OVER_V4, "127.0.0.68", HOST, 40007, port, tlvs=TLVS),
                           ("127.0.0.68", 40007)),
}


def pieces(mode, header, connect):
    """How the header and the CONNECT are written."""
    if mode == "one-write":
        return [header + connect]
    if mode == "two-writes":
        return [header, connect]
    if mode == "byte-by-byte":
        return [header[i:i + 1] for i in range(len(header))] + [connect]
    if mode == "straddling":                      # the header's end shares a write with the CONNECT
        return [header[:5], header[5:-2], header[-2:] + connect[:3], connect[3:]]
    raise ValueError(mode)


DELIVERIES = [("one-write", V311), ("two-writes", V5), ("byte-by-byte", V5), ("straddling", V311)]


@pytest.mark.parametrize("kind", list(HEADERS))
def test_header_then_connect(launch, sourced, kind):
    lst = proxied(Listener("tcp"))
    b = launch([lst], style="config", extra_args=DEBUG)
    make_header, claimed = HEADERS[kind]
    header = make_header(lst.port)
    for mode, version in DELIVERIES:
        client_id = "pp-%s-%s" % (kind, mode)
        conn = sourced(lst.port)
        conn.send_in_pieces(pieces(mode, header, R.connect(client_id, version=version)),
                            pause=0.003 if mode == "byte-by-byte" else 0.05)
        ack = connack(conn, version)
        assert ack.reason == 0, "%s, %s: CONNACK %#x" % (kind, mode, ack.reason)
        assert still_open(conn)
        expected = claimed or conn.local
        assert logged_remote(b, "client connected", client_id) == expected, \
            "%s, %s: the log does not name %s:%d" % (kind, mode, expected[0], expected[1])


# ---------------------------------------------------------------------------
# 3. Missing, malformed and unfinished headers
# ---------------------------------------------------------------------------

def _ipv4_block(src="127.0.0.66"):
    return v2_addresses(TCP_OVER_V4, src, HOST, 40001, 1883)


# name -> bytes sent (a CONNECT follows unless the case is about the 107 bytes)
MALFORMED = {
    "no-header": b"",
    "v1-no-crlf-in-107-bytes": None,
    "v1-bad-address": v1("TCP4", "127.0.0.300", HOST, 40001, 1883),
    "v1-ipv6-address-in-tcp4": v1("TCP4", "::1", HOST, 40001, 1883),
    "v1-port-out-of-range": v1("TCP4", "127.0.0.66", HOST, 99999, 1883),
    "v1-missing-port": b"PROXY TCP4 127.0.0.66 127.0.0.1 40001\r\n",
    "v1-unknown-protocol": v1("UDP4", "127.0.0.66", HOST, 40001, 1883),
    "v1-lowercase-proxy": b"proxy TCP4 127.0.0.66 127.0.0.1 40001 1883\r\n",
    "v2-length-short-for-ipv4": v2(PROXY, TCP_OVER_V4, block=_ipv4_block()[:4]),
    "v2-length-short-for-ipv6": v2(PROXY, TCP_OVER_V6, block=_ipv4_block()),
    "v2-udp-over-ipv4": v2(PROXY, 0x12, block=_ipv4_block()),
    "v2-unknown-family": v2(PROXY, 0x41, block=_ipv4_block()),
    "v2-unknown-command": v2(0x2F, TCP_OVER_V4),
    "v2-version-1": v2(0x11, TCP_OVER_V4),
    "v2-bad-signature": b"\r\n\r\n\x00\r\nQUIX\n" + v2(PROXY, TCP_OVER_V4)[12:],
}


def test_missing_or_malformed_header_closes(launch, sourced, clients):
    lst = proxied(Listener("tcp"))
    plain = Listener("tcp")
    launch([lst, plain], {"connect_timeout": 5, "sys_interval": 1}, style="config", extra_args=DEBUG)
    for name, header in MALFORMED.items():
        conn = sourced(lst.port)
        if header is None:
            # 108 bytes that could begin a v1 line, no CRLF: longer than any v1 header may be.
            line = b"PROXY UNKNOWN " + b"x" * 94
            assert len(line) == 108
            conn.send(line)
        else:
            conn.send(header + R.connect("bad-" + name, version=V5))
        # Closed at once: connect_timeout (5 s) would come much later.
        assert_closed_without_connack(conn, name, within=2.0)
    # The longest v1 line allowed (107 bytes with its CRLF) is still fine.
    longest = b"PROXY UNKNOWN " + b"x" * 91 + b"\r\n"
    assert len(longest) == 107
    ok = sourced(lst.port)
    ok.send(longest + R.connect("longest-v1", version=V5))
    assert connack(ok, V5).reason == 0
    # The broker goes on serving proxied and plain clients, and counted the rejections.
    good = sourced(lst.port)
    good.send(v2(PROXY, TCP_OVER_V4, "127.0.0.69", HOST, 40010, lst.port) + R.connect("after-bad", version=V311))
    assert connack(good, V311).reason == 0
    assert still_open(ok) and still_open(good)
    assert sys_counter(clients, plain.port, REJECTED_TOPIC, at_least=len(MALFORMED)) >= len(MALFORMED)


def test_header_not_finished_within_connect_timeout(launch, sourced):
    lst = proxied(Listener("tcp"))
    b = launch([lst], {"connect_timeout": 2}, style="config", extra_args=DEBUG)
    full = v2(PROXY, TCP_OVER_V4, "127.0.0.70", HOST, 40020, lst.port)
    unfinished = {
        "nothing sent": b"",
        "half a v1 line": b"PROXY TCP4 127.0.0.70 ",
        "part of the v2 signature": V2_SIGNATURE[:7],
        "v2 without its address block": full[:16],
        "v2 with half its address block": full[:22],
        "a header but no CONNECT": v1("TCP4", "127.0.0.70", HOST, 40021, lst.port),
    }
    start = time.monotonic()
    conns = {}
    for name, data in unfinished.items():
        conns[name] = sourced(lst.port)
        if data:
            conns[name].send(data)
    # One client writes its header slowly but finishes it, and its CONNECT, in time.
    slow = sourced(lst.port)
    header = v1("TCP4", "127.0.0.71", HOST, 40022, lst.port)
    slow.send_in_pieces([header[i:i + 4] for i in range(0, len(header), 4)], pause=0.06)
    assert time.monotonic() - start < 1.5
    for name, conn in conns.items():
        assert conn.is_open(0.02), "%s: closed after %.1fs, before connect_timeout (2 s)" % (
            name, time.monotonic() - start)
    slow.send(R.connect("slow-header", version=V5))
    assert connack(slow, V5).reason == 0
    for name, conn in conns.items():
        assert_closed_without_connack(conn, name, within=max(0.1, start + 4.5 - time.monotonic()))
    assert time.monotonic() - start >= 1.5
    assert still_open(slow), "a client that finished its header and CONNECT in time was closed"
    assert logged_remote(b, "client connected", "slow-header") == ("127.0.0.71", 40022)


# ---------------------------------------------------------------------------
# 4. The login back-off follows the address from the header
# ---------------------------------------------------------------------------

def test_login_backoff_is_keyed_on_the_proxied_address(launch, sourced, tmp_path):
    pw = write_password_file(tmp_path / "passwd", {USER: PASSWORD})
    lst = proxied(Listener("tcp"))
    b = launch([lst], {"password_file": pw, "auth_backoff_after": 2}, style="config", extra_args=DEBUG)

    def login(header, client_id, password):
        """(CONNACK reason, seconds to it); every socket comes from RAW_SOURCE."""
        conn = sourced(lst.port)
        sent = time.monotonic()
        conn.send(header + R.connect(client_id, version=V5, username=USER, password=password))
        reason = connack(conn, V5).reason
        return reason, time.monotonic() - sent

    for i in range(2):
        reason, _ = login(v1("TCP4", "127.0.0.77", HOST, 41000 + i, lst.port), "guess-%d" % i, "wrong")
        assert reason == BAD_CREDENTIALS[V5]
    reason, took = login(v1("TCP4", "127.0.0.77", HOST, 41002, lst.port), "right-77", PASSWORD)
    assert reason == 0
    assert took >= 0.2, "the third login from 127.0.0.77 (after 2 failures) was answered in %.3fs" % took
    reason, took = login(v2(PROXY, TCP_OVER_V4, "127.0.0.78", HOST, 41003, lst.port), "right-78", PASSWORD)
    assert reason == 0
    assert took < 0.2, "a login from 127.0.0.78 (no failures) waited %.3fs" % took
    # LOCAL: the socket's own address, which never failed, although every socket came from it.
    reason, took = login(v2(LOCAL, UNSPEC), "right-local", PASSWORD)
    assert reason == 0
    assert took < 0.2, "a login from the socket's own address waited %.3fs" % took
    # 127.0.0.77 is still delayed, whichever header version names it.
    reason, took = login(v2(PROXY, TCP_OVER_V4, "127.0.0.77", HOST, 41004, lst.port), "right-77-v2", PASSWORD)
    assert reason == 0
    assert took >= 0.2, "a v2 header naming 127.0.0.77 was answered in %.3fs" % took
    for i in range(2):
        assert logged_remote(b, "connection refused", "guess-%d" % i) == ("127.0.0.77", 41000 + i)


# ---------------------------------------------------------------------------
# 5. TLS and WSS listeners: the header comes before the TLS handshake
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("transport", ["tls", "wss"])
def test_haproxy_in_front_of_a_tls_listener(launch, clients, certs, haproxy, transport):
    lst = proxied(tls_listener(certs, transport=transport))
    b = launch([lst], style="config", extra_args=DEBUG)
    hp = haproxy(lst.port, "send-proxy-v2")
    options = dict(tls=client_context(certs))
    if transport == "wss":
        options["transport"] = "websockets"
    ids = ["%s-sub" % transport, "%s-pub" % transport]
    try:
        sub = bound(clients(hp.port, ids[0], V5, connect=False, **options)).connect()
        pub = bound(clients(hp.port, ids[1], V311, connect=False, **options)).connect()
        assert sub.subscribe("sec/#", 1) == [1]
        roundtrip(sub, pub, "sec/paho", b"%s through haproxy" % transport.encode())
        if transport == "tls":
            ids.append("tls-cli")
            cmd = [mosquitto_tool("mosquitto_pub"), "-h", HOST, "-p", str(hp.port), "-A", CLIENT_SOURCE,
                   "--cafile", str(certs.ca_crt), "-i", "tls-cli", "-V", "mqttv5",
                   "-t", "sec/cli", "-m", "mosquitto_pub through haproxy", "-q", "1"]
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=8)
            assert r.returncode == 0, r.stderr
            m = sub.get(timeout=3)
            assert (m.topic, m.payload) == ("sec/cli", b"mosquitto_pub through haproxy")
    except Exception as exc:
        raise hp.explain(exc) from exc
    assert logged_remote(b, "client connected", ids[0]) == paho_local(sub)
    assert logged_remote(b, "client connected", ids[1]) == paho_local(pub)
    if transport == "tls":
        assert logged_remote(b, "client connected", "tls-cli")[0] == CLIENT_SOURCE
    assert no_proxy_address_for(b, ids) == []


@pytest.mark.parametrize("version_of_header", ["v1", "v2"])
def test_tls_listener_reads_the_header_before_the_handshake(launch, certs, version_of_header):
    lst = proxied(tls_listener(certs))
    b = launch([lst], style="config", extra_args=DEBUG)
    if version_of_header == "v1":
        header = v1("TCP4", "127.0.0.72", HOST, 40030, lst.port)
    else:
        header = v2(PROXY, TCP_OVER_V4, "127.0.0.72", HOST, 40030, lst.port, tlvs=TLVS)
    conn = ProxiedTlsConn(lst.port, client_context(certs), header)
    try:
        conn.send(R.connect("tls-" + version_of_header, version=V5))
        assert connack(conn, V5).reason == 0
        assert still_open(conn)
    finally:
        conn.close()
    assert logged_remote(b, "client connected", "tls-" + version_of_header) == ("127.0.0.72", 40030)
    # A TLS client without the header gets no TLS session.
    try:
        bare = TlsRawConn(lst.port, client_context(certs), timeout=3)
    except socket.timeout:
        pytest.fail("a TLS handshake without a PROXY header hung instead of being closed")
    except (ssl.SSLError, OSError):
        return
    bare.close()
    pytest.fail("a TLS handshake without a PROXY header succeeded on a proxy_protocol listener")


# ---------------------------------------------------------------------------
# 6. Listeners without proxy_protocol; the three ways to turn it on
# ---------------------------------------------------------------------------

def test_listener_without_proxy_protocol_closes_a_header(launch, sourced):
    """On a plain listener a header is just bytes that are not a CONNECT. The v2 signature's first
    byte is a reserved packet type; `PROXY ...` reads as a PUBREC announcing 82 more bytes, so the
    broker may wait for those (they never come) until connect_timeout: closed either way."""
    port = launch([Listener("tcp")], {"connect_timeout": 2}).port
    start = time.monotonic()
    conns = {}
    for name, header in [("v1", v1("TCP4", "127.0.0.66", HOST, 40001, port)),
                         ("v2", v2(PROXY, TCP_OVER_V4, "127.0.0.66", HOST, 40001, port)),
                         ("v2-local", v2(LOCAL, UNSPEC))]:
        conns[name] = sourced(port)
        conns[name].send(header + R.connect("plain-" + name, version=V5))
    for name, conn in conns.items():
        assert_closed_without_connack(conn, "a %s header on a plain listener" % name,
                                      within=max(0.1, start + 4.5 - time.monotonic()))
    conn = sourced(port)
    assert conn.mqtt_connect("plain-ok", version=V5).reason == 0


@pytest.mark.parametrize("form", ["flag", "config-global", "config-listener"])
def test_ways_to_turn_it_on(launch, sourced, form):
    """--proxy-protocol true, the top-level key (every listener), the listener key (that one)."""
    if form == "flag":
        b = launch([Listener("tcp")], {"proxy_protocol": "true"})
        expect = [True]
    elif form == "config-global":
        b = launch([Listener("tcp"), Listener("tcp")], {"proxy_protocol": True}, style="config")
        expect = [True, True]
    else:
        b = launch([proxied(Listener("tcp")), Listener("tcp")], style="config")
        expect = [True, False]
    for i, (lst, wants_header) in enumerate(zip(b.listeners, expect)):
        header = v1("TCP4", "127.0.0.73", HOST, 40040 + i, lst.port)
        with_header = sourced(lst.port)
        with_header.send(header + R.connect("%s-%d-header" % (form, i), version=V5))
        without = sourced(lst.port)
        without.send(R.connect("%s-%d-plain" % (form, i), version=V5))
        served, refused = (with_header, without) if wants_header else (without, with_header)
        assert connack(served, V5).reason == 0, "listener %d (%s)" % (i, form)
        assert_closed_without_connack(refused, "listener %d (%s), proxy_protocol %s" % (i, form, wants_header))
