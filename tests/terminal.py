"""Run a command in a pseudo-terminal, as a person at a terminal runs it, and read everything it drew."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import struct
import subprocess
import termios

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_in_terminal(args: list[str], env: dict[str, str], rows: int = 40, columns: int = 120) -> tuple[str, str, int]:
    """(what the terminal received, stderr, exit code) of `args` run with a pty of this size as its stdout."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {**env, "TERM": "xterm-256color", "COLUMNS": str(columns)}
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError as exc:  # EIO: the child closed the terminal
            assert exc.errno == errno.EIO
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    stderr = process.communicate(timeout=300)[1].decode()
    return b"".join(chunks).decode(), stderr, process.returncode


def plain(screen: str) -> str:
    """The screen's text without colours and cursor moves."""
    return ANSI.sub("", screen).replace("\r", "")
