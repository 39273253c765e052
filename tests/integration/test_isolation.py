"""Isolation (DESIGN §10): every attack an ordinary client could make through
a job, each run as a job of its own. Every attack must fail, asserted on the
job's own exit status and output; the victims stay intact and the daemon keeps
serving. Also: what must keep working under isolation, uids, -job_network
none, -rootfs and -job_user root.

The attacks print "ATTACK-OK" only when the forbidden thing worked, so a
regression shows up in the output as well as in the exit status."""

import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import grpc
import pytest

import conftest
from conftest import TLS, channel, cgroup2_mount, runc, stub, wait_for

UID_FIRST = 1900000000


def start(s, pb, name, *args):
    return s.Start(pb.JobStartRequest(name=name, args=list(args)), timeout=10).ulid


def status(s, pb, jid):
    return s.Status(pb.JobIdentifier(ulid=jid), timeout=5)


def wait_end(s, pb, jid, timeout=20):
    def ended():
        st = status(s, pb, jid)
        return st if st.state != pb.JobStatus.RUNNING else None
    st = wait_for(ended, timeout)
    assert st is not None, "job %s did not end" % jid
    return st


def output(s, pb, jid):
    out, err = b"", b""
    for m in s.Log(pb.JobIdentifier(ulid=jid), timeout=30):
        out += m.stdout
        err += m.stderr
    return out.decode(errors="replace"), err.decode(errors="replace")


def run_job(s, pb, script, *args):
    """Runs `sh -c script` to its end: (status, stdout, stderr)."""
    jid = start(s, pb, "sh", "-c", script, "sh", *[str(a) for a in args])
    out, err = output(s, pb, jid)
    return wait_end(s, pb, jid), out, err


def attack(s, pb, script, *args):
    """An attack: the forbidden step is followed by `&& echo ATTACK-OK`.
    Returns the job's output for further checks."""
    st, out, err = run_job(s, pb, script, *args)
    assert "ATTACK-OK" not in out, (script, out, err)
    return st, out, err


@pytest.fixture
def setup(rund, pb):
    """The attacker's stub, and a victim job owned by another identity
    (client3 shares no SAN with client) that printed a secret and keeps
    running."""
    attacker = stub(channel(rund))
    owner = stub(channel(rund, who="client3"))
    secret = "victim-secret-%d" % os.getpid()
    vid = start(owner, pb, "sh", "-c", "echo %s; echo $$ > /dev/null; sleep 300" % secret)
    assert wait_for(lambda: _log_says(rund, vid, secret.encode()), 10)
    return attacker, owner, vid, secret


def _log_says(rund, jid, what):
    try:
        with open(os.path.join(rund.state_dir, "jobs", jid, "log.1"), "rb") as f:
            return what in f.read()
    except OSError:
        return False


def victim_intact(rund, owner, pb, vid, secret):
    st = status(owner, pb, vid)
    assert st.state == pb.JobStatus.RUNNING, st
    with open(os.path.join(rund.state_dir, "jobs", vid, "log.1"), "rb") as f:
        log = f.read()
    assert secret.encode() in log
    # Exactly one record: nothing was appended.
    assert log.count(b"victim-secret") == 1
    return st


def started_pids(rund, jid):
    with open(os.path.join(rund.state_dir, "jobs", jid, "started")) as f:
        fields = dict(line.split(" ", 1) for line in f.read().splitlines() if " " in line)
    return int(fields["supervisor_pid"]), int(fields["pid"])


# ---- the attacks of issue "Isolation" ------------------------------------

def test_server_key_unreachable(rund, pb, setup):
    attacker, owner, vid, secret = setup
    key = os.path.join(TLS, "server-key.pem")
    with open(key) as f:
        key_text = f.read()
    body = key_text.splitlines()[1]
    for path in (key,
                 "/proc/%d/root%s" % (rund.pid, key),
                 "/proc/%d/cwd/%s" % (rund.pid, os.path.relpath(key, os.getcwd())),
                 "/proc/%d/environ" % rund.pid):
        st, out, err = attack(attacker, pb, 'cat "$1" && echo ATTACK-OK', path)
        assert st.exit_code.value != 0, (path, out)
        assert body not in out
    # Not merely unreadable: the directory shows nothing at all.
    st, out, _ = run_job(attacker, pb, 'ls -A "$1"; echo "n=$(ls -A "$1" | wc -l)"', TLS)
    assert "n=0" in out, out
    assert "server-key.pem" not in out
    victim_intact(rund, owner, pb, vid, secret)


