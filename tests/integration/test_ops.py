"""Operating rund as a system daemon: what `meson install` puts where, the
client's configuration precedence, the refusal of the example PKI on a
network address, certificate reload on SIGHUP and the audit log."""

import os
import shutil
import signal
import subprocess
import uuid

import pytest

from conftest import (BUILD, ENFORCE, ROOT, RUND, RUNC, TLS, cgroup2_mount,
                      controllers_available, runc)

MESON = shutil.which("meson")


def _installed(dest):
    out = []
    for dirpath, _dirs, files in os.walk(dest):
        for f in files:
            out.append(os.path.relpath(os.path.join(dirpath, f), dest))
    return sorted(out)


@pytest.fixture(scope="module")
def destdir(tmp_path_factory):
    if not MESON or not os.path.exists(os.path.join(BUILD, "build.ninja")):
        pytest.skip("needs meson and a configured build directory")
    dest = str(tmp_path_factory.mktemp("destdir"))
    env = dict(os.environ, DESTDIR=dest)
    r = subprocess.run([MESON, "install", "-C", BUILD, "--no-rebuild", "--quiet"],
                       env=env, capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    prefix = subprocess.run([MESON, "introspect", "--buildoptions", BUILD],
                            capture_output=True, check=True).stdout.decode()
    import json
    opts = {o["name"]: o["value"] for o in json.loads(prefix)}
    return dest, opts


def test_install_file_list(destdir):
    dest, opts = destdir
    p = opts["prefix"].lstrip("/")
    files = set(_installed(dest))
    want = {
        os.path.join(p, opts["bindir"], "rund"),
        os.path.join(p, opts["bindir"], "rundctl"),
        os.path.join(p, opts["bindir"], "rund-pki"),
        os.path.join(p, opts["mandir"], "man8", "rund.8"),
        os.path.join(p, opts["mandir"], "man1", "rundctl.1"),
        os.path.join(p, opts["mandir"], "man1", "rund-pki.1"),
        os.path.join(p, opts["datadir"], "doc", "rund", "README.md"),
        os.path.join(p, "lib", "tmpfiles.d", "rund.conf"),
    }
    missing = want - files
    assert not missing, "not installed: %s\ninstalled: %s" % (sorted(missing), sorted(files))
    units = [f for f in files if f.endswith("/rund.service")]
    assert len(units) == 1, files
    unit = open(os.path.join(dest, units[0])).read()
    assert "@" not in unit.replace("$MAINPID", ""), "unfilled placeholder:\n" + unit
    assert "KillMode=process" in unit
    bindir = "/" + os.path.join(p, opts["bindir"])
    assert "ExecStart=%s/rund serve" % bindir in unit
    # Jobs live in the second unit's cgroup, so this one can restart.
    assert "Requires=rund-jobs.service" in unit
    assert "-cgroup /sys/fs/cgroup/system.slice/rund-jobs.service -cgroup_daemon_stays" in unit
    holder = open(os.path.join(dest, units[0][:-len("rund.service")] + "rund-jobs.service")).read()
    assert "@" not in holder, "unfilled placeholder:\n" + holder
    assert "Delegate=yes" in holder and "KillMode=process" in holder
    tmpfiles = open(os.path.join(dest, p, "lib", "tmpfiles.d", "rund.conf")).read()
    assert "/lib/rund 0700 root root" in tmpfiles
    for prog in ("rund", "rundctl", "rund-pki"):
        assert os.access(os.path.join(dest, p, opts["bindir"], prog), os.X_OK), prog


def test_no_runc_in_any_bin_directory(destdir):
    dest, _opts = destdir
    for dirpath, dirs, files in os.walk(dest):
        if os.path.basename(dirpath) in ("bin", "sbin"):
            names = set(files) | set(dirs)
            names |= {f for f in os.listdir(dirpath) if os.path.islink(os.path.join(dirpath, f))}
            assert "runc" not in names, "runc installed in " + dirpath


def test_build_tree_keeps_runc():
    r = subprocess.run([os.path.join(BUILD, "runc"), "--version"], capture_output=True)
    assert r.returncode == 0 and r.stdout.startswith(b"runc (rund) "), r
    r = subprocess.run([os.path.join(BUILD, "rundctl"), "--version"], capture_output=True)
    assert r.returncode == 0 and r.stdout.startswith(b"rundctl (rund) "), r


def test_versions_are_git_describe():
    r = subprocess.run(["git", "-C", ROOT, "describe", "--tags", "--always", "--dirty"],
                       capture_output=True)
    if r.returncode != 0:
        pytest.skip("not a git checkout")
    for prog in ("rund", "rundctl"):
        out = subprocess.run([os.path.join(BUILD, prog), "--version"],
                             capture_output=True, check=True).stdout.decode()
        version = out.split()[-1]
        # The build may predate the last commit or edit; it names one.
        assert version and version != "@VCS_TAG@", out
        sha = version.split("-g")[-1].split("-dirty")[0]
        assert subprocess.run(["git", "-C", ROOT, "cat-file", "-e", sha + "^{commit}"],
                              capture_output=True).returncode == 0, out


def test_man_pages_lint_clean(destdir):
    mandoc = shutil.which("mandoc")
    if not mandoc:
        pytest.skip("mandoc is not installed")
    dest, _ = destdir
    pages = [os.path.join(dest, f) for f in _installed(dest) if "/man/man" in "/" + f]
    assert len(pages) == 3, pages
    for page in pages:
        r = subprocess.run([mandoc, "-T", "lint", "-W", "warning", page], capture_output=True)
        assert r.returncode == 0 and not r.stdout and not r.stderr, (page, r)


# ---- client configuration -------------------------------------------------

def _client_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUND_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env["HOME"] = str(tmp_path / "home")
    env.update(extra)
    return env


def _write_conf(tmp_path, text):
    d = tmp_path / "xdg" / "rund"
    d.mkdir(parents=True, exist_ok=True)
    (d / "client.conf").write_text(text)
    return str(d / "client.conf")


def _health(env, *flags):
    return subprocess.run([RUNC, "health"] + list(flags), env=env, capture_output=True,
                          timeout=30, cwd="/")


def test_config_file_alone_reaches_the_daemon(rund, tmp_path):
    # cwd is /, so the built-in tls/ defaults cannot be what works.
    conf = _write_conf(tmp_path, "addr = %s\nca = %s/ca.pem\ncert = %s/client.pem\n"
                       "key = %s/client-key.pem\n" % (rund.addr, TLS, TLS, TLS))
    env = _client_env(tmp_path)
    r = _health(env)
    assert r.returncode == 0 and r.stdout == b"SERVING\n", r
    # Without the file, the built-in defaults (relative tls/ paths) fail.
    os.unlink(conf)
    r = _health(env)
    assert r.returncode == 1, r


def test_env_beats_file_and_flag_beats_env(rund, tmp_path):
    _write_conf(tmp_path, "# wrong on purpose\naddr = 127.0.0.1:1\nca = %s/ca.pem\n"
                "cert = %s/client.pem\nkey = %s/client-key.pem\n" % (TLS, TLS, TLS))
    env = _client_env(tmp_path)
    assert _health(env).returncode == 1
    env["RUND_ADDR"] = rund.addr
    r = _health(env)
    assert r.returncode == 0, r
    r = _health(env, "-addr", "127.0.0.1:1")
    assert r.returncode == 1, r
    # A wrong CA from the environment wins over the file's right one.
    env["RUND_CA"] = os.path.join(TLS, "client.pem")
    assert _health(env).returncode == 1
    r = _health(env, "-ca", os.path.join(TLS, "ca.pem"))
    assert r.returncode == 0, r


def test_help_shows_where_each_value_came_from(tmp_path):
    conf = _write_conf(tmp_path, "\ncert = mine.pem\n")
    env = _client_env(tmp_path, RUND_ADDR="jobs.example:7")
    r = subprocess.run([RUNC, "status", "-key", "/k.pem", "-h"], env=env, capture_output=True)
    assert r.returncode == 0, r
    out = r.stdout.decode()
    lines = {l.split()[0]: l for l in out.splitlines()[-4:]}
    assert "jobs.example:7" in lines["addr"] and "(RUND_ADDR)" in lines["addr"], out
    assert "(built-in default)" in lines["ca"], out
    assert os.path.join(os.path.dirname(conf), "mine.pem") in lines["cert"], out
    assert "(%s:2)" % conf in lines["cert"], out
    assert "/k.pem" in lines["key"] and "(flag -key)" in lines["key"], out


def test_config_errors_name_file_and_line(tmp_path):
    conf = _write_conf(tmp_path, "addr = a:1\n\nkey\n")
    r = subprocess.run([RUNC, "health"], env=_client_env(tmp_path), capture_output=True)
    assert r.returncode == 2
    assert ("%s:3: expected" % conf).encode() in r.stderr, r.stderr


def test_home_config_when_xdg_is_unset(rund, tmp_path):
    d = tmp_path / "home" / ".config" / "rund"
    d.mkdir(parents=True)
    (d / "client.conf").write_text("addr = %s\nca = %s/ca.pem\ncert = %s/client.pem\n"
                                   "key = %s/client-key.pem\n" % (rund.addr, TLS, TLS, TLS))
    env = _client_env(tmp_path)
    del env["XDG_CONFIG_HOME"]
    r = _health(env)
    assert r.returncode == 0, r


# ---- safe by default ------------------------------------------------------

PKI = os.path.join(ROOT, "contrib", "rund-pki")


def _serve_refused(tmp_path, addr, *extra):
    cg = os.path.join(cgroup2_mount(), "rund-test-" + uuid.uuid4().hex[:12])
    try:
        return subprocess.run(
            [RUND, "serve", "-addr", addr, "-ca", os.path.join(TLS, "ca.pem"),
             "-cert", os.path.join(TLS, "server.pem"),
             "-key", os.path.join(TLS, "server-key.pem"),
             "-state_dir", str(tmp_path / "state"), "-cgroup", cg] + list(extra),
            capture_output=True, timeout=20)
    finally:
        # Refused before the cgroup is touched; nothing else to clean.
        assert not os.path.exists(cg)


@pytest.mark.parametrize("addr", [":0", "0.0.0.0:0", "[::]:0"])
def test_example_ca_refused_on_network_address(tmp_path, addr):
    r = _serve_refused(tmp_path, addr)
    assert r.returncode == 1, r
    err = r.stderr.decode()
    assert "refusing to listen on " + addr in err, err
    assert "rund-pki" in err and "-allow_example_pki_on_network" in err, err
    assert not (tmp_path / "state").exists()


def test_example_ca_allowed_on_network_when_named(rund_factory):
    r = rund_factory("-addr", "0.0.0.0:0", "-allow_example_pki_on_network")
    assert "WARNING" in r.log() and "public" in r.log()
    assert r.proc.poll() is None


def test_example_ca_fine_on_loopback(rund):
    assert "WARNING" not in rund.log()
    assert "refusing" not in rund.log()


def test_pki_helper_makes_a_working_pki(rund_factory, tmp_path):
    d = str(tmp_path / "pki")
    for args in (["ca", "test CA"], ["server", "server", "localhost", "127.0.0.1", "IP:::1"],
                 ["client", "alice", "URI:spiffe://example.test/alice", "alice.example"]):
        r = subprocess.run([PKI, "-d", d] + args, capture_output=True, timeout=120)
        assert r.returncode == 0, r
    # Never overwrites.
    r = subprocess.run([PKI, "-d", d, "client", "alice", "x.example"], capture_output=True)
    assert r.returncode == 1 and b"exists" in r.stderr
    assert os.stat(os.path.join(d, "alice-key.pem")).st_mode & 0o077 == 0
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in",
                           os.path.join(d, "alice.pem")], capture_output=True,
                          check=True).stdout.decode()
    assert "ecdsa-with-SHA512" in text and "P-521" in text, text
    assert "URI:spiffe://example.test/alice" in text and "DNS:alice.example" in text, text
    assert "TLS Web Client Authentication" in text

    # A private CA may listen on every interface.
    srv = rund_factory("-addr", "0.0.0.0:0", "-ca", os.path.join(d, "ca.pem"),
                       "-cert", os.path.join(d, "server.pem"),
                       "-key", os.path.join(d, "server-key.pem"))
    assert "WARNING" not in srv.log()

    def health(cert, key, ca):
        return subprocess.run([RUNC, "health", "-addr", "localhost:%d" % srv.port,
                               "-ca", ca, "-cert", cert, "-key", key],
                              capture_output=True, timeout=30)
    r = health(os.path.join(d, "alice.pem"), os.path.join(d, "alice-key.pem"),
               os.path.join(d, "ca.pem"))
    assert r.returncode == 0 and r.stdout == b"SERVING\n", r
    # The example client certificate is not accepted by the private CA.
    r = health(os.path.join(TLS, "client.pem"), os.path.join(TLS, "client-key.pem"),
               os.path.join(d, "ca.pem"))
    assert r.returncode == 1, r


