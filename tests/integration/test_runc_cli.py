"""The runc CLI end to end: flag parsing and usage errors (no server needed),
exit codes and messages for RPC and transport failures, the JSON status
output, deadlines, and the behaviour of `runc log` in pipelines."""

import json
import os
import socket
import subprocess
import threading
import time

import pytest

import pki
from conftest import ROOT, RUNC, TLS, channel, runc, stub, wait_for

UNKNOWN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

pytestmark = pytest.mark.skipif(not os.access(RUNC, os.X_OK), reason="runc is not built")


def bare(*args, timeout=30):
    """runc exactly as given: no connection flags added. It runs in the
    repository root, where its default -ca/-cert/-key (tls/...) exist."""
    return subprocess.run([RUNC] + list(args), capture_output=True, timeout=timeout, cwd=ROOT)


def conn_flags(port, who="client", ca=None):
    return ["-addr", "localhost:%d" % port, "-ca", ca or os.path.join(TLS, "ca.pem"),
            "-cert", os.path.join(TLS, who + ".pem"),
            "-key", os.path.join(TLS, who + "-key.pem")]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- usage: exit 2, or 0 with usage on stdout for -h ------------------------

@pytest.mark.parametrize("args,needle", [
    ((), b"no command"),
    (("bogus",), b'unknown command "bogus"'),
    (("status",), b"missing ID"),
    (("stop",), b"missing ID"),
    (("log",), b"missing ID"),
    (("start",), b"missing NAME"),
    (("status", UNKNOWN, "extra"), b'unexpected argument "extra"'),
    (("status", "-foo", UNKNOWN), b"flag provided but not defined: -foo"),
    (("-foo", "status", UNKNOWN), b"flag provided but not defined: -foo"),
    (("status", "-timeout"), b"flag needs an argument: -timeout"),
    (("status", "-timeout", "5", UNKNOWN), b'invalid value "5" for flag -timeout'),
    (("start", "-max_rbps", "abc", "true"), b'invalid value "abc" for flag -max_rbps'),
    (("start", "-max_memory_usage", "99999999999T", "true"),
     b'invalid value "99999999999T" for flag -max_memory_usage: value out of range'),
    (("start", "-max_cpu_bandwidth", "4294967296", "true"), b"-max_cpu_bandwidth"),
    (("status", "---addr", "x", UNKNOWN), b"bad flag syntax: ---addr"),
])
def test_usage_errors_exit_2(args, needle):
    r = bare(*args)
    assert r.returncode == 2, r
    assert needle in r.stderr, r.stderr
    assert r.stdout == b""
    assert r.stderr.startswith(b"runc: ")


@pytest.mark.parametrize("args", [("-h",), ("-help",), ("--help",)])
def test_help_exit_0(args):
    r = bare(*args)
    assert r.returncode == 0, r
    out = r.stdout.decode()
    assert out.startswith("Usage: runc")
    for word in ("start", "stop", "status", "log", "-addr", "-ca", "-cert", "-key", "-timeout",
                 'default "localhost:8000"'):
        assert word in out, word


@pytest.mark.parametrize("cmd", ["status", "stop", "log", "logs", "start", "health"])
def test_command_help_exit_0(cmd):
    r = bare(cmd, "-h")
    assert r.returncode == 0, r
    out = r.stdout.decode()
    assert out.startswith("Usage: runc %s" % cmd)
    assert "-addr" in out and "-timeout" in out
    if cmd == "start":
        for f in ("-max_cpu_bandwidth", "-max_memory_usage", "-max_rbps", "-max_wbps",
                  "-max_riops", "-max_wiops"):
            assert f in out, f


# ---- transport failures: exit 1 with a clear message ------------------------

def test_connection_refused():
    r = bare("status", "-addr", "127.0.0.1:%d" % free_port(), UNKNOWN)
    assert r.returncode == 1
    assert r.stderr.startswith(b"runc: status: connect 127.0.0.1:"), r.stderr
    assert b"Connection refused" in r.stderr


def test_bad_address():
    # A malformed address is a usage error (2), not a failed call (1).
    for addr in ("localhost", ":8000", "[::1]8000", "h:99999"):
        r = bare("status", "-addr", addr, UNKNOWN)
        assert r.returncode == 2, (addr, r)
        assert r.stderr == (b'runc: -addr: bad address "%s": want host:port or '
                            b'[v6addr]:port\n' % addr.encode()), r.stderr


def test_missing_key_file(tmp_path):
    r = bare("status", "-addr", "127.0.0.1:%d" % free_port(),
             "-key", str(tmp_path / "nope.pem"), UNKNOWN)
    assert r.returncode == 1
    assert b"nope.pem" in r.stderr, r.stderr


def test_not_a_tls_server():
    """A peer that accepts and hangs up: a TLS failure, not a hang."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)

    def serve():
        for _ in range(1):
            c, _ = srv.accept()
            c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            c.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = bare("status", "-addr", "127.0.0.1:%d" % srv.getsockname()[1], UNKNOWN, timeout=10)
    srv.close()
    assert r.returncode == 1
    assert b"TLS handshake with 127.0.0.1:" in r.stderr, r.stderr


def test_handshake_timeout():
    """A peer that accepts and never answers: -timeout bounds the wait."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    t0 = time.time()
    r = bare("status", "-timeout", "300ms", "-addr", "127.0.0.1:%d" % srv.getsockname()[1],
             UNKNOWN, timeout=10)
    took = time.time() - t0
    srv.close()
    assert r.returncode == 1
    assert b"timed out" in r.stderr, r.stderr
    assert took < 3


