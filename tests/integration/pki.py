"""Certificates made at test time with the openssl CLI, for the cases the
checked-in example PKI (tls/) must not contain: a client from a foreign CA,
an expired client, a client without any SAN.

Each public function takes a directory (e.g. pytest's tmp_path), writes its
files there and returns (cert_path, key_path) as str. Keys are ECDSA P-256:
the curve does not matter to these tests and it is the quickest."""

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TLS = os.path.join(ROOT, "tls")
EXAMPLE_CA = (os.path.join(TLS, "ca.pem"), os.path.join(TLS, "ca-key.pem"))

# The SANs of tls/client.pem: reusing them shows a refusal is about the
# issuer or the dates, not about the names.
CLIENT_SANS = ("DNS:client.rund.test", "URI:spiffe://rund.test/team-a")


def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr.decode(errors="replace")))
    return r


def _key(path):
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-pkeyopt", "ec_param_enc:named_curve", "-out", path)
    return path


def make_ca(directory, name="foreign"):
    """A self-signed CA unrelated to the example one. Returns (cert, key)."""
    directory = str(directory)
    key = _key(os.path.join(directory, name + "-ca-key.pem"))
    cert = os.path.join(directory, name + "-ca.pem")
    _openssl("req", "-new", "-x509", "-key", key, "-sha256", "-days", "30",
             "-subj", "/O=rund test/CN=%s test CA" % name,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", cert)
    return cert, key


def issue(directory, name, sans=CLIENT_SANS, ca=EXAMPLE_CA, not_before=None, not_after=None,
          eku="clientAuth"):
    """Issues a leaf certificate signed by ca = (cert, key).

    sans: iterable of openssl SAN entries ("DNS:x", "URI:y", "IP:z"); empty
    for a certificate without a subjectAltName extension. not_before and
    not_after: "YYYYMMDDHHMMSSZ" strings; by default valid from now for 30
    days. `openssl ca` is used because OpenSSL 3.0's `x509 -req` cannot set
    a start date. Returns (cert, key)."""
    directory = str(directory)
    work = os.path.join(directory, name + ".ca")
    os.makedirs(work, exist_ok=True)
    key = _key(os.path.join(directory, name + "-key.pem"))
    cert = os.path.join(directory, name + ".pem")
    csr = os.path.join(work, "req.csr")
    _openssl("req", "-new", "-key", key, "-subj", "/O=rund test/CN=" + name, "-out", csr)

    ext = ["basicConstraints = critical, CA:FALSE",
           "keyUsage = critical, digitalSignature",
           "extendedKeyUsage = " + eku]
    sans = list(sans)
    if sans:
        ext.append("subjectAltName = " + ",".join(sans))
    ext_file = os.path.join(work, "ext.cnf")
    with open(ext_file, "w") as f:
        f.write("\n".join(ext) + "\n")

    open(os.path.join(work, "index.txt"), "w").close()
    with open(os.path.join(work, "serial"), "w") as f:
        f.write(os.urandom(8).hex().upper() + "\n")
    conf = os.path.join(work, "ca.cnf")
    with open(conf, "w") as f:
        f.write("[ca]\ndefault_ca = tmp\n"
                "[tmp]\n"
                "dir = %s\n"
                "database = $dir/index.txt\n"
                "new_certs_dir = $dir\n"
                "serial = $dir/serial\n"
                "default_md = sha256\n"
                "policy = anything\n"
                "unique_subject = no\n"
                "copy_extensions = none\n"
                "[anything]\ncommonName = supplied\norganizationName = optional\n" % work)

    args = ["ca", "-batch", "-notext", "-config", conf, "-cert", ca[0], "-keyfile", ca[1],
            "-in", csr, "-out", cert, "-extfile", ext_file]
    if not_before or not_after:
        args += ["-startdate", not_before or "20200101000000Z",
                 "-enddate", not_after or "20491231235959Z"]
    else:
        args += ["-days", "30"]
    _openssl(*args)
    return cert, key


def foreign_client(directory):
    """A client certificate with tls/client.pem's SANs, issued by a freshly
    made CA that rund does not trust. Returns (cert, key)."""
    ca = make_ca(directory, "foreign")
    return issue(directory, "foreign-client", ca=ca)


def expired_client(directory):
    """A client certificate from the example CA that expired in 2021."""
    return issue(directory, "expired-client", not_before="20200101000000Z",
                 not_after="20210101000000Z")


def not_yet_valid_client(directory):
    """A client certificate from the example CA valid only from 2090."""
    return issue(directory, "future-client", not_before="20900101000000Z",
                 not_after="20910101000000Z")


def nosan_client(directory):
    """A valid client certificate from the example CA with no
    subjectAltName extension at all (only a subject CN)."""
    return issue(directory, "nosan-client", sans=())
