"""Jobs: Start, Stop and Status through grpcio and runc; cgroups, argv,
ownership, and that nothing is left behind."""

import json
import os
import signal
import time

import grpc
import pytest

from conftest import ENFORCE, channel, controllers_available, runc, stub, wait_for
import pki

UNKNOWN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"


def start(s, pb, name, *args, **limits):
    req = pb.JobStartRequest(name=name, args=list(args))
    for k, v in limits.items():
        getattr(req, k).value = v
    return s.Start(req, timeout=10).ulid


def wait_end(s, pb, jid, timeout=10):
    def ended():
        st = s.Status(pb.JobIdentifier(ulid=jid), timeout=5)
        return st if st.state != pb.JobStatus.RUNNING else None
    st = wait_for(ended, timeout)
    assert st is not None, "job %s did not end" % jid
    return st


def job_dirs(rund):
    d = os.path.join(rund.state_dir, "jobs")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def job_cgroups(rund):
    d = os.path.join(rund.cgroup, "jobs")
    return sorted(e for e in os.listdir(d) if os.path.isdir(os.path.join(d, e)))


def zombies_of(pid):
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % p) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(p))
    return out


def test_exit_code_reported(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "exit 3")
    assert len(jid) == 26
    st = wait_end(s, pb, jid)
    assert st.HasField("exit_code") and st.exit_code.value == 3
    assert not st.killed and not st.stopped
    assert st.state == pb.JobStatus.EXITED
    assert list(st.command) == ["sh", "-c", "exit 3"]
    assert st.start_time.seconds > 0 and st.end_time.seconds >= st.start_time.seconds
    # runc prints the same as JSON with every field present.
    r = runc(rund, "status", jid)
    assert r.returncode == 0, r.stderr
    js = json.loads(r.stdout)
    assert js["exit_code"] == 3 and js["killed"] is False and js["stopped"] is False
    for field in ("stopped", "killed", "exit_code", "user_time", "system_time",
                  "memory_current", "state", "signal", "oom_killed", "memory_peak",
                  "start_time", "end_time", "command", "log_bytes", "log_truncated"):
        assert field in js, field


def test_self_sigterm_is_killed_with_signal(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "kill -TERM $$; sleep 5")
    st = wait_end(s, pb, jid)
    assert st.killed and not st.stopped
    assert st.signal == 15
    assert not st.HasField("exit_code")


def test_runc_start_status_stop(rund):
    r = runc(rund, "start", "sleep", "100")
    assert r.returncode == 0, r.stderr
    jid = r.stdout.decode().strip()
    assert len(jid) == 26
    r = runc(rund, "status", jid)
    assert json.loads(r.stdout)["state"] == "RUNNING"
    assert json.loads(r.stdout)["exit_code"] is None
    r = runc(rund, "stop", jid)
    assert r.returncode == 0, r.stderr
    js = json.loads(r.stdout)
    assert js["stopped"] is True and js["killed"] is True and js["signal"] == 9
    assert js["state"] == "EXITED"


def test_stop_kills_whole_tree(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "sleep 1000 & setsid sleep 1000 & wait")
    procs = os.path.join(rund.cgroup, "jobs", jid, "cgroup.procs")
    pids = wait_for(lambda: [int(x) for x in open(procs).read().split()]
                    if os.path.exists(procs) and len(open(procs).read().split()) >= 3 else None)
    assert pids and len(pids) >= 3
    t0 = time.time()
    st = s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)
    assert time.time() - t0 < 5
    assert st.stopped and st.killed and st.state == pb.JobStatus.EXITED
    for p in pids:
        assert not os.path.exists("/proc/%d" % p) or open("/proc/%d/stat" % p).read().split()[2] == "Z", p
    assert wait_for(lambda: jid not in job_cgroups(rund), 5)


def test_stop_on_finished_job_changes_nothing(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "true")
    before = wait_end(s, pb, jid)
    after = s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)
    assert after == before
    assert not after.stopped and after.exit_code.value == 0


def test_leftovers_killed_when_main_exits(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "setsid sleep 1000 & exit 0")
    st = wait_end(s, pb, jid, timeout=10)
    assert st.exit_code.value == 0
    assert wait_for(lambda: jid not in job_cgroups(rund), 5)


