"""Hostile callers of Start and a full state disk (issue 11).

Start is all or nothing: a caller that goes away before it could learn the
job's id (RST_STREAM, a deadline) leaves no job behind, neither a process,
a cgroup nor a job directory. A client that fills the state disk costs no
other client its job's exit status, and Start is refused below the
free-space floor."""

import os
import struct
import subprocess
import tempfile

import grpc
import pytest

from conftest import channel, stub, wait_for
from test_transport import (DATA, END_HEADERS, END_STREAM, HEADERS, RST_STREAM, RawH2, frame,
                            grpc_msg, grpc_status_literal, request_headers)

CANCEL = 8  # HTTP/2 error code of RST_STREAM


def job_dirs(rund):
    return sorted(os.listdir(os.path.join(rund.state_dir, "jobs")))


def job_groups(rund):
    d = os.path.join(rund.cgroup, "jobs")
    if not os.path.isdir(d):
        return []
    return sorted(e for e in os.listdir(d) if os.path.isdir(os.path.join(d, e)))


def nothing_left(rund, keep=()):
    """No job directory and no job cgroup other than those in keep."""
    keep = set(keep)
    return not (set(job_dirs(rund)) - keep) and not (set(job_groups(rund)) - keep)


def start_body(pb, name, *args):
    return grpc_msg(pb.JobStartRequest(name=name, args=list(args)).SerializeToString())


# ---- Start whose caller goes away --------------------------------------


def test_start_reset_by_client_leaves_no_job(rund, pb):
    """Start, then RST_STREAM at once: the job may have been exec'd, but
    nobody learned its id, so it is killed and its directory, cgroup and uid
    are released. Before, every such job ran on (sleep 1000) for ever."""
    n = 20
    c = RawH2(rund)
    body = start_body(pb, "sleep", "1000")
    for i in range(n):
        sid = 2 * i + 1
        c.send(frame(HEADERS, END_HEADERS, sid, request_headers("/rund.JobController/Start")) +
               frame(DATA, END_STREAM, sid, body) +
               frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
    # A Start on the same connection after the resets is still served: the
    # resets reached the server before it (frames are handled in order).
    sid = 2 * n + 1
    c.send(frame(HEADERS, END_HEADERS, sid, request_headers("/rund.JobController/Start")) +
           frame(DATA, END_STREAM, sid, body))
    frames = c.until_stream_end(sid)
    assert grpc_status_literal(frames[-1][3], 0), frames
    reply = b"".join(f[3] for f in frames if f[0] == DATA)
    kept = pb.JobIdentifier.FromString(reply[5:]).ulid
    c.close()

    assert wait_for(lambda: nothing_left(rund, keep=[kept]), timeout=30), \
        (job_dirs(rund), job_groups(rund), rund.log()[-2000:])
    # The job whose id was delivered is untouched.
    s = stub(channel(rund))
    st = s.Status(pb.JobIdentifier(ulid=kept), timeout=10)
    assert st.state == pb.JobStatus.RUNNING
    s.Stop(pb.JobIdentifier(ulid=kept), timeout=10)
    # Each reset Start that got as far as a job says so in the daemon's log.
    assert rund.log().count("went away before it learned the id") <= n


def test_start_with_expired_deadline_is_refused(rund, pb):
    """grpc-timeout 1n (or 0n) has passed by the time the request is read:
    the server answers DEADLINE_EXCEEDED without starting anything."""
    c = RawH2(rund)
    body = start_body(pb, "sleep", "1000")
    for i, timeout in enumerate(("1n", "0n")):
        sid = 2 * i + 1
        c.send(frame(HEADERS, END_HEADERS, sid,
                     request_headers("/rund.JobController/Start", [("grpc-timeout", timeout)])) +
               frame(DATA, END_STREAM, sid, body))
        frames = c.until_stream_end(sid)
        assert grpc_status_literal(frames[-1][3], 4), (timeout, frames)
    c.close()
    assert job_dirs(rund) == [] and job_groups(rund) == []
    assert "went away" not in rund.log()


def test_start_deadline_during_start_leaves_no_unknown_job(rund, pb):
    """Server-side deadlines of 1 us to a few ms expire before, during or
    after the start of the job (the client never gives up on its own, so
    the server alone decides). Exactly the jobs whose id was answered are
    left."""
    c = RawH2(rund)
    body = start_body(pb, "sleep", "1000")
    timeouts = ["1u", "100u", "1m", "2m", "3m", "5m", "8m", "13m"] * 4
    for i, timeout in enumerate(timeouts):
        sid = 2 * i + 1
        c.send(frame(HEADERS, END_HEADERS, sid,
                     request_headers("/rund.JobController/Start", [("grpc-timeout", timeout)])) +
               frame(DATA, END_STREAM, sid, body))
    streams, open_ = {}, set(2 * i + 1 for i in range(len(timeouts)))
    while open_:
        f = c.frame()
        if f[2] in open_:
            streams.setdefault(f[2], []).append(f)
            if f[0] == RST_STREAM or (f[0] in (HEADERS, DATA) and f[1] & END_STREAM):
                open_.discard(f[2])
    got, expired = [], 0
    for frames in streams.values():
        if grpc_status_literal(frames[-1][3], 0):
            reply = b"".join(f[3] for f in frames if f[0] == DATA)
            got.append(pb.JobIdentifier.FromString(reply[5:]).ulid)
        else:
            assert grpc_status_literal(frames[-1][3], 4), frames
            expired += 1
    c.close()
    s = stub(channel(rund))
    try:
        assert expired > 0
        assert wait_for(lambda: set(job_dirs(rund)) == set(got) and
                        set(job_groups(rund)) == set(got), timeout=30), \
            (got, job_dirs(rund), job_groups(rund))
    finally:
        for jid in got:
            s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)


