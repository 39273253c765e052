"""A job's life from the supervisor's side: how execve fails, how a death
by signal is reported, what the job inherits, how fast its end is seen when
a grandchild keeps its output open, and when an ended job is forgotten."""

import os
import signal
import threading
import time

import grpc
import pytest

from conftest import channel, stub, wait_for
from test_jobs import job_cgroups, job_dirs, start, wait_end

MAX_ARG_STRLEN = 32 * 4096  # the kernel's bound on one argv string
REKILL_S = 2.0  # the supervisor kills the group again this long after the main exit


def collect(s, pb, jid, timeout=60):
    out = bytearray()
    for m in s.Log(pb.JobIdentifier(ulid=jid), timeout=timeout):
        out += m.stdout + m.stderr
    return bytes(out)


# ---- execve ------------------------------------------------------------------


def test_argument_too_big_for_execve_is_resource_exhausted(rund, pb):
    s = stub(channel(rund))
    # One argument above MAX_ARG_STRLEN: well inside the daemon's request
    # limit (1 MiB encoded), so execve itself refuses it with E2BIG.
    big = "x" * (MAX_ARG_STRLEN + 4096)
    with pytest.raises(grpc.RpcError) as e:
        start(s, pb, "true", big)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e.value.details()
    assert "exec" in e.value.details() and "true" in e.value.details()
    assert job_dirs(rund) == []
    assert job_cgroups(rund) == []
    # The same command with an argument just under the bound runs.
    jid = start(s, pb, "true", "x" * (MAX_ARG_STRLEN - 1024))
    assert wait_end(s, pb, jid).exit_code.value == 0


# ---- death by signal ----------------------------------------------------------


def core_file_name():
    """The file name a dump gets in the dumping process's directory, or
    None when core_pattern sends it elsewhere (a pipe, an absolute path)."""
    with open("/proc/sys/kernel/core_pattern") as f:
        pattern = f.read().strip()
    if pattern.startswith("|") or "/" in pattern or "%" in pattern:
        return None
    return pattern


@pytest.mark.parametrize("user", ["dynamic", "root"])
def test_core_dump_is_killed_by_signal_6(rund_factory, pb, job_dir, user):
    # A job's working directory is "/": the dump goes to a directory of
    # this test instead, which the test empties again. A confined job sees
    # the host's tree read-only, so its dump cannot be written there: the
    # file is checked for a root job, the status for both.
    rund = rund_factory("-job_user", user)
    cores = job_dir / "cores"
    cores.mkdir()
    os.chmod(cores, 0o1777)
    s = stub(channel(rund))
    try:
        jid = start(s, pb, "sh", "-c", 'cd "$1" || exit 99; ulimit -c unlimited; kill -ABRT $$',
                    "sh", str(cores))
        st = wait_end(s, pb, jid)
        dumped = sorted(os.listdir(cores))
    finally:
        for f in os.listdir(cores):
            os.unlink(cores / f)
    print("core_pattern %r, files written: %s" % (core_file_name(), dumped))
    assert st.state == pb.JobStatus.EXITED
    assert st.killed and not st.stopped
    assert st.signal == signal.SIGABRT
    assert not st.HasField("exit_code")
    # The dump really happened (CLD_DUMPED, not CLD_KILLED) where the
    # pattern is a plain file name, as on the development hosts and in the
    # kernel lane.
    name = core_file_name()
    if name is not None and user == "root":
        assert dumped and all(f.startswith(name) for f in dumped), dumped
    if user == "dynamic":
        assert dumped == [], dumped


# ---- what a job inherits --------------------------------------------------------


def status_masks(text):
    return {k: int(v, 16) for k, v in
            (line.split(":\t") for line in text.splitlines()
             if line.startswith(("SigBlk:", "SigIgn:")))}


