"""Fixtures for rund's integration tests: a real `rund serve` on a loopback
port with the example certificates, grpcio channels per client identity,
and the runc CLI."""

import atexit
import fcntl
import importlib
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, os.environ.get("RUND_BUILD", "build"))
TLS_SRC = os.path.join(ROOT, "tls")


def _private_tls():
    """The example PKI, copied where only root can read it, keys mode 0600:
    as an operator keeps a server's key (the daemon warns about a key that
    others may read, and a confined job could read it by another path)."""
    d = tempfile.mkdtemp(prefix="rund-tls-")
    atexit.register(shutil.rmtree, d, True)
    for f in os.listdir(TLS_SRC):
        if f.endswith(".pem"):
            shutil.copy(os.path.join(TLS_SRC, f), os.path.join(d, f))
            os.chmod(os.path.join(d, f), 0o600 if f.endswith("-key.pem") else 0o644)
    return d


TLS = _private_tls()
# Spare supervisors the daemon keeps (SUPPOOL_SPARES in src/suppool.h).
SPARES = 2
RUND = os.path.join(BUILD, "rund")
RUNC = os.path.join(BUILD, "runc")
ENFORCE = os.environ.get("RUND_ENFORCE") == "1"


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split(" ")[0] == "cgroup2":
                return left.split(" ")[4]
    raise RuntimeError("no cgroup2 mount")


def controllers_available():
    """Controllers the cgroup v2 root offers (empty on the hybrid host)."""
    try:
        with open(os.path.join(cgroup2_mount(), "cgroup.controllers")) as f:
            return set(f.read().split())
    except OSError:
        return set()


def pytest_configure(config):
    config.addinivalue_line("markers", "enforce: needs real cgroup v2 controllers (VM lane)")


_PB = None


def _generate_pb():
    global _PB
    if _PB is not None:
        return _PB
    out = tempfile.mkdtemp(prefix="rund-pb-")
    subprocess.run(
        ["protoc", "--python_out=" + out, "-I" + os.path.join(ROOT, "api"),
         "-I/usr/include", "rund.proto", "health.proto"],
        check=True)
    sys.path.insert(0, out)
    rund_pb2 = importlib.import_module("rund_pb2")
    health_pb2 = importlib.import_module("health_pb2")
    ns = types.SimpleNamespace()
    for mod in (rund_pb2, health_pb2):
        for name in dir(mod):
            if not name.startswith("_"):
                setattr(ns, name, getattr(mod, name))
    _PB = ns
    return ns


@pytest.fixture(scope="session")
def pb():
    return _generate_pb()


UID_SLOTS = 3000
UID_SLOT_SIZE = 65536
_UID_SLOT_LOCKS = "/run/rund/test-uid-slots"


def lock_uid_slot():
    """(first uid, lock file) of a slot of UID_SLOT_SIZE uids that no other
    test daemon, of this session or of one running beside it, uses while
    the file stays open: two confined daemons on a host may not overlap
    (rund refuses). Above the default range (1900000000-1900065535) of a
    rund serving on this host, below bench/run's (2100000000)."""
    os.makedirs(_UID_SLOT_LOCKS, exist_ok=True)
    start = random.randrange(UID_SLOTS)
    for i in range(UID_SLOTS):
        slot = (start + i) % UID_SLOTS
        f = open(os.path.join(_UID_SLOT_LOCKS, str(slot)), "a")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        return 1901000000 + slot * UID_SLOT_SIZE, f
    raise RuntimeError("every test uid slot is taken")


