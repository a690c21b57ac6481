"""Proof that hostile input touched nothing outside its bytes, shared by the library's hostile-input tests
(tests/iso20022/test_hostile_input.py) and the API's (tests/e2e/test_hostile_input_api.py):

- `Tripwire`: a named pipe at a path an XXE, a DTD or an XInclude names. Any process that opens it for
  reading (libxml2 in this process, or the local API's server in its own) is counted, and is handed the
  CANARY text, so a leak would also show up in what it answers, stores or logs.
- `Listener`: a TCP socket on 127.0.0.1 that counts every connection made to it.
"""
from __future__ import annotations

import os
import socket
import threading
import time

CANARY = "CANARY-7f3a9c-secret-file-content"


class Tripwire:
    """A named pipe: a reader opening it is detected (a non-blocking open for writing succeeds only
    while a reader has it open); the watcher then writes the canary and closes, so no reader hangs."""

    def __init__(self, path):
        self.path = str(path)
        os.mkfifo(self.path)
        self.opened = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self):
        while not self._stop.is_set():
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.001)
                continue
            self.opened += 1
            try:
                os.write(fd, CANARY.encode())
            finally:
                os.close(fd)

    def stop(self):
        self._stop.set()
        self._thread.join(2)


class Listener:
    """A TCP socket on 127.0.0.1 that counts every connection made to it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
