"""Throwaway TLS material and passwords for the local broker's secured listeners (openssl).

``issue(folder)`` writes, once, a private CA, a broker certificate for ``localhost`` and
``127.0.0.1`` signed by it, a client certificate for mutual TLS, and the passwords the broker and
its one client user need. Private keys and password files are 0600 in a 0700 folder; no password
is ever printed or logged, and none goes on a command line (openssl reads them from files).

Layout of ``folder``:

- ``ca.pem`` (trust anchor for clients and broker), ``ca.key``;
- ``broker.keystore.pem``: the broker's PKCS#8 key, encrypted with ``key.password`` (Kafka's PEM
  keystore wants an encrypted key), followed by its certificate and the CA's;
- ``client.pem`` / ``client.key``: a client certificate (CN ``centinela-client``) for mutual TLS;
  the key is unencrypted PEM, as librdkafka reads it without a password setting;
- ``client.password``: the SCRAM-SHA-512 and PLAIN password of user ``centinela``;
- ``key.password``: the password of the broker's key.

Not for production: a real deployment gets its certificates and passwords from its own PKI and
secret store; see docs/security.md.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from detector.errors import ConfigError

CLIENT_USER = "centinela"
CLIENT_CN = "centinela-client"
BROKER_HOSTS = ("localhost", "127.0.0.1")
VALID_DAYS = 30
_RSA_BITS = "2048"


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the files ``issue`` wrote; passwords are read from their files only when needed."""

    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def broker_keystore(self) -> Path:
        return self.folder / "broker.keystore.pem"

    @property
    def key_password_file(self) -> Path:
        return self.folder / "key.password"

    @property
    def client_cert(self) -> Path:
        return self.folder / "client.pem"

    @property
    def client_key(self) -> Path:
        return self.folder / "client.key"

    @property
    def client_password_file(self) -> Path:
        return self.folder / "client.password"

    @property
    def client_user(self) -> str:
        return CLIENT_USER

    def complete(self) -> bool:
        files = (
            self.ca_cert,
            self.ca_key,
            self.broker_keystore,
            self.key_password_file,
            self.client_cert,
            self.client_key,
            self.client_password_file,
        )
        return all(path.is_file() for path in files)

    def client_password(self) -> str:
        return read_secret(self.client_password_file)

    def key_password(self) -> str:
        return read_secret(self.key_password_file)


def read_secret(path: Path) -> str:
    """A password file's content without its trailing newline."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"cannot read the secret file {path}: {error.strerror or error}") from error


def write_secret(path: Path, value: str) -> None:
    """Create ``path`` with mode 0600 before anything is written to it (no window where it is readable)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")


def new_password() -> str:
    """192 random bits, URL-safe: no quote, dollar or backslash to escape in a JAAS line or a template."""
    return secrets.token_urlsafe(24)


def _openssl() -> str:
    found = shutil.which("openssl")
    if found is None:
        raise ConfigError("openssl is not on PATH; it is needed to make the local broker's certificates")
    return found


def _run(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        [_openssl(), *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise ConfigError(f"openssl {args[0]} failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")


def _self_signed_ca(folder: Path, name: str) -> None:
    _run(
        "req",
        "-x509",
        "-newkey",
        f"rsa:{_RSA_BITS}",
        "-noenc",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        str(VALID_DAYS),
        "-subj",
        f"/CN={name}",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )


def _signed(folder: Path, stem: str, subject: str, extensions: str) -> None:
    """``stem.key`` (unencrypted) and ``stem.pem`` signed by the folder's CA."""
    _run(
        "req",
        "-newkey",
        f"rsa:{_RSA_BITS}",
        "-noenc",
        "-keyout",
        f"{stem}.key",
        "-out",
        f"{stem}.csr",
        "-subj",
        f"/CN={subject}",
        cwd=folder,
    )
    (folder / f"{stem}.ext").write_text(extensions, encoding="utf-8")
    _run(
        "x509",
        "-req",
        "-in",
        f"{stem}.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-set_serial",
        str(secrets.randbits(63)),
        "-days",
        str(VALID_DAYS),
        "-extfile",
        f"{stem}.ext",
        "-out",
        f"{stem}.pem",
        cwd=folder,
    )
    for leftover in (f"{stem}.csr", f"{stem}.ext"):
        (folder / leftover).unlink()


def issue_ca(folder: Path, name: str = "centinela-local-ca") -> Path:
    """Just a CA (tests use a second one as the 'untrusted' authority); returns its certificate."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    _self_signed_ca(folder, name)
    os.chmod(folder / "ca.key", 0o600)
    return folder / "ca.pem"


def issue(folder: Path, hosts: tuple[str, ...] = BROKER_HOSTS) -> TlsMaterial:
    """Write a fresh CA, broker and client certificates and passwords into ``folder`` (kept if complete)."""
    material = TlsMaterial(folder)
    if material.complete():
        return material
    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    # Built in a sibling folder and renamed: an interrupted run never leaves half a CA behind.
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=parent))
    try:
        os.chmod(staging, 0o700)
        _self_signed_ca(staging, "centinela-local-ca")
        san = ",".join(f"IP:{host}" if host.replace(".", "").isdigit() else f"DNS:{host}" for host in hosts)
        _signed(
            staging,
            "broker",
            hosts[0],
            f"subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n",
        )
        _signed(staging, "client", CLIENT_CN, "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n")
        write_secret(staging / "key.password", new_password())
        write_secret(staging / "client.password", new_password())
        # Java 17 reads only PBES1 keys here ("PBES2 SecretKeyFactory not available"); the file's
        # 0600 mode protects the key, the encryption is what Kafka's PEM keystore format asks for.
        _run(
            "pkcs8",
            "-topk8",
            "-in",
            "broker.key",
            "-out",
            "broker.key.enc",
            "-v1",
            "PBE-SHA1-3DES",
            "-passout",
            "file:key.password",
            cwd=staging,
        )
        keystore = b"".join(
            (staging / name).read_bytes() for name in ("broker.key.enc", "broker.pem", "ca.pem")
        )
        descriptor = os.open(staging / "broker.keystore.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(keystore)
        for leftover in ("broker.key", "broker.key.enc", "broker.pem"):
            (staging / leftover).unlink()
        for private in ("ca.key", "client.key"):
            os.chmod(staging / private, 0o600)
        shutil.rmtree(folder, ignore_errors=True)
        staging.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return material
