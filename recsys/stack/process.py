"""Start and stop background processes without leaving orphans.

Each managed process runs in its own session (process group) so that stopping
it also stops whatever it spawned (MLflow's web workers, for instance). A
pidfile records the group so that ``recsys stack down`` in another shell can
stop what ``recsys stack up`` started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class StartupError(RuntimeError):
    """A service did not become healthy; the message says which and points at its log."""


@dataclass
class ManagedProcess:
    name: str
    run_dir: Path

    @property
    def pidfile(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def logfile(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None

    def start(self, argv: Sequence[str], env: dict[str, str] | None = None) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.logfile, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self.pidfile.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the process group; True if something was running."""
        pid = self.pid()
        self.pidfile.unlink(missing_ok=True)
        if pid is None:
            return False
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not group_alive(pid):
                _reap(pid)
                return True
            _reap(pid)
            time.sleep(0.05)
        _signal_group(pid, signal.SIGKILL)
        _reap(pid)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def wait_until(
    check: Callable[[], bool],
    timeout_s: float,
    what: str,
    process: ManagedProcess | None = None,
    interval_s: float = 0.2,
) -> None:
    """Poll ``check`` until it returns True; raise StartupError with the log tail otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        if process is not None and process.pid() is None:
            raise StartupError(f"{what} exited during start-up; log:\n{process.log_tail()}")
        time.sleep(interval_s)
    tail = f"; log:\n{process.log_tail()}" if process else ""
    raise StartupError(f"{what} not healthy after {timeout_s:.0f} s{tail}")


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now (tests use this so they never collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # The group exists while any member is not a zombie.
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our child (avoids zombies)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
