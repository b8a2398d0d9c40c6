"""Shared helpers for the security and limits acceptance tests (test_tls.py,
test_websocket.py, test_auth_files.py, test_limits.py).

- `certs` (session fixture): a test PKI made with the `openssl` command: a CA, a
  server certificate for 127.0.0.1 / localhost (SAN), a second server certificate
  (another serial, for the SIGHUP reload test), a client certificate CN=alice and
  one CN=bob signed by the CA, a client certificate CN=alice signed by another CA,
  and a key that matches none of the certificates.
- `launch` (fixture): starts `roost serve` (or, with BROKER=mosquitto, mosquitto
  with a generated mosquitto.conf) with any set of listeners (tcp / tls / ws /
  wss) and settings, either as command line flags or as a config file; every
  broker is stopped at the end of the test and its log is attached to failures.
- `write_password_file`: a password file in Mosquitto's format (sha512-pbkdf2,
  `$7$`), made without mosquitto_passwd.
- Clients: `SecClient` (paho over tls / websockets, with a user name),
  `TlsRawConn` and `WsRawConn` (mqtt_raw.RawConn over TLS and over WebSocket
  framing written here with the standard library only), `served_serial`.
- `sys_counters`: the `$SYS/broker/...` counters a subscribed client receives.

Roost spells a setting `key: value` in the config file and `--key VALUE` (dashes)
on the command line; Mosquitto gets the matching mosquitto.conf lines.
"""

import base64
import hashlib
import os
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import support
from conftest import BROKER, STARTUP_TIMEOUT, free_port, mosquitto_binary, roost_binary
from mqtt_raw import RawConn

HOST = "127.0.0.1"

# ---------------------------------------------------------------------------
# Certificates
# ---------------------------------------------------------------------------


def require_openssl():
    return support.require_tool("openssl", "apt-get install -y openssl")


@dataclass
class CertSet:
    dir: Path
    ca_crt: Path
    ca_key: Path
    server_crt: Path           # CN=localhost, SAN DNS:localhost, IP:127.0.0.1, serial SERVER_SERIAL
    server_key: Path
    server2_crt: Path          # same names, serial SERVER2_SERIAL, own key
    server2_key: Path
    alice_crt: Path            # CN=alice, signed by the CA
    alice_key: Path
    bob_crt: Path              # CN=bob, signed by the CA
    bob_key: Path
    rogue_ca_crt: Path         # another CA
    rogue_alice_crt: Path      # CN=alice, signed by the other CA
    rogue_alice_key: Path
    stray_key: Path            # matches no certificate

    SERVER_SERIAL = 0x5E1001
    SERVER2_SERIAL = 0x5E2002


def _openssl(*args, cwd):
    cmd = [require_openssl(), *[str(a) for a in args]]
    res = subprocess.run(cmd, cwd=str(cwd), stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    if res.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), res.returncode,
                                                   res.stderr.decode(errors="replace")))
    return res


def _new_key(path, cwd):
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path, cwd=cwd)


def _self_signed_ca(name, cn, cwd):
    _new_key(name + ".key", cwd)
    _openssl("req", "-x509", "-new", "-key", name + ".key", "-out", name + ".crt", "-days", "3650",
             "-subj", "/O=Roost interop tests/CN=" + cn, "-set_serial", "1",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=cwd)


def _signed(name, cn, ca, serial, extensions, cwd):
    _new_key(name + ".key", cwd)
    _openssl("req", "-new", "-key", name + ".key", "-out", name + ".csr",
             "-subj", "/O=Roost interop tests/CN=" + cn, cwd=cwd)
    (Path(cwd) / (name + ".ext")).write_text("\n".join(extensions) + "\n")
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
             "-set_serial", str(serial), "-days", "825", "-sha256", "-extfile", name + ".ext",
             "-out", name + ".crt", cwd=cwd)


SERVER_EXT = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
              "extendedKeyUsage=serverAuth", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
CLIENT_EXT = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
              "extendedKeyUsage=clientAuth"]


