"""rund's TLS policy (DESIGN §3) seen from outside, with `openssl s_client`
against the real daemon: TLS 1.3 only, a client certificate from the
configured CA required, ALPN h2 required, and the key-exchange groups.

In TLS 1.3 the client finishes its handshake before the server has checked
the client certificate, so a refusal of the certificate arrives as an alert
on the client's first read. Those tests send a line and keep reading
(-ign_eof) until the server closes, then look for the alert."""

import os
import re
import shutil
import subprocess

import pytest

import pki
from conftest import RUND, TLS

CA = os.path.join(TLS, "ca.pem")

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")

# s_client prints "...:tlsv13 alert certificate required:...:SSL alert number 116"
ALERT = re.compile(r"alert ([a-z0-9 ]+?):.*SSL alert number (\d+)")

# openssl's names for the groups, as "Server Temp Key" prints them.
GROUP_NAMES = {
    "X25519": ("X25519",),
    "P-521": ("secp521r1", "P-521"),
    "P-384": ("secp384r1", "P-384"),
    "P-256": ("prime256v1", "P-256"),
}


class Result:
    def __init__(self, rc, out, timed_out):
        self.rc = rc
        self.out = out
        self.timed_out = timed_out

    def alerts(self):
        """[(name, number)] of the TLS alerts the client received or sent."""
        return [(m.group(1), int(m.group(2))) for m in ALERT.finditer(self.out)]

    def __repr__(self):
        return "rc=%s timed_out=%s\n%s" % (self.rc, self.timed_out, self.out)


def s_client(port, *args, who=None, cert=None, key=None, send=None, wait=10.0):
    """Runs openssl s_client against 127.0.0.1:port. who names an example
    client (tls/<who>.pem); cert/key give any other. With send, writes it
    after the handshake and reads until the server closes (or wait
    seconds pass); without, disconnects once the handshake is done."""
    if who:
        cert = os.path.join(TLS, who + ".pem")
        key = os.path.join(TLS, who + "-key.pem")
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
           "-CAfile", CA, "-verify_return_error", "-verify_ip", "127.0.0.1"]
    if cert:
        cmd += ["-cert", cert, "-key", key]
    if send is not None:
        cmd.append("-ign_eof")
    cmd += list(args)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(send or b"", timeout=wait)
        timed_out = False
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        timed_out = True
    return Result(p.returncode, out.decode(errors="replace"), timed_out)


def assert_accepted(r, group=None):
    assert re.search(r"^New, TLSv1\.3, Cipher is TLS_", r.out, re.M), r
    assert "Verify return code: 0 (ok)" in r.out, r
    assert "ALPN protocol: h2" in r.out, r
    assert not r.alerts(), r
    if group:
        m = re.search(r"Server Temp Key: ([^\n]*)", r.out)
        assert m, r
        assert any(n in m.group(1) for n in GROUP_NAMES[group]), r


def assert_refused(r, names, numbers):
    """The connection ended in a TLS alert with one of the given names or
    numbers, and no application data went through."""
    assert not r.timed_out, "server neither refused nor closed:\n%r" % r
    assert r.rc != 0, r
    alerts = r.alerts()
    assert any(n in names or num in numbers for n, num in alerts), \
        "expected alert %s/%s, got %s\n%r" % (names, numbers, alerts, r)


# A line that is no HTTP/2 preface: an accepted client gets the daemon's
# GOAWAY and a close; a refused one only the alert.
PROBE = b"GET / HTTP/1.1\r\n\r\n"


@pytest.fixture
def rund_groups(rund_factory):
    """A daemon started with extra flags; skips when rund is not built."""
    if not os.access(RUND, os.X_OK):
        pytest.skip("rund is not built")
    return rund_factory


def test_example_client_accepted(rund):
    assert_accepted(s_client(rund.port, "-alpn", "h2", who="client"))
    # ... and not refused after the handshake either.
    r = s_client(rund.port, "-alpn", "h2", who="client", send=PROBE, wait=5)
    assert_accepted(r)


def test_tls12_refused(rund):
    r = s_client(rund.port, "-tls1_2", "-alpn", "h2", who="client")
    assert_refused(r, {"protocol version"}, {70})
    assert "New, TLSv1.2" not in r.out, r


def test_no_client_cert_refused(rund):
    r = s_client(rund.port, "-alpn", "h2", send=PROBE)
    assert_refused(r, {"certificate required", "handshake failure"}, {116, 40})


def test_foreign_ca_refused(rund, tmp_path):
    cert, key = pki.foreign_client(tmp_path)
    r = s_client(rund.port, "-alpn", "h2", cert=cert, key=key, send=PROBE)
    assert_refused(r, {"unknown ca", "bad certificate", "certificate unknown"}, {48, 42, 46})


def test_expired_client_refused(rund, tmp_path):
    cert, key = pki.expired_client(tmp_path)
    r = s_client(rund.port, "-alpn", "h2", cert=cert, key=key, send=PROBE)
    assert_refused(r, {"certificate expired", "bad certificate"}, {45, 42})


def test_not_yet_valid_client_refused(rund, tmp_path):
    cert, key = pki.not_yet_valid_client(tmp_path)
    r = s_client(rund.port, "-alpn", "h2", cert=cert, key=key, send=PROBE)
    assert_refused(r, {"bad certificate", "certificate unknown"}, {42, 46})


def test_server_cert_as_client_refused(rund):
    # Signed by the right CA but for serverAuth only: not a client identity.
    r = s_client(rund.port, "-alpn", "h2", who="server", send=PROBE)
    assert_refused(r, {"unsupported certificate", "bad certificate"}, {43, 42})


def test_client_without_san_handshakes(rund, tmp_path):
    # Refusing it is authorization's job (PERMISSION_DENIED at Start).
    cert, key = pki.nosan_client(tmp_path)
    r = s_client(rund.port, "-alpn", "h2", cert=cert, key=key, send=PROBE, wait=5)
    assert_accepted(r)


def test_alpn_http11_only_refused(rund):
    r = s_client(rund.port, "-alpn", "http/1.1", who="client")
    assert_refused(r, {"no application protocol"}, {120})
    assert "ALPN protocol: h2" not in r.out, r


def test_no_alpn_refused(rund):
    r = s_client(rund.port, who="client")
    assert_refused(r, {"no application protocol"}, {120})


def test_alpn_h2_among_others_accepted(rund):
    assert_accepted(s_client(rund.port, "-alpn", "http/1.1,h2", who="client"))


@pytest.mark.parametrize("group", ["X25519", "P-521", "P-384", "P-256"])
def test_group_negotiates(rund, group):
    assert_accepted(s_client(rund.port, "-alpn", "h2", "-groups", group, who="client"),
                    group=group)


def test_tls_groups_flag_narrows(rund_groups):
    d = rund_groups("-tls_groups", "X25519:P-521")
    for group in ("X25519", "P-521"):
        assert_accepted(s_client(d.port, "-alpn", "h2", "-groups", group, who="client"),
                        group=group)
    for groups in ("P-256", "P-384:P-256"):
        r = s_client(d.port, "-alpn", "h2", "-groups", groups, who="client")
        assert_refused(r, {"handshake failure", "insufficient security"}, {40, 71})
