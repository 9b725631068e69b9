"""Who may open the page. On a loopback address: anyone on this machine, over plain HTTP
(browsers treat localhost as a secure origin). On any other address: only who holds the
token printed at start (in the URL once, a cookie after), over HTTPS with the given
certificate or a self-signed one made at start."""

from __future__ import annotations

import datetime
import ipaddress
import secrets
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from rt_dtgan.transport.security import is_local_address

TOKEN_COOKIE = "rt_dtgan_token"
SELF_SIGNED_DAYS = 30


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is this machine only: 127.0.0.0/8, ::1, localhost
    (the remote worker's rule for its tcp:// addresses)."""
    return is_local_address(f"tcp://[{host}]:1" if ":" in host else f"tcp://{host}:1")


@dataclass(frozen=True)
class Access:
    """``token``: what a request must carry (None: none needed, loopback); ``tls``: the HTTPS
    context (None: plain HTTP)."""

    token: str | None
    tls: ssl.SSLContext | None

    def allows(self, given: str | None) -> bool:
        return self.token is None or (given is not None and secrets.compare_digest(given.encode(), self.token.encode()))

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


def access_for(bind: str, cert: str | None, key: str | None, folder: Path) -> Access:
    """Loopback without ``cert``: no token, HTTP. Otherwise a fresh token and HTTPS with
    ``cert`` and ``key`` (PEM files), or a self-signed pair for ``bind`` written in ``folder``."""
    if is_loopback(bind) and cert is None:
        return Access(None, None)
    if cert is None:
        cert, key = write_self_signed(bind, folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return Access(None if is_loopback(bind) else secrets.token_urlsafe(24), context)


def write_self_signed(host: str, folder: Path) -> tuple[str, str]:
    """A self-signed certificate for ``host`` (and this machine's name), valid SELF_SIGNED_DAYS
    -> (certificate path, key path), PEM, in ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rt-dtgan web")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(_alternative_names(host)), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "web-cert.pem", folder / "web-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return str(cert_path), str(key_path)


def _alternative_names(host: str) -> list:
    from cryptography import x509

    names = {socket.gethostname(), "localhost"} | ({host} if host not in ("0.0.0.0", "::") else set())
    entries = []
    for name in sorted(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries
