"""-cgroup_daemon_stays: the daemon's side of the two systemd units
(contrib/rund.service.in, contrib/rund-jobs.service.in). -cgroup names another
unit's cgroup R holding that unit's holder process; the daemon stays in its own
cgroup, the holder moves to R/daemon and every supervisor moves itself there, so
the daemon's cgroup never gets children and a restart of the daemon, with jobs
running, finds it as it was. The systemd lane (tests/vm/systemd) proves the
same under systemd itself."""
import os
import subprocess
import uuid

from conftest import RUND, TLS, cgroup2_mount, runc, wait_for


def _cgroup_of(pid):
    """Absolute cgroup v2 directory of pid."""
    with open("/proc/%d/cgroup" % pid) as f:
        for line in f:
            if line.startswith("0::"):
                return os.path.normpath(cgroup2_mount() + line[3:].strip())
    raise RuntimeError("pid %d has no cgroup v2 line" % pid)


def _procs(cg):
    with open(os.path.join(cg, "cgroup.procs")) as f:
        return [int(p) for p in f.read().split()]


def _supervisor_of(job):
    want = ("rund execute " + job).encode()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/cmdline" % d, "rb") as f:
                    if f.read().rstrip(b"\0") == want:
                        return int(d)
            except OSError:
                pass
    return None


def test_daemon_stays_supervisors_move(rund_factory):
    root = os.path.join(cgroup2_mount(), "rund-test-" + uuid.uuid4().hex[:12])
    os.mkdir(root)
    # The jobs unit's holder, as systemd would start it in its cgroup.
    holder = subprocess.Popen(["sleep", "600"])
    try:
        with open(os.path.join(root, "cgroup.procs"), "w") as f:
            f.write(str(holder.pid))
        mine = _cgroup_of(os.getpid())
        srv = rund_factory("-cgroup", root, "-cgroup_daemon_stays")
        srv.cgroup = root  # the fixture's cleanup removes this one
        # The daemon stays where it was started (its unit), the holder left
        # R, which now has no processes of its own.
        assert _cgroup_of(srv.pid) == mine, srv.log()
        assert _cgroup_of(holder.pid) == os.path.join(root, "daemon")
        assert _procs(root) == []

        printer = "for i in $(seq 1 30); do echo line $i; sleep 0.1; done"
        r = runc(srv, "start", "sh", "-c", printer)
        assert r.returncode == 0, r.stderr
        job = r.stdout.decode().strip()
        sup = wait_for(lambda: _supervisor_of(job))
        assert sup, "no supervisor for " + job
        # The supervisor is in R/daemon, not in the daemon's cgroup: the
        # fork server that made it joined R/daemon when it started.
        assert _cgroup_of(sup) == os.path.join(root, "daemon")
        assert _cgroup_of(sup) != mine
        forkservers = srv.children(b"-spares")
        assert len(forkservers) == 1, forkservers
        assert _cgroup_of(forkservers[0]) == os.path.join(root, "daemon")

        # A restart while the job prints: nothing of rund was left in the
        # daemon's cgroup, and the new daemon serves the whole output.
        srv.restart()
        assert _cgroup_of(srv.pid) == mine, srv.log()
        assert sup in _procs(os.path.join(root, "daemon"))
        r = runc(srv, "log", job)
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode() == "".join("line %d\n" % i for i in range(1, 31))
        r = runc(srv, "status", job)
        assert b'"exit_code":0' in r.stdout, r.stdout
    finally:
        holder.kill()
        holder.wait()


def test_daemon_stays_needs_cgroup(tmp_path):
    r = subprocess.run(
        [RUND, "serve", "-addr", "127.0.0.1:0", "-ca", os.path.join(TLS, "ca.pem"),
         "-cert", os.path.join(TLS, "server.pem"), "-key", os.path.join(TLS, "server-key.pem"),
         "-state_dir", str(tmp_path / "state"), "-cgroup_daemon_stays"],
        capture_output=True, timeout=20)
    assert r.returncode != 0, r
    assert b"-cgroup names another" in r.stderr, r.stderr