def test_other_jobs_output_unreachable(rund, pb, setup):
    attacker, owner, vid, secret = setup
    st, out, err = attack(attacker, pb,
                          'cat "$1"/jobs/*/log && echo ATTACK-OK; ls -A "$1" | wc -l',
                          rund.state_dir)
    assert secret not in out
    assert out.strip().splitlines()[-1] == "0", out  # the state directory looks empty
    victim_intact(rund, owner, pb, vid, secret)


def test_forging_owner_or_log_fails(rund, pb, setup):
    attacker, owner, vid, secret = setup
    spec = os.path.join(rund.state_dir, "jobs", vid, "spec")
    log = os.path.join(rund.state_dir, "jobs", vid, "log.1")
    st, out, err = attack(
        attacker, pb,
        'sed -i "s/^owner .*/owner 20 DNS:client.rund.test/" "$1" && echo ATTACK-OK; '
        'printf "\\001\\000\\000\\000\\005forge" >> "$2" && echo ATTACK-OK', spec, log)
    assert st.exit_code.value != 0
    rund.restart()
    owner = stub(channel(rund, who="client3"))
    victim_intact(rund, owner, pb, vid, secret)
    with pytest.raises(grpc.RpcError) as e:
        status(stub(channel(rund)), pb, vid)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_cannot_kill_daemon_supervisor_or_other_job(rund, pb, setup):
    attacker, owner, vid, secret = setup
    sup_pid, job_pid = started_pids(rund, vid)
    for pid in (rund.pid, sup_pid, job_pid):
        st, out, err = attack(attacker, pb, 'kill -9 "$1" && echo ATTACK-OK', pid)
        assert st.exit_code.value != 0, (pid, out, err)
    # The job's own init (PID 1 of its namespace) is root's: out of reach
    # too. The job is pid 2 there; its parent, the supervisor, is outside
    # the namespace (PPID 0, as for a process entered with nsenter). The
    # init is found by its command name and signalled only if it is PID 1
    # of the job's own view: a job that saw the host's processes (a broken
    # sandbox) must not signal another daemon's init; the assertion on
    # "init 1" fails instead.
    st, out, err = attack(attacker, pb,
                          'p=$(grep -lx rund-init /proc/[0-9]*/comm | head -n 1 | cut -d/ -f3); '
                          'echo "init $p self $$ ppid $PPID"; '
                          'if [ "$p" = 1 ] && [ "$$" = 2 ]; then kill -9 "$p" && echo ATTACK-OK; '
                          'kill -TERM "$p" && echo ATTACK-OK; fi; true')
    assert "init 1 self 2 ppid 0" in out, out
    assert rund.proc.poll() is None
    victim_intact(rund, owner, pb, vid, secret)
    assert os.path.exists("/proc/%d" % sup_pid)


def test_cannot_leave_or_change_own_cgroup(rund, pb):
    s = stub(channel(rund))
    mnt = cgroup2_mount()
    script = ('echo $$ > "$1/cgroup.procs" && echo ATTACK-OK; '
              'for f in cgroup.procs cgroup.subtree_control cgroup.kill memory.max cpu.max '
              'pids.max cgroup.freeze; do echo 1 > "$1/$f" 2>/dev/null && echo ATTACK-OK $f; '
              'done; mkdir "$1/escape" && echo ATTACK-OK mkdir; '
              'echo $$ > "$2/cgroup.procs" && echo ATTACK-OK root; '
              'cat /proc/self/cgroup; ls "$1" | grep -c "^jobs$"; exit 0')
    st, out, err = attack(s, pb, script, mnt, rund.cgroup)
    assert st.exit_code.value == 0
    # Its cgroup namespace is rooted at its own group, and rund's tree
    # (R/jobs, R/daemon) is not visible under the mount.
    assert "0::/\n" in out, out
    assert out.strip().splitlines()[-1] == "0", out


