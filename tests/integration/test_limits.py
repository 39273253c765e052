"""Server-side bounds that a client can run into: connections, the size
of a command line, and job limits (each a row of job_limit_defs)."""

import socket
import ssl
import time

import grpc
import pytest

from conftest import ENFORCE, TLS, channel, controllers_available, runc, stub, wait_for
from test_jobs import job_dirs, start

import os


def tls_connect(port):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(TLS, "ca.pem"))
    ctx.load_cert_chain(os.path.join(TLS, "client.pem"), os.path.join(TLS, "client-key.pem"))
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def test_max_connections_bounds_and_recovers(rund_factory, pb):
    r = rund_factory("-max_connections", "2")
    held = [tls_connect(r.port), tls_connect(r.port)]
    for h in held:
        h.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    # A third connection is told why: its call gets RESOURCE_EXHAUSTED
    # naming the limit (it holds only a handshake slot until it closes).
    extra = channel(r, options=[("grpc.use_local_subchannel_pool", 1)])
    with pytest.raises(grpc.RpcError) as e:
        stub(extra).Check(pb.HealthCheckRequest(), timeout=5)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit of 2 connections" in e.value.details()
    extra.close()
    for h in held:
        h.close()
    # Freed slots are usable again.
    s = stub(channel(r))
    assert wait_for(lambda: _check(s, pb), 5)


def _check(s, pb):
    try:
        return s.Check(pb.HealthCheckRequest(), timeout=2).status == 1
    except grpc.RpcError:
        return False


def test_command_line_limit(rund, pb):
    s = stub(channel(rund))
    big = ["x" * 100000] * 11   # about 1.1 MB: above the request limit
    with pytest.raises(grpc.RpcError) as e:
        s.Start(pb.JobStartRequest(name="true", args=big), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "too long" in e.value.details()
    assert job_dirs(rund) == []
    # Just under it still runs.
    jid = s.Start(pb.JobStartRequest(name="true", args=["y" * 100000] * 9), timeout=10).ulid
    assert len(jid) == 26


def test_one_daemon_per_state_dir(rund):
    import subprocess
    from conftest import RUND, UID_SLOT_SIZE, lock_uid_slot
    first, slot = lock_uid_slot()
    p = subprocess.run([RUND, "serve", "-addr", "127.0.0.1:0", "-state_dir", rund.state_dir,
                        "-ca", os.path.join(TLS, "ca.pem"),
                        "-cert", os.path.join(TLS, "server.pem"),
                        "-key", os.path.join(TLS, "server-key.pem"),
                        "-cgroup", rund.cgroup + "-second",
                        "-job_uids", "%d-%d" % (first, first + UID_SLOT_SIZE - 1)],
                       capture_output=True, timeout=10)
    assert p.returncode == 1
    assert b"another rund already serves the state directory" in p.stderr
    os.rmdir(os.path.join(rund.cgroup + "-second", "jobs"))
    os.rmdir(os.path.join(rund.cgroup + "-second", "daemon"))
    os.rmdir(rund.cgroup + "-second")
    slot.close()


# ---- limits: every JobStartRequest limit field is one table row -------------

WRAPPERS = ("google.protobuf.UInt32Value", "google.protobuf.UInt64Value")
LIMIT_CONTROLLERS = {"cpu", "memory", "io", "pids"}


def limit_fields(pb):
    return [f.name for f in pb.JobStartRequest.DESCRIPTOR.fields
            if f.message_type is not None and f.message_type.full_name in WRAPPERS]


def test_limit_fields_include_max_pids(pb):
    # The original fields keep their numbers; max_pids is an extension.
    by_name = pb.JobStartRequest.DESCRIPTOR.fields_by_name
    assert [by_name[n].number for n in ("max_cpu_bandwidth", "max_memory_usage", "max_rbps",
                                         "max_wbps", "max_riops", "max_wiops")] == list(range(3, 9))
    assert by_name["max_pids"].number > 8
    assert by_name["max_pids"].message_type.full_name == "google.protobuf.UInt32Value"


@pytest.mark.skipif(ENFORCE or bool(controllers_available() & LIMIT_CONTROLLERS),
                    reason="needs a hierarchy without cpu, memory, io and pids (hybrid host)")
def test_every_limit_field_reaches_the_controller_check(rund, pb):
    """Each limit, sent over gRPC and as a runc flag, gets to the controller
    check under its own name: a layer that dropped one would start the job."""
    s = stub(channel(rund))
    help_text = runc(rund, "start", "-h").stdout.decode()
    fields = limit_fields(pb)
    assert "max_pids" in fields
    for name in fields:
        with pytest.raises(grpc.RpcError) as e:
            start(s, pb, "true", **{name: 100000})
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION, name
        assert e.value.details().endswith("(needed for %s)" % name), e.value.details()
        assert "-" + name + " " in help_text, name
        r = runc(rund, "start", "-" + name, "100000", "true")
        assert r.returncode == 1, (name, r)
        assert b"FAILED_PRECONDITION" in r.stderr, r.stderr
        assert ("(needed for %s)" % name).encode() in r.stderr, r.stderr
    assert job_dirs(rund) == []


@pytest.mark.skipif("pids" in controllers_available(), reason="pids controller present")
def test_max_pids_without_controller(rund, pb):
    s = stub(channel(rund))
    with pytest.raises(grpc.RpcError) as e:
        start(s, pb, "true", max_pids=64)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.details().startswith("pids controller is not available"), e.value.details()
    assert "max_pids" in e.value.details()
    r = runc(rund, "start", "-max_pids", "64", "true")
    assert r.returncode == 1
    assert b"FAILED_PRECONDITION: pids controller is not available" in r.stderr, r.stderr
    assert job_dirs(rund) == []


@pytest.mark.parametrize("value, expect", [
    (0, "max_pids 0 must be greater than 0"),
    (4194305, "max_pids 4194305 is out of range [1, 4194304]"),
])
def test_max_pids_bounds(rund, pb, value, expect):
    s = stub(channel(rund))
    with pytest.raises(grpc.RpcError) as e:
        start(s, pb, "true", max_pids=value)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert expect in e.value.details()
    r = runc(rund, "start", "-max_pids", str(value), "true")
    assert r.returncode == 1 and b"INVALID_ARGUMENT" in r.stderr, r.stderr
    assert job_dirs(rund) == []


def test_runc_max_pids_above_the_wire_width(rund):
    r = runc(rund, "start", "-max_pids", "4294967296", "true")
    assert r.returncode == 2
    assert b'invalid value "4294967296" for flag -max_pids: above 4294967295' in r.stderr
    assert job_dirs(rund) == []
