"""Jobs, output and ownership survive a daemon crash, restart or upgrade."""

import hashlib
import os
import signal
import time

import grpc
import pytest

from conftest import channel, stub, wait_for
from test_jobs import start, wait_end


def expected_lines(n, tag):
    return "".join("%s line %d\n" % (tag, i) for i in range(n)).encode()


def printer(n, tag, delay="0.1", code=0):
    return ["sh", "-c", 'i=0; while [ $i -lt %d ]; do echo "%s line $i"; i=$((i+1)); '
            'sleep %s; done; exit %d' % (n, tag, delay, code)]


def collect(s, pb, jid):
    out = bytearray()
    for m in s.Log(pb.JobIdentifier(ulid=jid), timeout=60):
        out += m.stdout
    return bytes(out)


def supervisors_of(rund):
    """PIDs of `rund execute` processes in this daemon's cgroup, with their
    command line (`rund execute -fifo PATH` while spare, `rund execute
    <ULID>` once a job is theirs)."""
    found = []
    with open(os.path.join(rund.cgroup, "daemon", "cgroup.procs")) as f:
        pids = f.read().split()
    for p in pids:
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().rstrip(b"\0").replace(b" ", b"\0").split(b"\0")
        except OSError:
            continue
        if len(argv) > 2 and argv[1] == b"execute":
            found.append((int(p), argv[-1].decode()))
    return found


def supervisor_of(rund, jid):
    """The supervisor pid a job's `started` file records."""
    with open(os.path.join(rund.state_dir, "jobs", jid, "started")) as f:
        for line in f:
            key, _, value = line.partition(" ")
            if key == "supervisor_pid":
                return int(value)
    raise AssertionError("no supervisor_pid in started of " + jid)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_twenty_jobs_survive_restart(rund, pb, sig):
    s = stub(channel(rund))
    jobs = {}
    for i in range(6):   # print steadily through the downtime
        jobs[start(s, pb, *printer(30, "p%d" % i))] = ("print", 30, "p%d" % i, 0)
    for i in range(7):   # end during the downtime with various exit codes
        jobs[start(s, pb, *printer(5, "e%d" % i, delay="0.2", code=i + 1))] = ("end", 5, "e%d" % i, i + 1)
    for i in range(7):   # run long
        jobs[start(s, pb, "sh", "-c", "echo long%d; exec sleep 1000" % i)] = ("long", 0, "long%d" % i, None)
    assert len(jobs) == 20
    time.sleep(0.3)
    rund.stop(sig)
    time.sleep(2)
    rund.start()

    s = stub(channel(rund))
    stranger = stub(channel(rund, "client3"))
    for jid, (kind, n, tag, code) in jobs.items():
        ident = pb.JobIdentifier(ulid=jid)
        with pytest.raises(grpc.RpcError) as e:
            stranger.Status(ident, timeout=5)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        if kind == "long":
            st = s.Status(ident, timeout=5)
            assert st.state == pb.JobStatus.RUNNING, jid
            st = s.Stop(ident, timeout=10)
            assert st.stopped and st.killed
            assert collect(s, pb, jid) == ("%s\n" % tag).encode()
        else:
            out = collect(s, pb, jid)   # follows across the restart until the end
            assert hashlib.sha256(out).digest() == hashlib.sha256(expected_lines(n, tag)).digest(), jid
            st = wait_end(s, pb, jid, timeout=30)
            assert st.state == pb.JobStatus.EXITED
            assert st.exit_code.value == code, (jid, tag)


def test_killed_supervisor_marks_only_its_job_lost(rund, pb):
    s = stub(channel(rund))
    victim = start(s, pb, "sh", "-c", "echo before; exec sleep 1000")
    other = start(s, pb, "sleep", "1000")
    sup = supervisor_of(rund, victim)
    assert sup in [p for p, _ in supervisors_of(rund)]
    os.kill(sup, signal.SIGKILL)
    st = wait_for(lambda: (lambda x: x if x.state == pb.JobStatus.LOST else None)(
        s.Status(pb.JobIdentifier(ulid=victim), timeout=5)), 10)
    assert st and st.state == pb.JobStatus.LOST and st.killed
    assert collect(s, pb, victim) == b"before\n"
    assert wait_for(lambda: not os.path.exists(os.path.join(rund.cgroup, "jobs", victim)), 5)
    assert s.Status(pb.JobIdentifier(ulid=other), timeout=5).state == pb.JobStatus.RUNNING
    # Still LOST after a restart: the state is derived from the files.
    rund.restart(sig=signal.SIGKILL)
    s = stub(channel(rund))
    assert s.Status(pb.JobIdentifier(ulid=victim), timeout=5).state == pb.JobStatus.LOST
    assert s.Stop(pb.JobIdentifier(ulid=other), timeout=10).stopped


