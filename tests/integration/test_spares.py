"""Spare supervisors that prepare their job's sandbox before the Start
(src/sandbox.h, src/suppool.h, src/forkserver.h): a job never sees a host
older than itself, a spare whose preparation is gone is replaced, the fork
server's death costs nothing, nothing outlives a job, and the preparing runs
idle while the job does not."""
import os
import re
import signal
import subprocess

from conftest import channel, children_of, stub, wait_for
from test_isolation import run_job, start, wait_end

SCHED_OTHER, SCHED_IDLE = 0, 5


def stat_field(pid, n):
    """Field n (1-based, proc(5)) of /proc/pid/stat."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    # The fields after the command's closing parenthesis start at 3.
    return int(stat.rsplit(")", 1)[1].split()[n - 3])


def sched_policy(pid):
    return stat_field(pid, 41)


def inits_of(supervisors):
    """The rund-init children of the given supervisor pids."""
    found = []
    for sup in supervisors:
        for pid in children_of(sup):
            try:
                with open("/proc/%d/comm" % pid) as f:
                    if f.read().strip() == "rund-init":
                        found.append(pid)
            except OSError:
                pass
    return found


def ready_inits(rund):
    """Waits until both spares have prepared their job's sandbox (their
    inits, ready, lower their priority); returns the inits."""
    def ready():
        inits = inits_of(rund.children(b"-fifo"))
        return len(inits) == 2 and all(stat_field(p, 19) == 19 for p in inits)
    assert wait_for(ready, 10)
    return inits_of(rund.children(b"-fifo"))


def test_job_sees_a_mount_made_after_its_spare(rund, pb, job_dir):
    s = stub(channel(rund))
    ready_inits(rund)
    mnt = os.path.join(job_dir, "late")
    os.mkdir(mnt)
    subprocess.check_call(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "rundtest", mnt])
    try:
        with open(os.path.join(mnt, "marker"), "w") as f:
            f.write("mounted-later\n")
        os.chmod(os.path.join(mnt, "marker"), 0o644)
        # Both spares were prepared before the mount: the first two jobs
        # come from them.
        for _ in range(2):
            st, out, err = run_job(s, pb, 'cat "$1"/marker', mnt)
            assert st.exit_code.value == 0, err
            assert out == "mounted-later\n", (out, err)
    finally:
        subprocess.call(["umount", mnt])


def test_job_sees_uts_names_set_after_its_spare(rund_factory, pb):
    # The daemon in a UTS namespace of its own, so the test renames only it.
    rund = rund_factory(prefix=["unshare", "--uts"])
    s = stub(channel(rund))
    ready_inits(rund)
    subprocess.check_call(["nsenter", "-t", str(rund.pid), "-u", "hostname", "rund-renamed"])
    for _ in range(2):
        st, out, err = run_job(s, pb, "cat /proc/sys/kernel/hostname")
        assert st.exit_code.value == 0, err
        assert out == "rund-renamed\n", (out, err)
    # The NIS domain name is the UTS namespace's other name.
    ready_inits(rund)
    with open("/proc/%d/root/proc/sys/kernel/domainname" % rund.pid) as f:
        assert f.read() != "rund-domain\n"
    subprocess.check_call(["nsenter", "-t", str(rund.pid), "-u", "sh", "-c",
                           "echo rund-domain > /proc/sys/kernel/domainname"])
    for _ in range(2):
        st, out, err = run_job(s, pb, "cat /proc/sys/kernel/domainname")
        assert st.exit_code.value == 0, err
        assert out == "rund-domain\n", (out, err)


def test_job_sees_no_state_path_in_its_init(rund, pb):
    s = stub(channel(rund))
    ready_inits(rund)
    st, out, err = run_job(s, pb, "tr '\\0' ' ' < /proc/1/cmdline")
    assert st.exit_code.value == 0, err
    # The supervisor's title: its FIFO relative to the state directory
    # while it waits, its job's id once it runs it (an init sharing its
    # memory shows the latter).
    assert re.fullmatch(r"rund execute (-fifo run/\d+|[0-9A-Z]{26}) ", out), out
    assert rund.state_dir not in out, out


def test_spare_whose_init_died_still_starts(rund, pb):
    s = stub(channel(rund))
    for pid in ready_inits(rund):
        os.kill(pid, signal.SIGKILL)
    for _ in range(3):
        st, out, err = run_job(s, pb, 'echo "$(id -u) $$ $(cat /proc/1/comm)"')
        assert st.exit_code.value == 0, err
        uid, pid, init = out.split()
        assert int(uid) >= 1900000000 and pid == "2" and init == "rund-init", out


def test_fork_server_death_costs_nothing(rund, pb):
    s = stub(channel(rund))
    servers = rund.children(b"-spares")
    assert len(servers) == 1
    os.kill(servers[0], signal.SIGKILL)
    for i in range(4):
        st, out, err = run_job(s, pb, "echo run %d" % i)
        assert st.exit_code.value == 0 and out == "run %d\n" % i, (out, err)
    # Supervisors came from somewhere all along; a new fork server runs.
    assert wait_for(lambda: len(rund.children(b"-spares")) == 1
                    and rund.children(b"-spares") != servers)


def test_nothing_outlives_a_job(rund, pb):
    """The init goes with its job: when the job ends, and when it is
    stopped while children of its own still run."""
    s = stub(channel(rund))
    ended = start(s, pb, "sh", "-c", "sleep 0.2")
    sup = rund_supervisor(rund, ended)
    inits = inits_of([sup])
    assert len(inits) == 1
    wait_end(s, pb, ended)
    assert wait_for(lambda: not os.path.exists("/proc/%d" % inits[0]), 10)

    stopped = start(s, pb, "sh", "-c", "sleep 300 & sleep 300 & wait")
    sup = rund_supervisor(rund, stopped)
    inits = inits_of([sup])
    assert len(inits) == 1
    s.Stop(pb.JobIdentifier(ulid=stopped), timeout=10)
    assert wait_for(lambda: not os.path.exists("/proc/%d" % inits[0]), 10)
    assert wait_for(lambda: not os.path.exists("/proc/%d" % sup), 10)


def rund_supervisor(rund, jid):
    path = os.path.join(rund.state_dir, "jobs", jid, "started")
    assert wait_for(lambda: os.path.exists(path))
    with open(path) as f:
        fields = dict(line.split(" ", 1) for line in f.read().splitlines() if " " in line)
    return int(fields["supervisor_pid"])


def test_spares_idle_jobs_not(rund, pb):
    s = stub(channel(rund))
    # The inits, their namespaces made, only wait: the normal class (not
    # to starve orphans unreaped) at the lowest priority.
    inits = ready_inits(rund)
    assert [sched_policy(p) for p in inits] == [SCHED_OTHER, SCHED_OTHER]
    spares = rund.children(b"-fifo")
    assert [sched_policy(p) for p in spares] == [SCHED_IDLE, SCHED_IDLE]
    jid = start(s, pb, "sh", "-c", "sleep 300")
    try:
        with open(os.path.join(rund.state_dir, "jobs", jid, "started")) as f:
            fields = dict(line.split(" ", 1) for line in f.read().splitlines() if " " in line)
        sup, job = int(fields["supervisor_pid"]), int(fields["pid"])
        assert sched_policy(sup) == SCHED_OTHER
        assert sched_policy(job) == SCHED_OTHER
    finally:
        s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)
