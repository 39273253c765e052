"""Logs that resume and log windows (issue 12), lost output made visible
(issue 11): ReadLog offsets, tail, no_follow and timestamps; runc log across
daemon restarts; the cap keeping the newest output; live log_bytes; version-1
logs; a full state disk."""

import datetime
import os
import signal
import struct
import subprocess
import tempfile
import time

import grpc
import pytest

from conftest import RUNC, TLS, Rund, channel, runc, stub, wait_for
from test_jobs import start, wait_end


def read(s, pb, timeout=60, **req):
    """Messages of one ReadLog call as (offset, data, message) tuples."""
    out = []
    for m in s.ReadLog(pb.LogRequest(**req), timeout=timeout):
        out.append((m.offset, m.stdout + m.stderr, m))
    return out


def joined(msgs):
    """Data of messages, checking that offsets are contiguous."""
    data = bytearray()
    nxt = None
    for off, d, m in msgs:
        if m.lost_bytes:
            nxt = m.offset
            continue
        if nxt is not None:
            assert off == nxt, (off, nxt)
        data += d
        nxt = off + len(d)
    return bytes(data)


def lines(n, tag="line"):
    return "".join("%s %d\n" % (tag, i) for i in range(n)).encode()


def runc_args(r, *args):
    return [RUNC, args[0], "-addr", "localhost:%d" % r.port,
            "-ca", os.path.join(TLS, "ca.pem"),
            "-cert", os.path.join(TLS, "client.pem"),
            "-key", os.path.join(TLS, "client-key.pem")] + list(args[1:])