def test_cpu_time_grows(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "while :; do :; done")
    time.sleep(0.3)
    a = s.Status(pb.JobIdentifier(ulid=jid), timeout=5)
    time.sleep(0.5)
    b = s.Status(pb.JobIdentifier(ulid=jid), timeout=5)
    ta = a.user_time.ToNanoseconds() + a.system_time.ToNanoseconds()
    tb = b.user_time.ToNanoseconds() + b.system_time.ToNanoseconds()
    assert tb > ta + 100_000_000, (ta, tb)
    assert a.state == pb.JobStatus.RUNNING
    s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)


@pytest.mark.parametrize("name,args,code,needle", [
    ("no-such-command-rund", [], grpc.StatusCode.NOT_FOUND, "no-such-command-rund"),
    ("", [], grpc.StatusCode.INVALID_ARGUMENT, "name"),
    ("/etc/passwd", [], grpc.StatusCode.FAILED_PRECONDITION, "/etc/passwd"),
])
def test_start_failures_leave_nothing(rund, pb, name, args, code, needle):
    s = stub(channel(rund))
    with pytest.raises(grpc.RpcError) as e:
        start(s, pb, name, *args)
    assert e.value.code() == code, e.value.details()
    assert needle in e.value.details()
    assert job_dirs(rund) == []
    assert job_cgroups(rund) == []


def test_enoexec_is_failed_precondition(rund, pb, job_dir):
    bad = job_dir / "notabinary"
    bad.write_bytes(b"\x00\x01\x02garbage")
    bad.chmod(0o755)
    s = stub(channel(rund))
    with pytest.raises(grpc.RpcError) as e:
        start(s, pb, str(bad))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert str(bad) in e.value.details()
    assert job_dirs(rund) == []


def test_cpu_bandwidth_999_invalid(rund, pb):
    s = stub(channel(rund))
    with pytest.raises(grpc.RpcError) as e:
        start(s, pb, "true", max_cpu_bandwidth=999)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "999" in e.value.details()
    assert job_dirs(rund) == []


def test_zero_limit_invalid(rund, pb):
    s = stub(channel(rund))
    with pytest.raises(grpc.RpcError) as e:
        start(s, pb, "true", max_rbps=0)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.skipif("memory" in controllers_available(), reason="memory controller present")
def test_memory_limit_without_controller(rund, pb):
    s = stub(channel(rund))
    with pytest.raises(grpc.RpcError) as e:
        start(s, pb, "true", max_memory_usage=10_000_000)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "memory" in e.value.details()
    assert job_dirs(rund) == []
    r = runc(rund, "start", "-max_memory_usage", "10000000", "true")
    assert r.returncode == 1
    assert b"FAILED_PRECONDITION" in r.stderr and b"memory" in r.stderr


def test_argv_env_cwd_stdin(rund, pb):
    s = stub(channel(rund))
    args = ["a b", "$HOME", "", "'\"", "-max_rbps", "7"]
    jid = start(s, pb, "sh", "-c",
                'for a in "$@"; do printf "[%s]" "$a"; done; echo; pwd; env | sort; '
                'read x && echo "stdin:$x" || echo stdin-eof', "argv0", *args)
    wait_end(s, pb, jid)
    out = b"".join(m.stdout for m in s.Log(pb.JobIdentifier(ulid=jid), timeout=10)).decode()
    lines = out.splitlines()
    assert lines[0] == "".join("[%s]" % a for a in args)
    assert lines[1] == "/"
    env = [l for l in lines[2:] if "=" in l]
    names = {l.split("=", 1)[0] for l in env}
    assert "PATH" in names
    assert not names & {"RUND", "SSL_CERT_FILE", "PYTEST_CURRENT_TEST"}
    assert lines[-1] == "stdin-eof"


def test_runc_passes_flags_after_name_to_job(rund, pb):
    r = runc(rund, "start", "echo", "-max_rbps", "7")
    assert r.returncode == 0, r.stderr
    jid = r.stdout.decode().strip()
    s = stub(channel(rund))
    wait_end(s, pb, jid)
    out = b"".join(m.stdout for m in s.Log(pb.JobIdentifier(ulid=jid), timeout=10))
    assert out == b"-max_rbps 7\n"