# ---- against rund -------------------------------------------------------------

def test_unknown_id_not_found(rund):
    r = runc(rund, "status", UNKNOWN)
    assert r.returncode == 1
    assert r.stderr.startswith(b"runc: status: NOT_FOUND: "), r.stderr
    assert r.stdout == b""


@pytest.mark.parametrize("cmd", ["status", "stop", "log"])
def test_malformed_id_invalid_argument(rund, cmd):
    r = runc(rund, cmd, "not-a-ulid")
    assert r.returncode == 1
    assert r.stderr.startswith(b"runc: %s: INVALID_ARGUMENT: " % cmd.encode()), r.stderr
    assert b"not-a-ulid" in r.stderr


def test_connection_flags_before_the_command(rund):
    r = bare(*conn_flags(rund.port), "status", UNKNOWN)
    assert r.returncode == 1
    assert r.stderr.startswith(b"runc: status: NOT_FOUND: "), r.stderr
    # ... and a flag after the command wins over the same flag before it.
    r = bare("-addr", "127.0.0.1:%d" % free_port(), "status", *conn_flags(rund.port), UNKNOWN)
    assert r.stderr.startswith(b"runc: status: NOT_FOUND: "), r.stderr


def test_wrong_ca_fails_verification(rund, tmp_path):
    ca, _ = pki.make_ca(tmp_path)
    r = bare("status", *conn_flags(rund.port, ca=ca), UNKNOWN)
    assert r.returncode == 1
    assert b"certificate verify failed" in r.stderr, r.stderr


def test_foreign_client_certificate_rejected(rund, tmp_path):
    cert, key = pki.foreign_client(tmp_path)
    r = bare("status", "-addr", "localhost:%d" % rund.port, "-ca", os.path.join(TLS, "ca.pem"),
             "-cert", cert, "-key", key, UNKNOWN)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "rejected our certificate" in err or "refuse our certificate" in err, err


def test_timeout_on_a_log_that_does_not_end(rund, pb):
    s = stub(channel(rund))
    jid = s.Start(pb.JobStartRequest(name="sh", args=["-c", "echo hi; sleep 100"]),
                  timeout=10).ulid
    try:
        t0 = time.time()
        r = runc(rund, "log", "-timeout", "500ms", jid)
        took = time.time() - t0
        assert r.returncode == 1
        assert r.stdout == b"hi\n"
        assert b"runc: log: DEADLINE_EXCEEDED: " in r.stderr, r.stderr
        assert took < 5
    finally:
        s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)


def test_status_json_has_every_field(rund, pb):
    r = runc(rund, "start", "sh", "-c", "exit 7")
    assert r.returncode == 0, r.stderr
    jid = r.stdout.decode().strip()
    assert len(jid) == 26 and r.stdout.endswith(b"\n")
    s = stub(channel(rund))
    wait_for(lambda: s.Status(pb.JobIdentifier(ulid=jid), timeout=5).state == pb.JobStatus.EXITED)
    r = runc(rund, "status", jid)
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"}\n")
    js = json.loads(r.stdout)
    assert list(js) == ["stopped", "killed", "exit_code", "user_time", "system_time",
                        "memory_current", "state", "signal", "oom_killed", "memory_peak",
                        "start_time", "end_time", "command", "log_bytes", "log_truncated",
                        "uid", "timed_out", "log_end", "log_lost", "log_first"]
    assert js["exit_code"] == 7 and js["state"] == "EXITED" and js["signal"] == 0
    assert js["command"] == ["sh", "-c", "exit 7"]
    for f in ("memory_current", "memory_peak", "log_bytes", "log_end", "log_lost", "log_first"):
        assert isinstance(js[f], str) and js[f].isdigit(), (f, js[f])
    for f in ("user_time", "system_time"):
        assert js[f] is None or (js[f].endswith("s") and float(js[f][:-1]) >= 0), js[f]
    for f in ("start_time", "end_time"):
        assert js[f].endswith("Z") and js[f][10] == "T", js[f]
    # The same job through grpcio agrees.
    st = s.Status(pb.JobIdentifier(ulid=jid), timeout=5)
    assert js["start_time"].startswith(
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(st.start_time.seconds)))


def test_status_json_escapes_strings(rund):
    arg = b'q"b\\s\x01\tn\n\xff\xc3\x28 \xc3\xa9'
    r = subprocess.run([RUNC.encode(), b"start"] + [a.encode() for a in conn_flags(rund.port)] +
                       [b"true", arg], capture_output=True, timeout=30)
    if r.returncode == 1:
        # A server that insists on UTF-8 strings (proto3) may refuse it.
        assert b"INVALID_ARGUMENT" in r.stderr, r.stderr
        return
    assert r.returncode == 0, r.stderr
    jid = r.stdout.decode().strip()
    r = runc(rund, "status", jid)
    assert r.returncode == 0, r.stderr
    js = json.loads(r.stdout)
    assert js["command"][1] == 'q"b\\s\x01\tn\n\ufffd\ufffd( \u00e9'


def test_log_into_closed_pipe_exits_quietly(rund, pb):
    s = stub(channel(rund))
    jid = s.Start(pb.JobStartRequest(name="head", args=["-c", "20000000", "/dev/zero"]),
                  timeout=10).ulid
    p = subprocess.Popen([RUNC, "log"] + conn_flags(rund.port) + [jid],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(p.stdout.read(1000)) == 1000
    p.stdout.close()
    assert p.wait(10) == -13  # SIGPIPE, like any Unix filter
    assert p.stderr.read() == b""


def test_health(rund):
    r = runc(rund, "health")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"SERVING\n"
