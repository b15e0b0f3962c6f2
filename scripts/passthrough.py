"""A bare pass-through proxy: the floor cost of one Python aiohttp hop, for benchmarks.

`python scripts/passthrough.py --upstream http://127.0.0.1:P/v1 --port 0` forwards everything
under /v1 to the upstream and streams the reply bytes back as they arrive.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)
# Hop-by-hop headers, plus the ones aiohttp recomputes for the next hop.
_SKIP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "upgrade"}
_KEEP = {"content-length"}  # replies keep it, so non-stream bodies are not re-chunked


async def proxy(request: web.Request) -> web.StreamResponse:
    """Forward one request and relay the response body chunk by chunk."""
    url = request.app[UPSTREAM] + request.match_info["tail"]
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _SKIP}
    body = await request.read()
    resp: web.StreamResponse | None = None
    try:
        async with request.app[SESSION].request(
            request.method, url, data=body, headers=headers, params=request.query
        ) as upstream:
            resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for key, value in upstream.headers.items():
                if key.lower() in _KEEP or key.lower() not in _SKIP:
                    resp.headers.add(key, value)
            await resp.prepare(request)
            async for data in upstream.content.iter_any():
                await resp.write(data)
            await resp.write_eof()
            return resp
    except (aiohttp.ClientError, ConnectionError) as exc:
        if resp is None or not resp.prepared:
            return web.json_response({"error": {"message": f"passthrough: {exc!r}"}}, status=502)
        if request.transport is not None:
            request.transport.abort()  # mid-body: drop the client as the upstream dropped us
        return resp


async def _session_ctx(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout, auto_decompress=False) as session:
        app[SESSION] = session
        yield


def make_app(upstream: str) -> web.Application:
    app = web.Application()
    app[UPSTREAM] = upstream.rstrip("/") + "/"
    app.cleanup_ctx.append(_session_ctx)
    app.router.add_route("*", "/v1/{tail:.*}", proxy)
    return app


async def serve(upstream: str, host: str, port: int) -> None:
    runner = web.AppRunner(make_app(upstream), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        bound_host, bound_port = runner.addresses[0][:2]
        print(f"passthrough listening on http://{bound_host}:{bound_port}/v1", flush=True)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="bare aiohttp pass-through proxy")
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:8001/v1")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(args.upstream, args.host, args.port))