def test_ownership_matrix(rund, pb, tmp_path):
    owner = stub(channel(rund, "client"))
    friend = stub(channel(rund, "client2"))
    stranger = stub(channel(rund, "client3"))
    jid = start(owner, pb, "sleep", "100")
    ident = pb.JobIdentifier(ulid=jid)

    # The stranger gets exactly what an unknown id gets.
    for call in (stranger.Status, stranger.Stop):
        with pytest.raises(grpc.RpcError) as e:
            call(ident, timeout=5)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
        assert e.value.details() == "no job " + jid
    with pytest.raises(grpc.RpcError) as e:
        list(stranger.Log(ident, timeout=5))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        owner.Status(pb.JobIdentifier(ulid=UNKNOWN), timeout=5)
    assert e.value.details() == "no job " + UNKNOWN

    # A client sharing a SAN sees and controls it.
    assert friend.Status(ident, timeout=5).state == pb.JobStatus.RUNNING
    assert owner.Status(ident, timeout=5).state == pb.JobStatus.RUNNING

    # A certificate without SAN cannot start jobs and sees nothing.
    cert, key = pki.nosan_client(str(tmp_path))
    nosan = stub(channel(rund, cert=cert, key=key))
    with pytest.raises(grpc.RpcError) as e:
        start(nosan, pb, "true")
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "subject alternative name" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        nosan.Status(ident, timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND

    st = friend.Stop(ident, timeout=10)
    assert st.stopped
    # The stranger's Stop did nothing: the friend's Stop is what ended it.
    assert owner.Status(ident, timeout=5).stopped


def test_malformed_ids(rund, pb):
    s = stub(channel(rund))
    # Lower case is the same id (Crockford base32): not malformed, just unknown
    # (test_everyday.py checks that it finds the job).
    for bad in ["", "x", UNKNOWN[:-1], UNKNOWN + "0", "8" + UNKNOWN[1:],
                "01ARZ3NDEKTSV4RRFFQ69G5FAU"]:
        for call in (s.Status, s.Stop):
            with pytest.raises(grpc.RpcError) as e:
                call(pb.JobIdentifier(ulid=bad), timeout=5)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, bad
        with pytest.raises(grpc.RpcError) as e:
            list(s.Log(pb.JobIdentifier(ulid=bad), timeout=5))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_runc_status_unknown(rund):
    r = runc(rund, "status", UNKNOWN)
    assert r.returncode == 1
    assert r.stderr.decode().startswith("runc: status: NOT_FOUND: ")


@pytest.mark.slow
def test_200_jobs_leave_nothing(rund, pb):
    s = stub(channel(rund))
    s.Check(pb.HealthCheckRequest(), timeout=5)
    base_fds = rund.fd_count()
    ids = [start(s, pb, "sh", "-c", "echo $$") for _ in range(200)]
    for jid in ids:
        st = wait_end(s, pb, jid, timeout=30)
        assert st.exit_code.value == 0
    assert wait_for(lambda: job_cgroups(rund) == [], 10), job_cgroups(rund)
    assert wait_for(lambda: zombies_of(rund.pid) == [], 5)
    assert wait_for(lambda: rund.fd_count() <= base_fds, 5), (rund.fd_count(), base_fds)
    assert len(job_dirs(rund)) == 200


def test_retention_removes_ended_jobs(rund_factory, pb):
    r = rund_factory("-retention", "1s")
    s = stub(channel(r))
    jid = start(s, pb, "true")
    wait_end(s, pb, jid)
    assert wait_for(lambda: job_dirs(r) == [], 10)
    with pytest.raises(grpc.RpcError) as e:
        s.Status(pb.JobIdentifier(ulid=jid), timeout=5)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_non_utf8_arguments_rejected(rund, pb):
    ch = channel(rund)
    raw = ch.unary_unary("/rund.JobController/Start", lambda b: b, lambda b: b)
    # JobStartRequest{name: "echo", args: ["ok", "\xff\xfe"]}, encoded by hand.
    msg = b"\x0a\x04echo" + b"\x12\x02ok" + b"\x12\x02\xff\xfe"
    with pytest.raises(grpc.RpcError) as e:
        raw(msg, timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "args[1]" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        raw(b"\x0a\x02\xc0\xaf", timeout=5)  # overlong encoding of '/'
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert job_dirs(rund) == []
    with pytest.raises(grpc.RpcError) as e:
        raw(b"\x0a\xff", timeout=5)  # truncated message
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