def make_certs(directory):
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _self_signed_ca("ca", "Roost Test CA", d)
    _self_signed_ca("rogue-ca", "Some Other CA", d)
    _signed("server", "localhost", "ca", CertSet.SERVER_SERIAL, SERVER_EXT, d)
    _signed("server2", "localhost", "ca", CertSet.SERVER2_SERIAL, SERVER_EXT, d)
    _signed("alice", "alice", "ca", 0xA11CE, CLIENT_EXT, d)
    _signed("bob", "bob", "ca", 0xB0B, CLIENT_EXT, d)
    _signed("rogue-alice", "alice", "rogue-ca", 0xBAD, CLIENT_EXT, d)
    _new_key("stray.key", d)
    return CertSet(
        dir=d, ca_crt=d / "ca.crt", ca_key=d / "ca.key",
        server_crt=d / "server.crt", server_key=d / "server.key",
        server2_crt=d / "server2.crt", server2_key=d / "server2.key",
        alice_crt=d / "alice.crt", alice_key=d / "alice.key",
        bob_crt=d / "bob.crt", bob_key=d / "bob.key",
        rogue_ca_crt=d / "rogue-ca.crt",
        rogue_alice_crt=d / "rogue-alice.crt", rogue_alice_key=d / "rogue-alice.key",
        stray_key=d / "stray.key")


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """The test PKI, made once per session (skips / fails without openssl)."""
    return make_certs(tmp_path_factory.mktemp("pki"))


def client_context(certs, cert=None, key=None, ca=None, minimum=None, maximum=None, verify=True):
    """An ssl.SSLContext for a client: trusts the test CA (or `ca`), optionally
    presents cert/key, optionally pins the TLS versions (ssl.TLSVersion)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(cafile=str(ca or certs.ca_crt))
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def served_certificate(port, certs, timeout=3.0):
    """The server certificate (dict from getpeercert()) served on a TLS port."""
    ctx = client_context(certs)
    with socket.create_connection((HOST, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=HOST) as tls:
            return tls.getpeercert()


def served_serial(port, certs, timeout=3.0):
    return int(served_certificate(port, certs, timeout)["serialNumber"], 16)


# ---------------------------------------------------------------------------
# Password files
# ---------------------------------------------------------------------------

def password_line(user, password, iterations=101, salt=None):
    """One line of a Mosquitto password file: user:$7$ITER$base64(salt)$base64(pbkdf2-sha512)."""
    salt = salt if salt is not None else os.urandom(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return "%s:$7$%d$%s$%s" % (user, iterations, base64.b64encode(salt).decode(),
                               base64.b64encode(digest).decode())


def write_password_file(path, users):
    """users: {name: password}. Written atomically (the broker may reload it)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(password_line(u, p) + "\n" for u, p in users.items()))
    os.replace(tmp, path)
    return path


def write_atomically(path, text):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------
# Broker launching
# ---------------------------------------------------------------------------

TRANSPORTS = ("tcp", "tls", "ws", "wss")
LISTENER_FLAG = {"tcp": "--listen", "tls": "--tls-listen", "ws": "--ws-listen", "wss": "--wss-listen"}
TLS_OPTIONS = ("certfile", "keyfile", "cafile", "require_certificate", "use_identity_as_username",
               "tls_version")
# The TLS options `roost serve` takes as flags (shared by its --tls-listen / --wss-listen listeners).
TLS_FLAG_OPTIONS = ("certfile", "keyfile", "cafile", "require_certificate", "use_identity_as_username")
LISTENER_OPTIONS = TLS_OPTIONS + ("allow_anonymous", "max_connections", "path", "ciphers")
# Settings a generated mosquitto.conf can express (same names there).
MOSQUITTO_SETTINGS = ("password_file", "acl_file", "allow_anonymous", "sys_interval", "max_packet_size",
                      "max_keepalive", "max_queued_messages")


class Listener:
    """One listener: transport, a free port and its options (the keys of the
    `listeners:` config entries: certfile, keyfile, cafile, require_certificate,
    use_identity_as_username, tls_version, allow_anonymous, max_connections, path)."""

    def __init__(self, transport="tcp", **options):
        if transport not in TRANSPORTS:
            raise pytest.UsageError("unknown transport %r" % transport)
        unknown = set(options) - set(LISTENER_OPTIONS)
        if unknown:
            raise pytest.UsageError("unknown listener option(s): %s" % ", ".join(sorted(unknown)))
        self.transport = transport
        self.port = free_port()
        self.options = {k: v for k, v in options.items() if v is not None}

    @property
    def address(self):
        return "%s:%d" % (HOST, self.port)

    @property
    def tls(self):
        return self.transport in ("tls", "wss")

    def __repr__(self):
        return "<%s listener %s %r>" % (self.transport, self.address, self.options)


