"""Everyday operations (issue 12): list, wait, graceful stop, run-time limits,
environment and working directory, Health/Watch, lower-case ids. Through runc
and through grpcio."""

import json
import os
import signal
import subprocess
import threading
import time

import grpc
import pytest

from conftest import RUNC, TLS, channel, runc, stub, wait_for
from test_jobs import start, wait_end

EXIT_LOST = 125


def runc_cmd(rund, *args, who="client"):
    return [RUNC, args[0], "-addr", "localhost:%d" % rund.port,
            "-ca", os.path.join(TLS, "ca.pem"),
            "-cert", os.path.join(TLS, who + ".pem"),
            "-key", os.path.join(TLS, who + "-key.pem")] + list(args[1:])


def runc_start(rund, *args, who="client"):
    r = runc(rund, "start", *args, who=who)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def supervisor_pid(rund, jid):
    with open(os.path.join(rund.state_dir, "jobs", jid, "started")) as f:
        for line in f:
            k, _, v = line.partition(" ")
            if k == "supervisor_pid":
                return int(v)
    raise AssertionError("no supervisor_pid for " + jid)


def output(s, pb, jid):
    out, err = bytearray(), bytearray()
    for m in s.Log(pb.JobIdentifier(ulid=jid), timeout=60):
        out += m.stdout
        err += m.stderr
    return bytes(out), bytes(err)


# ---- ids ------------------------------------------------------------------


def test_lower_case_ids(rund, pb):
    s = stub(channel(rund))
    jid = start(s, pb, "true")
    wait_end(s, pb, jid)
    st = s.Status(pb.JobIdentifier(ulid=jid.lower()), timeout=10)
    assert st.state == pb.JobStatus.EXITED
    r = runc(rund, "status", jid.lower())
    assert r.returncode == 0, r.stderr
    # Errors and listings name the canonical (upper-case) id.
    other = "7" + jid[1:].lower()
    r = runc(rund, "status", other)
    assert r.returncode == 1
    assert ("no job " + other.upper()).encode() in r.stderr
    r = runc(rund, "list", "-json")
    assert json.loads(r.stdout.splitlines()[0])["ulid"] == jid


# ---- list -----------------------------------------------------------------


