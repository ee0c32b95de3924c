"""A TCP proxy on 127.0.0.1 that misbehaves on command: cut, stall, delay, mid-frame.

Runs in its own thread with its own event loop, so a test can use it from plain
synchronous code around subprocesses.  Bytes are forwarded in small chunks
(``chunk`` bytes), so faults land in the middle of websocket frames, not only
between them.

    with TcpProxy(target_port) as proxy:      # proxy.port is what clients dial
        proxy.cut()                  # reset every open connection now
        proxy.stall(2.0)             # stop forwarding for 2 s (connections stay open)
        proxy.set_delay(0.05)        # add 50 ms before every chunk
        proxy.refuse(True)           # close new connections at once (link down)
        proxy.cut_after(100_000)     # cut each connection after N bytes upstream
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time


class TcpProxy:
    def __init__(self, target_port: int, *, chunk: int = 1500) -> None:
        self.target_port = target_port
        self.chunk = chunk
        self.port = 0
        self.connections = 0
        self.bytes_up = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="tcp-proxy", daemon=True)
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._delay = 0.0
        self._stall_until = 0.0
        self._refuse = False
        self._cut_after: int | None = None
        self._server: asyncio.Server | None = None

    # -- control (thread-safe) -----------------------------------------------------
    def __enter__(self) -> TcpProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
            with contextlib.suppress(Exception):
                fut.result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def cut(self) -> None:
        """Reset every open connection now (RST, like a pulled cable on a NAT box)."""
        self._loop.call_soon_threadsafe(self._cut_all)

    def stall(self, seconds: float) -> None:
        """Forward nothing for ``seconds``; connections stay open (a hung link)."""
        self._stall_until = time.monotonic() + seconds

    def set_delay(self, seconds: float) -> None:
        self._delay = seconds

    def refuse(self, on: bool) -> None:
        self._refuse = on

    def cut_after(self, nbytes: int | None) -> None:
        """Cut each new connection after ``nbytes`` client→server bytes (None: never)."""
        self._cut_after = nbytes

    # -- the loop ------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _shutdown(self) -> None:
        self._cut_all()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    def _cut_all(self) -> None:
        for w in list(self._writers):
            sock = w.get_extra_info("socket")
            with contextlib.suppress(Exception):
                if sock is not None:
                    import socket
                    import struct

                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                w.transport.abort()
        self._writers.clear()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        if self._refuse:
            cw.transport.abort()
            return
        try:
            async with asyncio.timeout(5):
                sr, sw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except (OSError, TimeoutError):
            cw.transport.abort()
            return
        self.connections += 1
        self._writers.update((cw, sw))
        budget = [self._cut_after]
        up = asyncio.create_task(self._pipe(cr, sw, budget))
        down = asyncio.create_task(self._pipe(sr, cw, None))
        await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        for t in (up, down):
            t.cancel()
        for w in (cw, sw):
            self._writers.discard(w)
            w.transport.abort()

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter,
                    budget: list[int | None] | None) -> None:
        while True:
            data = await r.read(self.chunk)
            if not data:
                return
            while time.monotonic() < self._stall_until:
                await asyncio.sleep(0.02)
            if self._delay:
                await asyncio.sleep(self._delay)
            if budget is not None:
                self.bytes_up += len(data)
                if budget[0] is not None:
                    if len(data) >= budget[0]:
                        w.write(data[: budget[0]])  # half a frame, then the cut
                        await w.drain()
                        return
                    budget[0] -= len(data)
            w.write(data)
            await w.drain()