def tls_listener(certs, transport="tls", **options):
    """A tls / wss listener with the test server certificate (options override)."""
    options.setdefault("certfile", certs.server_crt)
    options.setdefault("keyfile", certs.server_key)
    if options.get("require_certificate") or options.get("use_identity_as_username"):
        options.setdefault("cafile", certs.ca_crt)
    return Listener(transport, **options)


def _yaml_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class SecureBroker:
    """A broker process with arbitrary listeners and settings.

    kind: "roost" or "mosquitto". style: "flags" (roost serve --listen ... --tls-listen ...)
    or "config" (roost serve --config FILE with a `listeners:` list). Mosquitto always gets a
    generated mosquitto.conf. `port` is the first listener's port."""

    def __init__(self, kind, workdir, listeners, settings=None, style="flags", extra_args=()):
        self.kind = kind
        self.host = HOST
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.listeners = list(listeners)
        if not self.listeners:
            raise pytest.UsageError("a broker needs at least one listener")
        self.settings = dict(settings or {})
        self.style = style
        self.extra_args = [str(a) for a in extra_args]
        self.log_path = self.workdir / ("%s.log" % kind)
        self.proc = None
        self._log = None
        self.command = None
        self.expected_exit = False
        self.starts = 0

    @property
    def port(self):
        return self.listeners[0].port

    def listener(self, transport, index=0):
        found = [lst for lst in self.listeners if lst.transport == transport]
        return found[index]

    def port_of(self, transport, index=0):
        return self.listener(transport, index).port

    # -- command lines ----------------------------------------------------
    def roost_command(self):
        binary = roost_binary()
        if not binary.exists():
            pytest.fail("Roost binary not found at %s (build it with `swift build`, or set ROOST_BIN)"
                        % binary, pytrace=False)
        cmd = [str(binary), "serve"]
        if self.style == "config":
            config = self.workdir / "roost.yaml"
            config.write_text(self.roost_config())
            cmd += ["--config", str(config)]
        else:
            cmd += self._roost_flags()
        return cmd + self.extra_args

    def _roost_flags(self):
        flags = []
        tls_options = None
        for lst in self.listeners:
            flags += [LISTENER_FLAG[lst.transport], lst.address]
            own = {k: v for k, v in lst.options.items() if k in TLS_FLAG_OPTIONS}
            per_listener = set(lst.options) - set(TLS_FLAG_OPTIONS)
            if per_listener:
                raise pytest.UsageError("%s need style='config' (per-listener settings)" % sorted(per_listener))
            if lst.tls:
                if tls_options is not None and own != tls_options:
                    raise pytest.UsageError("TLS listeners with different options need style='config'")
                tls_options = own
        for key, value in (tls_options or {}).items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                if value:
                    flags.append(flag)
            else:
                flags += [flag, str(value)]
        for key, value in self.settings.items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                flags.append(flag if value else "--no-" + key.replace("_", "-"))
            else:
                flags += [flag, str(value)]
        return flags

    def roost_config(self):
        lines = ["# generated by the interop tests (security_support.py)", "listeners:"]
        for lst in self.listeners:
            lines.append("  - address: %s" % lst.address)
            lines.append("    transport: %s" % lst.transport)
            for key, value in lst.options.items():
                lines.append("    %s: %s" % (key, _yaml_value(value)))
        for key, value in self.settings.items():
            lines.append("%s: %s" % (key, _yaml_value(value)))
        return "\n".join(lines) + "\n"

    def mosquitto_command(self):
        binary = mosquitto_binary()
        if not binary:
            support.missing("mosquitto", "apt-get install -y mosquitto")
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(self.mosquitto_config())
        return [binary, "-c", str(conf)]

    def mosquitto_config(self):
        unknown = set(self.settings) - set(MOSQUITTO_SETTINGS)
        if unknown:
            raise pytest.UsageError("no mosquitto.conf mapping for %s (mark the test roost_only)"
                                    % ", ".join(sorted(unknown)))
        settings = dict(self.settings)
        # Roost: anonymous clients are allowed unless a password file is given.
        settings.setdefault("allow_anonymous", "password_file" not in settings)
        auth_keys = ("password_file", "acl_file", "allow_anonymous")
        per_listener = any("allow_anonymous" in lst.options for lst in self.listeners)
        lines = []
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            # Mosquitto started as root drops to the `mosquitto` user, which cannot read the
            # test's private keys and files in pytest's 0700 temporary directories.
            lines.append("user root")
        lines += ["per_listener_settings %s" % ("true" if per_listener else "false"),
                 "persistence false", "log_dest stderr", "log_type all",
                 "log_timestamp_format %H:%M:%S"]
        for key, value in settings.items():
            if per_listener and key in auth_keys:
                continue
            lines.append("%s %s" % (key, _yaml_value(value)))
        for lst in self.listeners:
            lines.append("")
            lines.append("listener %d %s" % (lst.port, HOST))
            lines.append("protocol %s" % ("websockets" if lst.transport in ("ws", "wss") else "mqtt"))
            if per_listener:
                for key in auth_keys:
                    value = lst.options.get(key, settings.get(key))
                    if value is not None:
                        lines.append("%s %s" % (key, _yaml_value(value)))
            for key, value in lst.options.items():
                if key in ("allow_anonymous", "path"):
                    continue
                lines.append("%s %s" % (key, _yaml_value(value)))
        return "\n".join(lines) + "\n"

    # -- process ------------------------------------------------------------
    def start(self, wait=True):
        self.command = self.roost_command() if self.kind == "roost" else self.mosquitto_command()
        self._log = open(self.log_path, "ab" if self.starts else "wb")
        self.starts += 1
        self._log.write(("$ %s\n" % " ".join(self.command)).encode())
        self._log.flush()
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=str(self.workdir))
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=STARTUP_TIMEOUT):
        """Until every listener's port accepts TCP connections."""
        deadline = time.monotonic() + timeout
        pending = [lst.port for lst in self.listeners]
        while pending:
            if self.proc.poll() is not None:
                pytest.fail("broker exited during startup with code %s:\n%s"
                            % (self.proc.returncode, self.log_tail()), pytrace=False)
            try:
                with socket.create_connection((HOST, pending[0]), timeout=0.5):
                    pending.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail("broker did not accept connections on port %d within %.0fs:\n%s"
                            % (pending[0], timeout, self.log_tail()), pytrace=False)
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def hup(self, settle=0.5):
        """SIGHUP (reload certificates, password and ACL files); then a short settle time.
        Tests still poll for the effect, with a deadline."""
        assert self.alive(), "broker is not running"
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(settle)
        assert self.alive(), "broker died on SIGHUP:\n%s" % self.log_tail()

    def stop(self):
        if self.proc is None:
            return None
        # Stopped on purpose: not a crash for the fixture's teardown check.
        self.expected_exit = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._log is not None:
            self._log.close()
        return self.proc.returncode

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines=150):
        text = self.log_text()
        if not text:
            return "<no broker log at %s>" % self.log_path
        return "\n".join(text.splitlines()[-lines:])