def test_process_list_shows_only_the_job(rund, pb, setup):
    attacker, owner, vid, secret = setup
    st, out, err = run_job(attacker, pb, "ps -eo pid,args")
    assert st.exit_code.value == 0, err
    assert "rund serve" not in out
    assert secret not in out and "sleep 300" not in out
    pids = [int(line.split()[0]) for line in out.strip().splitlines()[1:]]
    # init (1), sh (2), ps: nothing else.
    assert 1 in pids and len(pids) <= 4, out


def test_ptrace_and_environ_of_other_jobs_fail(rund, pb, setup):
    attacker, owner, vid, secret = setup
    _, job_pid = started_pids(rund, vid)
    script = r'''
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pid = int(sys.argv[1])
if libc.ptrace(16, pid, 0, 0) == 0:   # PTRACE_ATTACH
    print("ATTACK-OK ptrace")
print("ptrace errno", ctypes.get_errno())
try:
    print("ATTACK-OK environ", open("/proc/%d/environ" % pid, "rb").read()[:20])
except OSError as e:
    print("environ", e.errno)
'''
    st, out, err = attack(attacker, pb, 'exec python3 -c "$1" "$2"', script, job_pid)
    assert "ptrace errno" in out and "environ" in out, (out, err)
    victim_intact(rund, owner, pb, vid, secret)


def test_setuid_binary_gains_nothing(rund, pb, job_dir):
    s = stub(channel(rund))
    # A setuid-root program placed where the job can run it: with
    # no_new_privs the bit is ignored.
    sid = job_dir / "id-suid"
    shutil.copy("/usr/bin/id", sid)
    os.chown(sid, 0, 0)
    os.chmod(sid, 0o4755)
    st, out, err = attack(
        s, pb,
        'e=$("$1" -u); echo "euid=$e"; [ "$e" = 0 ] && echo ATTACK-OK; '
        'cp /usr/bin/id /tmp/id && chmod 4755 /tmp/id && echo made; '
        '[ "$(/tmp/id -u)" = 0 ] && echo ATTACK-OK tmp; '
        'mount | grep " /tmp " | grep -c nosuid; '
        'grep -E "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs)" /proc/self/status', sid)
    assert "euid=%d\n" % st.uid in out, out
    assert st.uid >= UID_FIRST
    assert "made" in out
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert "%s:\t0000000000000000" % cap in out, out
    assert "NoNewPrivs:\t1" in out


def test_mount_and_unshare_fail(rund, pb):
    s = stub(channel(rund))
    st, out, err = attack(
        s, pb,
        'mount -t tmpfs none /tmp && echo ATTACK-OK mount; '
        'unshare -r true && echo ATTACK-OK userns; '
        'unshare -m true && echo ATTACK-OK mountns; '
        'unshare -n true && echo ATTACK-OK netns; '
        'python3 -c "import os; os.unshare(os.CLONE_NEWUSER); print(\'ATTACK-OK py\')"; '
        'echo done')
    assert out.strip().endswith("done"), (out, err)


# ---- the job's view -------------------------------------------------------

def test_private_tmp_starts_empty_and_disappears(rund, pb):
    s = stub(channel(rund))
    marker = "/tmp/rund-host-marker-%d" % os.getpid()
    open(marker, "w").close()
    try:
        st, out, err = run_job(
            s, pb,
            'ls -A /tmp /var/tmp /dev/shm | grep -v ":$" | grep -c . ; '
            'echo data > /tmp/f && echo data > /var/tmp/g && cat /tmp/f /var/tmp/g')
        assert st.exit_code.value == 0, err
        lines = out.split()
        assert lines[0] == "0", out  # empty: the host's marker is not there
        assert lines[1:] == ["data", "data"]
        assert not os.path.exists("/tmp/f") or open("/tmp/f").read() != "data\n"
        # A second job starts with an empty /tmp again.
        st, out, err = run_job(s, pb, 'ls -A /tmp | wc -l')
        assert out.strip() == "0"
    finally:
        os.unlink(marker)