def test_offset_tail_follow_false_timestamps(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", 'i=0; while [ $i -lt 100 ]; do echo "line $i"; '
                'i=$((i+1)); done; echo err >&2; sleep 100')
    text = lines(100) + b"err\n"
    assert wait_for(lambda: s.Status(pb.JobIdentifier(ulid=jid)).log_bytes == len(text), 10)
    # log_bytes is live while the job runs
    st = s.Status(pb.JobIdentifier(ulid=jid))
    assert st.state == pb.JobStatus.RUNNING and st.log_end == len(text)

    # no_follow ends at the current end although the job still runs
    t0 = time.time()
    msgs = read(s, pb, ulid=jid, no_follow=True, timeout=10)
    assert joined(msgs) == text
    assert msgs[0][0] == 0
    # every offset from the middle, exactly
    for off in (1, 7, 500, len(text) - 1, len(text)):
        assert joined(read(s, pb, ulid=jid, offset=off, no_follow=True)) == text[off:]
    # tail: the last N lines (stderr's line counts too)
    want = (lines(100).split(b"\n")[-4:-1])
    got = joined(read(s, pb, ulid=jid, tail_lines={"value": 4}, no_follow=True))
    assert got == b"\n".join(want) + b"\nerr\n"
    assert joined(read(s, pb, ulid=jid, tail_lines={"value": 0}, no_follow=True)) == b""
    assert joined(read(s, pb, ulid=jid, tail_lines={"value": 10 ** 6}, no_follow=True)) == text
    with pytest.raises(grpc.RpcError) as e:
        read(s, pb, ulid=jid, tail_lines={"value": 2}, offset=3)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # timestamps: present only when asked for, within the job's run
    msgs = read(s, pb, ulid=jid, no_follow=True, timestamps=True)
    start_s = st.start_time.seconds + st.start_time.nanos / 1e9
    for _, _, m in msgs:
        assert m.HasField("time")
        t = m.time.seconds + m.time.nanos / 1e9
        assert start_s - 1 <= t <= time.time() + 1
    assert not any(m.HasField("time") for _, _, m in read(s, pb, ulid=jid, no_follow=True))
    # the original Log carries offsets too
    it = s.Log(pb.JobIdentifier(ulid=jid), timeout=10)
    first = next(it)
    assert first.offset == 0 and first.stdout.startswith(b"line 0\n")
    it.cancel()

    # the same through runc
    r = runc(rund, "log", "-follow=false", jid)
    assert r.returncode == 0 and r.stdout == lines(100) and r.stderr == b"err\n"
    r = runc(rund, "log", "-follow=false", "-offset", "7", jid)
    assert r.stdout == lines(100)[7:]
    r = runc(rund, "log", "-follow=false", "-tail", "2", jid)
    assert r.stdout == b"line 99\n" and r.stderr == b"err\n"
    r = runc(rund, "log", "-follow=false", "-timestamps", jid)
    assert r.returncode == 0
    out = r.stdout.decode().splitlines()
    assert len(out) == 100
    for i, ln in enumerate(out):
        stamp, _, rest = ln.partition(" ")
        assert rest == "line %d" % i
        t = datetime.datetime.strptime(stamp[:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ")
        assert abs(t.replace(tzinfo=datetime.timezone.utc).timestamp() - start_s) < 60
    assert runc(rund, "log", "-offset", "1", "-tail", "1", jid).returncode == 2
    assert time.time() - t0 < 60
    s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_runc_log_survives_restart(rund_factory, pb, sig):
    r = rund_factory("-drain", "300ms")
    s = stub(channel(r))
    n = 60
    jid = start(s, pb, "sh", "-c", 'i=0; while [ $i -lt %d ]; do echo "tick $i"; '
                'i=$((i+1)); sleep 0.05; done; printf tail' % n)
    p = subprocess.Popen(runc_args(r, "log", jid), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    assert p.stdout.readline() == b"tick 0\n"
    # a grpcio reader, resumed by offset by hand
    got = bytearray()
    it = s.ReadLog(pb.LogRequest(ulid=jid), timeout=60)
    for m in it:
        got += m.stdout
        if len(got) > 30:
            break
    it.cancel()
    # a reader still open when the daemon goes is told to retry
    held = s.ReadLog(pb.LogRequest(ulid=jid, offset=len(got)), timeout=60)
    assert next(held).offset == len(got)
    r.restart(sig=sig)
    with pytest.raises(grpc.RpcError) as e:
        for _ in held:
            pass
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
    if sig == signal.SIGTERM:
        assert "read again" in e.value.details()
    time.sleep(0.3)
    s2 = stub(channel(r))
    for m in s2.ReadLog(pb.LogRequest(ulid=jid, offset=len(got)), timeout=60):
        assert m.offset == len(got)
        got += m.stdout
    out, err = p.communicate(timeout=60)
    want = lines(n, "tick") + b"tail"
    assert p.returncode == 0, err
    assert b"tick 0\n" + out == want
    assert bytes(got) == want
    st = wait_end(s2, pb, jid)
    assert st.log_end == len(want) and st.log_bytes == len(want) and st.log_lost == 0


def test_cap_keeps_tail_of_100mb_job(rund_factory, pb):
    r = rund_factory("-max_log_bytes", "4M")
    s = stub(channel(r))
    total = 100 * 1000 * 1000
    jid = start(s, pb, "sh", "-c", "head -c %d /dev/zero | tr '\\0' x; printf 'the end\\n'"
                % (total - 8))
    st = wait_end(s, pb, jid, timeout=120)
    assert st.exit_code.value == 0
    assert st.log_truncated and st.log_end == total and st.log_lost == 0
    assert 3 << 20 < st.log_bytes <= 4 << 20
    assert st.log_first == total - st.log_bytes
    msgs = read(s, pb, ulid=jid)
    gap = msgs[0][2]
    assert gap.lost_bytes == st.log_first and gap.offset == st.log_first
    assert gap.gap_reason == pb.JobLog.DROPPED and not gap.stdout
    data = joined(msgs)
    assert len(data) == st.log_bytes
    assert data.endswith(b"x" * 1000 + b"the end\n") and data.count(b"x") == len(data) - 8
    # an offset inside the kept range works, absolute
    assert joined(read(s, pb, ulid=jid, offset=total - 4)) == b"end\n"
    # runc says what was dropped, and prints the tail
    rr = runc(r, "log", jid)
    assert rr.returncode == 0
    assert rr.stdout == data
    assert (b"output bytes 0..%d" % st.log_first) in rr.stderr and b"dropped" in rr.stderr
    # one long line: its start was dropped, the tail starts at the first kept byte
    assert runc(r, "log", "-tail", "1", jid).stdout == data


def test_version1_log_still_readable(rund, pb):
    """A job directory written before segments (log file "log", status
    without log_end/log_lost/log_first) is served as before."""
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "echo new")
    wait_end(s, pb, jid)
    rund.stop()
    d = os.path.join(rund.state_dir, "jobs", jid)
    for f in os.listdir(d):
        if f.startswith("log"):
            os.unlink(os.path.join(d, f))

    def rec(t, data):
        return struct.pack("<BI", t, len(data)) + data
    with open(os.path.join(d, "log"), "wb") as f:
        f.write(rec(1, b"old out\n") + rec(2, b"old err\n") + rec(1, b"more\n"))
    with open(os.path.join(d, "status")) as f:
        st = [ln for ln in f.read().splitlines(True)
              if not ln.startswith(("log_end", "log_lost", "log_first", "log_bytes"))]
    assert st[-1] == "end\n"
    with open(os.path.join(d, "status"), "w") as f:
        f.write("".join(st[:-1]) + "log_bytes 21\nend\n")
    rund.start()
    s = stub(channel(rund))
    msgs = read(s, pb, ulid=jid)
    assert [(o, d) for o, d, _ in msgs] == [(0, b"old out\n"), (8, b"old err\n"), (16, b"more\n")]
    assert joined(read(s, pb, ulid=jid, offset=10)) == b"d err\nmore\n"
    assert joined(read(s, pb, ulid=jid, tail_lines={"value": 1})) == b"more\n"
    st = s.Status(pb.JobIdentifier(ulid=jid))
    assert st.log_bytes == 21 and st.log_end == 21 and st.log_lost == 0
    rr = runc(rund, "log", jid)
    assert rr.stdout == b"old out\nmore\n" and rr.stderr == b"old err\n"


@pytest.fixture
def tiny_state(tmp_path):
    """A daemon whose state directory is a 2 MiB tmpfs."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    d = tempfile.mkdtemp(prefix="rund-", dir=str(tmp_path))
    state = os.path.join(d, "state")
    os.mkdir(state)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", state],
                   check=True)
    r = None
    try:
        r = Rund(d, ["-max_log_bytes", "0", "-min_free_space", "0"])
        yield r
    finally:
        if r:
            r.cleanup()
        subprocess.run(["umount", state], check=False)


def test_full_disk_loss_is_visible(tiny_state, pb):
    """The state disk fills while a job writes: the bytes that could not be
    stored are reported to readers (where and how many) and in the final
    status, and output written after space came back is all there."""
    r = tiny_state
    s = stub(channel(r))
    sv = os.statvfs(r.state_dir)
    filler = os.path.join(r.state_dir, "filler")
    with open(filler, "wb") as f:
        f.write(b"f" * max(0, sv.f_bavail * sv.f_frsize - (400 << 10)))
    big = 3 * 1000 * 1000
    jid = start(s, pb, "sh", "-c", "head -c %d /dev/zero | tr '\\0' y; sleep 3; "
                "printf 'last words\\n'" % big)
    total = big + 11
    assert wait_for(lambda: s.Status(pb.JobIdentifier(ulid=jid)).log_end == big, 30)
    st = s.Status(pb.JobIdentifier(ulid=jid))
    assert st.log_lost > 0 and st.log_truncated  # live, while it runs
    os.unlink(filler)
    st = wait_end(s, pb, jid, timeout=60)
    assert st.state == pb.JobStatus.EXITED and st.exit_code.value == 0
    assert st.log_end == total and st.log_lost > 0 and st.log_truncated
    assert st.log_bytes + st.log_lost == total
    msgs = read(s, pb, ulid=jid)
    gaps = [m for _, _, m in msgs if m.lost_bytes]
    assert gaps and all(g.gap_reason == pb.JobLog.UNSTORED for g in gaps)
    assert sum(g.lost_bytes for g in gaps) == st.log_lost
    assert gaps[0].truncated_at == gaps[0].offset - gaps[0].lost_bytes
    data = joined(msgs)
    assert len(data) == st.log_bytes
    assert data.endswith(b"y" * 100 + b"last words\n") or data == b"last words\n"
    assert msgs[-1][0] == total - 11 and msgs[-1][1] == b"last words\n"
    rr = runc(r, "log", jid)
    assert rr.returncode == 0
    assert rr.stdout == data
    assert b"were lost: the server could not store them" in rr.stderr


def test_parked_readers_hold_no_descriptor(rund, pb):
    """Issue 11: a Log reader waiting for output holds no file descriptor
    (it reopens its segment when woken), so readers cannot exhaust them."""
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "echo ready; sleep 100")
    assert wait_for(lambda: s.Status(pb.JobIdentifier(ulid=jid)).log_bytes == 6, 10)
    s.Status(pb.JobIdentifier(ulid=jid))
    fds0 = rund.fd_count()
    its = []
    for _ in range(80):  # below the connection's concurrent-stream limit
        it = s.Log(pb.JobIdentifier(ulid=jid), timeout=60)
        assert next(it).stdout == b"ready\n"
        its.append(it)
    time.sleep(0.2)
    grew = rund.fd_count() - fds0
    assert grew < 10, grew
    s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)
    for it in its:
        assert list(it) == []
