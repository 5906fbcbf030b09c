"""CURVE authentication and encryption (ZeroMQ's zmq.auth) with a worker allow-list.

Off by default (loopback binding is the default protection). With keys on, a peer
whose public key is not in the allow-list folder cannot complete the handshake, so it
can neither send results nor read anything.
"""
from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

from smpframe.config import RunConfig
from smpframe.errors import InputError


def enabled(config: RunConfig) -> bool:
    """True when this side has a CURVE key (then the socket is encrypted and authenticated)."""
    return config.curve_secret is not None


def apply_client(socket: zmq.Socket, config: RunConfig) -> None:
    """Make a worker socket a CURVE client of the scheduler (no-op without keys)."""
    if not enabled(config):
        return
    if config.curve_server is None:
        raise InputError("--curve-secret needs --curve-server (the scheduler's public key file)")
    public, secret = _load(config.curve_secret, secret=True)
    server_public, _ = _load(config.curve_server, secret=False)
    socket.curve_publickey, socket.curve_secretkey = public, secret
    socket.curve_serverkey = server_public


def apply_server(socket: zmq.Socket, config: RunConfig) -> None:
    """Make the scheduler socket a CURVE server (the authenticator checks clients)."""
    if not enabled(config):
        return
    public, secret = _load(config.curve_secret, secret=True)
    socket.curve_publickey, socket.curve_secretkey = public, secret
    socket.curve_server = True


def start_authenticator(context: zmq.Context, config: RunConfig) -> ThreadAuthenticator | None:
    """Start the ZAP handler that admits only keys in ``--curve-allow``."""
    if not enabled(config):
        return None
    allow = config.curve_allow
    if allow is None or not Path(allow).is_dir():
        raise InputError(f"--curve-allow {allow}: not a folder of worker public keys")
    auth = ThreadAuthenticator(context)
    auth.start()
    auth.configure_curve(domain="*", location=str(allow))
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
        os.chmod(secret, 0o600)  # a secret key is for its owner's eyes only
        made += [Path(public), Path(secret)]
        if name != "scheduler":
            (allowed / Path(public).name).write_bytes(Path(public).read_bytes())
    return made
