"""TLS listeners: `--tls-listen HOST:PORT --certfile F --keyfile F [--cafile F]
[--require-certificate] [--use-identity-as-username]`, and the same as `listeners:`
entries of a config file (`transport: tls`, `tls_version`).

Clients: paho-mqtt (3.1.1 and 5), mosquitto_pub / mosquitto_sub, `openssl s_client`
and Python's ssl module (raw MQTT over TLS). The certificates come from the
session-scoped `certs` fixture (security_support.py, made with `openssl`).

BROKER=mosquitto: runs against Mosquitto 2.0 with the matching mosquitto.conf
(listener, certfile, keyfile, cafile, require_certificate, use_identity_as_username,
tls_version). Roost's start-up error messages and the flag/config spellings are
roost_only.
"""

import ssl
import subprocess
import time

import pytest

import mqtt_raw as R
from security_support import (
    HOST, CertSet, Listener, TlsRawConn, assert_served, client_context, mosquitto_tool,
    require_openssl, roundtrip, run_roost_serve, served_serial, sys_counters, tls_listener, wait_until,
    write_atomically)

V311, V5 = 4, 5


def tls_pair(launch, certs, style="flags", settings=None, **tls_options):
    """A broker with a plain tcp listener and one tls listener."""
    return launch([Listener("tcp"), tls_listener(certs, **tls_options)], settings, style=style)


def assert_tls_refused(port, ctx, timeout=3.0):
    """The TLS handshake fails, or (TLS 1.3: the server checks the client certificate
    after the client finished) the connection ends with an alert before any CONNACK."""
    try:
        conn = TlsRawConn(port, ctx, timeout=timeout)
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
        return "handshake"
    try:
        conn.send(R.connect("tls-refused", version=4))
        closed, packets = conn.wait_closed(timeout)
        accepted = [p for p in packets if p.type == R.CONNACK and p.body[-1] == 0]
        assert not accepted, "the broker accepted MQTT over a refused TLS connection"
        assert closed, "the broker kept a refused TLS connection open (got %r)" % packets
        return "after handshake"
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# paho-mqtt over TLS
# ---------------------------------------------------------------------------

def test_paho_over_tls_roundtrip_both_ways(launch, clients, certs, version):
    b = tls_pair(launch, certs)
    tls_port, tcp_port = b.port_of("tls"), b.port_of("tcp")
    ctx = client_context(certs)
    tls_sub = clients(tls_port, "tls-sub", version, tls=ctx)
    tcp_sub = clients(tcp_port, "tcp-sub", version)
    tls_pub = clients(tls_port, "tls-pub", version, tls=client_context(certs))
    tcp_pub = clients(tcp_port, "tcp-pub", version)
    assert tls_sub.subscribe("tls/in", 1) == [1]
    tcp_sub.subscribe("tls/out", 2)
    roundtrip(tls_sub, tcp_pub, "tls/in", b"plain to tls")
    m = roundtrip(tcp_sub, tls_pub, "tls/out", b"tls to plain", qos=2)
    assert m.qos == 2
    big = bytes(range(256)) * 800   # 200 kB: many TLS records
    assert roundtrip(tls_sub, tcp_pub, "tls/in", big).payload == big


def test_paho_mutual_tls_with_client_certificate(launch, clients, certs, version):
    b = tls_pair(launch, certs, require_certificate=True)
    port = b.port_of("tls")
    ctx = client_context(certs, cert=certs.alice_crt, key=certs.alice_key)
    sub = clients(port, "mtls-sub", version, tls=ctx)
    pub = clients(port, "mtls-pub", version,
                  tls=client_context(certs, cert=certs.bob_crt, key=certs.bob_key))
    sub.subscribe("mtls/t", 1)
    roundtrip(sub, pub, "mtls/t", b"mutual")
    assert_served(b.port_of("tcp"), "mtls")


