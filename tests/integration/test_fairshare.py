"""Fair share under hostile load (issue 11): each test runs one attack with
ordinary sockets, a hand-built HTTP/2 client or grpcio, and checks that a
legitimate client is still served, that the attacker gets a clear refusal,
and that the daemon's descriptors and memory return to where they were.

Bounds are generous (the machine is loaded) but each separates the fixed
behaviour from the old one: before, 1,100 bare connections refused every
real client, idle connections stayed forever, and 40 anonymous connections
pinned 640 MiB."""

import os
import resource
import socket
import ssl
import statistics
import struct
import time

import grpc
import pytest

import pki
from conftest import ROOT, TLS, channel, stub, wait_for
from test_transport import (DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS, NO_HPACK_TABLE, PING,
                            PREFACE, RawH2, frame, grpc_msg, grpc_status_literal,
                            request_headers)

FIXTURES = os.path.join(ROOT, "tests", "unit", "fixtures")


@pytest.fixture(autouse=True)
def many_fds():
    """The attacks open thousands of sockets from this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def fresh_channel(rund, who="client", cert=None, key=None):
    """A channel with a connection of its own (grpcio otherwise shares one
    connection among channels with equal arguments)."""
    return channel(rund, who, cert, key, options=[("grpc.use_local_subchannel_pool", 1)])


def timed_check(rund, who="client"):
    """Seconds a new client needs to connect (TCP, TLS, HTTP/2) and get a
    health check answered."""
    t0 = time.monotonic()
    ch = fresh_channel(rund, who)
    try:
        stub(ch).Check(__import__("conftest")._generate_pb().HealthCheckRequest(), timeout=10)
    finally:
        ch.close()
    return time.monotonic() - t0


def settle(rund, fds, timeout=15):
    """Waits until the daemon's descriptor count is back to fds."""
    return wait_for(lambda: rund.fd_count() <= fds, timeout=timeout)


class Conn(RawH2):
    """RawH2 with any certificate and with PING answering switchable."""

    def __init__(self, rund, cert=None, key=None, ack_pings=True):
        self.ack_pings = ack_pings
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.load_verify_locations(os.path.join(TLS, "ca.pem"))
        ctx.load_cert_chain(cert or os.path.join(TLS, "client.pem"),
                            key or os.path.join(TLS, "client-key.pem"))
        ctx.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", rund.port), timeout=10)
        self.sock = ctx.wrap_socket(raw, server_hostname="localhost")
        self.buf = b""
        self.send(PREFACE + NO_HPACK_TABLE)

    def frame(self):
        if self.ack_pings:
            return super().frame()
        hd = self._read(9)
        payload = self._read(int.from_bytes(hd[:3], "big"))
        return hd[3], hd[4], int.from_bytes(hd[5:9], "big") & 0x7FFFFFFF, payload

    def wait_frame(self, ftype, timeout):
        """Reads frames until one of ftype arrives; its arrival time."""
        self.sock.settimeout(timeout)
        while True:
            f = self.frame()
            if f[0] == ftype:
                return time.monotonic()


# ---- handshakes ---------------------------------------------------------

def test_bare_and_half_open_connections_do_not_lock_out(rund, pb):
    """2,000 connections that never finish a handshake (half of them send
    the start of a ClientHello and stop): a real client still gets through
    within a second, and the daemon holds about max_handshakes of them."""
    before = [timed_check(rund) for _ in range(3)]
    time.sleep(0.3)
    base_fds = rund.fd_count()
    socks = []
    try:
        for i in range(2000):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", rund.port))
            except BlockingIOError:
                pass
            socks.append(s)
        # half-open: a TLS record header announcing a ClientHello, then nothing
        time.sleep(0.5)
        for s in socks[::2]:
            try:
                s.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")
            except OSError:
                pass
        time.sleep(0.5)
        during = [timed_check(rund) for _ in range(5)]
        peak_fds = rund.fd_count()
    finally:
        for s in socks:
            s.close()
    after = timed_check(rund)
    print("\nhandshake+Check: before %.1f ms, during (2,000 held) median %.1f max %.1f ms, "
          "after %.1f ms; daemon fds %d -> %d" %
          (statistics.median(before) * 1e3, statistics.median(during) * 1e3,
           max(during) * 1e3, after * 1e3, base_fds, peak_fds))
    # No real client is lost, and each gets through in about its usual
    # time (a ratio to the same run's unloaded handshakes; the absolute
    # target, a second, is for unsanitized builds on a quiet machine).
    assert max(during) < max(1.0, 20 * statistics.median(before)), (before, during)
    assert peak_fds < base_fds + 64 + 32, peak_fds  # -max_handshakes 64
    assert settle(rund, base_fds), rund.fd_count()


