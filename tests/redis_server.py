"""A real `redis-server` for the cluster tests: on a free port, its files in a temp dir."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """`redis-server --port N --bind 127.0.0.1 --save '' --appendonly no --dir TMP`; `kill`
    and `start` again keep the port, so gateways find it back (empty: nothing is saved)."""

    def __init__(self, directory: Path) -> None:
        self.binary = shutil.which("redis-server")
        self.dir = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        assert self.binary is not None
        self._proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        async with asyncio.timeout(5):
            while True:  # up when it accepts a connection
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                await writer.wait_closed()
                return

    def kill(self) -> None:
        """SIGKILL: Redis vanishes mid-conversation, as a crash would."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait(timeout=5)