@pytest.mark.parametrize("tls_version", ["1.2", "1.3"])
@pytest.mark.parametrize("who", ["no-certificate", "other-ca"])
def test_require_certificate_refuses_untrusted_clients(launch, certs, who, tls_version):
    b = tls_pair(launch, certs, require_certificate=True)
    port = b.port_of("tls")
    pinned = ssl.TLSVersion.TLSv1_2 if tls_version == "1.2" else ssl.TLSVersion.TLSv1_3
    if who == "no-certificate":
        ctx = client_context(certs, minimum=pinned, maximum=pinned)
    else:
        ctx = client_context(certs, cert=certs.rogue_alice_crt, key=certs.rogue_alice_key,
                             minimum=pinned, maximum=pinned)
    how = assert_tls_refused(port, ctx)
    if tls_version == "1.2":
        assert how == "handshake", "TLS 1.2: the handshake itself must fail"
    # The broker still serves trusted clients on both listeners.
    good = TlsRawConn(port, client_context(certs, cert=certs.alice_crt, key=certs.alice_key))
    try:
        assert good.mqtt_connect("after-refusal", version=V5).reason == 0
    finally:
        good.close()
    assert_served(b.port_of("tcp"), "refused")


def test_plain_mqtt_on_a_tls_port_gets_no_connack(launch, raws, clients, certs):
    b = tls_pair(launch, certs)
    conn = raws(b.port_of("tls"))
    conn.send(R.connect("plaintext", version=4))
    try:
        pkt = conn.read_packet(timeout=2)
    except (R.Closed, TimeoutError, R.MalformedPacket):
        pkt = None
    assert pkt is None or pkt.type != R.CONNACK, "plain MQTT must not be served on a TLS listener"
    c = clients(b.port_of("tls"), "tls-still-fine", V5, tls=client_context(certs))
    assert c.connack_rc == 0


@pytest.mark.roost_only(reason="Roost's $SYS/broker/security/tls/handshake_failures")
def test_handshake_failures_counted_in_sys(launch, raws, clients, certs):
    """Each failed handshake (no client certificate, one from another CA, plain MQTT on the
    TLS port) counts once in $SYS/broker/security/tls/handshake_failures."""
    b = tls_pair(launch, certs, settings={"sys_interval": 1}, require_certificate=True)
    watcher = clients(b.port_of("tcp"), "tls-failures-watch", V5)
    watcher.subscribe("$SYS/broker/security/tls/#", 0)
    key = "security/tls/handshake_failures"
    # The start-up probe (a TCP connect and close) counts too ("EOF during handshake"): the
    # count from a publication after it, a second and a half on.
    before = sys_counters(watcher, lambda v: False, timeout=1.5).get(key)
    assert before is not None, "no $SYS/broker/%s" % key
    port = b.port_of("tls")
    assert_tls_refused(port, client_context(certs))
    assert_tls_refused(port, client_context(certs, cert=certs.rogue_alice_crt, key=certs.rogue_alice_key))
    plain = raws(port)
    plain.send(R.connect("plaintext", version=V5))
    assert plain.wait_closed(3)[0], "plain MQTT on a TLS port must be closed"
    values = sys_counters(watcher, lambda v: v.get(key, 0) >= before + 3)
    assert values.get(key) == before + 3, "before: %d, now: %r" % (before, values)
    good = TlsRawConn(port, client_context(certs, cert=certs.alice_crt, key=certs.alice_key))
    try:
        assert good.mqtt_connect("after-failures", version=V5).reason == 0
    finally:
        good.close()


def test_server_certificate_and_hostname_verify(launch, certs):
    """The served certificate chains to the CA and names 127.0.0.1 / localhost."""
    b = tls_pair(launch, certs)
    port = b.port_of("tls")
    assert served_serial(port, certs) == CertSet.SERVER_SERIAL
    # Verification against another CA fails on the client side.
    with pytest.raises(ssl.SSLCertVerificationError):
        TlsRawConn(port, client_context(certs, ca=certs.rogue_ca_crt))
    # "localhost" is in the SAN too.
    conn = TlsRawConn(port, client_context(certs), server_hostname="localhost")
    try:
        assert conn.mqtt_connect("by-name", version=V311).reason == 0
    finally:
        conn.close()


# ---------------------------------------------------------------------------
# openssl s_client
# ---------------------------------------------------------------------------