# ---- delegation (kernel lane: needs real controllers) -----------------------

def _need_controllers():
    if not {"cpu", "memory", "io"} <= controllers_available():
        if ENFORCE:
            pytest.fail("RUND_ENFORCE=1 but the cgroup v2 root lacks cpu, memory or io")
        pytest.skip("the cgroup v2 root has no cpu, memory and io controllers here")


def test_daemon_enables_controllers_below_the_root(rund):
    """rund's cgroup sits right below the hierarchy's root: the daemon
    itself must enable what jobs need there (nobody else does in the VM)."""
    _need_controllers()
    root = cgroup2_mount()
    with open(os.path.join(root, "cgroup.subtree_control")) as f:
        assert {"cpu", "memory", "io"} <= set(f.read().split())
    # A job that outlives the reads below: a job's group goes with it.
    r = runc(rund, "start", "-max_memory_usage", "10000000", "-max_rbps", "42", "sleep", "30")
    assert r.returncode == 0, r.stderr
    job = r.stdout.decode().strip()
    with open(os.path.join(rund.cgroup, "jobs", job, "memory.max")) as f:
        # The kernel rounds down to whole pages.
        assert f.read().strip() == str(10000000 // os.sysconf("SC_PAGE_SIZE")
                                       * os.sysconf("SC_PAGE_SIZE"))
    assert runc(rund, "stop", job).returncode == 0


