#!/usr/bin/env python3
"""Runs a command on a new pseudo-terminal, as a user in a terminal would,
types Ctrl-C once the command has printed "ready", and relays what it
printed. Exits with the command's exit status (1 if it had to be killed
after 30 s).

Used to check that `signet exec` does not deliver a terminal's interrupt
to its command twice (once from the terminal, once forwarded).
"""
import os
import pty
import select
import signal
import sys
import time


def main():
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(sys.argv[1], sys.argv[1:])
    out = b""
    sent = False
    deadline = time.time() + 30
    while time.time() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the terminal's last user is gone
                break
            if not chunk:
                break
            out += chunk
        if not sent and b"ready" in out:
            os.write(fd, b"\x03")
            sent = True
    else:
        os.kill(pid, signal.SIGKILL)
        out += b"\nptyint: killed after 30 s\n"
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(out.decode("utf-8", "replace"))
    code = os.waitstatus_to_exitcode(status)
    sys.exit(code if code >= 0 else 1)


if __name__ == "__main__":
    main()