# ---- idle connections and keepalive ---------------------------------------

def test_idle_connection_closed_with_goaway(rund_factory, pb):
    rund = rund_factory("-idle_timeout", "1s")
    base_fds = rund.fd_count()
    c = Conn(rund)
    t0 = time.monotonic()
    t = c.wait_frame(GOAWAY, timeout=10)
    assert 0.9 <= t - t0 < 5, t - t0
    assert c.closed_by_server()
    assert settle(rund, base_fds)
    # a connection with an open call is not idle
    s = stub(fresh_channel(rund))
    jid = s.Start(pb.JobStartRequest(name="sleep", args=["30"]), timeout=10).ulid
    try:
        c = Conn(rund)
        c.send(frame(HEADERS, END_HEADERS, 1, request_headers("/rund.JobController/Log")))
        c.send(frame(DATA, END_STREAM, 1, grpc_msg(pb.JobIdentifier(ulid=jid).SerializeToString())))
        c.sock.settimeout(2.5)
        with pytest.raises(socket.timeout):
            c.wait_frame(GOAWAY, timeout=2.5)
        c.close()
    finally:
        s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)


def test_keepalive_pings_find_dead_peer(rund_factory, pb):
    """Under a long Log stream the server PINGs; a peer that answers stays,
    one that never answers (nothing at all arrives) is dropped."""
    rund = rund_factory("-keepalive", "500ms", "-idle_timeout", "0")
    s = stub(fresh_channel(rund))
    jid = s.Start(pb.JobStartRequest(name="sleep", args=["30"]), timeout=10).ulid
    try:
        body = grpc_msg(pb.JobIdentifier(ulid=jid).SerializeToString())
        alive = Conn(rund, ack_pings=True)
        alive.send(frame(HEADERS, END_HEADERS, 1, request_headers("/rund.JobController/Log")))
        alive.send(frame(DATA, END_STREAM, 1, body))
        alive.sock.settimeout(0.5)
        end = time.monotonic() + 2.5
        pings = 0
        while time.monotonic() < end:
            try:
                if alive.frame()[0] == PING:
                    pings += 1
            except socket.timeout:
                pass
        assert pings >= 2, pings  # answered: still served, still pinged
        alive.close()
        dead = Conn(rund, ack_pings=False)
        dead.send(frame(HEADERS, END_HEADERS, 1, request_headers("/rund.JobController/Log")))
        dead.send(frame(DATA, END_STREAM, 1, body))
        t0 = time.monotonic()
        dead.wait_frame(PING, timeout=5)
        # after its request the dead peer sends nothing, not even the ACK
        assert dead.closed_by_server()
        gone = time.monotonic() - t0
        assert gone < 5, gone
    finally:
        s.Stop(pb.JobIdentifier(ulid=jid), timeout=10)


# ---- per identity ---------------------------------------------------------

def test_identity_connection_cap(rund_factory, pb):
    rund = rund_factory("-identity_connections", "2")
    chans = [fresh_channel(rund) for _ in range(2)]
    for ch in chans:
        stub(ch).Check(pb.HealthCheckRequest(), timeout=10)
    third = fresh_channel(rund)
    with pytest.raises(grpc.RpcError) as e:
        stub(third).Check(pb.HealthCheckRequest(), timeout=10)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "limit of 2 connections" in e.value.details()
    # another identity is not affected
    for _ in range(2):
        stub(fresh_channel(rund, "client2")).Check(pb.HealthCheckRequest(), timeout=10)
    # a freed slot is usable again
    chans[0].close()
    time.sleep(0.3)
    assert wait_for(lambda: _check_ok(fresh_channel(rund), pb), timeout=10)


def _check_ok(ch, pb):
    try:
        stub(ch).Check(pb.HealthCheckRequest(), timeout=5)
        return True
    except grpc.RpcError:
        return False
    finally:
        ch.close()