def test_damaged_state_is_skipped(rund, pb):
    s = stub(channel(rund))
    good = start(s, pb, "sh", "-c", "echo intact")
    bad_spec = start(s, pb, "true")
    bad_status = start(s, pb, "true")
    for jid in (good, bad_spec, bad_status):
        wait_end(s, pb, jid)
    rund.stop(signal.SIGTERM)
    jobs = os.path.join(rund.state_dir, "jobs")
    with open(os.path.join(jobs, bad_spec, "spec"), "r+b") as f:
        f.truncate(10)
    with open(os.path.join(jobs, bad_status, "status"), "wb") as f:
        f.write(b"\x00garbage\xff")
    with open(os.path.join(jobs, "README"), "w") as f:
        f.write("not a job\n")
    os.mkdir(os.path.join(jobs, "01BX5ZZKBKACTAV9WEVGEMMVRZ"))
    rund.start()
    log = rund.log()
    assert bad_spec in log and "README" in log
    s = stub(channel(rund))
    assert s.Status(pb.JobIdentifier(ulid=good), timeout=5).exit_code.value == 0
    assert collect(s, pb, good) == b"intact\n"
    with pytest.raises(grpc.RpcError) as e:
        s.Status(pb.JobIdentifier(ulid=bad_spec), timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    # A corrupt status is reported, and the job is shown as lost rather than hidden.
    assert s.Status(pb.JobIdentifier(ulid=bad_status), timeout=5).state == pb.JobStatus.LOST


def _spares(rund):
    """Spare supervisors (not their jobs' inits, which share their command
    line, nor the fork server)."""
    def comm(p):
        with open("/proc/%d/comm" % p) as f:
            return f.read().strip()
    return [p for p, arg in supervisors_of(rund) if arg.startswith("run/") and comm(p) == "rund"]


def test_request_of_a_dead_spare_goes_to_a_fresh_supervisor(rund, pb):
    # The spare given a Start dies without reading it; the next spare could
    # be dying too (spares killed together), so the request goes to a
    # supervisor made for it, not to another spare. Here the other spares
    # are stopped: one given the request would never read it.
    s = stub(channel(rund))
    s.Check(pb.HealthCheckRequest(), timeout=5)
    spares = wait_for(lambda: len(_spares(rund)) >= 2 and _spares(rund), 10)
    assert spares, "the daemon keeps spare supervisors ready"
    for p in spares:
        os.kill(p, signal.SIGSTOP)
    try:
        fut = s.Start.future(pb.JobStartRequest(name="sh", args=["-c", "echo fine"]), timeout=15)
        # The spare taken is raised from the idle class when it is given
        # the request.
        taken = wait_for(lambda: [p for p in spares
                                  if os.sched_getscheduler(p) != os.SCHED_IDLE] or None, 10)
        assert taken and len(taken) == 1, taken
        os.kill(taken[0], signal.SIGKILL)
        jid = fut.result().ulid
        assert collect(s, pb, jid) == b"fine\n"
        assert wait_end(s, pb, jid).exit_code.value == 0
        assert "died before reading the request; handing it to another" in rund.log()
    finally:
        for p in spares:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_dead_spare_supervisors_do_not_fail_starts(rund, pb):
    s = stub(channel(rund))
    s.Check(pb.HealthCheckRequest(), timeout=5)
    spares = wait_for(lambda: [p for p, _ in supervisors_of(rund)] or None, 5)
    assert spares, "the daemon keeps spare supervisors ready"
    for p in spares:
        os.kill(p, signal.SIGKILL)
    # Immediately, before the daemon may have noticed: the Start still works.
    jid = start(s, pb, "sh", "-c", "echo fine")
    assert collect(s, pb, jid) == b"fine\n"
    assert wait_end(s, pb, jid).exit_code.value == 0
    assert "exited before it was given a job" in rund.log()
