"""A throwaway test CA and a server certificate, made with Debian's openssl.

    paths = make_certs(tmp_path / "tls")      # CertPaths(ca, cert, key, ca_key)
    ctx = server_context(paths)               # ssl.SSLContext for a server
    client = client_context(paths.ca)         # trusts only the test CA

The server certificate is valid for IP 127.0.0.1, 127.0.0.2, 127.0.0.3 and
DNS localhost, signed by the CA (ECDSA P-256: fast to make). Clients that
should trust it get the CA: GIT_SSL_CAINFO=ca.pem for git,
CURLOPT_CAINFO for libcurl, NODE_EXTRA_CA_CERTS / SSL_CERT_FILE elsewhere.
"""
import collections
import os
import ssl
import subprocess

CertPaths = collections.namedtuple("CertPaths", "ca cert key ca_key")

SAN = "IP:127.0.0.1,IP:127.0.0.2,IP:127.0.0.3,DNS:localhost"


def _openssl(*args, cwd):
    p = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {p.stderr.strip()}")


def make_certs(directory, cn="corral test server", days=30):
    """Make ca.pem, ca-key.pem, cert.pem and key.pem in `directory` (created
    if missing; existing files are replaced). Returns their absolute paths."""
    d = os.path.abspath(str(directory))
    os.makedirs(d, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca-key.pem", "-out", "ca.pem",
             "-days", str(days), "-subj", "/CN=corral test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-new", *ec, "-keyout", "key.pem", "-out", "cert.csr",
             "-subj", f"/CN={cn}", cwd=d)
    with open(os.path.join(d, "cert.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n"
                "extendedKeyUsage=serverAuth\n"
                f"subjectAltName={SAN}\n")
    _openssl("x509", "-req", "-in", "cert.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
             "-CAcreateserial", "-out", "cert.pem", "-days", str(days),
             "-extfile", "cert.ext", cwd=d)
    for n in ("cert.csr", "cert.ext", "ca.srl"):
        try:
            os.unlink(os.path.join(d, n))
        except FileNotFoundError:
            pass
    # Readable by an unprivileged client (the CA and the certificate only).
    for n in ("ca.pem", "cert.pem"):
        os.chmod(os.path.join(d, n), 0o644)
    return CertPaths(*(os.path.join(d, n) for n in ("ca.pem", "cert.pem", "key.pem",
                                                    "ca-key.pem")))


def server_context(paths=None, cert=None, key=None):
    """An ssl.SSLContext for a server: give a CertPaths, or cert and key."""
    if paths is not None:
        cert, key = paths.cert, paths.key
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(ca):
    """An ssl.SSLContext for a client that trusts only the CA file `ca`."""
    return ssl.create_default_context(cafile=ca)
