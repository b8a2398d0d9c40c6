#!/usr/bin/env python3
"""Memory of a large backlog: a persistent subscriber (MQTT 3.1.1, clean session 0) goes
offline, N QoS 1 messages of S bytes are queued for it (on disk beyond queue_memory_limit),
then it comes back and reads them all. Prints the broker's RSS at each step, the database size,
and checks that every message came back once, in order.

usage: scripts/queue-memory.py [COUNT (1000000)] [PAYLOAD_BYTES (1024)]
"""
import os, socket, struct, subprocess, sys, tempfile, time

from mqttbytes import packet, rss_kb, string


def rss_mb(pid):
    return rss_kb(pid) // 1024


class Reader:
    """Splits the byte stream from the broker into (first byte, body) packets."""
    def __init__(self, conn):
        self.conn, self.buffer, self.pending = conn, bytearray(), []

    def packets(self):
        if self.pending:
            out, self.pending = self.pending, []
            return out
        chunk = self.conn.recv(1 << 20)
        if not chunk:
            raise EOFError("broker closed the connection")
        self.buffer += chunk
        out, pos = [], 0
        while True:
            if len(self.buffer) - pos < 2:
                break
            length, shift, i = 0, 0, pos + 1
            while i < len(self.buffer):
                byte = self.buffer[i]
                length |= (byte & 0x7F) << shift
                shift += 7
                i += 1
                if not byte & 0x80:
                    break
            else:
                break
            if len(self.buffer) - i < length:
                break
            out.append((self.buffer[pos], bytes(self.buffer[i:i + length])))
            pos = i + length
        del self.buffer[:pos]
        return out

def connect(port, client_id, clean):
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(packet(0x10, string("MQTT") + bytes([4, 2 if clean else 0, 0, 0]) + string(client_id)))
    reader = Reader(conn)
    while True:
        packets = reader.packets()
        for index, (kind, body) in enumerate(packets):
            if kind == 0x20:
                reader.pending = packets[index + 1:]
                return conn, reader, body[0] & 1

def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 1024
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run(["swift", "build", "-c", "release", "--product", "roost"], cwd=repo, check=True, stdout=subprocess.DEVNULL)
    port = 18871
    with tempfile.TemporaryDirectory(dir=os.environ.get("DATA_PARENT")) as data:
        broker = subprocess.Popen([os.path.join(repo, ".build/release/roost"), "serve", "--listen", "127.0.0.1:%d" % port,
                                   "--data-dir", data, "--max-queued-messages", "0", "--fsync", "normal",
                                   "--log-level", "warning"])
        try:
            time.sleep(1)
            print("broker idle: RSS %d MB" % rss_mb(broker.pid))
            sub, reader, _ = connect(port, "slow-subscriber", clean=False)
            sub.sendall(packet(0x82, struct.pack(">H", 1) + string("backlog/#") + bytes([1])))
            while not any(kind == 0x90 for kind, _ in reader.packets()):
                pass
            sub.sendall(b"\xe0\x00")
            sub.close()

            pub, preader, _ = connect(port, "backlog-publisher", clean=True)
            payload_pad = b"x" * max(0, size - 12)
            started, sent, acked, window = time.time(), 0, 0, 2000
            peak = 0
            while acked < count:
                burst = bytearray()
                while sent < count and sent - acked < window:
                    pid = (sent % 65535) + 1
                    burst += packet(0x32, string("backlog/t") + struct.pack(">H", pid) + b"%012d" % sent + payload_pad)
                    sent += 1
                if burst:
                    pub.sendall(burst)
                acked += sum(1 for kind, _ in preader.packets() if kind == 0x40)
                if acked % 100_000 < window:
                    peak = max(peak, rss_mb(broker.pid))
            elapsed = time.time() - started
            time.sleep(1)
            files = {f: os.path.getsize(os.path.join(data, f)) for f in os.listdir(data)}
            print("data dir: " + ", ".join("%s %d MB" % (f, n // 1_000_000) for f, n in sorted(files.items())))
            db = sum(files.values())
            print("queued %d x %d B (%.0f MB) in %.1f s: broker RSS %d MB (peak seen %d MB), data dir %d MB"
                  % (count, size, count * size / 1e6, elapsed, rss_mb(broker.pid), peak, db // 1_000_000))
            pub.close()

            sub, reader, present = connect(port, "slow-subscriber", clean=False)
            expected, started, peak = 0, time.time(), 0
            while expected < count:
                acks = bytearray()
                for kind, body in reader.packets():
                    if kind & 0xF0 != 0x30:
                        continue
                    topic_length = struct.unpack(">H", body[:2])[0]
                    pid = body[2 + topic_length:4 + topic_length]
                    number = int(body[4 + topic_length:16 + topic_length])
                    if number != expected:
                        sys.exit("out of order or missing: got %d, expected %d" % (number, expected))
                    expected += 1
                    acks += b"\x40\x02" + pid
                if acks:
                    sub.sendall(acks)
                if expected % 100_000 < 500:
                    peak = max(peak, rss_mb(broker.pid))
            print("session present %d; received all %d in order in %.1f s; broker RSS %d MB (peak seen %d MB)"
                  % (present, count, time.time() - started, rss_mb(broker.pid), peak))
            sub.close()
        finally:
            broker.terminate()
            broker.wait()

main()
