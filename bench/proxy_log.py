"""Shared by the control-plane benchmarks: run the proxy and wait for lines of its log."""
import re
import sys
import subprocess
import threading
import time
from datetime import datetime


def ts(line):
    """The wall-clock time of a log line ("2026-11-26T22:17:21.160 info ...")."""
    return datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%f").timestamp()


class ProxyLog:
    """Starts `cmd` and collects its stderr, line by line, in `lines`."""

    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.lines = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait(self, rx, start=0, timeout=120):
        """(index, match) of the first line from `start` on that matches `rx`; exits the script if
        none comes within `timeout` seconds or the proxy ends."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i in range(start, len(self.lines)):
                    m = re.search(rx, self.lines[i])
                    if m:
                        return i, m
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise SystemExit("timed out waiting for %r:\n%s" % (rx, "\n".join(self.lines[-20:])))
                self._cond.wait(min(left, 0.5))


def int_args(*defaults):
    """sys.argv[2:] as integers, each defaulting to its place in `defaults` (argv[1] is the binary)."""
    return [int(sys.argv[2 + i]) if len(sys.argv) > 2 + i else d for i, d in enumerate(defaults)]
