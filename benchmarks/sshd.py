"""A throwaway OpenSSH server on 127.0.0.1 (free port, fresh ed25519 keys), for DVC's SSH remote.

Used by the SSH-remote test and by ``benchmarks.remote``. Needs ``sshd`` (Debian:
``apt-get install openssh-server``); runs as the current user.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


class SshdUnavailable(RuntimeError):
    """No sshd binary, or it would not start."""


@dataclass(frozen=True)
class Server:
    port: int
    key: Path  # the client's private key
    user: str

    def url(self, path: Path) -> str:
        return f"ssh://127.0.0.1:{self.port}{path}"


def find_sshd() -> str | None:
    return next((p for p in CANDIDATES if Path(p).exists()), None) or shutil.which("sshd")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_sshd(workdir: Path, timeout: float = 20.0) -> Iterator[Server]:
    """Start sshd with its keys and config under ``workdir``; stop it on exit."""
    binary = find_sshd()
    if binary is None:
        raise SshdUnavailable("no sshd on this machine (Debian: apt-get install openssh-server)")
    keys = Path(workdir) / "keys"
    keys.mkdir(parents=True)
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
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise SshdUnavailable(f"sshd exited {proc.returncode}: {proc.stdout.read()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SshdUnavailable(f"sshd did not listen on port {port} within {timeout:.0f} s")
                time.sleep(0.2)
        yield Server(port=port, key=keys / "client", user=getpass.getuser())
    finally:
        proc.terminate()
        proc.wait(timeout=10)
