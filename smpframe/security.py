"""CURVE authentication and encryption (ZeroMQ's zmq.auth) with a worker allow-list.

Off by default (loopback binding is the default protection). With keys on, a peer
whose public key is not in the allow-list folder cannot complete the handshake, so it
can neither send results nor read anything.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from smpframe.errors import InputError


@dataclass
class SecurityConfig:
    """Key files for one side. All None: plain TCP."""

    secret_file: str | None = None   # this side's ``*.key_secret``
    server_key_file: str | None = None  # worker: the scheduler's public ``*.key``
    allow_dir: str | None = None     # scheduler: folder of allowed workers' ``*.key``

    @property
    def enabled(self) -> bool:
        return self.secret_file is not None

    def apply_client(self, socket: zmq.Socket) -> None:
        """Make a worker socket a CURVE client of the scheduler."""
        if not self.enabled:
            return
        if self.server_key_file is None:
            raise InputError("--curve-secret needs --curve-server (the scheduler's public key file)")
        public, secret = _load(self.secret_file, secret=True)
        server_public, _ = _load(self.server_key_file, secret=False)
        socket.curve_publickey, socket.curve_secretkey = public, secret
        socket.curve_serverkey = server_public

    def apply_server(self, socket: zmq.Socket) -> None:
        """Make the scheduler socket a CURVE server (the authenticator checks clients)."""
        if not self.enabled:
            return
        public, secret = _load(self.secret_file, secret=True)
        socket.curve_publickey, socket.curve_secretkey = public, secret
        socket.curve_server = True

    def start_authenticator(self, context: zmq.Context) -> ThreadAuthenticator | None:
        """Start the ZAP handler that admits only keys in ``allow_dir``."""
        if not self.enabled:
            return None
        if self.allow_dir is None or not Path(self.allow_dir).is_dir():
            raise InputError(f"--curve-allow {self.allow_dir}: not a folder of worker public keys")
        auth = ThreadAuthenticator(context)
        auth.start()
        auth.configure_curve(domain="*", location=str(self.allow_dir))
        return auth


def _load(path: str | None, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read key: {exc}", path=path) from None
    if secret and secret_key is None:
        raise InputError("this is a public key; the secret key file ends in .key_secret", path=path)
    return public, secret_key


def generate_keys(folder: str, names: list[str]) -> list[Path]:
    """Create a key pair per name in ``folder``; public keys of workers go in ``allowed/``."""
    root = Path(folder)
    allowed = root / "allowed"
    allowed.mkdir(parents=True, exist_ok=True)
    made = []
    for name in names:
        public, secret = zmq.auth.create_certificates(str(root), name)
        made += [Path(public), Path(secret)]
        if name != "scheduler":
            (allowed / Path(public).name).write_bytes(Path(public).read_bytes())
    return made