def nofile_of(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no open-file limit for %d" % pid)


# glibc reserves real-time signals 32 and 33 for itself; its sigaction()
# refuses to touch them.
GLIBC_INTERNAL = (1 << 31) | (1 << 32)


def bit(sig):
    return 1 << (sig - 1)


@pytest.fixture
def rund_odd_signals(rund_factory):
    """A daemon started with SIGUSR1 blocked and SIGUSR2 ignored: both
    survive execve, so only rund's own resets keep them from a job. (Not
    SIGHUP: the daemon catches that one to reload its certificates.)"""
    saved_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    saved_usr2 = signal.signal(signal.SIGUSR2, signal.SIG_IGN)
    try:
        r = rund_factory()
    finally:
        signal.signal(signal.SIGUSR2, saved_usr2)
        signal.pthread_sigmask(signal.SIG_SETMASK, saved_mask)
    with open("/proc/%d/status" % r.pid) as f:
        daemon = status_masks(f.read())
    assert daemon["SigBlk"] & bit(signal.SIGUSR1), daemon
    assert daemon["SigIgn"] & bit(signal.SIGUSR2) and daemon["SigIgn"] & bit(signal.SIGPIPE)
    return r


def job_masks(r, pb):
    s = stub(channel(r))
    jid = start(s, pb, "cat", "/proc/self/status")
    return status_masks(collect(s, pb, jid).decode())


def test_job_starts_with_empty_mask_and_default_dispositions(rund_odd_signals, pb):
    job = job_masks(rund_odd_signals, pb)
    shown = {k: "%016x" % v for k, v in job.items()}
    assert job["SigBlk"] == 0, shown
    # SIGPIPE (ignored by the daemon and the supervisor), SIGUSR2 (ignored
    # by whoever started the daemon) and every other signal a program can
    # name are at their default.
    assert job["SigIgn"] == 0, shown


# glibc's posix_spawn sets its internal signals 32 and 33 to SIG_IGN in the
# supervisor, and glibc's sigaction() refuses to reset those two: the
# supervisor resets every disposition through the kernel (sys.h).
def test_job_starts_with_glibc_internal_signals_at_default(rund_odd_signals, pb):
    job = job_masks(rund_odd_signals, pb)
    assert job["SigIgn"] & GLIBC_INTERNAL == 0, "%016x" % job["SigIgn"]


def test_job_gets_the_ordinary_open_file_limit(rund, pb):
    # The daemon raises its own descriptor limit; the job gets the usual
    # soft limit back (the hard limit stays).
    d_soft, d_hard = nofile_of(rund.pid)
    if d_soft <= 1024:
        pytest.skip("the daemon's open-file limit (%d) is not above 1024 here" % d_soft)
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "ulimit -Sn; ulimit -Hn")
    soft, hard = collect(s, pb, jid).split()
    assert (int(soft), int(hard)) == (1024, d_hard), (soft, hard, d_soft, d_hard)


# ---- a grandchild holding stdout ---------------------------------------------------


def run_and_time(s, pb, *argv):
    """Starts a job; returns its output and the seconds from Start's answer
    to Log's end and to the first Status that is not RUNNING."""
    t0 = time.monotonic()
    jid = start(s, pb, *argv)
    got = {}

    def follow():
        got["out"] = collect(s, pb, jid, timeout=30)
        got["eof"] = time.monotonic() - t0

    reader = threading.Thread(target=follow)
    reader.start()
    st = wait_end(s, pb, jid, timeout=30)
    ended = time.monotonic() - t0
    reader.join(40)
    assert "eof" in got, "Log of %s did not end" % jid
    assert st.exit_code.value == 0
    return got["out"], got["eof"], ended


