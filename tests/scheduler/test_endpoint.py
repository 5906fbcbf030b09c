"""The scheduler's listening socket: a local cluster's is a Unix socket in a folder only
this user can open, removed when it closes; a given address is bound as given."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import zmq

from smpframe import InputError, RunConfig
from smpframe.scheduler.server import Endpoint


def test_a_local_cluster_listens_on_a_private_unix_socket():
    endpoint = Endpoint(RunConfig(), local=True)
    try:
        assert endpoint.address.startswith("ipc://")
        folder = Path(endpoint.address[len("ipc://"):]).parent
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.stat().st_uid == os.getuid()
        peer = endpoint.context.socket(zmq.DEALER)  # a worker of this user connects and is heard
        peer.connect(endpoint.address)
        peer.send(b"hello")
        assert endpoint.socket.poll(5000) and endpoint.socket.recv_multipart()[1] == b"hello"
        peer.close(linger=0)
    finally:
        endpoint.close()
    assert not folder.exists()


def test_a_given_address_is_bound_as_given():
    endpoint = Endpoint(RunConfig(bind="tcp://127.0.0.1:0"), local=True)
    try:
        assert endpoint.address.startswith("tcp://127.0.0.1:") and not endpoint.address.endswith(":0")
    finally:
        endpoint.close()
    with pytest.raises(InputError, match="--bind tcp://256.0.0.1:5"):
        Endpoint(RunConfig(bind="tcp://256.0.0.1:5"), local=True)


def test_a_temporary_folder_too_deep_for_a_unix_socket_falls_back_to_loopback_tcp(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setenv("TMPDIR", str(deep))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    endpoint = Endpoint(RunConfig(), local=True)
    try:
        assert endpoint.address.startswith("tcp://127.0.0.1:")
    finally:
        endpoint.close()
    assert list(deep.iterdir()) == []  # the unused folder removed