def test_undelegated_cgroup_says_how_to_run(rund_factory):
    """A cgroup whose parent gives it no controllers (a login session's
    scope): limits are refused with a hint at Delegate=yes."""
    _need_controllers()
    outer = os.path.join(cgroup2_mount(), "rund-test-" + uuid.uuid4().hex[:12])
    os.mkdir(outer)
    try:
        srv = rund_factory("-cgroup", os.path.join(outer, "inner"))
        assert "not delegated" in srv.log() and "Delegate=yes" in srv.log(), srv.log()
        r = runc(srv, "start", "-max_memory_usage", "10000000", "true")
        assert r.returncode == 1
        err = r.stderr.decode()
        assert "FAILED_PRECONDITION" in err and "systemd-run -p Delegate=yes" in err, err
        srv.cleanup()
    finally:
        import time
        deadline = time.time() + 20
        while True:
            try:
                # Spare supervisors may outlive the daemon's cleanup by a
                # moment; remove what it left, deepest first.
                for dirpath, _dirs, _files in sorted(os.walk(outer, topdown=False),
                                                     key=lambda t: -len(t[0])):
                    os.rmdir(dirpath)
                break
            except OSError:
                if time.time() > deadline:
                    left = []
                    for dirpath, _dirs, _files in os.walk(outer):
                        with open(os.path.join(dirpath, "cgroup.procs")) as f:
                            procs = f.read().split()
                        shown = []
                        for p in procs:
                            try:
                                with open("/proc/%s/cmdline" % p, "rb") as f:
                                    shown.append(p + " " + f.read().replace(b"\0", b" ").decode())
                            except OSError:
                                shown.append(p)
                        left.append((dirpath, shown))
                    raise AssertionError("cannot remove %s: %s" % (outer, left))
                time.sleep(0.1)