@pytest.fixture
def launch(request, tmp_path):
    """Factory: launch(listeners, settings=None, style="flags", kind=None, start=True) -> SecureBroker.

    kind defaults to the broker under test (BROKER). Every broker started here is
    stopped after the test; one that died during the test fails it (set
    `expected_exit = True` on it when that is the point)."""
    made = []

    def factory(listeners, settings=None, style="flags", kind=None, start=True, extra_args=()):
        b = SecureBroker(kind or BROKER, tmp_path / ("broker%d" % len(made)), listeners, settings,
                         style=style, extra_args=extra_args)
        made.append(b)
        if not hasattr(request.node, "_interop_broker"):
            request.node._interop_broker = b
        if start:
            b.start()
        return b

    yield factory
    crashed = [b for b in made if b.proc is not None and not b.alive() and not b.expected_exit]
    for b in made:
        b.stop()
    if crashed:
        pytest.fail("broker exited while the test ran (code %s):\n%s"
                    % (crashed[0].proc.returncode, crashed[0].log_tail()), pytrace=False)


def run_roost_serve(args, cwd, timeout=15):
    """`roost serve ARGS` expected to stop by itself (a start-up error)."""
    binary = roost_binary()
    if not binary.exists():
        pytest.fail("Roost binary not found at %s" % binary, pytrace=False)
    try:
        return subprocess.run([str(binary), "serve", *[str(a) for a in args]], cwd=str(cwd),
                              capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail("roost serve %s was still running after %d s; it should have refused to start"
                    % (" ".join(map(str, args)), timeout), pytrace=False)


# ---------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------

def _paho():
    import pahoclient
    return pahoclient


def sec_client(port, client_id="", version=5, transport="tcp", ws_path="/mqtt", tls=None,
               username=None, password=None, will=None, **kwargs):
    """A pahoclient.TestClient (not yet connected) speaking over tcp, tls
    (tls=ssl.SSLContext), websockets or secure websockets, with optional credentials."""
    pc = _paho()
    mqtt = pc.mqtt
    client = pc.TestClient(port, client_id=client_id, version=version, **kwargs)
    if transport != "tcp":
        ckw = dict(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                   protocol=mqtt.MQTTv5 if version == 5 else mqtt.MQTTv311,
                   reconnect_on_failure=False, transport=transport)
        if version != 5:
            ckw["clean_session"] = client.clean
        c = mqtt.Client(**ckw)
        c.ws_set_options(path=ws_path)
        c.on_connect = client._on_connect
        c.on_message = client._on_message
        c.on_subscribe = client._on_ack
        c.on_unsubscribe = client._on_ack
        c.on_disconnect = client._on_disconnect
        client.c = c
    if will is not None:
        client.c.will_set(will["topic"], will.get("payload", b""), will.get("qos", 0),
                          will.get("retain", False), will.get("props"))
    if tls is not None:
        client.c.tls_set_context(tls)
    if username is not None:
        client.c.username_pw_set(username, password)
    return client


@pytest.fixture
def clients():
    """Factory: clients(port, ..., connect=True) -> connected sec_client; closed after the test."""
    made = []

    def factory(port, client_id="", version=5, connect=True, expect_success=True, **kwargs):
        client = sec_client(port, client_id=client_id, version=version, **kwargs)
        made.append(client)
        if connect:
            client.connect(expect_success=expect_success)
        return client

    yield factory
    for client in made:
        client.close_quietly()


@pytest.fixture
def raws():
    """Factory for raw connections: raws(port) (tcp), raws(port, tls=ctx), raws(port, ws=True, ...).
    Closed after the test."""
    made = []

    def factory(port, tls=None, ws=False, path="/mqtt", timeout=5.0, **kwargs):
        if ws:
            conn = WsRawConn(port, path=path, ssl_context=tls, timeout=timeout, **kwargs)
        elif tls is not None:
            conn = TlsRawConn(port, tls, timeout=timeout)
        else:
            conn = RawConn(port, timeout=timeout)
        made.append(conn)
        return conn

    yield factory
    for conn in made:
        conn.close()


class _SockReader:
    """select() misses bytes already decrypted inside an SSLSocket; check pending() first."""

    def _ready(self, deadline):
        if isinstance(self.sock, ssl.SSLSocket) and self.sock.pending():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no data from broker")
        ready, _, _ = select.select([self.sock], [], [], remaining)
        if not ready:
            raise TimeoutError("no data from broker")
        return True

    def _recv(self, deadline):
        """Bytes from the socket, b"" on EOF / reset / TLS alert."""
        self._ready(deadline)
        try:
            return self.sock.recv(65536)
        except ssl.SSLWantReadError:
            return None
        except (ConnectionResetError, ConnectionAbortedError, ssl.SSLError) as exc:
            self.tls_error = exc
            return b""


class TlsRawConn(_SockReader, RawConn):
    """mqtt_raw.RawConn over TLS (ctx: an ssl.SSLContext for the client)."""

    def __init__(self, port, ctx, host=HOST, timeout=5.0, server_hostname=HOST):
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = ctx.wrap_socket(raw, server_hostname=server_hostname)
        except BaseException:
            raw.close()
            raise
        self.buf = bytearray()
        self.eof = False
        self.send_failed = False
        self.tls_error = None

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLError):
            self.send_failed = True

    def _fill(self, deadline):
        if self.eof:
            return False
        while True:
            chunk = self._recv(deadline)
            if chunk is None:
                continue
            if not chunk:
                self.eof = True
                return False
            self.buf += chunk
            return True