def test_host_fs_still_usable(rund, pb):
    s = stub(channel(rund))
    st, out, err = run_job(
        s, pb,
        'head -1 /etc/passwd | cut -d: -f1; python3 -c "print(6*7)"; '
        'getent hosts localhost | head -1 | grep -c .; '
        'echo a b c | tr " " "\\n" | sort -r | head -1; '
        'echo tmp > /tmp/x && cat /tmp/x')
    assert st.exit_code.value == 0, err
    assert out.split() == ["root", "42", "1", "c", "tmp"], (out, err)


def test_signals_reach_main_process_with_default_dispositions(rund, pb):
    s = stub(channel(rund))
    # The main process is not PID 1: SIGTERM from within its own job kills it
    # with the default action, as it would outside.
    st, out, err = run_job(s, pb, 'echo $$; grep -E "^Sig(Ign|Blk)" /proc/self/status; '
                                  'kill -TERM $$; echo survived')
    assert "survived" not in out
    assert st.killed and st.signal == signal.SIGTERM, st
    lines = out.split("\n")
    assert lines[0] != "1", out
    assert "SigBlk:\t0000000000000000" in out and "SigIgn:\t0000000000000000" in out, out


def test_orphans_are_reaped_and_exit_code_kept(rund, pb):
    s = stub(channel(rund))
    st, out, err = run_job(s, pb,
                           '(sleep 0.2 & sleep 0.1 & exit 0) ; sleep 0.5; '
                           'ps -eo stat,args | grep -c "^Z"; exit 5')
    assert st.exit_code.value == 5
    assert out.strip() == "0", out  # no zombies: init reaped the orphans


# A job can make the kernel signal a whole process group: when a group with
# a stopped member loses its last parent outside it (in the same session),
# every member gets SIGHUP and SIGCONT, whoever sent nothing. The job's main
# process starts in its supervisor's group; this job leaves it and orphans
# it around a stopped process.
ORPHAN_GROUP = r"""
import os, signal, sys, time
r, w = os.pipe()
d = os.fork()
if d == 0:
    e = os.fork()
    if e == 0:
        os.kill(os.getpid(), signal.SIGSTOP)
        os._exit(0)
    while open("/proc/%d/stat" % e).read().rsplit(")", 1)[1].split()[0] != "T":
        time.sleep(0.01)
    os.read(r, 1)  # the main process tried to leave; our exit orphans the group
    os._exit(0)
try:
    os.setpgid(0, 0)  # leave the group d and e are in
except PermissionError:
    pass  # a session leader: it is the only group it can be in
os.write(w, b"x")
os.waitpid(d, 0)
time.sleep(0.5)
print("session leader" if os.getsid(0) == os.getpid() else "in another session", flush=True)
print("main alive", flush=True)
"""


@pytest.mark.parametrize("namespaces", ["all", "mount,ipc,uts,cgroup"])
def test_orphaned_group_hangup_does_not_end_the_supervisor(rund_factory, pb, namespaces):
    rund = rund_factory("-job_namespaces", namespaces)
    s = stub(channel(rund))
    st, out, err = run_job(s, pb, 'exec python3 -c "$1"', ORPHAN_GROUP)
    assert st.state == pb.JobStatus.EXITED and st.exit_code.value == 0, (st, out, err)
    # The job's groups are in a session of its own: none of ours can be
    # orphaned by it.
    assert out.split() == ["session", "leader", "main", "alive"], (out, err)
    assert "supervisor died" not in rund.log()


class _PidNsRund(conftest.Rund):
    """A daemon as PID 1 of a PID namespace of its own, with a process of
    the test's as PID 2 there (a signal "to PID 2" lands on it)."""

    def __init__(self, tmp, canary, extra_args=()):
        self.canary = canary
        super().__init__(tmp, extra_args)

    @property
    def pid(self):
        with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
            kids = f.read().split()
        return int(kids[0]) if kids else self.proc.pid

    def stop(self, sig=signal.SIGTERM, timeout=20):
        # unshare(1) waits for its child and does not pass signals on: the
        # daemon is signalled itself, and unshare exits with its status.
        if self.proc and self.proc.poll() is None:
            pid = self.pid
            if pid != self.proc.pid:
                os.kill(pid, sig)
        return super().stop(sig, timeout)