# ---- identification, reload, audit -----------------------------------------

def _job(rund, *args, who="client"):
    r = runc(rund, "start", *args, who=who)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip()


def test_supervisor_shows_its_job_in_ps(rund):
    job = _job(rund, "sleep", "30")
    try:
        titles = []
        with open(os.path.join(rund.cgroup, "daemon", "cgroup.procs")) as f:
            pids = f.read().split()
        for pid in pids:
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    titles.append(f.read().rstrip(b"\0").decode(errors="replace"))
            except OSError:
                pass
        assert "rund execute " + job in titles, titles
        ps = subprocess.run(["ps", "-o", "args=", "-p", ",".join(pids)], capture_output=True)
        assert ("rund execute " + job).encode() in ps.stdout, ps.stdout
    finally:
        runc(rund, "stop", job)


def _sign_server_cert(d, ca_cert, ca_key, name):
    """A server certificate for localhost signed by the given CA."""
    key, csr, crt, ext = (os.path.join(d, name + s) for s in ("-key.pem", ".csr", ".pem", ".ext"))
    with open(ext, "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1\n")
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", key], check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=" + name, "-out", csr],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
                    "-set_serial", "0x" + uuid.uuid4().hex, "-days", "2", "-extfile", ext,
                    "-out", crt], check=True, capture_output=True)
    return crt, key


