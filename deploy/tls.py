"""A private certificate authority and a server certificate for local servers that must speak TLS (the Kafka
broker's SCRAM listener in tests and the multi-node run), written once into a directory.

Clients trust ``ca.pem`` (``ENGAGE_KAFKA_SSL_CA_FILE``); the broker reads ``server.p12`` (PKCS#12, which Java
reads without a conversion step). The CA's key stays beside them (``ca-key.pem``) so that a renewed server
certificate can be issued from the same CA: clients keep trusting the broker across a rotation
(``deploy/SCALING.md``). Not for production: there the platform's own CA issues the certificates.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

KEYSTORE_PASSWORD = "engage-local-keystore"


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path  # PEM: what clients verify the server with
    keystore: Path  # PKCS#12: the server's key and certificate chain
    keystore_password: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def ensure_tls(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 3650) -> TlsFiles:
    """The CA and a server certificate valid for ``hosts`` (IP addresses and DNS names) in ``directory``, made on
    the first call and reused after."""
    files = TlsFiles(directory / "ca.pem", directory / "server.p12", KEYSTORE_PASSWORD)
    if files.ca_file.exists() and files.keystore.exists():
        return files
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC) - timedelta(minutes=5)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("engage local CA"))
        .issuer_name(_name("engage local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (directory / "ca-key.pem").write_bytes(
        ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    _issue(directory, files.keystore, hosts, days)
    return files


def renew_server_certificate(
    directory: Path, keystore: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), days: int = 3650
) -> int:
    """A new server key and certificate from ``directory``'s CA, for the same ``hosts`` (Kafka reloads a
    listener's keystore only if the subject and alternative names stay the same), into ``keystore``; its serial."""
    return _issue(directory, keystore, hosts, days)


def _issue(directory: Path, keystore: Path, hosts: tuple[str, ...], days: int) -> int:
    ca = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    ca_key = serialization.load_pem_private_key((directory / "ca-key.pem").read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{directory / 'ca-key.pem'}: not the EC key ensure_tls writes")
    now = datetime.now(UTC) - timedelta(minutes=5)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"server", key, cert, [ca], serialization.BestAvailableEncryption(KEYSTORE_PASSWORD.encode())
        )
    )
    return cert.serial_number
