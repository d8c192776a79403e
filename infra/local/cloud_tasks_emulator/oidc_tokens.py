"""RS256 ID tokens shaped like the ones Cloud Tasks mints for `oidc_token`, and the keys to verify them.

The public key is published both ways google-auth's `id_token.verify_token(certs_url=...)` accepts: as a
`{kid: PEM certificate}` map (Google's v1 certs format, needs nothing beyond google-auth) and as a JWKS
(needs PyJWT on the verifying side).
"""

import base64
import datetime
import hashlib
import secrets
import threading
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

TOKEN_LIFETIME_SECONDS = 3600
# A token is handed out again for this long after minting (it stays valid for the hour either way): an
# RSA signature per dispatch would cost the emulator more CPU than the dispatch itself.
TOKEN_REUSE_SECONDS = 300


class OidcIssuer:
    def __init__(self, issuer_url: str) -> None:
        self.issuer_url = issuer_url
        self.key_id = secrets.token_hex(20)
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private_pem = self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self._signer = crypt.RSASigner.from_string(private_pem, key_id=self.key_id)  # type: ignore[no-untyped-call]
        self._certificate_pem = self._self_signed_certificate()
        self._lock = threading.Lock()
        self._minted: dict[tuple[str, str], tuple[float, str]] = {}

    def mint(self, service_account_email: str, audience: str) -> str:
        """An ID token for the account and audience: a recent one again, or a freshly signed one."""
        key = (service_account_email, audience)
        with self._lock:
            minted = self._minted.get(key)
        if minted is not None and time.monotonic() - minted[0] < TOKEN_REUSE_SECONDS:
            return minted[1]
        token = self._sign(service_account_email, audience)
        with self._lock:
            self._minted[key] = (time.monotonic(), token)
        return token

    def _sign(self, service_account_email: str, audience: str) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer_url,
            "aud": audience,
            "azp": _subject_of(service_account_email),
            "sub": _subject_of(service_account_email),
            "email": service_account_email,
            "email_verified": True,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECONDS,
        }
        token: bytes = jwt.encode(self._signer, claims)  # type: ignore[no-untyped-call]
        return token.decode("ascii")

    def pem_certificates(self) -> dict[str, str]:
        return {self.key_id: self._certificate_pem}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        numbers = self._private_key.public_key().public_numbers()
        key = {"kty": "RSA", "alg": "RS256", "use": "sig", "kid": self.key_id}
        return {"keys": [key | {"n": _b64_uint(numbers.n), "e": _b64_uint(numbers.e)}]}

    def discovery_document(self, jwks_uri: str) -> dict[str, Any]:
        return {
            "issuer": self.issuer_url,
            "jwks_uri": jwks_uri,
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["aud", "azp", "email", "email_verified", "exp", "iat", "iss", "sub"],
        }

    def _self_signed_certificate(self) -> str:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cloud-tasks-emulator")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._private_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=365))
            .sign(self._private_key, hashes.SHA256())
        )
        return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _subject_of(service_account_email: str) -> str:
    # Google puts the service account's numeric unique id here; a stable number derived from the email
    # keeps the claim's shape without inventing a registry of accounts.
    digest = hashlib.sha256(service_account_email.encode()).digest()
    return str(int.from_bytes(digest[:9], "big"))


def _b64_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