def test_init_signals_no_process_outside_the_job(tmp_path, pb):
    """Without a PID namespace of its own, the job's init is an ordinary
    host process: it must not pass on what the kernel sends its group to
    PID 2 of the host's namespace."""
    if not shutil.which("unshare"):
        pytest.skip("no unshare(1)")
    log = tmp_path / "canary.log"
    canary = tmp_path / "canary.py"
    canary.write_text(
        "import os, signal, sys, time\n"
        "def note(sig, frame):\n"
        "    with open(sys.argv[1], 'a') as f:\n"
        "        f.write('pid %d got %d\\n' % (os.getpid(), sig))\n"
        "for sig in (signal.SIGHUP, signal.SIGCONT, signal.SIGTERM, signal.SIGUSR1):\n"
        "    signal.signal(sig, note)\n"
        "open(sys.argv[1], 'a').write('pid %d\\n' % os.getpid())\n"
        "while True:\n"
        "    time.sleep(1)\n")
    wrapper = tmp_path / "rund-in-pidns"
    wrapper.write_text(
        "#!/bin/sh\n"
        "exec unshare -pf --kill-child=SIGTERM --mount-proc --propagation private -- "
        "sh -c '/usr/bin/python3 %s %s & exec %s \"$@\"' sh \"$@\"\n"
        % (canary, log, conftest.RUND))
    wrapper.chmod(0o755)
    saved = conftest.RUND
    conftest.RUND = str(wrapper)
    try:
        rund = _PidNsRund(str(tmp_path), canary,
                          ["-job_namespaces", "mount,ipc,uts,cgroup"])
    finally:
        conftest.RUND = saved
    try:
        assert wait_for(lambda: log.exists() and "pid 2\n" in log.read_text(), 10)
        s = stub(channel(rund))
        for _ in range(3):
            run_job(s, pb, 'exec python3 -c "$1"', ORPHAN_GROUP)
        time.sleep(0.5)
        assert log.read_text() == "pid 2\n", log.read_text()
    finally:
        rund.cleanup()


def test_signal_from_outside_reaches_main(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "trap 'echo got-term; exit 9' TERM; echo ready; "
                                   "while :; do sleep 0.05; done")
    # "ready" is printed once the trap is set (a segment file exists, with
    # its header, before any output).
    assert wait_for(lambda: _log_says(rund, jid, b"ready"), 10)
    _, init_pid = started_pids(rund, jid)
    os.kill(init_pid, signal.SIGTERM)  # to the job's init, from the host
    st = wait_end(s, pb, jid)
    assert st.exit_code.value == 9, st
    out, _ = output(s, pb, jid)
    assert "got-term" in out


# ---- identity ---------------------------------------------------------------

def test_each_job_its_own_uid_recorded_and_reported(rund, pb):
    s = stub(channel(rund))
    a = start(s, pb, "sh", "-c", "id -u; id -G; echo ready; sleep 30")
    b = start(s, pb, "sh", "-c", "id -u; id -G; echo ready; sleep 30")
    assert wait_for(lambda: _log_says(rund, a, b"ready") and _log_says(rund, b, b"ready"), 10)
    ua, ub = status(s, pb, a).uid, status(s, pb, b).uid
    assert ua >= UID_FIRST and ub >= UID_FIRST and ua != ub
    for jid, uid in ((a, ua), (b, ub)):
        with open(os.path.join(rund.state_dir, "jobs", jid, "spec")) as f:
            assert "uid %d\n" % uid in f.read()
        s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)
        out, _ = output(s, pb, jid)
        # gid equals uid; no supplementary groups.
        assert out.split() == [str(uid), str(uid), "ready"], out
    r = runc(rund, "status", a)
    assert json.loads(r.stdout)["uid"] == ua


