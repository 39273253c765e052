"""Output capture and the Log stream: every byte, in order, to any number of
readers, with bounded memory."""

import hashlib
import os
import signal
import subprocess
import threading
import time

import grpc
import pytest

from conftest import RUNC, TLS, channel, runc, stub, wait_for
from test_jobs import start, wait_end


def collect(s, pb, jid, timeout=60):
    out, err, trunc = bytearray(), bytearray(), []
    for m in s.Log(pb.JobIdentifier(ulid=jid), timeout=timeout):
        out += m.stdout
        err += m.stderr
        if m.truncated_at:
            trunc.append(m.truncated_at)
    return bytes(out), bytes(err), trunc


def test_50mib_random_both_streams_exact(rund, pb, job_dir):
    data = os.urandom(50 << 20)
    src = job_dir / "random.bin"
    src.write_bytes(data)
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c",
                'for i in 1 2 3 4 5; do echo "line $i" >&2; done; cat "$1"; echo done >&2',
                "sh", str(src))
    out, err, trunc = collect(s, pb, jid)
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(data).hexdigest()
    assert err == b"line 1\nline 2\nline 3\nline 4\nline 5\ndone\n"
    assert trunc == []
    st = s.Status(pb.JobIdentifier(ulid=jid), timeout=5)
    assert st.exit_code.value == 0
    assert st.log_bytes == len(data) + len(err)


def test_interleaving_preserved(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c",
                'for i in 1 2 3 4 5 6 7 8 9 10; do echo out$i; sleep 0.02; '
                'echo err$i >&2; sleep 0.02; done')
    seq = []
    for m in s.Log(pb.JobIdentifier(ulid=jid), timeout=30):
        assert not (m.stdout and m.stderr), "one stream per message"
        if m.stdout:
            seq.append(("o", m.stdout))
        if m.stderr:
            seq.append(("e", m.stderr))
    merged = []
    for kind, b in seq:
        for line in b.decode().splitlines():
            merged.append(line)
    want = []
    for i in range(1, 11):
        want += ["out%d" % i, "err%d" % i]
    assert merged == want


def test_follow_latency_and_end(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", 'for i in $(seq 1 20); do echo line$i; sleep 0.1; done')
    t0 = time.time()
    first = None
    lines = []
    for m in s.Log(pb.JobIdentifier(ulid=jid), timeout=30):
        if m.stdout and first is None:
            first = time.time() - t0
        lines += m.stdout.decode().splitlines()
    ended = time.time() - t0
    assert first is not None and first < 0.5, first
    assert lines == ["line%d" % i for i in range(1, 21)]
    assert 1.5 < ended < 5, ended


def test_100_concurrent_readers_identical(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", 'for i in $(seq 1 200); do echo "row $i $i $i"; done; '
                'head -c 300000 /dev/urandom | od -An -x | head -c 200000; sleep 0.5; echo end')
    results = [None] * 100
    chans = [channel(rund) for _ in range(10)]

    def reader(i):
        results[i] = collect(stub(chans[i % 10]), pb, jid)[0]

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r is not None for r in results)
    assert len({hashlib.sha256(r).hexdigest() for r in results}) == 1
    assert results[0].endswith(b"end\n") and results[0].startswith(b"row 1 1 1\n")


def test_reader_after_end_gets_everything(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "echo hello; echo oops >&2")
    wait_end(s, pb, jid)
    t0 = time.time()
    out, err, _ = collect(s, pb, jid)
    assert (out, err) == (b"hello\n", b"oops\n")
    assert time.time() - t0 < 2


def test_grandchild_holding_stdout_does_not_hang(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "(setsid sleep 1000 &); echo main-done")
    t0 = time.time()
    out, _, _ = collect(s, pb, jid, timeout=20)
    assert out == b"main-done\n"
    assert time.time() - t0 < 5


@pytest.mark.slow
def test_slow_reader_bounded_memory(rund, pb):
    s = stub(channel(rund, options=[("grpc.http2.bdp_probe", 0)]))
    jid = start(s, pb, "sh", "-c", "head -c 104857600 /dev/zero")
    base = rund.rss_kib()
    it = s.Log(pb.JobIdentifier(ulid=jid), timeout=120)
    got = len(next(it).stdout)
    # The job must not wait for the reader.
    st = wait_end(s, pb, jid, timeout=30)
    assert st.exit_code.value == 0
    for _ in range(5):  # ~1 KiB/s is as slow as it gets: one message per second
        time.sleep(1)
        got += len(next(it).stdout)
    grown = rund.rss_kib() - base
    assert grown < 16 * 1024, "daemon RSS grew by %d KiB" % grown
    it.cancel()


@pytest.mark.slow
def test_cancelling_readers_release_everything(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "head -c 20000000 /dev/zero; sleep 100")
    s.Check(pb.HealthCheckRequest(), timeout=5)
    fds0 = rund.fd_count()
    its = []
    for _ in range(100):
        it = s.Log(pb.JobIdentifier(ulid=jid), timeout=60)
        next(it)
        its.append(it)
    # (A reader holds a descriptor only while it reads; parked ones hold
    # none: test_logs.py::test_parked_readers_hold_no_descriptor.)
    for it in its:
        it.cancel()
    assert wait_for(lambda: rund.fd_count() <= fds0, 10), (rund.fd_count(), fds0)
    s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)


def test_runc_log_byte_exact(rund, pb, job_dir):
    data = bytes(range(256)) * 64 + b"\xff\xfe\x00invalid utf-8 \xc3\x28\n"
    src = job_dir / "bin.dat"
    src.write_bytes(data)
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", 'cat "$1"; printf "e\\0rr\\377" >&2', "sh", str(src))
    wait_end(s, pb, jid)
    for cmd in ("log", "logs"):
        r = runc(rund, cmd, jid)
        assert r.returncode == 0, r.stderr
        assert r.stdout == data
        assert r.stderr == b"e\0rr\xff"


def test_runc_log_ctrl_c(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "echo started; sleep 100")
    p = subprocess.Popen([RUNC, "log", "-addr", "localhost:%d" % rund.port,
                          "-ca", os.path.join(TLS, "ca.pem"),
                          "-cert", os.path.join(TLS, "client.pem"),
                          "-key", os.path.join(TLS, "client-key.pem"), jid],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"started\n"
    t0 = time.time()
    p.send_signal(signal.SIGINT)
    p.wait(5)
    assert p.returncode == 130
    assert time.time() - t0 < 2
    s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)
