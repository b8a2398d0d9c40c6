"""Concurrency and isolation between connections."""

import random
import threading
import time

from pahoclient import V311, V5, TestClient

N_CLIENTS = 20
N_MESSAGES = 25


def test_concurrent_clients_do_not_disturb_each_other(broker, mk, version):
    monitor = mk("load-monitor", version=version)
    monitor.subscribe("load/#", 1)
    barrier = threading.Barrier(N_CLIENTS)
    errors = []
    clients = []
    lock = threading.Lock()

    def worker(i):
        try:
            c = TestClient(broker.port, client_id="load-%02d" % i, version=version)
            with lock:
                clients.append(c)
            barrier.wait(5)
            c.connect()
            c.subscribe("load/%d" % i, 1)
            barrier.wait(5)  # everyone is subscribed before anyone publishes
            for n in range(N_MESSAGES):
                c.publish("load/%d" % i, b"%d:%d" % (i, n), qos=1, wait=False)
            got = c.get_n(N_MESSAGES, timeout=8)
            expected = [b"%d:%d" % (i, n) for n in range(N_MESSAGES)]
            if [m.payload for m in got] != expected:
                errors.append("client %d got %r" % (i, [m.payload for m in got]))
            if any(m.topic != "load/%d" % i for m in got):
                errors.append("client %d got foreign topics" % i)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append("client %d: %r" % (i, exc))
            try:
                barrier.abort()
            except threading.BrokenBarrierError:
                pass

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(N_CLIENTS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
        assert not [t for t in threads if t.is_alive()], "worker threads hung"
        assert not errors, "\n".join(errors[:10])
        seen = monitor.get_n(N_CLIENTS * N_MESSAGES, timeout=8)
        per_client = {}
        for m in seen:
            i, n = m.payload.split(b":")
            per_client.setdefault(int(i), []).append(int(n))
        assert sorted(per_client) == list(range(N_CLIENTS))
        for i, ns in per_client.items():
            assert ns == list(range(N_MESSAGES)), "monitor saw client %d out of order: %r" % (i, ns)
        for c in clients:
            assert not c.disconnected.is_set(), "a client was disconnected"
    finally:
        for c in clients:
            c.close_quietly()


def test_garbage_connections_do_not_affect_subscriber(broker, mk, raw):
    sub = mk("garbage-sub", version=V5)
    sub.subscribe("robust/t", 1)
    pub = mk("garbage-pub", version=V311)
    rng = random.Random(1234)
    stop = threading.Event()
    published = []

    def publisher():
        for n in range(100):
            if stop.is_set():
                return
            pub.publish("robust/t", b"%d" % n, qos=1)
            published.append(n)
            time.sleep(0.005)

    t = threading.Thread(target=publisher, daemon=True)
    t.start()
    # Each junk stream starts with bytes that are invalid in any state, followed
    # by random noise, so every one of these connections must be closed.
    invalid_prefixes = [
        b"\x00\x00",                  # reserved packet type 0
        b"\x36\x00",                  # PUBLISH with QoS 3
        b"\x82\x02\x00\x01",          # SUBSCRIBE with no topic filter
        b"\x30\xff\xff\xff\xff\x7f",  # remaining length with 5 bytes
        b"\x80\x00",                  # SUBSCRIBE with reserved flags 0
        b"\x10\x00",                  # truncated CONNECT (remaining length 0)
    ]
    try:
        for k in range(12):
            conn = raw()
            if k % 2:
                conn.mqtt_connect("garbage-%d" % k, version=V5 if k % 4 == 1 else V311)
            prefix = invalid_prefixes[k % len(invalid_prefixes)]
            conn.send(prefix + rng.randbytes(rng.randint(0, 2048)))
            closed, _ = conn.wait_closed(3)
            assert closed, "junk stream #%d (%s...) did not get its connection closed" % (k, prefix.hex())
            conn.close()
    finally:
        t.join(10)
        stop.set()
    assert len(published) == 100
    got = [int(m.payload) for m in sub.get_n(100, timeout=8)]
    assert got == list(range(100))
    assert not sub.disconnected.is_set()


def test_slow_consumer_does_not_block_others(broker, mk, raw):
    stuck = raw()
    stuck.mqtt_connect("stuck-consumer", version=V311)
    stuck.mqtt_subscribe("flood/#", qos=0)
    # From now on `stuck` never reads its socket.
    healthy = mk("healthy-consumer", version=V5)
    healthy.subscribe("flood/#", 1)
    pub = mk("flood-pub", version=V5)
    # 16 MB in total: far more than the stuck consumer's socket buffers hold.
    payload = b"x" * 16384
    count = 1000
    start = time.monotonic()
    for n in range(count):
        pub.publish("flood/t", payload + b"%d" % n, qos=1, wait=False)
    got = healthy.get_n(count, timeout=10)
    assert [m.payload[16384:] for m in got] == [b"%d" % n for n in range(count)]
    assert time.monotonic() - start < 10
    assert broker.alive()