def s_client(port, *args, hold=0.8, timeout=10):
    """openssl s_client; stdin is kept open for `hold` seconds so that an alert the
    server sends after a TLS 1.3 handshake is read. Returns (returncode, output)."""
    cmd = [require_openssl(), "s_client", "-connect", "%s:%d" % (HOST, port), *map(str, args)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        time.sleep(hold)
        out, _ = proc.communicate(input=b"", timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("openssl s_client did not finish within %d s" % timeout)
    return proc.returncode, out.decode(errors="replace")


def test_openssl_s_client_handshake(launch, certs):
    b = tls_pair(launch, certs)
    rc, out = s_client(b.port_of("tls"), "-CAfile", certs.ca_crt, "-verify_return_error",
                       "-verify_ip", HOST)
    assert rc == 0, out
    assert "Verify return code: 0 (ok)" in out, out
    assert "CN = localhost" in out or "CN=localhost" in out, out


@pytest.mark.parametrize("tls_version", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client_mutual_tls(launch, certs, tls_version):
    b = tls_pair(launch, certs, require_certificate=True)
    port = b.port_of("tls")
    rc, out = s_client(port, tls_version, "-CAfile", certs.ca_crt, "-verify_return_error",
                       "-cert", certs.alice_crt, "-key", certs.alice_key)
    assert rc == 0, out
    assert "Verify return code: 0 (ok)" in out, out
    rc, out = s_client(port, tls_version, "-CAfile", certs.ca_crt)
    assert rc != 0, "a client without a certificate completed the session:\n" + out
    assert "alert" in out.lower(), out
    rc, out = s_client(port, tls_version, "-CAfile", certs.ca_crt,
                       "-cert", certs.rogue_alice_crt, "-key", certs.rogue_alice_key)
    assert rc != 0, "a certificate from another CA was accepted:\n" + out


@pytest.mark.parametrize("minimum", ["tlsv1.2", "tlsv1.3"])
def test_listener_tls_version_is_a_minimum(launch, certs, minimum):
    b = launch([Listener("tcp"), tls_listener(certs, tls_version=minimum)], style="config")
    port = b.port_of("tls")
    for offered in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_context(certs, minimum=offered, maximum=offered)
        if minimum == "tlsv1.3" and offered == ssl.TLSVersion.TLSv1_2:
            with pytest.raises(ssl.SSLError):
                TlsRawConn(port, ctx).close()
            continue
        conn = TlsRawConn(port, ctx)
        try:
            assert conn.sock.version() == ("TLSv1.2" if offered == ssl.TLSVersion.TLSv1_2 else "TLSv1.3")
            assert conn.mqtt_connect("tlsver", version=V5).reason == 0
        finally:
            conn.close()


@pytest.mark.roost_only(reason="Roost's listener key spelling")
def test_listener_ciphers_restrict_tls12_suites(launch, certs):
    """`ciphers` limits the TLS 1.2 suites: a client offering only another suite fails."""
    b = launch([Listener("tcp"), tls_listener(certs, tls_version="tlsv1.2", ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")], style="config")
    port = b.port_of("tls")
    ctx = client_context(certs, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    conn = TlsRawConn(port, ctx)
    try:
        assert conn.sock.cipher()[0] == "ECDHE-ECDSA-AES256-GCM-SHA384"
        assert conn.mqtt_connect("cipher-ok", version=V5).reason == 0
    finally:
        conn.close()
    other = client_context(certs, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2)
    other.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with pytest.raises(ssl.SSLError):
        TlsRawConn(port, other).close()


# ---------------------------------------------------------------------------
# mosquitto_pub / mosquitto_sub
# ---------------------------------------------------------------------------

CLI_VERSION = {V311: "mqttv311", V5: "mqttv5"}


def cli(tool, port, version, *args, timeout=10):
    cmd = [mosquitto_tool(tool), "-h", HOST, "-p", str(port), "-V", CLI_VERSION[version], *map(str, args)]
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def test_mosquitto_clients_over_tls(launch, certs, clients, version):
    b = tls_pair(launch, certs)
    port = b.port_of("tls")
    tls_args = ["--cafile", certs.ca_crt]
    r = cli("mosquitto_pub", port, version, *tls_args, "-t", "cli/tls", "-m", "over tls", "-q", "1", "-r")
    assert r.returncode == 0, r.stderr
    r = cli("mosquitto_sub", port, version, *tls_args, "-t", "cli/tls", "-C", "1", "-W", "5", "-q", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"over tls\n"
    # The same message seen over the plain listener.
    plain = clients(b.port_of("tcp"), "cli-plain", version)
    plain.subscribe("cli/tls", 1)
    m = plain.get()
    assert (m.payload, m.retain) == (b"over tls", True)
    # A client that does not trust the CA gives up.
    r = cli("mosquitto_pub", port, version, "--cafile", certs.rogue_ca_crt, "-t", "cli/tls", "-m", "x")
    assert r.returncode != 0


def test_mosquitto_clients_mutual_tls(launch, certs, version):
    b = tls_pair(launch, certs, require_certificate=True)
    port = b.port_of("tls")
    alice = ["--cafile", certs.ca_crt, "--cert", certs.alice_crt, "--key", certs.alice_key]
    r = cli("mosquitto_pub", port, version, *alice, "-t", "cli/mtls", "-m", "with cert", "-q", "1", "-r")
    assert r.returncode == 0, r.stderr
    r = cli("mosquitto_sub", port, version, *alice, "-t", "cli/mtls", "-C", "1", "-W", "5")
    assert (r.returncode, r.stdout) == (0, b"with cert\n"), r.stderr
    r = cli("mosquitto_pub", port, version, "--cafile", certs.ca_crt, "-t", "cli/mtls", "-m", "no cert", "-q", "1")
    assert r.returncode != 0, "mosquitto_pub without a client certificate succeeded"
    rogue = ["--cafile", certs.ca_crt, "--cert", certs.rogue_alice_crt, "--key", certs.rogue_alice_key]
    r = cli("mosquitto_pub", port, version, *rogue, "-t", "cli/mtls", "-m", "rogue", "-q", "1")
    assert r.returncode != 0, "mosquitto_pub with a certificate from another CA succeeded"
    r = cli("mosquitto_sub", port, version, *alice, "-t", "cli/mtls", "-C", "1", "-W", "5")
    assert r.stdout == b"with cert\n", "a refused client changed the retained message"


@pytest.mark.roost_only(reason="roost pub / roost sub are Roost's own tools")
def test_roost_pub_and_sub_over_mutual_tls(launch, certs, version):
    """roost pub / roost sub with --cafile, --cert and --key (as mosquitto_pub takes them)."""
    from conftest import roost_binary
    b = tls_pair(launch, certs, require_certificate=True)
    port = b.port_of("tls")
    alice = ["--cafile", certs.ca_crt, "--cert", certs.alice_crt, "--key", certs.alice_key]

    def roost(tool, *args):
        cmd = [str(roost_binary()), tool, "-h", HOST, "-p", str(port), "-V", CLI_VERSION[version], *map(str, args)]
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=15)

    r = roost("pub", *alice, "-t", "roost/mtls", "-m", "from roost pub", "-q", "1", "-r")
    assert r.returncode == 0, r.stderr
    r = roost("sub", *alice, "-t", "roost/mtls", "-C", "1", "-W", "5")
    assert (r.returncode, r.stdout) == (0, b"from roost pub\n"), r.stderr
    # Without a client certificate the handshake fails: a clear error and a failing status.
    r = roost("pub", "--cafile", certs.ca_crt, "-t", "roost/mtls", "-m", "no cert")
    assert r.returncode != 0 and r.stderr, "roost pub without a client certificate succeeded"
    # A CA that does not sign the server's certificate: refused by the client.
    r = roost("pub", "--cafile", certs.rogue_ca_crt, *alice[2:],
              "-t", "roost/mtls", "-m", "wrong ca")
    assert r.returncode != 0, "roost pub trusted a server certificate its --cafile does not sign"


# ---------------------------------------------------------------------------
# use_identity_as_username + ACL
# ---------------------------------------------------------------------------

IDENTITY_ACL = """\
# anonymous clients (the plain listener) may read everything
topic read #

user alice
topic readwrite alice/#
"""


@pytest.mark.parametrize("style", ["flags", pytest.param("config", marks=pytest.mark.roost_only(
    reason="Roost's config file spelling (listeners: transport: tls)"))])
def test_use_identity_as_username_with_acl(launch, raws, clients, certs, tmp_path, version, style):
    acl = tmp_path / "identity.acl"
    acl.write_text(IDENTITY_ACL)
    b = tls_pair(launch, certs, style=style, settings={"acl_file": acl},
                 require_certificate=True, use_identity_as_username=True)
    watcher = clients(b.port_of("tcp"), "identity-watcher", V5)
    watcher.subscribe("#", 1)

    def tls_conn(cert, key, client_id, username=None):
        conn = raws(b.port_of("tls"), tls=client_context(certs, cert=cert, key=key))
        ack = conn.mqtt_connect(client_id, version=version, username=username)
        assert ack.reason == 0, "CONNACK %#x for %s" % (ack.reason, client_id)
        return conn

    def publish(conn, topic, pid):
        conn.send(R.publish(topic, b"from " + topic.encode(), qos=1, pid=pid, version=version))
        pkt = conn.expect(R.PUBACK)
        assert R.ack_pid(pkt) == pid
        return pkt.body[2] if version == V5 and len(pkt.body) > 2 else 0

    # The certificate's CN is the user name; a user name in CONNECT does not change it.
    alice = tls_conn(certs.alice_crt, certs.alice_key, "alice-device", username="mallory")
    assert publish(alice, "alice/status", 1) == 0
    assert watcher.get().topic == "alice/status"
    rc = publish(alice, "bob/status", 2)
    assert rc == (0x87 if version == V5 else 0)
    bob = tls_conn(certs.bob_crt, certs.bob_key, "bob-device")
    rc = publish(bob, "alice/status", 3)
    assert rc == (0x87 if version == V5 else 0)
    watcher.assert_no_message(0.5)
    # alice's subscription is readable, so she gets her own messages back.
    assert alice.mqtt_subscribe("alice/#", qos=0, version=version, pid=4) == [0]
    alice.send(R.publish("alice/echo", b"echo", qos=0, version=version))
    got = R.parse_publish(alice.expect(R.PUBLISH), version)
    assert (got.topic, got.payload) == ("alice/echo", b"echo")


# ---------------------------------------------------------------------------
# Start-up errors (Roost's messages)
# ---------------------------------------------------------------------------

@pytest.mark.roost_only(reason="Roost's start-up error messages and exit status")
@pytest.mark.parametrize("case", ["missing-keyfile", "missing-certfile", "key-does-not-match",
                                  "keyfile-not-a-key", "missing-cafile"])
@pytest.mark.parametrize("style", ["flags", "config"])
def test_bad_certificate_or_key_stops_the_start(certs, tmp_path, case, style):
    certfile, keyfile, cafile = certs.server_crt, certs.server_key, None
    if case == "missing-keyfile":
        keyfile = tmp_path / "no-such-dir" / "server.key"
        named, path = "keyfile", keyfile
    elif case == "missing-certfile":
        certfile = tmp_path / "absent.crt"
        named, path = "certfile", certfile
    elif case == "key-does-not-match":
        keyfile = certs.stray_key
        named, path = ("keyfile", "certfile"), keyfile
    elif case == "keyfile-not-a-key":
        keyfile = tmp_path / "garbage.key"
        keyfile.write_text("this is not a PEM key\n")
        named, path = "keyfile", keyfile
    else:
        cafile = tmp_path / "absent-ca.crt"
        named, path = "cafile", cafile
    listener = Listener("tls", certfile=certfile, keyfile=keyfile, cafile=cafile,
                        require_certificate=True if cafile else None)
    if style == "flags":
        args = ["--tls-listen", listener.address, "--certfile", certfile, "--keyfile", keyfile]
        if cafile:
            args += ["--cafile", cafile, "--require-certificate"]
    else:
        config = tmp_path / "roost.yaml"
        lines = ["listeners:", "  - address: %s" % listener.address, "    transport: tls",
                 "    certfile: %s" % certfile, "    keyfile: %s" % keyfile]
        if cafile:
            lines += ["    cafile: %s" % cafile, "    require_certificate: true"]
        config.write_text("\n".join(lines) + "\n")
        args = ["--config", config]
    result = run_roost_serve(args, cwd=tmp_path)
    text = result.stdout + result.stderr
    assert result.returncode in (1, 2), "exit status %s:\n%s" % (result.returncode, text)
    names = named if isinstance(named, tuple) else (named,)
    if case == "key-does-not-match":
        assert any(n in text for n in names), text
        assert str(keyfile) in text or str(certfile) in text, text
    else:
        assert named in text, "the message should name the key %r:\n%s" % (named, text)
        assert str(path) in text, "the message should name the file %s:\n%s" % (path, text)


# ---------------------------------------------------------------------------
# Reload on SIGHUP
# ---------------------------------------------------------------------------

def _install(src_crt, src_key, crt, key):
    write_atomically(key, src_key.read_text())
    write_atomically(crt, src_crt.read_text())


def test_sighup_reloads_the_certificate_and_keeps_connections(launch, clients, certs, tmp_path, version):
    live_crt, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    _install(certs.server_crt, certs.server_key, live_crt, live_key)
    b = launch([Listener("tcp"), tls_listener(certs, certfile=live_crt, keyfile=live_key)])
    port = b.port_of("tls")
    assert served_serial(port, certs) == CertSet.SERVER_SERIAL
    old = clients(port, "before-reload", version, tls=client_context(certs))
    old.subscribe("reload/#", 1)
    tcp_pub = clients(b.port_of("tcp"), "reload-pub", version)

    _install(certs.server2_crt, certs.server2_key, live_crt, live_key)
    b.hup()
    wait_until(lambda: served_serial(port, certs) == CertSet.SERVER2_SERIAL, timeout=5,
               what="the new certificate (serial %#x) served after SIGHUP" % CertSet.SERVER2_SERIAL)
    # The connection made before the reload is still up, both ways.
    assert not old.disconnected.is_set(), "SIGHUP dropped an existing TLS connection"
    roundtrip(old, tcp_pub, "reload/a", b"after reload")
    watcher = clients(b.port_of("tcp"), "reload-watch", version)
    watcher.subscribe("reload/b", 1)
    roundtrip(watcher, old, "reload/b", b"from the old connection")
    # New connections use the new certificate and work.
    new = clients(port, "after-reload", version, tls=client_context(certs))
    roundtrip(old, new, "reload/c", b"new to old")


@pytest.mark.roost_only(reason="Mosquitto reloads certificates on SIGHUP only")
def test_certificate_reloaded_when_its_files_change(launch, clients, certs, tmp_path, version):
    """Without SIGHUP: new certificate files are picked up by the periodic check (every 5 s);
    new connections get the new certificate, an open one stays up."""
    live_crt, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    _install(certs.server_crt, certs.server_key, live_crt, live_key)
    b = launch([Listener("tcp"), tls_listener(certs, certfile=live_crt, keyfile=live_key)])
    port = b.port_of("tls")
    assert served_serial(port, certs) == CertSet.SERVER_SERIAL
    old = clients(port, "before-change", version, tls=client_context(certs))
    old.subscribe("change/#", 1)
    tcp_pub = clients(b.port_of("tcp"), "change-pub", version)

    _install(certs.server2_crt, certs.server2_key, live_crt, live_key)
    wait_until(lambda: served_serial(port, certs) == CertSet.SERVER2_SERIAL, timeout=15, interval=0.5,
               what="the new certificate (serial %#x) served without SIGHUP" % CertSet.SERVER2_SERIAL)
    assert not old.disconnected.is_set(), "the reload dropped an existing TLS connection"
    roundtrip(old, tcp_pub, "change/a", b"after the files changed")
    new = clients(port, "after-change", version, tls=client_context(certs))
    roundtrip(old, new, "change/b", b"new to old")


def test_sighup_with_a_broken_certificate_keeps_the_old_one(launch, clients, certs, tmp_path):
    """A reload that cannot load the new files keeps serving the previous certificate."""
    live_crt, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    _install(certs.server_crt, certs.server_key, live_crt, live_key)
    b = launch([Listener("tcp"), tls_listener(certs, certfile=live_crt, keyfile=live_key)])
    port = b.port_of("tls")
    write_atomically(live_key, "not a key\n")
    b.hup()
    time.sleep(0.5)
    assert b.alive(), "a bad certificate on SIGHUP must not stop the broker"
    assert served_serial(port, certs) == CertSet.SERVER_SERIAL
    c = clients(port, "still-old-cert", V5, tls=client_context(certs))
    assert c.connack_rc == 0
