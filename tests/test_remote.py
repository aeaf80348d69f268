"""Sharing results through a DVC remote: a local directory, a real SSH server, the run-cache."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import run

pytestmark = pytest.mark.slow

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def _clone(src: Path, dest: Path) -> Path:
    run(["git", "clone", "-q", str(src), str(dest)], src.parent)
    return dest


def _assert_up_to_date(repo: Path) -> None:
    status = run(["dvc", "status", "--json"], repo)
    assert json.loads(status.stdout or "{}") == {}, status.stdout
    again = run(["dvc", "repro"], repo)
    assert "Running stage" not in again.stdout, again.stdout


@pytest.fixture(scope="module")
def pushed_origin(tiny_repo, tmp_path_factory) -> tuple[Path, Path]:
    """The tiny repo with a local-directory remote, after `dvc push --run-cache`."""
    store = tmp_path_factory.mktemp("store") / "dvcstore"
    run(["dvc", "remote", "add", "-f", "-d", "team", str(store)], tiny_repo)
    run(["git", "commit", "-qam", "Add the team remote"], tiny_repo)
    run(["dvc", "push", "--run-cache"], tiny_repo)
    return tiny_repo, store


def test_local_remote_push_pull_round_trip(pushed_origin, tmp_path):
    origin, store = pushed_origin
    assert any(store.rglob("*")), "dvc push wrote nothing to the remote"
    b = _clone(origin, tmp_path / "b")
    assert not (b / "data" / "submission.csv").exists()
    run(["dvc", "pull"], b)
    assert (b / "data" / "submission.csv").exists()
    _assert_up_to_date(b)


def test_run_cache_spares_retraining(pushed_origin, tmp_path):
    """A pushes the run-cache of a variant; B reproduces that variant without running it."""
    origin, _store = pushed_origin
    a = _clone(origin, tmp_path / "a")
    run(["dvc", "pull"], a)
    run(["dvc", "repro", "-s", "ensemble"], a)  # no-op: up to date
    # A tries a variant and pushes its run-cache, then goes back to the default.
    params = (a / "params.yaml").read_text()
    variant = params.replace("method: per_class_f1", "method: mean")
    assert variant != params
    (a / "params.yaml").write_text(variant)
    first = run(["dvc", "repro"], a)
    assert "Running stage 'ensemble'" in first.stdout
    run(["dvc", "push", "--run-cache"], a)
    # B, a fresh clone, asks for the same variant: restored from the run-cache.
    b = _clone(origin, tmp_path / "b")
    run(["dvc", "pull", "--run-cache"], b)
    (b / "params.yaml").write_text(variant)
    second = run(["dvc", "repro"], b)
    assert "Running stage" not in second.stdout, second.stdout
    assert "skipping run" in second.stdout
    assert (b / "data" / "processed" / "ensemble" / "test.csv").read_bytes() == (
        a / "data" / "processed" / "ensemble" / "test.csv"
    ).read_bytes()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    """A real OpenSSH server on 127.0.0.1, a free port and a throwaway key pair."""
    binary = next((p for p in SSHD_CANDIDATES if Path(p).exists()), shutil.which("sshd"))
    if binary is None:
        reason = "no sshd on this machine (Debian: apt-get install openssh-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must install it")
        pytest.skip(reason)
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / name)],
                       check=True)
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    port = _free_port()
    config = keys / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {keys / 'host'}\n"
        f"PidFile {keys / 'sshd.pid'}\nAuthorizedKeysFile {keys / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
        "Subsystem sftp internal-sftp\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation directory
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited {proc.returncode}: {proc.stdout.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("sshd did not start listening within 20 s")
    yield {"port": port, "key": keys / "client", "user": getpass.getuser()}
    proc.terminate()
    proc.wait(timeout=10)


def test_ssh_remote_push_pull_round_trip(tiny_repo, sshd, tmp_path):
    a = _clone(tiny_repo, tmp_path / "a")
    # A needs the outputs to push them: take them from the tiny run's cache.
    run(["dvc", "cache", "dir", "--local", str(tiny_repo / ".dvc" / "cache")], a)
    run(["dvc", "checkout"], a)
    url = f"ssh://127.0.0.1:{sshd['port']}{tmp_path / 'ssh-store'}"
    run(["dvc", "remote", "add", "-d", "team", url], a)
    run(["git", "commit", "-qam", "Add the SSH remote"], a)
    for repo in (a,):
        run(["dvc", "remote", "modify", "--local", "team", "user", sshd["user"]], repo)
        run(["dvc", "remote", "modify", "--local", "team", "keyfile", str(sshd["key"])], repo)
    run(["dvc", "push"], a)
    assert any((tmp_path / "ssh-store").rglob("*")), "nothing arrived through SSH"
    b = _clone(a, tmp_path / "b")
    run(["dvc", "remote", "modify", "--local", "team", "user", sshd["user"]], b)
    run(["dvc", "remote", "modify", "--local", "team", "keyfile", str(sshd["key"])], b)
    run(["dvc", "pull"], b)
    _assert_up_to_date(b)
