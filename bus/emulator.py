"""Google's Firestore emulator, started and stopped by the project itself.

The emulator is a Java program shipped by the Debian package
``google-cloud-cli-firestore-emulator`` (or ``gcloud components install
cloud-firestore-emulator``). :class:`FirestoreEmulator` starts it on 127.0.0.1
and a free port in its own process group, waits until ``GET /`` answers ``Ok``,
and stops it with ``killpg``, so no Java process outlives the run, including on
Ctrl-C and on errors. State persists through ``:export`` into a state folder and
``--import-data`` at the next start (``--export-on-exit`` does not work).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ENV_BIN = "FIRESTORE_EMULATOR_BIN"
INSTALL_HINT = (
    "install it with `apt-get install google-cloud-cli-firestore-emulator` "
    "(or `gcloud components install cloud-firestore-emulator`), "
    f"or point {ENV_BIN} at its cloud_firestore_emulator launcher"
)
_RELATIVE = Path("platform/cloud-firestore-emulator/cloud_firestore_emulator")
_KNOWN_SDK_ROOTS = ("/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", "/opt/google-cloud-sdk")


class EmulatorError(RuntimeError):
    """The emulator is missing, did not start, or refused an export."""


def find_binary() -> Path:
    """Locate the emulator launcher.

    Order: ``$FIRESTORE_EMULATOR_BIN``; the usual SDK roots; the SDK root that
    ``gcloud info`` reports.

    Raises:
        EmulatorError: when none exists, with install instructions.
    """
    env = os.environ.get(ENV_BIN)
    if env:
        p = Path(env)
        if p.is_file() and os.access(p, os.X_OK):
            return p
        raise EmulatorError(f"Firestore emulator not found at {ENV_BIN}={env}; {INSTALL_HINT}")
    for root in _KNOWN_SDK_ROOTS:
        p = Path(root) / _RELATIVE
        if p.is_file():
            return p
    gcloud = shutil.which("gcloud")
    if gcloud:
        try:
            out = subprocess.run(
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True, text=True, timeout=30, check=False,
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        if out and (Path(out) / _RELATIVE).is_file():
            return Path(out) / _RELATIVE
    raise EmulatorError(f"Firestore emulator not found; {INSTALL_HINT}")


#: Main class of the emulator's jar (what the SDK's launcher script runs).
_MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
_PR_SET_PDEATHSIG = 1


def launch_command(binary: Path) -> list[str]:
    """The command that runs the emulator as one process.

    The SDK's launcher is a shell script that starts Java as its child without ``exec``; a
    Java process started that way would outlive a parent killed with ``kill -9``. When the
    jar sits beside the script and ``java`` is on the PATH, Java is started directly, so the
    parent-death signal set in :func:`_die_with_parent` reaches the emulator itself.
    """
    jar = binary.parent / "cloud-firestore-emulator.jar"
    java = os.environ.get("JAVA") or shutil.which("java")
    if jar.is_file() and java:
        return [java, "-Duser.language=en", "-cp", str(jar), _MAIN_CLASS]
    return [str(binary)]


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGKILL it when the parent thread dies (``prctl``)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the group is still stopped on every normal exit
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(pgid: int, proc: subprocess.Popen[bytes]) -> None:
    """TERM the group (the bash launcher and its java child), KILL what is left after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            proc.poll()
            if not _group_alive(pgid):
                proc.poll()
                return
            time.sleep(0.05)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class FirestoreEmulator:
    """A running Firestore emulator on 127.0.0.1.

    Args:
        project: the project id clients will use.
        state_dir: folder for exports; when it holds one, the emulator imports it.
        rules: optional ``firestore.rules`` file to enforce on REST requests.
        start_timeout: seconds to wait for ``GET /`` to answer ``Ok``.

    Use as a context manager; ``host`` is ``127.0.0.1:PORT`` for
    ``FIRESTORE_EMULATOR_HOST``.
    """

    def __init__(self, project: str, state_dir: Path | None = None, rules: Path | None = None,
                 start_timeout: float = 90.0) -> None:
        self.project = project
        self.state_dir = Path(state_dir) if state_dir else None
        self.rules = rules
        self.start_timeout = start_timeout
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # ------------------------------------------------------------------ state
    def _current_export(self) -> Path | None:
        if not self.state_dir:
            return None
        pointer = self.state_dir / "CURRENT"
        if not pointer.is_file():
            return None
        meta = self.state_dir / pointer.read_text().strip()
        return meta if meta.is_file() else None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FirestoreEmulator":
        """Start the emulator and wait until it answers.

        Raises:
            EmulatorError: binary missing, or no ``Ok`` within ``start_timeout``.
        """
        binary = find_binary()
        self.port = free_port()
        cmd = [*launch_command(binary), "start", "--host=127.0.0.1", f"--port={self.port}"]
        imported = self._current_export()
        if imported:
            cmd.append(f"--import-data={imported}")
        if self.rules:
            cmd.append(f"--rules={self.rules}")
        log_dir = self.state_dir or Path(os.environ.get("TMPDIR", "/tmp"))
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = log_dir / f"emulator-{self.port}.log"
        log = open(self._log_path, "wb")  # closed with the process
        # Its own process group (stopped with killpg), and killed by the kernel if this process dies,
        # even by kill -9 (only when started from the main thread: the signal follows the thread).
        pdeath = _die_with_parent if threading.current_thread() is threading.main_thread() else None
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=pdeath)
        log.close()
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self._log_tail()
                self.proc = None
                raise EmulatorError(f"Firestore emulator exited at start: {tail}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=1) as r:
                    if r.read().strip() == b"Ok":
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise EmulatorError(f"Firestore emulator did not answer Ok on {self.host} within {self.start_timeout:.0f} s")

    def _log_tail(self) -> str:
        if self._log_path and self._log_path.is_file():
            return self._log_path.read_text(errors="replace")[-500:].strip().replace("\n", " | ")
        return ""

    def stop(self) -> None:
        """Stop the emulator's whole process group (TERM, then KILL after 5 s)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        try:
            pgid = os.getpgid(proc.pid)
        except ProcessLookupError:
            pgid = None
        if pgid is not None:
            _kill_group(pgid, proc)
        if self._log_path and self._log_path.exists():
            self._log_path.unlink()

    def export(self) -> Path:
        """Export all documents into ``state_dir`` and point ``CURRENT`` at it.

        Older exports are removed after the new one is in place.

        Raises:
            EmulatorError: no state folder, or the emulator refused.
        """
        if not self.state_dir:
            raise EmulatorError("no state folder to export into")
        name = f"export-{int(time.time() * 1000)}"
        target = self.state_dir / name
        target.mkdir(parents=True, exist_ok=True)
        body = json.dumps({
            "database": f"projects/{self.project}/databases/(default)",
            "export_directory": str(target.resolve()),
            "export_name": "state",
        }).encode()
        req = urllib.request.Request(f"{self.url}/emulator/v1/projects/{self.project}:export", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()
        except (urllib.error.URLError, OSError) as exc:
            shutil.rmtree(target, ignore_errors=True)
            raise EmulatorError(f"Firestore emulator export failed: {exc}") from exc
        meta = target / "state" / "state.overall_export_metadata"
        (self.state_dir / "CURRENT.tmp").write_text(str(meta.relative_to(self.state_dir)))
        os.replace(self.state_dir / "CURRENT.tmp", self.state_dir / "CURRENT")
        for old in self.state_dir.glob("export-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
        return meta

    def wipe(self, project: str | None = None) -> None:
        """Delete every document of ``project`` (default: this emulator's project)."""
        p = project or self.project
        req = urllib.request.Request(
            f"{self.url}/emulator/v1/projects/{p}/databases/(default)/documents", method="DELETE")
        with urllib.request.urlopen(req, timeout=30) as r:
            r.read()

    def __enter__(self) -> "FirestoreEmulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
