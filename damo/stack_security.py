"""Closing the object store's internal ports: SeaweedFS ``security.toml`` for the local stack.

``weed mini`` serves, besides its S3 port, a master, a volume server, a filer and an admin server,
each on an HTTP port and a gRPC port. Out of the box none of those asks for credentials: any local
user could list, read and write the bucket through the filer. :func:`write_security` closes them:

- JWT signing keys (``jwt.signing`` master→volume writes and ``.read`` reads; ``jwt.filer_signing``
  and ``.read`` for the filer): the volume server and the filer then refuse unsigned HTTP requests,
  and only the S3 gateway (which checks the S3 credentials) signs its own;
- mutual TLS on every gRPC port: a private CA made here signs one certificate that every component
  presents; a client without it fails the handshake;
- ``weed mini -disableHttp`` (set in :mod:`damo.stack`): the master's and the filer's HTTP APIs
  (``/dir/assign`` hands out write tokens; the filer lists and serves the bucket) answer 404; the
  components talk over gRPC, and the S3 gateway writes to the volume server with signed requests;
- the admin server gets a generated password, passed in an options file (0600), never on the command
  line where ``ps`` would show it.

Every file is written 0600 inside the stack's state folder (0700); ``weed`` runs with that folder as
its working directory, where it finds ``./security.toml`` first.
"""

from __future__ import annotations

import datetime
import os
import secrets
from collections.abc import Callable
from pathlib import Path

SECURITY_FILE = "security.toml"
OPTIONS_FILE = "weed.options"
TLS_DIR = "tls"
CERT_DAYS = 3650
KEY_BITS = 2048
JWT_EXPIRY_S = 10  # SeaweedFS's default lifetime of a signed request
JWT_SECTIONS = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
GRPC_COMPONENTS = ("master", "volume", "filer", "s3", "admin", "worker", "client")
SECRET_KEYS = ("WEED_JWT_KEY", "WEED_JWT_READ_KEY", "WEED_FILER_JWT_KEY", "WEED_FILER_JWT_READ_KEY",
               "WEED_ADMIN_PASSWORD")


def new_secrets() -> dict[str, str]:
    """The generated keys the store needs (kept in the stack's ``credentials.env`` with the others)."""
    return {key: secrets.token_urlsafe(32) for key in SECRET_KEYS}


def write_security(folder: Path, creds: dict[str, str], write_private: Callable[[Path, str], None]) -> None:
    """``security.toml``, the TLS material and the admin options file, all 0600 under ``folder``."""
    tls = folder / TLS_DIR
    tls.mkdir(mode=0o700, exist_ok=True)
    if not (tls / "ca.crt").is_file() or not (tls / "node.key").is_file():
        _make_certificates(tls, write_private)
    keys = [creds[k] for k in SECRET_KEYS[:4]]
    lines = [f'[{section}]\nkey = "{key}"\nexpires_after_seconds = {JWT_EXPIRY_S}\n'
             for section, key in zip(JWT_SECTIONS, keys)]
    lines.append('[access]\nui = false\n')
    lines.append(f'[grpc]\nca = "{tls / "ca.crt"}"\n')
    lines += [f'[grpc.{name}]\ncert = "{tls / "node.crt"}"\nkey = "{tls / "node.key"}"\n'
              for name in GRPC_COMPONENTS]
    write_private(folder / SECURITY_FILE, "\n".join(lines))
    write_private(folder / OPTIONS_FILE, f"admin.password={creds['WEED_ADMIN_PASSWORD']}\n")


def _make_certificates(tls: Path, write_private: Callable[[Path, str], None]) -> None:
    """A private CA and one node certificate (client + server use) it signs; SeaweedFS does not check
    host names, so every component shares the node certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)

    def pem(k: rsa.RSAPrivateKey) -> str:
        return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()).decode()

    now = datetime.datetime.now(datetime.UTC)
    ca_key, node_key = key(), key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "damo local stack CA")])
    node_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "damo-stack")])

    def builder(subject: x509.Name, public: rsa.RSAPublicKey) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public)
                .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=CERT_DAYS)))

    ca = builder(ca_name, ca_key.public_key()).add_extension(
        x509.BasicConstraints(ca=True, path_length=0), critical=True).sign(ca_key, hashes.SHA256())
    node = (builder(node_name, node_key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    write_private(tls / "node.key", pem(node_key))
    write_private(tls / "node.crt", node.public_bytes(serialization.Encoding.PEM).decode())
    write_private(tls / "ca.crt", ca.public_bytes(serialization.Encoding.PEM).decode())
    os.chmod(tls, 0o700)  # the CA key is not kept: no one can sign another node certificate
