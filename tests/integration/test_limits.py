"""Server-side bounds that a client can run into: connections and the size
of a command line."""

import socket
import ssl
import time

import grpc
import pytest

from conftest import TLS, channel, stub, wait_for
from test_jobs import job_dirs

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
    from conftest import RUND
    p = subprocess.run([RUND, "serve", "-addr", "127.0.0.1:0", "-state_dir", rund.state_dir,
                        "-ca", os.path.join(TLS, "ca.pem"),
                        "-cert", os.path.join(TLS, "server.pem"),
                        "-key", os.path.join(TLS, "server-key.pem"),
                        "-cgroup", rund.cgroup + "-second"],
                       capture_output=True, timeout=10)
    assert p.returncode == 1
    assert b"another rund already serves the state directory" in p.stderr
    os.rmdir(os.path.join(rund.cgroup + "-second", "jobs"))
    os.rmdir(os.path.join(rund.cgroup + "-second", "daemon"))
    os.rmdir(rund.cgroup + "-second")