def test_uids_not_reused_at_once_and_continue_after_restart(rund, pb):
    s = stub(channel(rund))
    first = start(s, pb, "true")
    u1 = wait_end(s, pb, first).uid
    second = start(s, pb, "sh", "-c", "sleep 60")
    u2 = status(s, pb, second).uid
    assert u2 != u1  # a released uid is the last to come back
    rund.restart()
    s = stub(channel(rund))
    assert status(s, pb, second).state == pb.JobStatus.RUNNING
    third = start(s, pb, "id", "-u")
    u3 = wait_end(s, pb, third).uid
    assert u3 not in (u1, u2), (u1, u2, u3)
    assert u3 == u2 + 1  # allocation resumes after the newest job's uid
    out, _ = output(s, pb, third)
    assert out.strip() == str(u3)
    s.Stop(pb.JobIdentifier(ulid=second), timeout=10)


def test_uid_range_exhaustion(rund_factory, pb):
    first, slot = conftest.lock_uid_slot()
    rund = rund_factory("-job_uids", "%d-%d" % (first, first + 1))
    s = stub(channel(rund))
    a = start(s, pb, "sleep", "60")
    b = start(s, pb, "sleep", "60")
    with pytest.raises(grpc.RpcError) as e:
        start(s, pb, "true")
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "-job_uids" in e.value.details()
    s.Stop(pb.JobIdentifier(ulid=a), timeout=10)
    c = start(s, pb, "id", "-u")  # a's uid is free again once its group is gone
    assert wait_end(s, pb, c).uid == status(s, pb, a).uid
    s.Stop(pb.JobIdentifier(ulid=b), timeout=10)
    slot.close()


def test_bad_policy_flags_refused(rund_factory, tmp_path):
    from conftest import RUND
    for args, needle in ((["-job_uids", "0-100"], "-job_uids"),
                         (["-job_uids", "5-1"], "-job_uids"),
                         (["-job_user", "nobody"], "-job_user"),
                         (["-job_network", "bridge"], "-job_network"),
                         (["-job_namespaces", "pid,user"], "-job_namespaces"),
                         (["-rootfs", str(tmp_path)], "-rootfs"),
                         (["-ca", "/etc/ssl/certs/ca-certificates.crt"],
                          "cannot hide \"/etc/ssl/certs\"")):
        r = subprocess.run([RUND, "serve", "-addr", "127.0.0.1:0",
                            "-state_dir", str(tmp_path / "st"),
                            "-cgroup", os.path.join(cgroup2_mount(), "rund-test-badflags")]
                           + args, capture_output=True, timeout=20)
        # A daemon that got as far as its cgroup set-up leaves R, R/daemon
        # and R/jobs (empty: it started nothing).
        root = os.path.join(cgroup2_mount(), "rund-test-badflags")
        for d in ("daemon", "jobs", ""):
            try:
                os.rmdir(os.path.join(root, d) if d else root)
            except OSError:
                pass
        assert r.returncode != 0, args
        assert needle in r.stderr.decode(), (args, r.stderr)


def test_overlapping_uid_ranges_refused(rund, rund_factory, pb, tmp_path):
    # Two daemons on one host handing out the same uids could give two jobs
    # one uid: the second is refused, naming the first, and a disjoint
    # range starts.
    from conftest import RUND
    first, last = (int(x) for x in rund.uid_args[1].split("-"))
    root = os.path.join(cgroup2_mount(), "rund-test-" + uuid.uuid4().hex[:12])
    try:
        r = subprocess.run([RUND, "serve", "-addr", "127.0.0.1:0",
                            "-ca", os.path.join(TLS, "ca.pem"),
                            "-cert", os.path.join(TLS, "server.pem"),
                            "-key", os.path.join(TLS, "server-key.pem"),
                            "-state_dir", str(tmp_path / "second"), "-cgroup", root,
                            "-job_uids", "%d-%d" % (last - 10, last)],
                           capture_output=True, timeout=20)
    finally:
        for d in ("daemon", "jobs", ""):
            try:
                os.rmdir(os.path.join(root, d) if d else root)
            except OSError:
                pass
    err = r.stderr.decode()
    assert r.returncode != 0, err
    assert "overlaps %d-%d" % (first, last) in err, err
    assert "pid %d" % rund.pid in err and rund.state_dir in err, err
    # The first still serves, and a range of its own starts.
    s = stub(channel(rund))
    assert wait_end(s, pb, start(s, pb, "true")).exit_code.value == 0
    other = rund_factory()  # a range of its own (conftest.lock_uid_slot)
    ofirst, olast = (int(x) for x in other.uid_args[1].split("-"))
    assert olast < first or ofirst > last
    so = stub(channel(other))
    st = wait_end(so, pb, start(so, pb, "true"))
    assert st.exit_code.value == 0 and ofirst <= st.uid <= olast


