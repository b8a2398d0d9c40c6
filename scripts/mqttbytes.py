"""Bare MQTT 3.1.1 packet bytes and /proc readings, shared by the measurement scripts."""
import struct


def varint(n):
    """The MQTT variable byte integer of n."""
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def packet(kind, body):
    """A whole packet: first byte, remaining length, body."""
    return bytes([kind]) + varint(len(body)) + body


def string(text):
    """A UTF-8 string with its two-byte length."""
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def rss_kb(pid):
    """VmRSS of a process, kB."""
    with open("/proc/%d/status" % pid) as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
