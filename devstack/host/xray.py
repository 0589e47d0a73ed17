"""A local stand-in for the X-Ray daemon: what traced functions send, kept where tests can read it.

Lambda runs an X-Ray daemon beside every function with `Tracing: Active`; the X-Ray SDK (under
powertools' Tracer) sends each closed (sub)segment to it over UDP as one datagram,
`{"format": "json", "version": 1}\\n<segment JSON>`. The host listens on a free 127.0.0.1 port,
points the functions at it (`AWS_XRAY_DAEMON_ADDRESS`) and appends every document it gets to
`xray.jsonl` in the log folder (and keeps the last ones in memory for tests).
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections import deque
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_DATAGRAM = 64 * 1024
KEPT = 10_000


class XRayCollector:
    def __init__(self, log_file: Path | None = None) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.address = f"127.0.0.1:{self._socket.getsockname()[1]}"
        if log_file:
            log_file.parent.mkdir(parents=True, exist_ok=True)
        self._file = log_file.open("a", encoding="utf-8") if log_file else None
        self._documents: deque[dict[str, Any]] = deque(maxlen=KEPT)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="xray-collector", daemon=True)

    def start(self) -> XRayCollector:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=2)
        self._socket.close()
        if self._file:
            self._file.close()

    def documents(self) -> list[dict[str, Any]]:
        """Every segment and subsegment document received so far (the newest KEPT)."""
        with self._lock:
            return list(self._documents)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                datagram = self._socket.recv(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                return
            _, _, body = datagram.partition(b"\n")
            try:
                document = json.loads(body)
            except ValueError:
                log.warning("X-Ray datagram that is not a JSON segment (%d bytes)", len(datagram))
                continue
            with self._lock:
                self._documents.append(document)
                if self._file:
                    self._file.write(json.dumps(document) + "\n")
                    self._file.flush()