# ---- what keeps working -------------------------------------------------------

def test_restart_recovers_isolated_jobs(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "echo before; sleep 1; echo after")
    uid = status(s, pb, jid).uid
    rund.restart()
    s = stub(channel(rund))
    st = wait_end(s, pb, jid)
    assert st.exit_code.value == 0 and st.uid == uid
    out, _ = output(s, pb, jid)
    assert out == "before\nafter\n"
    with pytest.raises(grpc.RpcError) as e:
        status(stub(channel(rund, who="client3")), pb, jid)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_stop_kills_whole_tree_after_escape_attempt(rund, pb):
    s = stub(channel(rund))
    mnt = cgroup2_mount()
    jid = start(s, pb, "sh", "-c",
                '(setsid sh -c \'echo $$ > "$1/cgroup.procs"; echo $$ > /dev/null; '
                'exec sleep 300\' sh "$1" &) ; sleep 300', "sh", mnt)
    assert wait_for(lambda: len(_job_procs(rund, jid)) >= 3, 10), _job_procs(rund, jid)
    procs = _job_procs(rund, jid)
    st = s.Stop(pb.JobIdentifier(ulid=jid), timeout=20)
    assert st.killed
    for p in procs:
        assert wait_for(lambda: not os.path.exists("/proc/%d" % p), 10), p