def _serial_of(path):
    out = subprocess.run(["openssl", "x509", "-noout", "-serial", "-in", path],
                         capture_output=True, check=True).stdout.decode()
    return out.strip().split("=", 1)[1].upper().lstrip("0")


def _server_serial(port, ca, cert, key):
    """The serial of the certificate a fresh TLS connection is shown."""
    import socket
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return t.getpeercert()["serialNumber"].upper().lstrip("0")


def _copy_tls(d):
    for f in ("ca.pem", "server.pem", "server-key.pem"):
        shutil.copy(os.path.join(TLS, f), os.path.join(d, f))
    return [os.path.join(d, f) for f in ("ca.pem", "server.pem", "server-key.pem")]


def _wait_log(rund, needle, count=1, timeout=10):
    import time
    deadline = time.time() + timeout
    while time.time() < deadline:
        if rund.log().count(needle) >= count:
            return True
        time.sleep(0.02)
    return False


def test_sighup_rotates_the_server_certificate(rund_factory, tmp_path, pb):
    from conftest import channel, stub
    d = str(tmp_path / "etc")
    os.mkdir(d)
    ca, cert, key = _copy_tls(d)
    srv = rund_factory("-ca", ca, "-cert", cert, "-key", key)
    client = (os.path.join(TLS, "ca.pem"), os.path.join(TLS, "client.pem"),
              os.path.join(TLS, "client-key.pem"))
    old = _serial_of(cert)
    assert _server_serial(srv.port, *client) == old
    ch = channel(srv)
    before = stub(ch)
    before.Check(pb.HealthCheckRequest(), timeout=10)

    new_cert, new_key = _sign_server_cert(str(tmp_path), os.path.join(TLS, "ca.pem"),
                                          os.path.join(TLS, "ca-key.pem"), "rotated")
    shutil.copy(new_cert, cert)
    shutil.copy(new_key, key)
    new = _serial_of(cert)
    assert new != old
    srv.proc.send_signal(signal.SIGHUP)
    assert _wait_log(srv, "SIGHUP: reloaded"), srv.log()
    assert _server_serial(srv.port, *client) == new
    # The connection made before the reload keeps working.
    before.Check(pb.HealthCheckRequest(), timeout=10)
    ch.close()

    # A broken file: the daemon keeps the certificate it has and says why.
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    srv.proc.send_signal(signal.SIGHUP)
    assert _wait_log(srv, "SIGHUP: keeping the old certificates"), srv.log()
    assert cert in srv.log().split("keeping the old certificates")[-1]
    assert srv.proc.poll() is None
    assert _server_serial(srv.port, *client) == new
    r = subprocess.run([RUNC, "health", "-addr", srv.addr, "-ca", client[0], "-cert", client[1],
                        "-key", client[2]], capture_output=True, timeout=30)
    assert r.returncode == 0, r


def test_sighup_reloads_the_client_ca(rund_factory, tmp_path):
    d = str(tmp_path / "etc")
    os.mkdir(d)
    ca, cert, key = _copy_tls(d)
    srv = rund_factory("-ca", ca, "-cert", cert, "-key", key)
    pki = str(tmp_path / "pki")
    for args in (["ca"], ["client", "bob", "DNS:bob.example"]):
        subprocess.run([PKI, "-d", pki] + args, check=True, capture_output=True)

    def health(c, k):
        return subprocess.run([RUNC, "health", "-addr", srv.addr, "-ca",
                               os.path.join(TLS, "ca.pem"), "-cert", c, "-key", k],
                              capture_output=True, timeout=30).returncode
    bob = (os.path.join(pki, "bob.pem"), os.path.join(pki, "bob-key.pem"))
    example = (os.path.join(TLS, "client.pem"), os.path.join(TLS, "client-key.pem"))
    assert health(*bob) == 1 and health(*example) == 0
    shutil.copy(os.path.join(pki, "ca.pem"), ca)
    srv.proc.send_signal(signal.SIGHUP)
    assert _wait_log(srv, "SIGHUP: reloaded"), srv.log()
    assert health(*bob) == 0 and health(*example) == 1