def test_identity_log_stream_and_call_caps(rund_factory, pb):
    rund = rund_factory("-identity_log_streams", "3", "-identity_calls", "5")
    a, b = stub(fresh_channel(rund)), stub(fresh_channel(rund, "client2"))
    ja = a.Start(pb.JobStartRequest(name="sleep", args=["30"]), timeout=10).ulid
    jb = b.Start(pb.JobStartRequest(name="sleep", args=["30"]), timeout=10).ulid
    try:
        logs = [a.Log(pb.JobIdentifier(ulid=ja), timeout=30) for _ in range(3)]
        time.sleep(0.3)
        with pytest.raises(grpc.RpcError) as e:
            next(a.Log(pb.JobIdentifier(ulid=ja), timeout=10))
        assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit of 3 concurrent streaming calls" in e.value.details()
        # client2 has its own budget
        other = [b.Log(pb.JobIdentifier(ulid=jb), timeout=30) for _ in range(3)]
        time.sleep(0.3)
        assert b.Status(pb.JobIdentifier(ulid=jb), timeout=10).state == \
            pb.JobStatus.State.RUNNING
        # calls: 3 Logs are open; two unfinished requests make 5
        c = Conn(rund)
        for sid in (1, 3):
            c.send(frame(HEADERS, END_HEADERS, sid, request_headers("/rund.JobController/Status")))
        c.send(frame(HEADERS, END_HEADERS, 5, request_headers("/rund.JobController/Status")))
        last = c.until_stream_end(5)[-1]
        assert grpc_status_literal(last[3], 8), last[3]  # (the message is Huffman-coded)
        assert b.Status(pb.JobIdentifier(ulid=jb), timeout=10).state == \
            pb.JobStatus.State.RUNNING
        c.close()
    finally:
        for it in logs + other:
            it.cancel()
        time.sleep(0.3)
        a.Stop(pb.JobIdentifier(ulid=ja), timeout=10)
        b.Stop(pb.JobIdentifier(ulid=jb), timeout=10)


# ---- request bytes ----------------------------------------------------------

def _hold_request(rund, cert, key, streams, size):
    """A connection with `streams` Start requests, each announcing `size`
    bytes and sending all but the last one, within the flow-control windows
    the server grants (stops early on a stream the server ended)."""
    c = Conn(rund, cert, key)
    c.sock.settimeout(5)
    win = {0: 65535}
    initial = 65535
    ended = set()

    def take():
        nonlocal initial
        ftype, flags, sid, payload = c.frame()
        if ftype == 4 and not flags & 1:  # SETTINGS
            for i in range(0, len(payload), 6):
                ident, val = struct.unpack(">HI", payload[i:i + 6])
                if ident == 4:
                    for k in win:
                        if k:
                            win[k] += val - initial
                    initial = val
        elif ftype == 8:  # WINDOW_UPDATE
            win[sid] = win.get(sid, initial) + (struct.unpack(">I", payload)[0] & 0x7FFFFFFF)
        elif ftype == 3 or (ftype in (HEADERS, DATA) and flags & END_STREAM):
            ended.add(sid)
        elif ftype == GOAWAY:
            raise EOFError("goaway")

    try:
        _send_held(c, streams, size, win, initial, ended, take)
    except (EOFError, OSError):  # refused: over the anonymous connection cap
        ended.add(0)
    c.ended = ended
    return c


def _send_held(c, streams, size, win, initial, ended, take):
    for n in range(streams):
        sid = 1 + 2 * n
        c.send(frame(HEADERS, END_HEADERS, sid, request_headers("/rund.JobController/Start")))
        win.setdefault(sid, initial)
        body = grpc_msg(b"", length=size) + b"\0" * (size - 1)
        off = 0
        while off < len(body) and sid not in ended:
            n_ok = min(16384, len(body) - off, win[sid], win[0])
            if n_ok <= 0:
                take()
                continue
            c.send(frame(DATA, 0, sid, body[off:off + n_ok]))
            win[sid] -= n_ok
            win[0] -= n_ok
            off += n_ok