def test_grandchild_holding_stdout_ends_with_the_first_kill(rund, pb):
    s = stub(channel(rund))
    # What this machine needs for a job's round trip right now.
    _, base_eof, base_end = run_and_time(s, pb, "sh", "-c", "echo main-done")
    # The main process exits while a grandchild in its own session still
    # holds stdout. The supervisor kills the group when the main process
    # exits, and once more 2 s later: only the first kill makes the end
    # prompt. The best of three runs keeps a moment of load from deciding.
    runs = []
    for _ in range(3):
        out, eof, end = run_and_time(s, pb, "sh", "-c", "(setsid sleep 1000 &); echo main-done")
        assert out == b"main-done\n"
        runs.append((eof - base_eof, end - base_end))
        if max(runs[-1]) < REKILL_S / 2:
            break
    print("baseline: Log EOF %.3f s, end %.3f s; with a grandchild, extra: %s" %
          (base_eof, base_end, ", ".join("%.3f/%.3f s" % r for r in runs)))
    best = min(runs, key=max)
    assert best[0] < REKILL_S / 2, runs
    assert best[1] < REKILL_S / 2, runs
    assert wait_for(lambda: job_cgroups(rund) == [], 10)


# ---- retention -------------------------------------------------------------------


def removal_times(r, ids, timeout):
    """Polls the state directory; returns the wall time at which each job
    directory disappeared (None if it is still there after timeout)."""
    gone = {}
    deadline = time.time() + timeout
    while len(gone) < len(ids) and time.time() < deadline:
        present = set(job_dirs(r))
        now = time.time()
        for jid in ids:
            if jid not in present and jid not in gone:
                gone[jid] = now
        time.sleep(0.02)
    return {jid: gone.get(jid) for jid in ids}


def end_of(st):
    return st.end_time.ToNanoseconds() / 1e9


def test_retention_counts_from_recorded_end_after_restart(rund_factory, pb):
    retention = 4.0
    r = rund_factory("-retention", "4s")
    s = stub(channel(r))
    jid = start(s, pb, "true")
    end = end_of(wait_end(s, pb, jid))
    # Down for a while: the restarted daemon must not restart the clock.
    r.stop()
    time.sleep(2.5)
    r.start()
    ready = time.time()
    assert jid in job_dirs(r)
    gone = removal_times(r, [jid], 30)[jid]
    assert gone is not None, "job %s was never removed" % jid
    due = max(end + retention, ready)
    print("ended %.2f s before the restart; removed %.2f s after the end (due %.2f s)" %
          (ready - end, gone - end, due - end))
    assert gone >= end + retention - 0.1
    # From the restart it would be ready + 4 s, at least 2.5 s later.
    assert gone < due + 1.0, (gone - end, due - end)


def test_retention_out_of_order_due_times(rund_factory, pb):
    retention = 5.0
    r = rund_factory("-retention", "5s")
    s = stub(channel(r))
    ids = [start(s, pb, "sleep", "1000") for _ in range(2)]
    # A restarted daemon meets ended jobs in directory order. End them in
    # the reverse of that order, so that the first one it meets is due last
    # and the next one must pull the timer earlier.
    order = [d for d in job_dirs_in_readdir_order(r) if d in ids]
    assert sorted(order) == sorted(ids)
    last, first = order[0], order[1]
    s.Stop(pb.JobIdentifier(ulid=first), timeout=20)
    time.sleep(2.5)
    s.Stop(pb.JobIdentifier(ulid=last), timeout=20)
    ends = {j: end_of(s.Status(pb.JobIdentifier(ulid=j), timeout=5)) for j in ids}
    r.restart()
    ready = time.time()
    gone = removal_times(r, ids, 30)
    for j in ids:
        assert gone[j] is not None, "job %s was never removed" % j
    print("ends %.2f s apart; restart done %.2f s after the first end; removed %s" %
          (ends[last] - ends[first], ready - ends[first],
           ", ".join("%.2f s after its end" % (gone[j] - ends[j]) for j in (first, last))))
    for j in (first, last):
        due = max(ends[j] + retention, ready)
        assert gone[j] >= ends[j] + retention - 0.1, (j, gone[j] - ends[j])
        assert gone[j] < due + 1.0, (j, gone[j] - ends[j], due - ends[j])


def job_dirs_in_readdir_order(r):
    return os.listdir(os.path.join(r.state_dir, "jobs"))