def test_list_isolation_and_order(rund, pb):
    mine = [runc_start(rund, "sh", "-c", "exit %d" % i) for i in range(3)]
    theirs = [runc_start(rund, "sleep", "30", who="client3") for _ in range(2)]
    s = stub(channel(rund))
    for jid in mine:
        wait_end(s, pb, jid)

    r = runc(rund, "list", "-json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    # Only the caller's jobs, newest first, each a full status.
    assert [row["ulid"] for row in rows] == mine[::-1]
    assert [row["status"]["exit_code"] for row in rows] == [2, 1, 0]
    assert all(row["status"]["state"] == "EXITED" for row in rows)

    r3 = runc(rund, "ps", "-json", who="client3")
    ids3 = [json.loads(line)["ulid"] for line in r3.stdout.splitlines()]
    assert ids3 == theirs[::-1]
    # client2 shares a SAN with client: it sees client's jobs, not client3's.
    r2 = runc(rund, "list", "-json", who="client2")
    assert [json.loads(line)["ulid"] for line in r2.stdout.splitlines()] == mine[::-1]

    # Filters.
    r = runc(rund, "list", "-json", "-limit", "2")
    assert [json.loads(line)["ulid"] for line in r.stdout.splitlines()] == mine[:0:-1]
    assert runc(rund, "list", "-state", "running").stdout.count(b"\n") == 1  # header only
    r = runc(rund, "ps", "-state", "RUNNING", who="client3")
    lines = r.stdout.decode().splitlines()
    assert lines[0].split() == ["ID", "STATE", "EXIT", "STARTED", "COMMAND"]
    assert [line.split()[0] for line in lines[1:]] == theirs[::-1]
    assert all(line.split()[1] == "RUNNING" and line.endswith("sleep 30") for line in lines[1:])
    bad = runc(rund, "list", "-state", "sleeping")
    assert bad.returncode == 2 and b"-state" in bad.stderr

    # The same through grpcio.
    x3 = stub(channel(rund, "client3"))
    got = [e.ulid for e in x3.List(pb.JobListRequest(), timeout=10)]
    assert got == theirs[::-1]
    x = stub(channel(rund))
    got = list(x.List(pb.JobListRequest(state=pb.JobStatus.EXITED, limit=1), timeout=10))
    assert [e.ulid for e in got] == [mine[-1]]
    assert got[0].status.exit_code.value == 2
    assert list(x.List(pb.JobListRequest(state=pb.JobStatus.RUNNING), timeout=10)) == []
    for jid in theirs:
        runc(rund, "stop", jid, who="client3")


def test_list_many_jobs(rund, pb):
    """A listing larger than one flow-control window arrives whole."""
    s = stub(channel(rund))
    ids = [start(s, pb, "true", *(["x" * 1000] * 30)) for _ in range(60)]
    for jid in ids:
        wait_end(s, pb, jid)
    r = runc(rund, "list", "-json")
    assert [json.loads(line)["ulid"] for line in r.stdout.splitlines()] == ids[::-1]


# ---- wait -----------------------------------------------------------------


def test_wait_exit_codes(rund, pb):
    jid = runc_start(rund, "sh", "-c", "sleep 0.5; exit 7")
    t0 = time.time()
    r = runc(rund, "wait", jid)
    assert r.returncode == 7, r.stderr
    assert time.time() - t0 >= 0.3  # it waited for the job

    jid = runc_start(rund, "sh", "-c", "kill -USR1 $$")
    assert runc(rund, "wait", jid).returncode == 128 + signal.SIGUSR1

    # A LOST job: its supervisor is killed.
    jid = runc_start(rund, "sleep", "30")
    proc = subprocess.Popen(runc_cmd(rund, "wait", jid), stderr=subprocess.PIPE)
    time.sleep(0.3)
    os.kill(supervisor_pid(rund, jid), signal.SIGKILL)
    assert proc.wait(20) == EXIT_LOST

    # Unknown and foreign ids fail as calls do.
    r = runc(rund, "wait", jid, who="client3")
    assert r.returncode == 1 and b"NOT_FOUND" in r.stderr

    # grpcio: Wait answers with the final status.
    x = stub(channel(rund))
    s = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", "exit 3")
    st = x.Wait(pb.JobIdentifier(ulid=jid), timeout=20)
    assert st.state == pb.JobStatus.EXITED and st.exit_code.value == 3


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_wait_across_restart(rund, pb, sig):
    jid = runc_start(rund, "sh", "-c", "sleep 3; exit 42")
    waiter = subprocess.Popen(runc_cmd(rund, "wait", jid), stderr=subprocess.PIPE)
    x = stub(channel(rund))
    fut = x.Wait.future(pb.JobIdentifier(ulid=jid))
    time.sleep(0.5)
    rund.restart(sig=sig)
    # grpcio's Wait was told to call again (drain) or lost its connection.
    with pytest.raises(grpc.RpcError) as e:
        fut.result(timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert waiter.wait(30) == 42, waiter.stderr.read()
    st = stub(channel(rund)).Wait(pb.JobIdentifier(ulid=jid), timeout=30)
    assert st.exit_code.value == 42


def test_start_wait(rund):
    r = runc(rund, "start", "-wait", "sh", "-c", "echo out; sleep 0.3; echo err >&2; exit 4")
    assert r.returncode == 4
    assert r.stdout == b"out\n"
    lines = r.stderr.decode().splitlines()
    assert len(lines[0]) == 26 and lines[1] == "err"
    r = runc(rund, "start", "-wait", "sh", "-c", "kill -TERM $$")
    assert r.returncode == 128 + signal.SIGTERM


# ---- graceful stop and run-time limit -----------------------------------------

TRAPS = "trap 'echo got TERM; exit 0' TERM; echo ready; while :; do sleep 0.1; done"
IGNORES = "trap '' TERM; echo ready; while :; do sleep 0.1; done"


def ready(rund, jid):
    """Waits until the job printed "ready" (its traps are set)."""
    path = os.path.join(rund.state_dir, "jobs", jid, "log.1")  # its first segment

    def seen():
        try:
            with open(path, "rb") as f:
                return b"ready" in f.read()
        except FileNotFoundError:
            return False
    assert wait_for(seen, 20), "job %s never got ready" % jid


def test_graceful_stop_trapping_job(rund, pb):
    s = stub(channel(rund))
    jid = runc_start(rund, "sh", "-c", TRAPS)
    ready(rund, jid)
    t0 = time.time()
    r = runc(rund, "stop", "-signal", "TERM", "-grace", "20s", jid)
    took = time.time() - t0
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["exit_code"] == 0 and st["stopped"] and not st["killed"]
    assert took < 15  # it ended on TERM, long before the grace period
    out, _ = output(s, pb, jid)
    assert b"got TERM" in out


def test_graceful_stop_ignoring_job(rund, pb):
    s = stub(channel(rund))
    jid = runc_start(rund, "sh", "-c", IGNORES)
    ready(rund, jid)
    t0 = time.time()
    r = runc(rund, "stop", "-signal", "SIGTERM", "-grace", "1500ms", jid)
    took = time.time() - t0
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["killed"] and st["signal"] == signal.SIGKILL and st["stopped"]
    assert took >= 1.4  # the grace period was given

    # grpcio, default target: the main process.
    x = stub(channel(rund))
    jid = start(s, pb, "sh", "-c", IGNORES)
    ready(rund, jid)
    st = x.Terminate(pb.JobTerminateRequest(ulid=jid, signal=signal.SIGTERM,
                                            grace={"nanos": 300000000}), timeout=30)
    assert st.killed and st.signal == signal.SIGKILL and st.stopped
    # Bad requests are refused by name.
    with pytest.raises(grpc.RpcError) as e:
        x.Terminate(pb.JobTerminateRequest(ulid=jid, signal=99), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "signal 99" in e.value.details()


# main traps TERM and waits for its child, which also traps TERM: only a
# signal to the whole group reaches the child.
FAMILY = ("trap 'echo main got TERM; wait; exit 5' TERM; "
          "(trap 'echo child got TERM; exit 0' TERM; while :; do sleep 0.1; done) & "
          "echo ready; wait")


@pytest.mark.parametrize("to", ["main", "group"])
def test_stop_target(rund, pb, to):
    s = stub(channel(rund))
    jid = runc_start(rund, "sh", "-c", FAMILY)
    ready(rund, jid)
    r = runc(rund, "stop", "-signal", "TERM", "-grace", "2s", "-to", to, jid)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    out, _ = output(s, pb, jid)
    assert b"main got TERM" in out
    if to == "group":
        assert b"child got TERM" in out
        assert st["exit_code"] == 5
    else:
        assert b"child got TERM" not in out
        assert st["signal"] == signal.SIGKILL  # main waited for its child until the kill


def test_max_run_time(rund, pb):
    t0 = time.time()
    r = runc(rund, "start", "-wait", "-max_run_time", "1s", "sleep", "30")
    took = time.time() - t0
    assert r.returncode == 128 + signal.SIGTERM, r.stderr
    assert 0.9 <= took < 20
    jid = r.stderr.decode().splitlines()[0]
    st = json.loads(runc(rund, "status", jid).stdout)
    assert st["timed_out"] and st["signal"] == signal.SIGTERM and not st["stopped"]

    # One that ignores TERM is killed after run_time_grace.
    s = stub(channel(rund))
    req = pb.JobStartRequest(name="sh", args=["-c", IGNORES])
    req.max_run_time.FromMilliseconds(500)
    req.run_time_grace.FromMilliseconds(500)
    jid = s.Start(req, timeout=10).ulid
    st = stub(channel(rund)).Wait(pb.JobIdentifier(ulid=jid), timeout=30)
    assert st.timed_out and st.signal == signal.SIGKILL
    # A job that ends in time is not timed out.
    r = runc(rund, "start", "-wait", "-max_run_time", "1h", "true")
    assert r.returncode == 0
    jid = r.stderr.decode().splitlines()[0]
    assert not json.loads(runc(rund, "status", jid).stdout)["timed_out"]


def test_max_run_time_survives_restart(rund, pb):
    jid = runc_start(rund, "-max_run_time", "2s", "sleep", "60")
    rund.restart(sig=signal.SIGKILL)
    r = runc(rund, "wait", jid, timeout=40)
    assert r.returncode == 128 + signal.SIGTERM
    assert json.loads(runc(rund, "status", jid).stdout)["timed_out"]


# ---- environment and working directory ---------------------------------------


def test_env_and_cwd(rund, pb):
    r = runc(rund, "start", "-wait", "-env", "A=1 2", "-env", "HOME=/srv", "-env", "B=",
             "-cwd", "/usr/bin", "sh", "-c", "pwd; env | sort")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "/usr/bin"
    env = sorted(lines[1:])
    # The documented default, with HOME replaced, A and B added; sh adds
    # PWD (and may add SHLVL/OLDPWD), nothing else.
    want = {"A=1 2", "B=", "HOME=/srv", "LANG=C.UTF-8",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    assert want <= set(env), env
    assert set(env) - want <= {"PWD=/usr/bin", "SHLVL=1", "OLDPWD=/"}, env

    # Defaults without flags.
    r = runc(rund, "start", "-wait", "sh", "-c", "pwd; echo $HOME $LANG")
    assert r.stdout == b"/\n/ C.UTF-8\n"


def test_env_and_cwd_validation(rund, pb):
    cases = [
        (["-env", "NOEQUALS"], "env[0] \"NOEQUALS\" is not KEY=VALUE"),
        (["-env", "A=1", "-env", "=v"], "env[1] \"=v\" has an empty key"),
        (["-cwd", "relative"], "cwd \"relative\" is not an absolute path"),
        (["-env", "K=" + "x" * 40000], "at most 32768"),
    ]
    for flags, msg in cases:
        r = runc(rund, "start", *flags, "true")
        assert r.returncode == 1, flags
        assert b"INVALID_ARGUMENT" in r.stderr and msg.encode() in r.stderr, r.stderr
    r = runc(rund, "start", "-cwd", "/rund-no-such-dir", "true")
    assert r.returncode == 1
    assert b"FAILED_PRECONDITION" in r.stderr and b"/rund-no-such-dir" in r.stderr, r.stderr
    # A directory the job's uid cannot enter fails the same way.
    r = runc(rund, "start", "-cwd", "/root", "true")
    if os.stat("/root").st_mode & 0o001 == 0:
        assert b"FAILED_PRECONDITION" in r.stderr and b"/root" in r.stderr, r.stderr

    s = stub(channel(rund))
    bad = [
        (pb.JobStartRequest(name="true", env=["A=1", "B=x\0y"]), "env[1] contains a NUL byte"),
        (pb.JobStartRequest(name="true", cwd="/usr\0/bin"), "cwd contains a NUL byte"),
        (pb.JobStartRequest(name="true", env=["K%d=v" % i for i in range(257)]),
         "257 env entries"),
    ]
    for req, msg in bad:
        with pytest.raises(grpc.RpcError) as e:
            s.Start(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert msg in e.value.details(), e.value.details()
    # Nothing was left behind by the refused starts.
    assert list(stub(channel(rund)).List(pb.JobListRequest(), timeout=10)) == []


# ---- Health/Watch -------------------------------------------------------------


def test_health_watch(rund, pb):
    x = stub(channel(rund))
    it = x.Watch(pb.HealthCheckRequest(), timeout=60)
    first = next(it)
    assert first.status == pb.HealthCheckResponse.SERVING
    unknown = next(x.Watch(pb.HealthCheckRequest(service="nope"), timeout=10))
    assert unknown.status == pb.HealthCheckResponse.SERVICE_UNKNOWN
    got = []

    def rest():
        try:
            for m in it:
                got.append(m.status)
        except grpc.RpcError:
            pass
    t = threading.Thread(target=rest)
    t.start()
    time.sleep(0.3)
    assert got == []  # SERVING stays open
    rund.proc.send_signal(signal.SIGTERM)
    t.join(20)
    assert got == [pb.HealthCheckResponse.NOT_SERVING]
    rund.stop()
    rund.start()


# ---- help ---------------------------------------------------------------------


@pytest.mark.parametrize("cmd,words", [
    ("list", ["-json", "-state", "-limit"]),
    ("ps", ["-json"]),
    ("wait", ["125", "128+N"]),
    ("stop", ["-signal", "-grace", "-to", "main", "group"]),
    ("start", ["-env", "-cwd", "-max_run_time", "-run_time_grace", "-wait", "LANG=C.UTF-8"]),
])
def test_help(cmd, words):
    r = subprocess.run([RUNC, cmd, "-h"], capture_output=True, timeout=10)
    assert r.returncode == 0
    for w in words:
        assert w.encode() in r.stdout, (cmd, w)


def test_hostile_values_refused(rund, pb):
    """Values a review found could wedge or mislead: each refused by name."""
    s = stub(channel(rund))
    x = stub(channel(rund))
    jid = start(s, pb, "sleep", "60")
    # SIGSTOP cannot be forwarded by a confined job's init: it would stop
    # the init itself and the job could never end.
    with pytest.raises(grpc.RpcError) as e:
        x.Terminate(pb.JobTerminateRequest(ulid=jid, signal=signal.SIGSTOP), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert "SIGSTOP" in e.value.details()
    # An id followed by a NUL is not the job's id.
    with pytest.raises(grpc.RpcError) as e:
        s.Status(pb.JobIdentifier(ulid=jid + "\0junk"), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert "NUL" in e.value.details()
    # A run-time limit that would overflow the deadline.
    req = pb.JobStartRequest(name="sleep", args=["5"])
    req.max_run_time.seconds = 18446744073
    with pytest.raises(grpc.RpcError) as e:
        s.Start(req, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_run_time" in e.value.details()
    # The job is untouched by all of it.
    assert s.Status(pb.JobIdentifier(ulid=jid), timeout=10).state == pb.JobStatus.RUNNING
    s.Stop(pb.JobIdentifier(ulid=jid), timeout=20)