def test_unfinished_requests_do_not_pin_memory(rund, pb, tmp_path):
    """The attack that pinned 640 MiB: 40 connections with a certificate
    without SAN, each holding 4 x 4 MiB of unfinished requests. The
    anonymous identity may hold 4 MiB in all (32 MiB / 8)."""
    cert, key = pki.nosan_client(tmp_path)
    rss0, fds0 = rund.rss_kib(), rund.fd_count()
    conns, lat = [], []
    try:
        for i in range(40):
            conns.append(_hold_request(rund, cert, key, 4, (4 << 20) - 16))
            if i % 10 == 9:
                t0 = time.monotonic()
                stub(channel(rund)).Check(pb.HealthCheckRequest(), timeout=10)
                lat.append(time.monotonic() - t0)
        time.sleep(0.5)
        peak = rund.rss_kib() - rss0
        peak_fds = rund.fd_count()
        # every stream beyond the budget was refused, naming the limit
        # refused streams, or whole connections over the anonymous cap
        refused = sum(4 if 0 in c.ended else len(c.ended) for c in conns)
        assert refused >= 150, refused
    finally:
        for c in conns:
            c.close()
    print("\n40 anonymous connections x 16 MiB unfinished: daemon RSS +%d KiB, fds %d -> %d, "
          "Check latency max %.1f ms" % (peak, fds0, peak_fds, max(lat) * 1e3))
    assert peak < 64 * 1024, peak  # was ~640 MiB
    assert settle(rund, fds0)


def test_request_body_deadline(rund_factory, pb):
    rund = rund_factory("-request_timeout", "500ms")
    c = Conn(rund)
    t0 = time.monotonic()
    c.send(frame(HEADERS, END_HEADERS, 1, request_headers("/rund.JobController/Status")))
    c.send(frame(DATA, 0, 1, grpc_msg(b"", length=100) + b"x" * 10))
    last = c.until_stream_end(1)[-1]
    took = time.monotonic() - t0
    assert grpc_status_literal(last[3], 8), last[3]
    assert 0.4 <= took < 5, took
    c.close()


# ---- descriptors ------------------------------------------------------------

def test_daemon_raises_its_open_file_limit(rund):
    with open("/proc/%d/limits" % rund.pid) as f:
        line = next(l for l in f if l.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    assert soft == hard, line


# ---- input ------------------------------------------------------------------

def test_ca_certificate_refused_as_client(rund, pb):
    cert = os.path.join(FIXTURES, "ca-true-client.pem")
    key = os.path.join(FIXTURES, "ca-true-client-key.pem")
    with pytest.raises(grpc.RpcError) as e:
        stub(fresh_channel(rund, cert=cert, key=key)).Check(pb.HealthCheckRequest(), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    stub(fresh_channel(rund)).Check(pb.HealthCheckRequest(), timeout=10)


@pytest.mark.parametrize("timeout", ["0n", "1n", "0S"])
def test_zero_and_tiny_timeouts_are_expired(rund, pb, timeout):
    """Both are deadlines that have passed: DEADLINE_EXCEEDED, and the
    handler does not run (Start would leave a job nobody hears of)."""
    c = Conn(rund)
    body = grpc_msg(pb.JobStartRequest(name="true").SerializeToString())
    c.send(frame(HEADERS, END_HEADERS, 1,
                 request_headers("/rund.JobController/Start", [("grpc-timeout", timeout)])))
    c.send(frame(DATA, END_STREAM, 1, body))
    last = c.until_stream_end(1)[-1]
    assert grpc_status_literal(last[3], 4), last[3]
    c.close()
    assert not os.listdir(os.path.join(rund.state_dir, "jobs")) \
        if os.path.isdir(os.path.join(rund.state_dir, "jobs")) else True


def test_json_content_type_refused(rund, pb):
    c = Conn(rund)
    c.send(frame(HEADERS, END_HEADERS, 1, request_headers(
        "/grpc.health.v1.Health/Check", ctype="application/grpc+json")))
    c.send(frame(DATA, END_STREAM, 1, grpc_msg(b"")))
    first = c.until_stream_end(1)[0]
    assert b"415" in first[3]
    c.close()


@pytest.mark.parametrize("name,args,which", [
    ("ec\0ho", [], "name"),
    ("echo", ["a", "b\0c"], "args[1]"),
])
def test_nul_bytes_refused(rund, pb, name, args, which):
    s = stub(channel(rund))
    with pytest.raises(grpc.RpcError) as e:
        s.Start(pb.JobStartRequest(name=name, args=args), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == which + " contains a NUL byte"