class Rund:
    """One running daemon. Keeps its state dir, cgroup and uid range across
    restarts."""

    def __init__(self, tmp, extra_args=(), prefix=()):
        # prefix: a command that execs the daemon in place (same pid), such
        # as `unshare --uts`.
        self.prefix = list(prefix)
        self.state_dir = os.path.join(tmp, "state")
        self.cgroup = os.path.join(cgroup2_mount(), "rund-test-" + uuid.uuid4().hex[:12])
        # Before extra_args, so that a test's own -job_uids wins.
        first, self._uid_slot = lock_uid_slot()
        self.uid_args = ["-job_uids", "%d-%d" % (first, first + UID_SLOT_SIZE - 1)]
        self.extra_args = list(extra_args)
        self.port = 0
        self.proc = None
        self.errfile = os.path.join(tmp, "rund.stderr")
        self.start()

    def start(self, extra_args=None):
        if extra_args is not None:
            self.extra_args = list(extra_args)
        args = self.prefix + [RUND, "serve",
                "-addr", "127.0.0.1:%d" % self.port,
                "-ca", os.path.join(TLS, "ca.pem"),
                "-cert", os.path.join(TLS, "server.pem"),
                "-key", os.path.join(TLS, "server-key.pem"),
                "-state_dir", self.state_dir,
                "-cgroup", self.cgroup] + self.uid_args + self.extra_args
        self._err = open(self.errfile, "ab")
        self._err_start = self._err.tell()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self._err,
                                     start_new_session=True)
        deadline = time.time() + 20
        while time.time() < deadline:
            m = re.search(r"listening on \S+:(\d+)", self.log())
            if m:
                self.port = int(m.group(1))
                # The pool of spare supervisors fills from the loop, just
                # after this line: counts of the daemon's descriptors and
                # processes start from a full pool.
                wait_for(lambda: self.spares() >= SPARES, timeout=10)
                return
            if self.proc.poll() is not None:
                raise RuntimeError("rund exited %s: %s" % (self.proc.returncode, self.log()))
            time.sleep(0.02)
        raise RuntimeError("rund did not start: " + self.log())

    @property
    def pid(self):
        return self.proc.pid

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def log(self):
        with open(self.errfile, "rb") as f:
            f.seek(self._err_start)
            return f.read().decode(errors="replace")

    def children(self, marker):
        """The daemon's children whose command line contains marker:
        b"-fifo" for spare supervisors, b"-spares" for the fork server."""
        return children_of(self.pid, marker)

    def spares(self):
        """Supervisors waiting for a job."""
        return len(self.children(b"-fifo"))

    def fd_count(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self._err.close()
        return self.proc.returncode if self.proc else None

    def restart(self, extra_args=None, sig=signal.SIGTERM):
        self.stop(sig)
        self.start(extra_args)

    def cleanup(self):
        code = self.stop(signal.SIGTERM)
        if os.environ.get("RUND_SANITIZED") == "1":
            log = open(self.errfile, "rb").read().decode(errors="replace")
            for needle in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                assert needle not in log, "sanitizer report from rund:\n" + log[-4000:]
            assert code == 0, "rund exited %s under sanitizers:\n%s" % (code, log[-4000:])
        jobs = os.path.join(self.cgroup, "jobs")
        if os.path.isdir(jobs):
            for d in os.listdir(jobs):
                p = os.path.join(jobs, d)
                if os.path.isdir(p):
                    try:
                        with open(os.path.join(p, "cgroup.kill"), "w") as f:
                            f.write("1")
                    except OSError:
                        pass
        deadline = time.time() + 5
        for _ in range(2):
            for dirpath, dirnames, _files in sorted(os.walk(self.cgroup, topdown=False),
                                                   key=lambda t: -len(t[0])):
                while True:
                    try:
                        os.rmdir(dirpath)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        if time.time() > deadline:
                            break
                        time.sleep(0.05)
        self._uid_slot.close()


@pytest.fixture
def rund_factory(tmp_path):
    made = []

    def make(*extra_args, prefix=()):
        d = tempfile.mkdtemp(prefix="rund-", dir=str(tmp_path))
        r = Rund(d, extra_args, prefix)
        made.append(r)
        return r

    yield make
    for r in made:
        r.cleanup()


@pytest.fixture
def rund(rund_factory):
    if not os.access(RUND, os.X_OK):
        pytest.skip("rund is not built in " + BUILD)
    return rund_factory()


@pytest.fixture
def job_dir():
    """A directory confined jobs can read: their /tmp is private, so files a
    test hands to a job live outside /tmp, readable by any uid."""
    d = tempfile.mkdtemp(prefix="rund-test-", dir="/var/lib")
    os.chmod(d, 0o755)
    yield pathlib.Path(d)
    shutil.rmtree(d, ignore_errors=True)


def credentials(who="client", cert=None, key=None):
    import grpc
    with open(os.path.join(TLS, "ca.pem"), "rb") as f:
        ca = f.read()
    with open(cert or os.path.join(TLS, who + ".pem"), "rb") as f:
        crt = f.read()
    with open(key or os.path.join(TLS, who + "-key.pem"), "rb") as f:
        k = f.read()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=k, certificate_chain=crt)