def _job_procs(rund, jid):
    try:
        with open(os.path.join(rund.cgroup, "jobs", jid, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def test_job_user_root_restores_old_behaviour(rund_factory, pb):
    rund = rund_factory("-job_user", "root")
    assert "WARNING: -job_user root" in rund.log()
    s = stub(channel(rund))
    st, out, err = run_job(s, pb, 'id -u; ls "$1" | grep -c server-key', TLS)
    assert out.split() == ["0", "1"], (out, err)
    assert st.uid == 0


def test_network_none_has_only_loopback(rund_factory, pb):
    rund = rund_factory("-job_network", "none")
    s = stub(channel(rund))
    script = r'''
import socket
names = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]
print("ifaces", ",".join(sorted(names)))
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen()
c = socket.create_connection(srv.getsockname(), timeout=2); print("loopback ok")
try:
    socket.create_connection(("127.0.0.1", %d), timeout=2); print("ATTACK-OK host port")
except OSError as e:
    print("host port unreachable")
''' % rund.port
    st, out, err = attack(s, pb, 'exec python3 -c "$1"', script)
    assert "ifaces lo" in out and "loopback ok" in out and "host port unreachable" in out, \
        (out, err)


def test_host_network_by_default(rund, pb):
    s = stub(channel(rund))
    st, out, err = run_job(
        s, pb, 'exec python3 -c "import socket; socket.create_connection((\'127.0.0.1\', %d), '
        'timeout=2); print(\'reached\')"' % rund.port)
    assert out.strip() == "reached", (out, err)


def _busybox_rootfs(path):
    bb = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(bb):
        pytest.skip("no busybox to build a rootfs from")
    for d in ("bin", "proc", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    shutil.copy(bb, os.path.join(path, "bin", "busybox"))
    for tool in ("sh", "ls", "cat", "id", "touch", "echo", "ps", "mount", "wc"):
        os.symlink("busybox", os.path.join(path, "bin", tool))
    with open(os.path.join(path, "etc", "marker"), "w") as f:
        f.write("inside\n")
    for dirpath, dirnames, filenames in os.walk(path):
        os.chmod(dirpath, 0o755)


def test_rootfs(rund_factory, pb, job_dir):
    root = job_dir / "root"
    _busybox_rootfs(str(root))
    rund = rund_factory("-rootfs", str(root))
    s = stub(channel(rund))
    st, out, err = attack(
        s, pb,
        'cat /etc/marker; ls /; touch /new && echo ATTACK-OK rw; '
        'echo t > /tmp/t && cat /tmp/t; ls /dev; ps | wc -l; id -u')
    assert st.exit_code.value == 0, err
    lines = out.split()
    assert lines[0] == "inside"
    assert "usr" not in lines  # the host's tree is gone
    assert "t" in lines and "null" in lines and "urandom" in lines
    assert "sda" not in lines and "mem" not in lines
    assert int(lines[-1]) >= UID_FIRST
    assert not os.path.exists(root / "new")


# ---- what a job leaves behind, and what it may use up ---------------------------

def test_keyrings_and_io_uring_refused(rund, pb):
    s = stub(channel(rund))
    script = r'''
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def call(nr, *args):
    r = libc.syscall(nr, *args)
    return "ok" if r >= 0 else "errno %d" % ctypes.get_errno()
# add_key("user", "k", "v", 1, KEY_SPEC_SESSION_KEYRING)
r = call(248, b"user", b"k", b"v", 1, -3)
print("add_key", r)
if r == "ok":
    print("ATTACK-OK add_key")
# keyctl(KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
r = call(250, 0, -3, 0)
print("keyctl", r)
if r == "ok":
    print("ATTACK-OK keyctl")
params = ctypes.create_string_buffer(120)
r = call(425, 4, params)   # io_uring_setup
print("io_uring", r)
if r == "ok":
    print("ATTACK-OK io_uring")
'''
    st, out, err = attack(s, pb, 'exec python3 -c "$1"', script)
    assert "add_key errno 1" in out and "keyctl errno 1" in out, (out, err)
    assert "io_uring errno 38" in out, out


def test_nothing_written_outside_the_job(rund, pb, job_dir):
    # A world-writable host directory: a job could leave files there for
    # another job, or for the next holder of its uid. The host's tree is
    # read-only inside the job.
    shared = job_dir / "world-writable"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    s = stub(channel(rund))
    st, out, err = attack(s, pb, 'echo x > "$1/left" && echo ATTACK-OK; '
                                 'mount | grep -c " on / .*ro[,)]"', shared)
    assert not (shared / "left").exists()
    assert "Read-only file system" in err, err
    assert out.strip() == "1", out


def test_tmp_size_and_process_limit(rund_factory, pb):
    rund = rund_factory("-job_tmp_size", "8M", "-job_max_procs", "30")
    s = stub(channel(rund))
    st, out, err = run_job(s, pb, 'dd if=/dev/zero of=/tmp/big bs=1M count=12 2>&1 | grep -o "No space left on device"; '
                                  'ls -l /tmp/big | awk "{print \\$5}"')
    assert "No space left on device" in out, out
    assert int(out.split()[-1]) <= 8 << 20
    script = r'''
import os, time
n = 0
try:
    for i in range(100):
        if os.fork() == 0:
            time.sleep(5)
            os._exit(0)
        n += 1
except OSError as e:
    print("fork failed errno", e.errno)
print("forked", n)
'''
    st, out, err = run_job(s, pb, 'exec python3 -c "$1"', script)
    assert "fork failed errno 11" in out, (out, err)
    forked = int(out.split()[-1])
    assert 20 <= forked < 30, out


def test_readable_key_is_warned_about(rund_factory, tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir(mode=0o700)
    for f in ("ca.pem", "server.pem", "server-key.pem"):
        shutil.copy(os.path.join(TLS, f), tls / f)
    os.chmod(tls / "server-key.pem", 0o600)
    args = ("-ca", str(tls / "ca.pem"), "-cert", str(tls / "server.pem"),
            "-key", str(tls / "server-key.pem"))
    quiet = rund_factory(*args)
    assert "WARNING: -key" not in quiet.log()
    os.chmod(tls / "server-key.pem", 0o644)
    loud = rund_factory(*args)
    assert "WARNING: -key %s is readable by other users" % (tls / "server-key.pem") in loud.log()