# -- WebSocket (RFC 6455), client side ----------------------------------------

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WsHandshakeFailed(AssertionError):
    def __init__(self, status, headers, body):
        super().__init__("WebSocket upgrade refused: HTTP %s %r" % (status, headers))
        self.status = status
        self.headers = headers
        self.body = body


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(opcode, payload, fin=True, mask=True, rsv=0):
    """A client frame (masked, as RFC 6455 requires of clients)."""
    payload = bytes(payload)
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    n = len(payload)
    mask_bit = 0x80 if mask else 0
    if n < 126:
        head.append(mask_bit | n)
    elif n < 65536:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + key + masked


def parse_ws_frame(data):
    """(fin, opcode, payload, masked, consumed) or None if incomplete."""
    if len(data) < 2:
        return None
    fin = bool(data[0] & 0x80)
    opcode = data[0] & 0x0F
    masked = bool(data[1] & 0x80)
    n = data[1] & 0x7F
    pos = 2
    if n == 126:
        if len(data) < 4:
            return None
        (n,) = struct.unpack_from("!H", data, 2)
        pos = 4
    elif n == 127:
        if len(data) < 10:
            return None
        (n,) = struct.unpack_from("!Q", data, 2)
        pos = 10
    key = b""
    if masked:
        if len(data) < pos + 4:
            return None
        key = bytes(data[pos:pos + 4])
        pos += 4
    if len(data) < pos + n:
        return None
    payload = bytes(data[pos:pos + n])
    if masked:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return fin, opcode, payload, masked, pos + n