def _audit_lines(log, fmt):
    import json
    out = []
    for line in log.splitlines():
        if fmt == "json" and line.startswith("{"):
            out.append(json.loads(line))
        elif fmt == "logfmt" and line.startswith("time="):
            import shlex
            out.append(dict(kv.split("=", 1) for kv in shlex.split(line)))
    return out


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_audit_line_for_every_call(rund_factory, pb, fmt):
    import grpc
    from conftest import channel, stub
    srv = rund_factory("-log_format", fmt)
    s = stub(channel(srv))
    calls = []
    job = s.Start(pb.JobStartRequest(name="sh", args=["-c", "echo out"]), timeout=20).ulid
    calls.append(("/rund.JobController/Start", job, "OK"))
    list(s.Log(pb.JobIdentifier(ulid=job), timeout=20))
    calls.append(("/rund.JobController/Log", job, "OK"))
    s.Status(pb.JobIdentifier(ulid=job), timeout=20)
    calls.append(("/rund.JobController/Status", job, "OK"))
    # Refused: another team's certificate, an unknown id, a bad id, no SAN
    # check here but an unknown method.
    other = stub(channel(srv, who="client3"))
    with pytest.raises(grpc.RpcError) as e:
        other.Stop(pb.JobIdentifier(ulid=job), timeout=20)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    calls.append(("/rund.JobController/Stop", job, "NOT_FOUND"))
    with pytest.raises(grpc.RpcError):
        s.Status(pb.JobIdentifier(ulid="nonsense"), timeout=20)
    calls.append(("/rund.JobController/Status", "nonsense", "INVALID_ARGUMENT"))
    unknown = channel(srv).unary_unary("/rund.JobController/Nope")
    with pytest.raises(grpc.RpcError) as e:
        unknown(b"", timeout=20)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    calls.append(("/rund.JobController/Nope", "", "UNIMPLEMENTED"))
    s.Check(pb.HealthCheckRequest(), timeout=20)
    calls.append(("/grpc.health.v1.Health/Check", "", "OK"))

    assert _wait_log(srv, "/grpc.health.v1.Health/Check"), srv.log()
    lines = [l for l in _audit_lines(srv.log(), fmt) if l["event"] == "call"]
    got = [(l["method"], l["job"], l["code"]) for l in lines]
    assert sorted(got) == sorted(calls), srv.log()
    serial = _serial_of(os.path.join(TLS, "client.pem"))
    serial3 = _serial_of(os.path.join(TLS, "client3.pem"))
    for l in lines:
        peer = l["peer"] if fmt == "json" else l["peer"].split()
        if l["code"] == "NOT_FOUND":
            assert l["serial"].lstrip("0") == serial3
            assert "DNS:client3.rund.test" in peer
        else:
            assert l["serial"].lstrip("0") == serial
            assert peer == ["DNS:client.rund.test", "URI:spiffe://rund.test/team-a"], l
        assert float(l["duration_ms"]) >= 0
        assert l["time"].endswith("Z") and "T" in l["time"]

    events = {l["event"]: l for l in _audit_lines(srv.log(), fmt) if l["event"] != "call"}
    assert events["job_start"]["job"] == job and events["job_end"]["job"] == job
    cmd = events["job_start"]["command"]
    assert (cmd if fmt == "json" else cmd.split(" ", 2)) == ["sh", "-c", "echo out"]
    assert events["job_end"]["outcome"] == "exit 0"


def test_bad_log_format_is_a_usage_error(tmp_path):
    r = subprocess.run([RUND, "serve", "-log_format", "xml"], capture_output=True, timeout=20)
    assert r.returncode == 2 and b"-log_format" in r.stderr