# ---- a full state disk ---------------------------------------------------


@pytest.fixture
def small_state_disk():
    """A directory under /tmp with an 8 MiB tmpfs mounted on its state/,
    unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    top = tempfile.mkdtemp(prefix="rund-full-", dir="/tmp")
    state = os.path.join(top, "state")
    os.mkdir(state)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", state],
                   check=True)
    try:
        yield top
    finally:
        if subprocess.run(["umount", state]).returncode != 0:
            subprocess.run(["umount", "-l", state])
        subprocess.run(["rm", "-rf", top])


def free_bytes(path):
    sv = os.statvfs(path)
    return sv.f_bavail * sv.f_frsize


def test_full_state_disk_keeps_other_jobs_status(small_state_disk, job_dir, pb):
    """One job fills the state disk with output; another, which wrote a line
    before, still ends EXITED with its exit code (its status space was
    reserved before it started; before, it ended LOST). The job that filled
    the disk gets its status too, and Start is refused below the floor."""
    from conftest import Rund
    rund = Rund(small_state_disk, ["-max_log_bytes", "0", "-min_free_space", "2M"])
    try:
        s = stub(channel(rund))
        go = job_dir / "go"
        small = s.Start(pb.JobStartRequest(
            name="sh", args=["-c", "echo small; while [ ! -e %s ]; do sleep 0.05; done; exit 7"
                             % go]), timeout=10).ulid
        filler = s.Start(pb.JobStartRequest(
            name="sh", args=["-c", "head -c 33554432 /dev/zero; exit 3"]), timeout=10).ulid
        fid = pb.JobIdentifier(ulid=filler)
        assert wait_for(lambda: s.Status(fid, timeout=10).state != pb.JobStatus.RUNNING,
                        timeout=60)
        assert free_bytes(rund.state_dir) < 64 * 1024, free_bytes(rund.state_dir)
        st = s.Status(fid, timeout=10)
        assert st.state == pb.JobStatus.EXITED and st.exit_code.value == 3, st

        # Below the floor: refused, naming the floor and the free space.
        with pytest.raises(grpc.RpcError) as e:
            s.Start(pb.JobStartRequest(name="true"), timeout=10)
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "floor of 2097152 bytes" in e.value.details(), e.value.details()
        assert "bytes free" in e.value.details(), e.value.details()
        assert "refusing Start" in rund.log()

        # The other client's job ends on the full disk with its exit code.
        go.touch()
        sid = pb.JobIdentifier(ulid=small)
        assert wait_for(lambda: s.Status(sid, timeout=10).state != pb.JobStatus.RUNNING,
                        timeout=30)
        st = s.Status(sid, timeout=10)
        assert st.state == pb.JobStatus.EXITED, (st, rund.log()[-2000:])
        assert st.HasField("exit_code") and st.exit_code.value == 7, st
        out = b"".join(m.stdout for m in s.Log(sid, timeout=10))
        assert out == b"small\n"

        # Space freed (the filler removed): Start is accepted again.
        for jid in (filler,):
            d = os.path.join(rund.state_dir, "jobs", jid)
            for f in os.listdir(d):
                if f.startswith("log"):  # its output segments, log.1 ...
                    os.unlink(os.path.join(d, f))
        again = s.Start(pb.JobStartRequest(name="true"), timeout=10).ulid
        assert again
        assert "accepting Start" in rund.log()
    finally:
        rund.cleanup()
