"""Hostile and careless clients: garbage instead of TLS or HTTP/2, lying
message lengths, stalled handshakes, many connections. After each the
daemon must still serve and hold no more descriptors than before."""

import os
import socket
import ssl
import time

import pytest

from conftest import channel, stub, wait_for
from test_transport import (DATA, END_HEADERS, END_STREAM, HEADERS, NO_HPACK_TABLE, PREFACE,
                            RawH2, frame, grpc_msg, grpc_status_literal, request_headers,
                            tls_context)

CHECK = "/grpc.health.v1.Health/Check"


def serving(rund, pb):
    s = stub(channel(rund))
    return s.Check(pb.HealthCheckRequest(), timeout=5).status == pb.HealthCheckResponse.SERVING


def baseline_fds(rund, pb):
    # One grpcio round trip first, so lazily opened descriptors exist.
    assert serving(rund, pb)
    return rund.fd_count()


def settle_fds(rund, base):
    assert wait_for(lambda: rund.fd_count() <= base, 10), (rund.fd_count(), base)


def server_closes(sock, timeout=5):
    """Reads until EOF or reset; True if the server closed within timeout."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, ssl.SSLError):
        pass
    except socket.timeout:
        return False
    return True


def test_random_bytes_instead_of_client_hello(rund, pb):
    base = baseline_fds(rund, pb)
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", rund.port), timeout=5)
        junk = bytearray(os.urandom(2048))
        # A first byte of 0x14..0x18 looks like a TLS record header and
        # OpenSSL would wait for the announced length (then the handshake
        # timer drops it): keep this test about bytes that are not TLS.
        if 0x14 <= junk[0] <= 0x18:
            junk[0] = 0x47
        # Likewise a set high bit with 1 in the third byte is the header of
        # an SSLv2-compatible ClientHello of up to 32 KiB, which OpenSSL
        # also waits for (seen once in ~25 CI runs).
        if junk[0] & 0x80 and junk[2] == 1:
            junk[2] = 0
        s.sendall(bytes(junk))
        # Bytes OpenSSL cannot yet reject wait for the handshake deadline
        # (5 s by default): allow well past it, the point is that it closes.
        assert server_closes(s, timeout=20)
        s.close()
    assert serving(rund, pb)
    settle_fds(rund, base)


def test_garbage_instead_of_http2_preface(rund, pb):
    base = baseline_fds(rund, pb)
    c = RawH2(rund, preface=False)
    c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n" + os.urandom(512))
    assert c.closed_by_server()
    c.close()
    # Preface right, then frames of random bytes.
    for _ in range(10):
        c = RawH2(rund)
        c.send(os.urandom(4096))
        assert c.closed_by_server()
        c.close()
    assert serving(rund, pb)
    settle_fds(rund, base)


def test_lying_length_prefix(rund, pb):
    base = baseline_fds(rund, pb)
    c = RawH2(rund)
    # Announces 1000 bytes, sends 3, ends the stream: INTERNAL (13).
    c.send(frame(HEADERS, END_HEADERS, 1, request_headers(CHECK)))
    c.send(frame(DATA, END_STREAM, 1, grpc_msg(b"abc", length=1000)))
    frames = c.until_stream_end(1)
    assert frames[-1][0] == HEADERS and grpc_status_literal(frames[-1][3], 13), frames
    # Announces 100 MiB and never sends it: RESOURCE_EXHAUSTED (8) at
    # once, without waiting for the body or the end of the stream.
    c.send(frame(HEADERS, END_HEADERS, 3, request_headers(CHECK)))
    c.send(frame(DATA, 0, 3, grpc_msg(b"", length=100 << 20)))
    frames = c.until_stream_end(3)
    assert frames[-1][0] == HEADERS and grpc_status_literal(frames[-1][3], 8), frames
    # Bad flag byte: INTERNAL.
    c.send(frame(HEADERS, END_HEADERS, 5, request_headers(CHECK)))
    c.send(frame(DATA, END_STREAM, 5, grpc_msg(b"", flag=9)))
    frames = c.until_stream_end(5)
    assert grpc_status_literal(frames[-1][3], 13), frames
    # Two messages on a unary method: UNIMPLEMENTED (12); the connection
    # still carries a good call afterwards.
    c.send(frame(HEADERS, END_HEADERS, 7, request_headers(CHECK)))
    c.send(frame(DATA, END_STREAM, 7, grpc_msg(b"") + grpc_msg(b"")))
    frames = c.until_stream_end(7)
    assert grpc_status_literal(frames[-1][3], 12), frames
    c.send(frame(HEADERS, END_HEADERS, 9, request_headers(CHECK)))
    c.send(frame(DATA, END_STREAM, 9, grpc_msg(b"")))
    frames = c.until_stream_end(9)
    assert any(f[0] == DATA for f in frames)  # the HealthCheckResponse
    assert grpc_status_literal(frames[-1][3], 0)
    c.close()
    assert serving(rund, pb)
    settle_fds(rund, base)


def test_1000_sequential_connections(rund, pb):
    base = baseline_fds(rund, pb)
    ctx = tls_context()
    body = frame(HEADERS, END_HEADERS, 1, request_headers(CHECK)) + \
        frame(DATA, END_STREAM, 1, grpc_msg(b""))
    t0 = time.monotonic()
    for i in range(1000):
        raw = socket.create_connection(("127.0.0.1", rund.port), timeout=10)
        sock = ctx.wrap_socket(raw, server_hostname="localhost")
        c = RawH2.__new__(RawH2)
        c.sock, c.buf = sock, b""
        c.send(PREFACE + NO_HPACK_TABLE + body)
        frames = c.until_stream_end(1)
        assert grpc_status_literal(frames[-1][3], 0), (i, frames)
        c.close()
    elapsed = time.monotonic() - t0
    print("\n1000 connections (TLS handshake + Check): %.2f s, %.1f ms each" %
          (elapsed, elapsed))
    assert serving(rund, pb)
    settle_fds(rund, base)


def test_stalled_handshake_dropped(rund_factory, pb):
    rund = rund_factory("-handshake_timeout", "1s")
    base = baseline_fds(rund, pb)
    # Silent client: TCP only.
    silent = socket.create_connection(("127.0.0.1", rund.port), timeout=5)
    # Client that stops half-way: a truncated ClientHello record.
    half = socket.create_connection(("127.0.0.1", rund.port), timeout=5)
    half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(40))
    t0 = time.monotonic()
    assert server_closes(silent, timeout=5)
    assert server_closes(half, timeout=5)
    elapsed = time.monotonic() - t0
    assert 0.7 <= elapsed <= 3, elapsed
    silent.close()
    half.close()
    assert serving(rund, pb)
    settle_fds(rund, base)


def test_silent_after_tls_handshake_dropped(rund_factory, pb):
    """TLS completes but the HTTP/2 preface never comes: the same deadline
    applies, so a silent client cannot hold a connection slot."""
    rund = rund_factory("-handshake_timeout", "1s")
    t0 = time.monotonic()  # the deadline runs from accept()
    c = RawH2(rund, preface=False)
    assert server_closes(c.sock)  # reads only: no SETTINGS ack, nothing
    assert 0.7 <= time.monotonic() - t0 <= 3
    c.close()
    assert serving(rund, pb)


def test_established_connection_not_dropped_by_handshake_timer(rund_factory, pb):
    rund = rund_factory("-handshake_timeout", "1s")
    s = stub(channel(rund))
    assert s.Check(pb.HealthCheckRequest(), timeout=5)
    time.sleep(1.5)
    assert s.Check(pb.HealthCheckRequest(), timeout=5)


def test_client_vanishes_mid_stream(rund, pb):
    """Start a Log, read a little, drop the socket: the daemon cancels the
    stream and frees it."""
    base = baseline_fds(rund, pb)
    s = stub(channel(rund))
    jid = s.Start(pb.JobStartRequest(name="sh", args=["-c", "yes | head -c 50000000"]),
                  timeout=10).ulid
    for _ in range(5):
        c = RawH2(rund)
        c.send(frame(HEADERS, END_HEADERS, 1, request_headers("/rund.JobController/Log")))
        c.send(frame(DATA, END_STREAM, 1, grpc_msg(pb.JobIdentifier(ulid=jid)
                                                   .SerializeToString())))
        got = 0
        while got < 20000:
            f = c.frame()
            if f[2] == 1 and f[0] == DATA:
                got += len(f[3])
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
    assert serving(rund, pb)
    settle_fds(rund, base + 2)  # the job's own descriptors may still be open
