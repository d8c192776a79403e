"""The local stack's certificate authority: TLS for the front-end emulator, as Google's front end serves
every function over HTTPS, and the client certificate that marks a caller as Google-internal.

`make dev` (LocalStack.start) creates it once per state directory and keeps it, so a browser or a tool
told to trust it keeps trusting it across restarts. Files, in `<state dir>/tls/`:

    ca.pem, ca.key              the authority (the key never leaves this directory, mode 0600)
    server.pem, server.key      the front end's certificate: 127.0.0.1 and localhost
    internal.pem, internal.key  a client certificate for the Google-side emulators (Cloud Tasks, the
                                Pub/Sub push relay): the front end's stand-in for "this request comes from
                                inside Google's network", which Cloud Run's `internal` ingress admits
    ca-bundle.pem               the public roots (certifi) plus this authority: what SSL_CERT_FILE and
                                REQUESTS_CA_BUNDLE point at, so every client trusts both

Nothing here is a secret worth more than the machine it lives on: the authority signs for loopback names
only (a name constraint), so trusting it cannot let it vouch for anyone else's site.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# The client certificate's subject; the front end admits `internal` ingress only for it.
INTERNAL_CALLER_NAME = "google-internal.localhost"
_LOOPBACK_NAMES = ("localhost",)
_LOOPBACK_IPS = ("127.0.0.1",)
_CA_YEARS = 5
_LEAF_DAYS = 365
# A leaf due to expire within this long is issued again at start.
_RENEW_BEFORE = datetime.timedelta(days=30)


@dataclass(frozen=True)
class LocalCa:
    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def bundle_file(self) -> Path:
        return self.directory / "ca-bundle.pem"

    @property
    def server_cert(self) -> tuple[Path, Path]:
        return self.directory / "server.pem", self.directory / "server.key"

    @property
    def internal_cert(self) -> tuple[Path, Path]:
        return self.directory / "internal.pem", self.directory / "internal.key"

    def spki_sha256(self) -> str:
        """Base64 SHA-256 of the authority's public key: what Chromium's
        --ignore-certificate-errors-spki-list takes to trust certificates this authority signed."""
        certificate = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(hashlib.sha256(spki).digest()).decode("ascii")

    def server_context(self) -> ssl.SSLContext:
        """The front end's: its certificate, and a client certificate asked for but not required (a
        browser or Twilio presents none; the Google-side emulators present the internal one)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(*map(str, self.server_cert))
        context.load_verify_locations(cafile=str(self.ca_file))
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def internal_client_context(self) -> ssl.SSLContext:
        """A client context that trusts this authority and presents the Google-internal certificate."""
        context = ssl.create_default_context(cafile=str(self.bundle_file))
        context.load_cert_chain(*map(str, self.internal_cert))
        return context


def ensure_local_ca(directory: Path) -> LocalCa:
    """The authority in `directory`, created on first use; leaves are (re)issued when missing or due."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    ca = LocalCa(directory)
    key_file = directory / "ca.key"
    if not ca.ca_file.exists() or not key_file.exists() or _expires_soon(ca.ca_file):
        _write_authority(ca.ca_file, key_file)
    ca_key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca.ca_file.read_bytes())
    server_cert, server_key = ca.server_cert
    if _needs_leaf(server_cert, server_key, ca_cert):
        _write_leaf(server_cert, server_key, ca_cert, ca_key, server=True)
    internal_cert, internal_key = ca.internal_cert
    if _needs_leaf(internal_cert, internal_key, ca_cert):
        _write_leaf(internal_cert, internal_key, ca_cert, ca_key, server=False)
    ca.bundle_file.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + ca.ca_file.read_bytes())
    return ca


def is_internal_caller(peer_certificate: dict[str, object] | None) -> bool:
    """Whether a verified client certificate (ssl.SSLSocket.getpeercert()) is the Google-internal one."""
    if not peer_certificate:
        return False
    subject = peer_certificate.get("subject", ())
    names = [value for rdn in subject for key, value in rdn if key == "commonName"]  # type: ignore[attr-defined]
    return names == [INTERNAL_CALLER_NAME]


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _expires_soon(path: Path) -> bool:
    certificate = x509.load_pem_x509_certificate(path.read_bytes())
    return certificate.not_valid_after_utc - _now() < _RENEW_BEFORE


def _needs_leaf(cert_file: Path, key_file: Path, ca_cert: x509.Certificate) -> bool:
    if not cert_file.exists() or not key_file.exists() or _expires_soon(cert_file):
        return True
    # Issued by an earlier authority (the CA was renewed): issue again.
    return x509.load_pem_x509_certificate(cert_file.read_bytes()).issuer != ca_cert.subject


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def _write_authority(cert_file: Path, key_file: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Event Stream Engine local CA")])
    now = _now()
    permitted: list[x509.GeneralName] = [x509.DNSName(n) for n in _LOOPBACK_NAMES]
    permitted += [x509.IPAddress(ipaddress.ip_network(f"{ip}/32")) for ip in _LOOPBACK_IPS]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365 * _CA_YEARS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        # Loopback names only: the authority cannot vouch for any real site, even if its key leaked.
        .add_extension(
            x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_file, key)
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _write_leaf(
    cert_file: Path,
    key_file: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    server: bool,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    common_name = "127.0.0.1" if server else INTERNAL_CALLER_NAME
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    names: list[x509.GeneralName] = [x509.DNSName(INTERNAL_CALLER_NAME)]
    if server:
        names = [x509.DNSName(n) for n in _LOOPBACK_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in _LOOPBACK_IPS]
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    certificate = builder.sign(ca_key, hashes.SHA256())
    _write_key(key_file, key)
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
