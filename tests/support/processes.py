"""``python main.py …`` in a subprocess, the way a person runs it, for the CLI and fault tests.

* :func:`cli` runs a command to its end; :func:`start_cli` starts one and returns the process.
* :func:`on_emulator` is the environment that points a command at the test's emulator project.
* :func:`using_emulator` points this process's store clients at another emulator for a while.
* :func:`emulators_using` lists the Firestore emulator processes writing into one folder (an embedded
  emulator's state folder); :func:`none_left` waits, with a deadline, until there are none.
* :func:`wait_for_lease` polls the store until a run holds the account's lease (a deadline, no guessed sleep).
* :func:`start_serve` / :func:`stop_serve`: ``python main.py serve --port 0`` up (its URL read from its
  banner) and stopped with Ctrl-C.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from bus import paths
from tests.support.functions import ROOT


def _env(env_extra: dict[str, str] | None, drop: Iterable[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in set(drop)}
    env.update(env_extra or {})
    return env


def cli(args: list[str], env_extra: dict[str, str] | None = None, drop: Iterable[str] = (),
        timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """``python main.py *args`` to its end (stdout/stderr captured as text), with ``env_extra`` set and
    the variables in ``drop`` unset."""
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=_env(env_extra, drop),
                          capture_output=True, text=True, timeout=timeout)


def start_cli(args: list[str], env_extra: dict[str, str] | None = None,
              drop: Iterable[str] = ()) -> subprocess.Popen[str]:
    """``python main.py *args`` started (pipes for stdout/stderr), not waited for."""
    return subprocess.Popen([sys.executable, "main.py", *args], cwd=ROOT, env=_env(env_extra, drop),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def on_emulator(emulator: Any, project: str) -> dict[str, str]:
    """The environment of a command that uses ``emulator`` (the session's) and the test's ``project``."""
    return {"GOOGLE_CLOUD_PROJECT": project, "FIRESTORE_EMULATOR_HOST": emulator.host}


@contextmanager
def using_emulator(host: str) -> Iterator[None]:
    """``$FIRESTORE_EMULATOR_HOST`` set to ``host`` inside the block (store clients made there use it)."""
    old = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = old


def emulators_using(folder: Path) -> list[int]:
    """Pids of the Firestore emulator processes with a file open under ``folder`` (the embedded emulator
    writes its log into its state folder), so other tests' emulators on the machine do not count."""
    root = str(Path(folder).resolve())
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"cloud-firestore-emulator" not in (proc / "cmdline").read_bytes():
                continue
            targets = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:  # it ended meanwhile, or is not ours to read
            continue
        if any(t.startswith(root) for t in targets):
            pids.append(int(proc.name))
    return pids


def none_left(folder: Path, deadline_s: float = 15.0) -> list[int]:
    """:func:`emulators_using` ``folder`` once it is empty, or what is still there after ``deadline_s``
    (the kernel's parent-death signal and the process's exit take a moment)."""
    end = time.monotonic() + deadline_s
    while (left := emulators_using(folder)) and time.monotonic() < end:
        time.sleep(0.1)  # polling with a deadline
    return left


def wait_for_lease(store: Any, proc: subprocess.Popen[str] | None = None, mode: str = "paper",
                   deadline_s: float = 120.0) -> dict[str, Any]:
    """The lease document ``locks/commander-{mode}`` once a run holds it.

    Raises:
        AssertionError: no run took it within ``deadline_s`` seconds, or ``proc`` ended first.
    """
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        doc = store.get(paths.lock(mode))
        if doc:
            return dict(doc)
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run ended before it took the lease: {proc.communicate()}")
        time.sleep(0.05)  # polling the store with a deadline, not waiting for a guessed time
    raise AssertionError("no run took the lease")


def default_sigint() -> None:
    """``preexec_fn`` of a child the test stops with Ctrl-C: SIGINT back to its default action and unblocked.

    An ignored SIGINT is inherited across ``exec`` (and Python then never raises KeyboardInterrupt), so a
    test process whose SIGINT something set to ignore would start children that Ctrl-C cannot stop.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def start_serve(env: dict[str, str], deadline_s: float = 60.0) -> tuple[subprocess.Popen[str], str]:
    """``python main.py serve --port 0`` with exactly ``env``; returns the process and its base URL.

    Raises:
        AssertionError: the server did not print its URL within ``deadline_s`` seconds (it is killed).
    """
    proc = subprocess.Popen([sys.executable, "main.py", "serve", "--port", "0"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.monotonic() + deadline_s
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline() if proc.stderr else ""
        if not line:
            break
        seen.append(line)
        m = re.search(r"functions on (http://127\.0\.0\.1:\d+)", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise AssertionError(f"serve did not start: {''.join(seen)}")


def stop_serve(proc: subprocess.Popen[str], timeout: float = 120.0) -> tuple[int, str, str]:
    """Ctrl-C to a server from :func:`start_serve`; its exit code, stdout and the rest of its stderr."""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err
