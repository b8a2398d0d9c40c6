#!/usr/bin/env python3
"""Memory cost of retained messages: starts a release `roost serve`, publishes N retained
messages (QoS 0, one connection, pipelined; topics ret/<i/1000>/<i>) and prints the RSS growth.

usage: scripts/retained-memory.py [COUNT (200000)] [PAYLOAD_BYTES (64)] [--persistence true|false]
"""
import os, socket, struct, subprocess, sys, tempfile, time

from mqttbytes import packet, rss_kb, string


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    count = int(args[0]) if args else 200_000
    size = int(args[1]) if len(args) > 1 else 64
    persistence = "true"
    if "--persistence" in sys.argv:
        persistence = sys.argv[sys.argv.index("--persistence") + 1]
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(["swift", "build", "-c", "release", "--product", "roost"], cwd=repo, check=True, stdout=subprocess.DEVNULL)
    port = 18870
    with tempfile.TemporaryDirectory() as data:
        broker = subprocess.Popen([os.path.join(repo, ".build/release/roost"), "serve", "--listen", "127.0.0.1:%d" % port,
                                   "--data-dir", data, "--persistence", persistence, "--log-level", "warning"])
        try:
            time.sleep(1)
            before = rss_kb(broker.pid)
            conn = socket.create_connection(("127.0.0.1", port))
            conn.sendall(packet(0x10, string("MQTT") + bytes([4, 2, 0, 60]) + string("retained-loader")))
            conn.recv(4)
            payload = b"x" * size
            buffer = bytearray()
            for i in range(count):
                buffer += packet(0x31, string("ret/%d/%d" % (i // 1000, i)) + payload)
                if len(buffer) > 65536:
                    conn.sendall(buffer)
                    buffer = bytearray()
            conn.sendall(bytes(buffer) + b"\xc0\x00")  # PINGREQ: its PINGRESP follows every publish
            conn.settimeout(300)
            received = b""
            while not received.endswith(b"\xd0\x00"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                received += chunk
            time.sleep(2)
            after = rss_kb(broker.pid)
            conn.close()
            print("persistence=%s: %d retained messages of %d bytes: RSS %d -> %d kB, %.0f bytes each"
                  % (persistence, count, size, before, after, (after - before) * 1024.0 / count))
        finally:
            broker.terminate()
            broker.wait()

main()