def channel(rund, who="client", cert=None, key=None, options=()):
    import grpc
    opts = [("grpc.max_receive_message_length", 64 << 20)] + list(options)
    return grpc.secure_channel("localhost:%d" % rund.port, credentials(who, cert, key), opts)


class Stub:
    def __init__(self, ch):
        pb = _generate_pb()
        base = "/rund.JobController/"
        self.Start = ch.unary_unary(base + "Start", pb.JobStartRequest.SerializeToString,
                                    pb.JobIdentifier.FromString)
        self.Stop = ch.unary_unary(base + "Stop", pb.JobIdentifier.SerializeToString,
                                   pb.JobStatus.FromString)
        self.Status = ch.unary_unary(base + "Status", pb.JobIdentifier.SerializeToString,
                                     pb.JobStatus.FromString)
        self.Log = ch.unary_stream(base + "Log", pb.JobIdentifier.SerializeToString,
                                   pb.JobLog.FromString)
        self.Check = ch.unary_unary("/grpc.health.v1.Health/Check",
                                    pb.HealthCheckRequest.SerializeToString,
                                    pb.HealthCheckResponse.FromString)
        # The RPCs added after the original four.
        self.List = ch.unary_stream(base + "List", pb.JobListRequest.SerializeToString,
                                    pb.JobListEntry.FromString)
        self.Wait = ch.unary_unary(base + "Wait", pb.JobIdentifier.SerializeToString,
                                   pb.JobStatus.FromString)
        self.Terminate = ch.unary_unary(base + "Terminate",
                                        pb.JobTerminateRequest.SerializeToString,
                                        pb.JobStatus.FromString)
        self.ReadLog = ch.unary_stream(base + "ReadLog", pb.LogRequest.SerializeToString,
                                       pb.JobLog.FromString)
        self.Watch = ch.unary_stream("/grpc.health.v1.Health/Watch",
                                     pb.HealthCheckRequest.SerializeToString,
                                     pb.HealthCheckResponse.FromString)


def stub(ch):
    return Stub(ch)


def runc(rund, *args, who="client", timeout=30, cert=None, key=None, input=None):
    cmd = [RUNC, args[0],
           "-addr", "localhost:%d" % rund.port,
           "-ca", os.path.join(TLS, "ca.pem"),
           "-cert", cert or os.path.join(TLS, who + ".pem"),
           "-key", key or os.path.join(TLS, who + "-key.pem")] + list(args[1:])
    return subprocess.run(cmd, capture_output=True, timeout=timeout, input=input)


def children_of(pid, marker=b""):
    """Pids of pid's children whose command line contains marker."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            kids = [int(k) for k in f.read().split()]
    except OSError:
        return []
    found = []
    for k in kids:
        try:
            with open("/proc/%d/cmdline" % k, "rb") as f:
                if marker in f.read():
                    found.append(k)
        except OSError:
            pass
    return found


def wait_for(pred, timeout=10, interval=0.02):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()
