"""Operating rund as a system daemon: what `meson install` puts where, the
client's configuration precedence, the refusal of the example PKI on a
network address, certificate reload on SIGHUP and the audit log."""

import os
import shutil
import subprocess
import uuid

import pytest

from conftest import BUILD, ROOT, RUND, RUNC, TLS, cgroup2_mount

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
    assert "Delegate=yes" in unit and "KillMode=process" in unit
    bindir = "/" + os.path.join(p, opts["bindir"])
    assert "ExecStart=%s/rund serve" % bindir in unit
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