def http_exchange(sock, request, timeout=5.0):
    """Send an HTTP request, read the response head; returns (status, headers, leftover bytes)."""
    sock.sendall(request)
    data = bytearray()
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete HTTP response head within %.1fs: %r" % (timeout, bytes(data)))
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            raise ConnectionError("connection closed before an HTTP response head: %r" % bytes(data))
        data += chunk
    head, _, rest = bytes(data).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def upgrade_request(port, path="/mqtt", protocols=("mqtt",), key=None, host=HOST, extra_headers=()):
    key = key or base64.b64encode(os.urandom(16)).decode()
    lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: %s" % key, "Sec-WebSocket-Version: 13"]
    if protocols:
        lines.append("Sec-WebSocket-Protocol: %s" % ", ".join(protocols))
    lines += list(extra_headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


class WsRawConn(_SockReader, RawConn):
    """mqtt_raw.RawConn over WebSocket framing: send() wraps the bytes into one masked
    binary frame; send_frames() / send_frame() control the framing; received binary
    (and continuation) frames are unwrapped into the MQTT byte stream. Every frame
    received is kept in `frames` as (fin, opcode, payload)."""

    def __init__(self, port, host=HOST, path="/mqtt", protocols=("mqtt",), timeout=5.0, ssl_context=None):
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = ssl_context.wrap_socket(raw, server_hostname=host) if ssl_context else raw
            request, key = upgrade_request(port, path, protocols, host=host)
            status, headers, rest = http_exchange(self.sock, request, timeout)
        except BaseException:
            raw.close()
            raise
        self.status = status
        self.headers = headers
        if status != 101:
            self.sock.close()
            raise WsHandshakeFailed(status, headers, rest)
        assert headers.get("sec-websocket-accept") == ws_accept(key), \
            "bad Sec-WebSocket-Accept %r" % headers.get("sec-websocket-accept")
        self.subprotocol = headers.get("sec-websocket-protocol")
        self.sock.settimeout(timeout)
        self.buf = bytearray()
        self.wire = bytearray(rest)
        self.frames = []
        self.eof = False
        self.send_failed = False
        self.close_code = None
        self.tls_error = None

    def _raw_send(self, data):
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, ssl.SSLError):
            self.send_failed = True

    def send(self, data):
        self._raw_send(ws_frame(OP_BINARY, data))

    def send_frame(self, opcode, payload, fin=True):
        self._raw_send(ws_frame(opcode, payload, fin=fin))

    def send_frames(self, chunks, pause=0.0):
        """Each chunk in its own binary frame (a complete WebSocket message each)."""
        for chunk in chunks:
            self.send(chunk)
            if pause:
                time.sleep(pause)

    def send_fragmented(self, chunks, pause=0.0):
        """One WebSocket message in fragments: binary (FIN=0), continuation..., last FIN=1."""
        for i, chunk in enumerate(chunks):
            self.send_frame(OP_BINARY if i == 0 else OP_CONT, chunk, fin=(i == len(chunks) - 1))
            if pause:
                time.sleep(pause)

    def _drain_frames(self):
        progressed = False
        while True:
            parsed = parse_ws_frame(self.wire)
            if parsed is None:
                return progressed
            fin, opcode, payload, masked, used = parsed
            del self.wire[:used]
            progressed = True
            assert not masked, "a server must not mask its frames (RFC 6455 5.1)"
            self.frames.append((fin, opcode, payload))
            if opcode in (OP_BINARY, OP_CONT):
                self.buf += payload
            elif opcode == OP_PING:
                self._raw_send(ws_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                self.eof = True
                return progressed

    def _fill(self, deadline):
        if self.eof:
            return False
        while True:
            if self._drain_frames():
                return True
            chunk = self._recv(deadline)
            if chunk is None:
                continue
            if not chunk:
                self.eof = True
                return False
            self.wire += chunk

    def next_frame(self, timeout=5.0):
        """The next frame of any kind (also consumed into the MQTT stream if binary)."""
        deadline = time.monotonic() + timeout
        seen = len(self.frames)
        while len(self.frames) == seen:
            if self.eof:
                raise ConnectionError("connection closed")
            if not self._drain_frames():
                chunk = self._recv(deadline)
                if chunk is None:
                    continue
                if not chunk:
                    self.eof = True
                    raise ConnectionError("connection closed")
                self.wire += chunk
        return self.frames[seen]


def http_get_status(port, path, ssl_context=None, protocols=("mqtt",), timeout=5.0):
    """Status and headers of a WebSocket upgrade request to `path`."""
    raw = socket.create_connection((HOST, port), timeout=timeout)
    try:
        sock = ssl_context.wrap_socket(raw, server_hostname=HOST) if ssl_context else raw
        request, _ = upgrade_request(port, path, protocols)
        status, headers, _ = http_exchange(sock, request, timeout)
        return status, headers
    finally:
        raw.close()


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def roundtrip(sub, pub, topic, payload, qos=1, timeout=5.0):
    """sub (already subscribed to topic) receives payload published by pub."""
    pub.publish(topic, payload, qos=qos)
    deadline = time.monotonic() + timeout
    while True:
        m = sub.get(timeout=max(0.05, deadline - time.monotonic()))
        if m.topic == topic and m.payload == payload:
            return m


def assert_served(port, tag="served", **client_kwargs):
    """New clients on `port` (3.1.1 and 5) still connect, publish and receive."""
    for version in (4, 5):
        sub = sec_client(port, client_id="%s-sub-%d" % (tag, version), version=version, **client_kwargs)
        pub = sec_client(port, client_id="%s-pub-%d" % (tag, version), version=version, **client_kwargs)
        try:
            sub.connect()
            pub.connect()
            topic = "%s/check/%d" % (tag, version)
            sub.subscribe(topic, 1)
            roundtrip(sub, pub, topic, b"still served %d" % version)
        finally:
            sub.close_quietly()
            pub.close_quietly()


def wait_until(predicate, timeout=5.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("%s not reached within %.1fs" % (what, timeout))
        time.sleep(interval)


def sys_counters(watcher, wanted, timeout=6.0):
    """The integer `$SYS/broker/...` values `watcher` (a client subscribed to them, with
    `sys_interval` 1) receives, keyed by their name without `$SYS/broker/`, the latest of
    each; returned once `wanted(values)` holds or after `timeout` (the caller asserts on them)."""
    values = {}
    deadline = time.monotonic() + timeout
    while True:
        for m in watcher.drain(0.3):
            if not m.topic.startswith("$SYS/broker/"):
                continue
            try:
                values[m.topic[len("$SYS/broker/"):]] = int(m.payload)
            except ValueError:
                pass
        if wanted(values) or time.monotonic() > deadline:
            return values


def mosquitto_tool(name):
    """mosquitto_pub / mosquitto_sub / mosquitto_passwd, or skip (fail with CI=true)."""
    hint = "apt-get install -y mosquitto" if name == "mosquitto_passwd" else "apt-get install -y mosquitto-clients"
    return support.require_tool(name, hint)


def have(name):
    return shutil.which(name) is not None
