"""A throwaway certificate authority: CA, broker and client certificates as PEM files."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough for any test session, short enough that a leaked file is worthless tomorrow.
VALIDITY = dt.timedelta(days=1)
# Tolerates a few minutes of skew between this process's clock and OpenSSL's check.
BACKDATE = dt.timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Credentials:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + VALIDITY)
    )


def _write(
    directory: Path, stem: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> Credentials:
    creds = Credentials(cert=directory / f"{stem}.crt", key=directory / f"{stem}.key")
    creds.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    creds.key.chmod(0o600)
    creds.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return creds


class CertificateAuthority:
    """A self-signed CA (EC P-256, fast to make) that issues broker and client certificates."""

    def __init__(self, name: str, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._cert = (
            _builder(_name(name), _name(name), self._key)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.files = _write(directory, name, self._key, self._cert)

    def _issue(
        self, stem: str, common_name: str, usage: x509.ObjectIdentifier, san: list[x509.GeneralName]
    ) -> Credentials:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            _builder(_name(common_name), self._cert.subject, key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return _write(self.directory, stem, key, builder.sign(self._key, hashes.SHA256()))

    def issue_server(self, stem: str) -> Credentials:
        """A broker certificate valid for localhost and 127.0.0.1."""
        san: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        return self._issue(stem, "localhost", ExtendedKeyUsageOID.SERVER_AUTH, san)

    def issue_client(self, common_name: str) -> Credentials:
        """A client certificate whose CN becomes the MQTT user name (a hub id or worker name)."""
        return self._issue(common_name, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [])
