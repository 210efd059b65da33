#!/usr/bin/env python3
"""Local test peer for luanet's tests.

Usage:
    python testpeer/serve.py -- CMD [ARGS...]

Starts, on loopback and on free ports chosen by the kernel, one ASGI app
(below) served by Hypercorn over:

    LUANET_HTTP              http://127.0.0.1:PORT   plain HTTP/1.1
    LUANET_HTTP6             http://[::1]:PORT       plain HTTP/1.1 over IPv6
    LUANET_HTTPS             https://localhost:PORT  TLS (ALPN h2, http/1.1),
                             cert for localhost, 127.0.0.1 and ::1 from CA #1
    LUANET_HTTPS_WRONG_CA    https://localhost:PORT  cert from CA #2 (untrusted)
    LUANET_HTTPS_WRONG_HOST  https://localhost:PORT  cert from CA #1 for
                             other.example only (host name mismatch)
    LUANET_HTTPS_CLIENT_AUTH https://localhost:PORT  as LUANET_HTTPS, but the
                             handshake requires a client certificate from CA #1

WebSocket servers (websockets, asyncio; no compression, no keepalive pings,
no message size limit: the client enforces its own):

    LUANET_WS                ws://127.0.0.1:PORT
    LUANET_WS6               ws://[::1]:PORT
    LUANET_WSS               wss://localhost:PORT    cert from CA #1 (as LUANET_HTTPS)
    LUANET_WSS_WRONG_CA      wss://localhost:PORT    cert from CA #2 (untrusted)

and a second, independent WebSocket server, npm `ws` on Node.js
(testpeer/ws_peer.js, installed by scripts/setup.sh into build/node-peer, or
LUANET_NODE_MODULES), with the paths listed at the end:

    LUANET_NODE_WS           ws://127.0.0.1:PORT
    LUANET_NODE_WSS          wss://localhost:PORT    cert from CA #1

and a forward proxy, a private tinyproxy (`tinyproxy -d`, config generated in
the temporary directory; the `tinyproxy` package must be installed):

    LUANET_PROXY             http://127.0.0.1:PORT   plain HTTP proxy; forwards
                             http:// requests adding "Via: 1.1 luanet-test-proxy
                             (tinyproxy/<version>)", tunnels CONNECT to any port;
                             accepts clients from 127.0.0.1 and ::1 only.
                             Its log (warnings and errors) is printed at exit
                             when CMD failed.

and a fault injector in front of the plain HTTP server:

    LUANET_CUT_RELAY         http://127.0.0.1:PORT   a TCP relay: takes one request
                             for /lines/<k>/<path>, sends it on to LUANET_HTTP as
                             /<path>, passes the answer back up to and including
                             its k-th line break (the status line is line 1),
                             then closes both connections: a response cut
                             inside its header section.

The variables libcurl reads (http_proxy, https_proxy, no_proxy, ...) are not
set here: a test that wants the proxy sets them for its own processes.

waits until every listener accepts connections, then runs CMD with those
variables plus

    SSL_CERT_FILE            PEM file of CA #1
    LUANET_CA_DIR            CA #1 as a hashed directory (for SSL_CERT_DIR)
    LUANET_OTHER_CA_FILE     PEM file of CA #2
    LUANET_CLIENT_CERT       a client certificate from CA #1 (PEM, chain only)
    LUANET_CLIENT_KEY        its private key (PEM)
    LUANET_CLIENT_CERT_KEY   the key and the chain in one PEM file
    LUANET_OTHER_CLIENT_CERT_KEY  the same from CA #2 (refused by the server)
    LUANET_CLOSED_PORT       a TCP port on 127.0.0.1 where nothing listens

stops the servers and exits with CMD's exit code (128+N if CMD was killed
by signal N; 127 if CMD could not be started; 2 if the servers could not
start). The https listeners on "localhost" listen on both 127.0.0.1 and ::1
with the same port. Certificates are made at run time with trustme and live
in a temporary directory removed at exit.

Endpoints (any method, unknown paths -> 404 "not found"):
    /                       200 "luanet test peer"
    /status/<code>          status <code>, body "status <code>" (empty for 204/304)
    /bytes/<n>              n bytes, byte i = i % 256, with Content-Length
    /chunked/<n>            same bytes in 1000-byte pieces, no Content-Length
    /echo                   the request body
    /inspect                key=value lines describing the request: method,
                            path, content-type, user-agent, accept-encoding,
                            http-version, client-port, body-length, via
                            (the Via header; empty when none), in that order
    /slow/<ms>              200 "slow" after ms milliseconds
    /stall                  Content-Length 100, sends 10 bytes, then waits 60 s
    /redirect/<n>           302 to /redirect/<n-1>; /redirect/0 is 200 "redirected"
    /redirect-to?url=<u>&code=<c>
                            status c (default 302) with Location u
    /headers                the request headers in arrival order, one
                            "name: value" line each (names in lower case,
                            repeated names on lines of their own)
    /cookies                200 "cookies" with two Set-Cookie headers
                            ("a=1; Path=/", "b=2") and two "X-Twice" ("1", "2")
    /truncated/<n>          Content-Length n, sends n // 2 pattern bytes, then
                            breaks the connection (a body cut short)
    /gzip                   gzip-encoded text if Accept-Encoding has gzip
    /delay?ms=N&tag=T       200 "ok" after N ms (default 0); with T, the request
                            is recorded (on arrival) under tag T with its client
                            connection's address (scope["client"]: host, port;
                            every stream of one HTTP/2 connection has the same)
    /ports?tag=T            200 JSON {"requests": R, "connections": C}: R
                            requests recorded under T so far, C distinct client
                            (host, port) pairs among them (0 and 0 if none)
    /drip?id=ID&ms=M&bytes=B&piece=P
                            Content-Length B (default 1000000), sends B pattern
                            bytes in pieces of P bytes (default 1024), sleeping
                            M ms (default 10) between pieces; the state of ID
                            (kept while the peer runs; a new /drip with the
                            same ID starts it over) is "open" while sending,
                            "finished" once the last byte went out,
                            "disconnected" as soon as the client goes away
                            before that (sending then stops)
    /drip-state?id=ID       200 with the state of ID as body, or "unknown"
    /drip-count?prefix=P    200 JSON {"open": a, "finished": b, "disconnected": c}
                            counting the ids that start with P (default "": all)
    /sse?n=N&ms=M&hold=H    Server-Sent Events: Content-Type text/event-stream,
                            no Content-Length (chunked on HTTP/1.1); sends the
                            headers at once, then N events (default 3), each
                            after a pause of M ms (default 50), event i (from 1)
                            being "data: event <i>\n\n", each flushed on its own;
                            then keeps the response open H ms (default 0) and
                            ends it (stops early if the client goes away)
    (Integer parameters of /delay, /drip and /sse: 0..2**30; a malformed one
    is answered 400 "bad query: ...".)

WebSocket paths (query strings parsed with urllib; unknown paths refuse the
upgrade with 404 "not found"). "Then echoes" means: every message received
is sent back with its type (text stays text, binary stays binary).
    /echo                   echoes
    /send?count=N&size=S&type=text|binary&close=CODE&reason=R
                            sends N messages (default 1, type text); message i
                            (from 1) is, for text, "msg <i>" padded with "x"
                            to S characters when S is given; for binary, S
                            bytes (default 0), byte k (from 0) = (i + k) % 256.
                            Then closes with CODE and reason "bye" if close is
                            given, else echoes.
    /fragmented?parts=P&size=S
                            sends the text message "a" * S in P fragments,
                            then the binary message b"\x01" * S in P
                            fragments (defaults: P 4, S 1000), then echoes
    /ping                   sends a ping (payload b"luanet"), waits up to 5 s
                            for the pong, sends the text "pong received" (or
                            "no pong"), then echoes
    /big?size=S             sends one binary message of S bytes, byte k =
                            k % 251, then echoes
    /silent                 never sends; reads and discards until closed
    /slow?ms=N              answers the upgrade request after N ms, then echoes
    /reject                 refuses the upgrade: HTTP 403, body "forbidden\n"
    /request                sends the text "path=<path?query>\nuser-agent=<UA>"
                            then echoes
    /closeinfo              echoes (the close code and reason the client sends
                            are recorded, as on every path)
    /close-when-full?ms=N   stops reading for N ms (default 500), then closes
                            with 4001 "full" and reads again 300 ms later,
                            discarding messages; records the code of the
                            client's close frame in answer (1006 when none
                            came)
    /last-reply             sends the text "reply=<C>": the latest code that
                            /close-when-full recorded, or "none"; then closes
    /protocol?choose=C      sends "protocol=<P>": the subprotocol chosen, C being
                            first (the first offered, the default), none, or a
                            name (chosen even when not offered); then echoes
    /upgrade-headers        sends the upgrade request's header lines, "name:
                            value" (names in lower case) joined by newlines;
                            then echoes
    /last-close             sends the text "code=<C> reason=<R>": the close
                            code and reason of the latest client close frame
                            any WebSocket server received ("none" before
                            any), then closes normally
    /stats                  sends the text "open=<N> last_close=<C>" then
                            closes normally (1000). N: WebSocket connections
                            open now on all the WebSocket servers, this one
                            excluded; C: the close code of the latest
                            client-initiated close on any path (recorded when
                            the client's close frame arrives), or "none".
    /flood?count=N&size=S&tag=T
                            sends N binary messages of S bytes (at least 8):
                            message i is i in 8 ASCII digits, then the byte
                            i % 256; each send waits for the transport to
                            drain, so TCP holds it back. Then the text "flood
                            done", then echoes
    /flood-state?tag=T      sends "sent=<n>": /flood T's messages sent so
                            far; then closes
    /flood-end?tag=T        sends "code=<C>": the close code /flood T saw
                            when it ended, "reset" when the TCP connection
                            was reset, or "none" while it runs; then closes
    /stall?ms=N             sends "stalling", and N ms later (default 0)
                            stops reading: pings get no pong; aborts after
                            60 s
    /sink?tag=T             reads nothing until /sink-release?tag=T, then
                            reads everything, counting messages and bytes
    /sink-release?tag=T     lets sink T read; sends "released", closes
    /sink-state?tag=T       sends "messages=<n> bytes=<b>" of sink T; closes
    /bad-frame              writes a frame with the reserved opcode 3, then
                            reads until closed
    /join?tag=T             silent until closed; hears /broadcast?tag=T
    /broadcast?tag=T&text=X sends the text X to every /join T connection,
                            then "sent=<n>" (how many), then closes

The same paths, but /fragmented, /ping, /big, /silent, /slow, /request,
/closeinfo, /close-when-full, /last-reply, /stats, /join and /broadcast, are
served by npm `ws` too (testpeer/ws_peer.js: LUANET_NODE_WS, LUANET_NODE_WSS).

The soft limit on open files (RLIMIT_NOFILE) is raised to min(hard, 65536)
at start; CMD inherits it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import resource
import signal
import socket
import ssl
import pwd
import shutil
import sys
import subprocess
import tempfile
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config
from websockets.asyncio.server import ServerConnection, broadcast as ws_broadcast
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

from node_peer import NodePeer, node_available

# Where scripts/setup.sh installs the npm `ws` package for ws_peer.js.
NODE_MODULES = os.environ.get("LUANET_NODE_MODULES") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "build", "node-peer", "node_modules"
)

# Environment variables through which libcurl picks a proxy (any case).
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}

# ---------------------------------------------------------------------------
# The ASGI app
# ---------------------------------------------------------------------------

PATTERN_256 = bytes(range(256))
PATTERN_BLOCK = PATTERN_256 * 256  # 64 KiB, a whole number of 256-byte periods
MAX_N = 1 << 30  # refuse absurd sizes (a typo should not eat the machine's memory)
GZIP_PLAIN = b"compressed hello " * 100
GZIP_BODY = gzip.compress(GZIP_PLAIN, mtime=0)

# Set when the servers are about to stop: handlers that wait (/slow, /stall)
# return at once instead of being cancelled, so shutdown is quick and quiet.
STOPPING: asyncio.Event | None = None

# /delay?tag=: tag -> [(client host, client port), ...], one entry per request.
DELAY_TAGS: dict[str, list[tuple]] = {}
# /drip?id=: id -> "open" | "finished" | "disconnected".
DRIPS: dict[str, str] = {}

NUMBERED = re.compile(r"^/(status|bytes|chunked|slow|redirect|truncated)/([0-9]{1,10})$")


async def pause(seconds: float) -> bool:
    """Sleep `seconds`; False if the servers began to stop meanwhile."""
    try:
        await asyncio.wait_for(STOPPING.wait(), seconds)
    except asyncio.TimeoutError:
        return True
    return False


def pattern(offset: int, length: int) -> bytes:
    """`length` bytes of the i % 256 pattern, starting at absolute offset `offset`."""
    start = offset % 256
    reps = (start + length + 255) // 256
    return (PATTERN_256 * reps)[start : start + length]


def header(scope, name: bytes) -> str:
    """All values of request header `name` (lower case), joined by ", "; "" if none."""
    values = [v.decode("latin-1") for k, v in scope["headers"] if k.lower() == name]
    return ", ".join(values)


class Disconnected(Exception):
    pass


async def read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif message["type"] == "http.disconnect":
            raise Disconnected()


async def respond(scope, send, status: int, body: bytes = b"", headers=()) -> None:
    hdrs = list(headers)
    no_body = status in (204, 304) or 100 <= status < 200
    if no_body:
        body = b""
    else:
        hdrs.append((b"content-length", str(len(body)).encode()))
        if not any(k == b"content-type" for k, _ in hdrs):
            hdrs.append((b"content-type", b"text/plain; charset=utf-8"))
    if scope["method"] == "HEAD":
        body = b""
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_pattern(scope, send, n: int, piece: int, content_length: bool) -> None:
    hdrs = [(b"content-type", b"application/octet-stream")]
    if content_length:
        hdrs.append((b"content-length", str(n).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": hdrs})
    if scope["method"] != "HEAD":
        offset = 0
        while offset < n:
            size = min(piece, n - offset)
            if piece == len(PATTERN_BLOCK):
                data = PATTERN_BLOCK[:size]
            else:
                data = pattern(offset, size)
            await send({"type": "http.response.body", "body": data, "more_body": True})
            offset += size
    await send({"type": "http.response.body", "body": b"", "more_body": False})


def http_query(scope) -> dict:
    """The parsed query string of an HTTP request."""
    return parse_qs(scope.get("query_string", b"").decode("latin-1"))


async def query_ints(scope, send, query: dict, **defaults: int) -> dict | None:
    """The integer parameters named in `defaults` (each 0..MAX_N, the default
    when absent); None after answering 400 when one is malformed."""
    try:
        return {name: qint(query, name, default) for name, default in defaults.items()}
    except ValueError as error:
        await respond(scope, send, 400, f"bad query: {error}".encode())
        return None


async def watch_disconnect(receive, gone: asyncio.Event, on_gone=None) -> None:
    """Read the request's messages until "http.disconnect", then set `gone`
    (and call `on_gone`). Run as a task beside a response that takes time:
    Hypercorn keeps running an app whose client went away and silently
    drops what it sends, so receive() is the only way to notice."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            if on_gone is not None:
                on_gone()
            return


async def pause_unless(seconds: float, gone: asyncio.Event) -> bool:
    """As pause(), but also returns False at once when `gone` is set."""
    if gone.is_set():
        return False
    waits = [asyncio.ensure_future(STOPPING.wait()), asyncio.ensure_future(gone.wait())]
    try:
        done, _ = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    return not done


async def drip(scope, receive, send, query: dict) -> None:
    ints = await query_ints(scope, send, query, ms=10, bytes=1000000, piece=1024)
    if ints is None:
        return
    ident = query.get("id", [""])[0]
    ms, n, piece = ints["ms"], ints["bytes"], max(ints["piece"], 1)
    DRIPS[ident] = "open"
    gone = asyncio.Event()

    def on_gone() -> None:
        if DRIPS.get(ident) == "open":
            DRIPS[ident] = "disconnected"

    watcher = asyncio.create_task(watch_disconnect(receive, gone, on_gone))
    try:
        hdrs = [(b"content-type", b"application/octet-stream"), (b"content-length", str(n).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": hdrs})
        offset = 0
        while offset < n and not gone.is_set():
            if offset > 0 and not await pause_unless(ms / 1000.0, gone):
                break
            size = min(piece, n - offset)
            await send({"type": "http.response.body", "body": pattern(offset, size), "more_body": True})
            offset += size
        if offset < n:
            # Client gone (or servers stopping): leave the response unfinished.
            if not gone.is_set() and DRIPS.get(ident) == "open":
                DRIPS[ident] = "disconnected"
            return
        # Every byte was handed to the server; mark it before the last send
        # so that the stream's own end is not taken for a disconnect.
        if DRIPS.get(ident) == "open":
            DRIPS[ident] = "finished"
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()


async def sse(scope, receive, send, query: dict) -> None:
    ints = await query_ints(scope, send, query, n=3, ms=50, hold=0)
    if ints is None:
        return
    count, ms, hold = ints["n"], ints["ms"], ints["hold"]
    gone = asyncio.Event()
    watcher = asyncio.create_task(watch_disconnect(receive, gone))
    try:
        hdrs = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": hdrs})
        for i in range(1, count + 1):
            if not await pause_unless(ms / 1000.0, gone):
                return
            event = f"data: event {i}\n\n".encode()
            await send({"type": "http.response.body", "body": event, "more_body": True})
        if hold and not await pause_unless(hold / 1000.0, gone):
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()


async def handle_http(scope, receive, send) -> None:
    path = scope["path"]
    method = scope["method"]

    m = NUMBERED.match(path)
    if m:
        kind, n = m.group(1), int(m.group(2))
        if kind == "status":
            if not 200 <= n <= 599:
                await respond(scope, send, 400, b"status must be 200..599")
            else:
                await respond(scope, send, n, f"status {n}".encode())
        elif n > MAX_N:
            await respond(scope, send, 400, b"too large")
        elif kind == "bytes":
            await send_pattern(scope, send, n, len(PATTERN_BLOCK), content_length=True)
        elif kind == "chunked":
            await send_pattern(scope, send, n, 1000, content_length=False)
        elif kind == "truncated":
            hdrs = [(b"content-type", b"application/octet-stream"), (b"content-length", str(n).encode())]
            await send({"type": "http.response.start", "status": 200, "headers": hdrs})
            await send({"type": "http.response.body", "body": pattern(0, n // 2), "more_body": True})
            # An application error after the response began: the server
            # breaks the connection.
            raise ConnectionAbortedError("truncated on purpose")
        elif kind == "slow":
            if await pause(n / 1000.0):
                await respond(scope, send, 200, b"slow")
        elif kind == "redirect":
            if n > 0:
                location = f"/redirect/{n - 1}".encode()
                await respond(scope, send, 302, b"redirect", [(b"location", location)])
            else:
                await respond(scope, send, 200, b"redirected")
        return

    if path == "/":
        await respond(scope, send, 200, b"luanet test peer")
    elif path == "/echo":
        body = await read_body(receive)
        await respond(scope, send, 200, body, [(b"content-type", b"application/octet-stream")])
    elif path == "/inspect":
        body = await read_body(receive)
        target = scope.get("raw_path") or path.encode()
        target = target.decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        client = scope.get("client") or ("", "")
        lines = [
            ("method", method),
            ("path", target),
            ("content-type", header(scope, b"content-type")),
            ("user-agent", header(scope, b"user-agent")),
            ("accept-encoding", header(scope, b"accept-encoding")),
            ("http-version", scope.get("http_version", "")),
            ("client-port", str(client[1])),
            ("body-length", str(len(body))),
            ("via", header(scope, b"via")),
        ]
        text = "".join(f"{k}={v}\n" for k, v in lines)
        await respond(scope, send, 200, text.encode("latin-1", "replace"))
    elif path == "/stall":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/octet-stream"),
                    (b"content-length", b"100"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": pattern(0, 10), "more_body": True})
        # Returns without finishing the response when the servers stop
        # (Hypercorn then closes the connection or resets the stream).
        if await pause(60):
            await send({"type": "http.response.body", "body": pattern(10, 90), "more_body": False})
    elif path == "/delay":
        query = http_query(scope)
        ints = await query_ints(scope, send, query, ms=0)
        if ints is None:
            return
        tag = query.get("tag")
        if tag:
            client = scope.get("client") or ("", 0)
            DELAY_TAGS.setdefault(tag[0], []).append((client[0], client[1]))
        if await pause(ints["ms"] / 1000.0):
            await respond(scope, send, 200, b"ok")
    elif path == "/ports":
        entries = DELAY_TAGS.get(http_query(scope).get("tag", [""])[0], [])
        body = json.dumps({"requests": len(entries), "connections": len(set(entries))})
        await respond(scope, send, 200, body.encode(), [(b"content-type", b"application/json")])
    elif path == "/drip":
        await drip(scope, receive, send, http_query(scope))
    elif path == "/drip-state":
        state = DRIPS.get(http_query(scope).get("id", [""])[0], "unknown")
        await respond(scope, send, 200, state.encode())
    elif path == "/drip-count":
        prefix = http_query(scope).get("prefix", [""])[0]
        counts = {"open": 0, "finished": 0, "disconnected": 0}
        for ident, state in DRIPS.items():
            if ident.startswith(prefix):
                counts[state] += 1
        await respond(scope, send, 200, json.dumps(counts).encode(), [(b"content-type", b"application/json")])
    elif path == "/sse":
        await sse(scope, receive, send, http_query(scope))
    elif path == "/redirect-to":
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        urls = query.get("url")
        if not urls:
            await respond(scope, send, 400, b"missing url parameter")
        else:
            location = urls[0].encode("utf-8")
            code = int(query.get("code", ["302"])[0])
            await respond(scope, send, code, b"redirect", [(b"location", location)])
    elif path == "/headers":
        await read_body(receive)
        lines = b"".join(k + b": " + v + b"\n" for k, v in scope["headers"])
        await respond(scope, send, 200, lines)
    elif path == "/cookies":
        cookies = [(b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2")]
        cookies += [(b"x-twice", b"1"), (b"x-twice", b"2")]
        await respond(scope, send, 200, b"cookies", cookies)
    elif path == "/gzip":
        if "gzip" in header(scope, b"accept-encoding").lower():
            await respond(
                scope,
                send,
                200,
                GZIP_BODY,
                [(b"content-encoding", b"gzip"), (b"vary", b"Accept-Encoding")],
            )
        else:
            await respond(scope, send, 200, GZIP_PLAIN, [(b"vary", b"Accept-Encoding")])
    else:
        await respond(scope, send, 404, b"not found")


async def app(scope, receive, send) -> None:
    kind = scope["type"]
    if kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif kind == "http":
        try:
            await handle_http(scope, receive, send)
        except (Disconnected, ConnectionAbortedError):
            pass
    elif kind == "websocket":
        # Not served (yet): refuse the handshake (Hypercorn answers 403).
        await receive()
        await send({"type": "websocket.close", "code": 1008})


# ---------------------------------------------------------------------------
# The WebSocket servers
# ---------------------------------------------------------------------------

# Connections that completed the opening handshake and are not closed yet,
# on all the WebSocket servers.
WS_OPEN: set = set()
# (code, reason) of every client-initiated close, oldest first.
WS_CLOSES: list = []
# The code of the client's answer to each close from /close-when-full
# (1006: none came), oldest first.
CLOSE_REPLIES: list = []
# /flood?tag=: messages whose send completed, and the close code the server
# saw when it ended (1006: the client went away without a closing handshake).
FLOOD_SENT: dict = {}
FLOOD_END: dict = {}
# /sink?tag=: [messages, bytes] read, and the event that lets it read.
SINKS: dict = {}
# /join?tag=: the connections waiting for a /broadcast?tag=.
AUDIENCES: dict = {}


async def drain(ws) -> None:
    """Reads and drops messages until the connection closes."""
    try:
        async for _ in ws:
            pass
    except ConnectionClosed:
        pass


class PeerConnection(ServerConnection):
    """Records the client's close frame as soon as it arrives (before the
    server answers it, so a client that saw the answer and then asks /stats
    always finds it) and forgets the connection when the TCP connection ends."""

    close_recorded = False
    # What ended the TCP connection: None for a clean end, else the error
    # (a reset when the client closed with our data unread).
    lost_with: Exception | None = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.record_close()

    def record_close(self) -> None:
        protocol = self.protocol
        if (
            not self.close_recorded
            and protocol.close_rcvd is not None
            and protocol.close_rcvd_then_sent
        ):
            self.close_recorded = True
            WS_CLOSES.append((protocol.close_rcvd.code, protocol.close_rcvd.reason))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost_with = exc
        WS_OPEN.discard(self)
        super().connection_lost(exc)


def ws_query(request) -> tuple[str, dict]:
    """Path and parsed query string of a WebSocket upgrade request."""
    parts = urlsplit(request.path)
    return parts.path, parse_qs(parts.query)


def qint(query: dict, name: str, default: int | None) -> int | None:
    values = query.get(name)
    if not values:
        return default
    n = int(values[0])
    if not 0 <= n <= MAX_N:
        raise ValueError(f"{name} out of range")
    return n


def split_parts(size: int, parts: int) -> list[int]:
    """Sizes of `parts` pieces (at least 1) adding up to `size`."""
    parts = max(parts, 1)
    base, extra = divmod(size, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def binary_numbered(i: int, size: int) -> bytes:
    return pattern(i, size)  # byte k = (i + k) % 256


def flood_message(i: int, size: int) -> bytes:
    """Message i of /flood: its number in 8 ASCII digits, then i % 256."""
    return b"%08d" % i + bytes([i % 256]) * (size - 8)


def tag_of(query: dict) -> str:
    return (query.get("tag") or [""])[0]


def big_pattern(size: int) -> bytes:
    block = bytes(range(251))
    return (block * (size // 251 + 1))[:size]


async def ws_echo(ws) -> None:
    async for message in ws:
        await ws.send(message)


async def ws_route(ws) -> None:
    path, query = ws_query(ws.request)
    if path in ("/echo", "/closeinfo", "/slow"):
        await ws_echo(ws)
    elif path == "/send":
        count = qint(query, "count", 1)
        size = qint(query, "size", None)
        close = qint(query, "close", None)
        kind = (query.get("type") or ["text"])[0]
        for i in range(1, count + 1):
            if kind == "binary":
                await ws.send(binary_numbered(i, size or 0))
            else:
                text = f"msg {i}"
                if size is not None:
                    text = text.ljust(size, "x")
                await ws.send(text)
        if close is not None:
            await ws.close(close, (query.get("reason") or ["bye"])[0])
        else:
            await ws_echo(ws)
    elif path == "/fragmented":
        parts = qint(query, "parts", 4)
        size = qint(query, "size", 1000)
        sizes = split_parts(size, parts)
        await ws.send(["a" * n for n in sizes])
        await ws.send([b"\x01" * n for n in sizes])
        await ws_echo(ws)
    elif path == "/ping":
        pong = await ws.ping(b"luanet")
        try:
            await asyncio.wait_for(pong, 5)
            answer = "pong received"
        except asyncio.TimeoutError:
            answer = "no pong"
        await ws.send(answer)
        await ws_echo(ws)
    elif path == "/big":
        await ws.send(big_pattern(qint(query, "size", 0)))
        await ws_echo(ws)
    elif path == "/silent":
        async for _ in ws:
            pass
    elif path == "/request":
        user_agent = ws.request.headers.get("User-Agent", "")
        await ws.send(f"path={ws.request.path}\nuser-agent={user_agent}")
        await ws_echo(ws)
    elif path == "/close-when-full":
        # Stop reading, so the client's output backs up; then close while
        # it is stuck, and read again 300 ms later.
        ws.transport.pause_reading()
        await asyncio.sleep(qint(query, "ms", 500) / 1000)
        closing = asyncio.create_task(ws.close(4001, "full"))
        await asyncio.sleep(0.3)
        reading = asyncio.create_task(drain(ws))
        ws.transport.resume_reading()
        await closing
        await reading
        answer = ws.protocol.close_rcvd
        CLOSE_REPLIES.append(answer.code if answer is not None else 1006)
    elif path == "/last-reply":
        await ws.send(f"reply={CLOSE_REPLIES[-1] if CLOSE_REPLIES else 'none'}")
        await ws.close()
    elif path == "/protocol":
        await ws.send(f"protocol={ws.subprotocol}")
        await ws_echo(ws)
    elif path == "/upgrade-headers":
        lines = [f"{name.lower()}: {value}" for name, value in ws.request.headers.raw_items()]
        await ws.send("\n".join(lines))
        await ws_echo(ws)
    elif path == "/last-close":
        code, reason = WS_CLOSES[-1] if WS_CLOSES else ("none", "")
        await ws.send(f"code={code} reason={reason}")
        await ws.close()
    elif path == "/flood":
        # Each send waits for the transport to drain below its high-water
        # mark: TCP back-pressure holds this server back.
        tag, count, size = tag_of(query), qint(query, "count", 1), max(qint(query, "size", 8), 8)
        FLOOD_SENT[tag] = 0
        try:
            for i in range(1, count + 1):
                await ws.send(flood_message(i, size))
                FLOOD_SENT[tag] = i
            await ws.send("flood done")
            await ws_echo(ws)
        finally:
            await ws.wait_closed()
            FLOOD_END[tag] = "reset" if ws.lost_with is not None else ws.close_code
    elif path == "/flood-end":
        await ws.send(f"code={FLOOD_END.get(tag_of(query), 'none')}")
        await ws.close()
    elif path == "/flood-state":
        await ws.send(f"sent={FLOOD_SENT.get(tag_of(query), 0)}")
        await ws.close()
    elif path == "/stall":
        # A peer that stops answering: nothing is read any more, so pings
        # get no pong, and the connection stays open.
        await ws.send("stalling")
        await asyncio.sleep(qint(query, "ms", 0) / 1000)
        ws.transport.pause_reading()
        await asyncio.sleep(60)
        ws.transport.abort()
    elif path == "/sink":
        # Reads nothing until /sink-release?tag= says so, then everything.
        sink = SINKS[tag_of(query)] = {"messages": 0, "bytes": 0, "release": asyncio.Event()}
        ws.transport.pause_reading()
        await sink["release"].wait()
        ws.transport.resume_reading()
        async for message in ws:
            sink["messages"] += 1
            sink["bytes"] += len(message)
    elif path == "/sink-release":
        sink = SINKS.get(tag_of(query))
        if sink is not None:
            sink["release"].set()
        await ws.send("released")
        await ws.close()
    elif path == "/sink-state":
        sink = SINKS.get(tag_of(query), {"messages": 0, "bytes": 0})
        await ws.send(f"messages={sink['messages']} bytes={sink['bytes']}")
        await ws.close()
    elif path == "/bad-frame":
        # A frame with the reserved opcode 3: the client must fail the
        # connection with 1002 (protocol error).
        ws.transport.write(b"\x83\x00")
        await drain(ws)
    elif path == "/join":
        # Waits, silent, for a /broadcast to the same tag.
        audience = AUDIENCES.setdefault(tag_of(query), set())
        audience.add(ws)
        try:
            await drain(ws)
        finally:
            audience.discard(ws)
    elif path == "/broadcast":
        audience = AUDIENCES.get(tag_of(query), set())
        ws_broadcast(audience, (query.get("text") or [""])[0])
        await ws.send(f"sent={len(audience)}")
        await ws.close()
    elif path == "/stats":
        others = len(WS_OPEN - {ws})
        last = str(WS_CLOSES[-1][0]) if WS_CLOSES else "none"
        await ws.send(f"open={others} last_close={last}")
        await ws.close()


async def ws_handler(ws) -> None:
    WS_OPEN.add(ws)
    try:
        await ws_route(ws)
    except ConnectionClosed:
        pass
    finally:
        if ws.protocol.state.name == "CLOSED":
            WS_OPEN.discard(ws)


WS_PATHS = {
    "/echo", "/send", "/fragmented", "/ping", "/big", "/silent",
    "/request", "/closeinfo", "/stats", "/last-close", "/protocol", "/upgrade-headers", "/slow", "/close-when-full", "/last-reply",
    "/flood", "/flood-state", "/flood-end", "/stall", "/sink", "/sink-release", "/sink-state", "/join", "/broadcast",
    "/bad-frame",
}


async def ws_process_request(connection, request):
    path, query = ws_query(request)
    if path == "/reject":
        return connection.respond(HTTPStatus.FORBIDDEN, "forbidden\n")
    if path not in WS_PATHS:
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    try:
        for name in ("count", "size", "close", "parts", "ms"):
            qint(query, name, None)
    except ValueError:
        return connection.respond(HTTPStatus.BAD_REQUEST, "bad query\n")
    if path == "/slow":
        # Answer the upgrade request late (or not at all if the servers stop).
        if not await pause(qint(query, "ms", 0) / 1000.0):
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "stopping\n")
    return None


def ws_select_subprotocol(connection, offered):
    """/protocol?choose=first|none|<name>: the first subprotocol offered,
    none, or the one named (even one the client did not offer)."""
    path, query = ws_query(connection.request)
    if path != "/protocol":
        return None
    choose = (query.get("choose") or ["first"])[0]
    if choose == "first":
        return offered[0] if offered else None
    if choose == "none":
        return None
    return choose


async def ws_start(sock: socket.socket, ssl_context: ssl.SSLContext | None = None):
    return await ws_serve(
        ws_handler,
        sock=sock,
        ssl=ssl_context,
        backlog=1024,
        process_request=ws_process_request,
        select_subprotocol=ws_select_subprotocol,
        create_connection=PeerConnection,
        compression=None,
        max_size=None,
        ping_interval=None,
        close_timeout=5,
        server_header=None,
    )


async def ws_stop(servers) -> None:
    for server in servers:
        server.close()
    waits = [asyncio.create_task(server.wait_closed()) for server in servers]
    if waits:
        _, pending = await asyncio.wait(waits, timeout=3)
        for task in pending:
            task.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def cut_relay(reader, writer, upstream_port: int) -> None:
    """One connection of LUANET_CUT_RELAY (see the module's doc)."""
    upstream = None
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, rest = head.split(b"\r\n", 1)
        method, target, version = request_line.split(b" ")
        match = re.fullmatch(rb"/lines/(\d+)(/.*)", target)
        if not match:
            writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            return
        lines, target = int(match[1]), match[2]
        up_reader, upstream = await asyncio.open_connection("127.0.0.1", upstream_port)
        upstream.write(b" ".join((method, target, version)) + b"\r\n" + rest)
        answer = b""
        while answer.count(b"\r\n") < lines:
            piece = await up_reader.read(65536)
            if not piece:
                break
            answer += piece
        end = -2
        for _ in range(lines):
            end = answer.find(b"\r\n", end + 2)
            if end < 0:
                end = len(answer) - 2
                break
        writer.write(answer[: end + 2])
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        if upstream is not None:
            upstream.close()
        writer.close()


def tls_server_context(cert_path: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path)
    return context


def raise_nofile_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError) as error:
        log(f"cannot raise the open files limit to {want}: {error}")


# ---------------------------------------------------------------------------
# Sockets, certificates, servers
# ---------------------------------------------------------------------------


def bind_one(family: int, host: str, port: int = 0) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def bind_localhost() -> tuple[int, list[socket.socket]]:
    """Bind 127.0.0.1 and ::1 on one free port, so that "localhost" works
    whichever address the client tries first."""
    last_error: OSError | None = None
    for _ in range(100):
        s4 = bind_one(socket.AF_INET, "127.0.0.1")
        port = s4.getsockname()[1]
        try:
            s6 = bind_one(socket.AF_INET6, "::1", port)
        except OSError as error:  # port taken on ::1: try another
            last_error = error
            s4.close()
            continue
        return port, [s4, s6]
    raise RuntimeError(f"no port free on both 127.0.0.1 and ::1: {last_error}")


def closed_port() -> int:
    sock = bind_one(socket.AF_INET, "127.0.0.1")
    port = sock.getsockname()[1]
    sock.close()
    return port


def fd_binds(socks: list[socket.socket]) -> list[str]:
    # Hypercorn takes ownership of the descriptors ("fd://N" binds).
    return [f"fd://{sock.detach()}" for sock in socks]


def make_config(
    binds: list[str],
    cert_path: str | None = None,
    insecure: list[str] = (),
    client_ca: str | None = None,
) -> Config:
    config = Config()
    config.accesslog = None
    config.errorlog = "-"  # stderr
    config.loglevel = "WARNING"
    config.graceful_timeout = 0.5  # shutdown must be quick, even with /stall open
    # Hundreds of clients connect at once in the concurrency tests: with the
    # default queue of 100, the rest retry a second later.
    config.backlog = 1024
    if cert_path is not None:
        config.certfile = cert_path
        config.keyfile = cert_path
        config.alpn_protocols = ["h2", "http/1.1"]
    if client_ca is not None:
        config.ca_certs = client_ca
        config.verify_mode = ssl.CERT_REQUIRED
    config.bind = binds
    config.insecure_bind = list(insecure)
    return config


async def wait_ready(addresses, tasks, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for host, port in addresses:
        while True:
            for task in tasks:
                if task.done():
                    error = task.exception()
                    raise RuntimeError(f"a server stopped while starting: {error!r}")
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                if loop.time() > deadline:
                    raise RuntimeError(f"server on {host} port {port} not ready after {timeout} s")
                await asyncio.sleep(0.02)
                continue
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
            break


async def stop(shutdown: asyncio.Event, tasks) -> None:
    STOPPING.set()
    await asyncio.sleep(0.05)  # let waiting handlers return
    shutdown.set()
    _, pending = await asyncio.wait(tasks, timeout=3)
    for task in pending:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            print(f"testpeer: server error at shutdown: {result!r}", file=sys.stderr)


def log(message: str) -> None:
    print(f"testpeer: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# The forward proxy (tinyproxy)
# ---------------------------------------------------------------------------

PROXY_NAME = "luanet-test-proxy"


class Proxy:
    """A private tinyproxy in the foreground, on 127.0.0.1 and a free port."""

    def __init__(self, tmp: str) -> None:
        self.conf_path = os.path.join(tmp, "tinyproxy.conf")
        self.log_path = os.path.join(tmp, "tinyproxy.log")
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    def write_config(self) -> None:
        lines = [
            f"Port {self.port}",
            "Listen 127.0.0.1",
            "Timeout 60",
            "MaxClients 100",
            "Allow 127.0.0.1",
            "Allow ::1",
            # No ConnectPort line: CONNECT may reach any port.
            # The Via header is on by default; this names the proxy in it.
            f'ViaProxyName "{PROXY_NAME}"',
            "LogLevel Warning",
            # No LogFile and no Syslog: tinyproxy -d logs to stderr, which
            # goes to self.log_path. No PidFile.
        ]
        if os.geteuid() == 0:
            # Read only when started as root; without it tinyproxy warns
            # "You SHOULD set a UserName". Stay who we are.
            try:
                lines.append(f"User {pwd.getpwuid(0).pw_name}")
            except KeyError:
                pass
        with open(self.conf_path, "w") as f:
            f.write("".join(line + "\n" for line in lines))

    async def start(self, timeout: float = 15.0) -> None:
        exe = shutil.which("tinyproxy")
        if exe is None:
            raise RuntimeError("tinyproxy not found (scripts/setup.sh installs it)")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # tinyproxy wants a port number: take a free one, close it, hand it
        # over; if another process grabbed it meanwhile, tinyproxy exits and
        # we try again with another.
        for _ in range(5):
            self.port = closed_port()
            self.write_config()
            with open(self.log_path, "wb") as log_file:  # the last attempt's only
                self.proc = await asyncio.create_subprocess_exec(
                    exe,
                    "-d",
                    "-c",
                    self.conf_path,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                    start_new_session=True,  # no terminal signals: we stop it
                    preexec_fn=die_with_parent,
                )
            while self.proc.returncode is None:
                if await self.answers():
                    return
                if loop.time() > deadline:
                    raise RuntimeError(f"tinyproxy on port {self.port} not ready after {timeout} s")
                await asyncio.sleep(0.02)
            await self.proc.wait()
        raise RuntimeError(f"tinyproxy keeps exiting at start (status {self.proc.returncode})")

    async def answers(self) -> bool:
        """True if our tinyproxy serves its statistics page on self.port (a
        whole request, not a bare connect, which it would log as an error)."""
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            return False
        try:
            writer.write(b"GET http://tinyproxy.stats/ HTTP/1.0\r\n\r\n")
            await writer.drain()
            response = await asyncio.wait_for(reader.read(), 5)
        except (OSError, asyncio.TimeoutError):
            return False
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
        return response.startswith(b"HTTP/1.0 200 ") and b"tinyproxy" in response

    async def stop(self, show_log: bool) -> None:
        """Stops tinyproxy; prints its log if show_log or if it died early."""
        if self.proc is not None and self.proc.returncode is not None:
            show_log = True
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()  # tinyproxy exits at once on SIGTERM
            try:
                await asyncio.wait_for(self.proc.wait(), 2)
            except asyncio.TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if show_log:
            self.print_log()

    def print_log(self) -> None:
        """Shows what tinyproxy logged (LogLevel Warning), if anything."""
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return
        for line in text.splitlines():
            if line.strip():
                log(f"tinyproxy: {line}")


def die_with_parent() -> None:
    """In the child before exec: SIGTERM when serve.py dies (Linux only), so
    that a killed serve.py leaves no proxy behind."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


async def run(argv: list[str]) -> int:
    global STOPPING
    STOPPING = asyncio.Event()
    with tempfile.TemporaryDirectory(prefix="luanet-testpeer-") as tmp:
        ca = trustme.CA()
        other_ca = trustme.CA()
        ca_path = os.path.join(tmp, "ca.pem")
        ca.cert_pem.write_to_path(ca_path)
        other_ca_path = os.path.join(tmp, "other-ca.pem")
        other_ca.cert_pem.write_to_path(other_ca_path)
        # CA #1 as an OpenSSL hashed directory, for SSL_CERT_DIR.
        ca_dir = os.path.join(tmp, "ca-dir")
        os.mkdir(ca_dir)
        shutil.copy(ca_path, ca_dir)
        subprocess.run(["openssl", "rehash", ca_dir], check=True)

        certs = {
            "good": ca.issue_cert("localhost", "127.0.0.1", "::1"),
            "wrong_ca": other_ca.issue_cert("localhost", "127.0.0.1", "::1"),
            "wrong_host": ca.issue_cert("other.example"),
        }
        cert_paths = {}
        for name, cert in certs.items():
            cert_paths[name] = os.path.join(tmp, f"{name}.pem")
            cert.private_key_and_cert_chain_pem.write_to_path(cert_paths[name])
        client = ca.issue_cert("luanet-client")
        client_paths = {
            "LUANET_CLIENT_CERT": os.path.join(tmp, "client-cert.pem"),
            "LUANET_CLIENT_KEY": os.path.join(tmp, "client-key.pem"),
            "LUANET_CLIENT_CERT_KEY": os.path.join(tmp, "client.pem"),
            "LUANET_OTHER_CLIENT_CERT_KEY": os.path.join(tmp, "other-client.pem"),
        }
        with open(client_paths["LUANET_CLIENT_CERT"], "wb") as f:
            f.write(b"".join(blob.bytes() for blob in client.cert_chain_pems))
        client.private_key_pem.write_to_path(client_paths["LUANET_CLIENT_KEY"])
        client.private_key_and_cert_chain_pem.write_to_path(client_paths["LUANET_CLIENT_CERT_KEY"])
        other_ca.issue_cert("luanet-client").private_key_and_cert_chain_pem.write_to_path(
            client_paths["LUANET_OTHER_CLIENT_CERT_KEY"]
        )

        http4 = bind_one(socket.AF_INET, "127.0.0.1")
        http6 = bind_one(socket.AF_INET6, "::1")
        http4_port = http4.getsockname()[1]
        http6_port = http6.getsockname()[1]
        https_port, https_socks = bind_localhost()
        wrong_ca_port, wrong_ca_socks = bind_localhost()
        wrong_host_port, wrong_host_socks = bind_localhost()
        client_auth_port, client_auth_socks = bind_localhost()
        ws4 = bind_one(socket.AF_INET, "127.0.0.1")
        ws6 = bind_one(socket.AF_INET6, "::1")
        ws4_port = ws4.getsockname()[1]
        ws6_port = ws6.getsockname()[1]
        wss_port, wss_socks = bind_localhost()
        wss_wrong_ca_port, wss_wrong_ca_socks = bind_localhost()
        cut = bind_one(socket.AF_INET, "127.0.0.1")
        cut_port = cut.getsockname()[1]
        ws_listeners = [(ws4, None), (ws6, None)]
        ws_listeners += [(sock, cert_paths["good"]) for sock in wss_socks]
        ws_listeners += [(sock, cert_paths["wrong_ca"]) for sock in wss_wrong_ca_socks]

        configs = [
            make_config(fd_binds(https_socks), cert_paths["good"], fd_binds([http4, http6])),
            make_config(fd_binds(wrong_ca_socks), cert_paths["wrong_ca"]),
            make_config(fd_binds(wrong_host_socks), cert_paths["wrong_host"]),
            make_config(fd_binds(client_auth_socks), cert_paths["good"], client_ca=ca_path),
        ]
        addresses = [("127.0.0.1", http4_port), ("::1", http6_port)]
        for port in (https_port, wrong_ca_port, wrong_host_port, client_auth_port):
            addresses += [("127.0.0.1", port), ("::1", port)]
        addresses += [("127.0.0.1", ws4_port), ("::1", ws6_port), ("127.0.0.1", cut_port)]
        for port in (wss_port, wss_wrong_ca_port):
            addresses += [("127.0.0.1", port), ("::1", port)]

        proxy = Proxy(tmp)
        try:
            await proxy.start()
        except (RuntimeError, OSError) as error:
            log(f"cannot start the proxy: {error}")
            await proxy.stop(show_log=True)
            return 2
        closed = closed_port()
        while closed == proxy.port:
            closed = closed_port()

        node_peer = NodePeer()
        try:
            if not node_available(NODE_MODULES):
                raise RuntimeError(f"node or the npm ws package in {NODE_MODULES} is missing "
                                   "(scripts/setup.sh installs them)")
            node_env = await node_peer.start(NODE_MODULES, cert_paths["good"])
        except RuntimeError as error:
            log(f"cannot start the npm ws server: {error}")
            await asyncio.gather(node_peer.stop(), proxy.stop(show_log=False))
            return 2

        # The tests talk to loopback directly: a developer's own proxy settings
        # must not route them elsewhere (test_proxy sets its own per child).
        env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARIABLES}
        env.update(
            {
                "LUANET_HTTP": f"http://127.0.0.1:{http4_port}",
                "LUANET_HTTP6": f"http://[::1]:{http6_port}",
                "LUANET_HTTPS": f"https://localhost:{https_port}",
                "LUANET_HTTPS_WRONG_CA": f"https://localhost:{wrong_ca_port}",
                "LUANET_HTTPS_WRONG_HOST": f"https://localhost:{wrong_host_port}",
                "LUANET_HTTPS_CLIENT_AUTH": f"https://localhost:{client_auth_port}",
                **client_paths,
                "SSL_CERT_FILE": ca_path,
                "LUANET_CA_DIR": ca_dir,
                "LUANET_OTHER_CA_FILE": other_ca_path,
                "LUANET_CLOSED_PORT": str(closed),
                "LUANET_PROXY": f"http://127.0.0.1:{proxy.port}",
                "LUANET_WS": f"ws://127.0.0.1:{ws4_port}",
                "LUANET_WS6": f"ws://[::1]:{ws6_port}",
                "LUANET_WSS": f"wss://localhost:{wss_port}",
                "LUANET_WSS_WRONG_CA": f"wss://localhost:{wss_wrong_ca_port}",
                "LUANET_CUT_RELAY": f"http://127.0.0.1:{cut_port}",
                **node_env,
            }
        )

        shutdown = asyncio.Event()
        tasks = [
            asyncio.create_task(serve(app, config, shutdown_trigger=shutdown.wait))
            for config in configs
        ]
        ws_servers = []
        code = 2
        try:
            try:
                contexts = {}
                for sock, cert_path in ws_listeners:
                    context = None
                    if cert_path is not None:
                        if cert_path not in contexts:
                            contexts[cert_path] = tls_server_context(cert_path)
                        context = contexts[cert_path]
                    ws_servers.append(await ws_start(sock, context))
                ws_servers.append(
                    await asyncio.start_server(
                        lambda r, w: cut_relay(r, w, http4_port), sock=cut, backlog=128
                    )
                )
            except (OSError, ssl.SSLError) as error:
                log(f"cannot start the WebSocket servers: {error}")
                return 2
            try:
                await wait_ready(addresses, tasks)
            except RuntimeError as error:
                log(f"cannot start the servers: {error}")
                return 2
            for name in (
                "LUANET_HTTP",
                "LUANET_HTTP6",
                "LUANET_HTTPS",
                "LUANET_HTTPS_WRONG_CA",
                "LUANET_HTTPS_WRONG_HOST",
                "LUANET_HTTPS_CLIENT_AUTH",
                "SSL_CERT_FILE",
                "LUANET_CLOSED_PORT",
                "LUANET_PROXY",
                "LUANET_WS",
                "LUANET_WS6",
                "LUANET_WSS",
                "LUANET_WSS_WRONG_CA",
                "LUANET_CUT_RELAY",
                "LUANET_NODE_WS",
                "LUANET_NODE_WSS",
            ):
                log(f"{name}={env[name]}")

            try:
                proc = await asyncio.create_subprocess_exec(*argv, env=env)
            except OSError as error:
                log(f"cannot run {argv[0]!r}: {error}")
                code = 127
                return code

            loop = asyncio.get_running_loop()

            def forward(signum: int) -> None:
                if proc.returncode is None:
                    proc.send_signal(signum)

            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, forward, signum)
            try:
                code = await proc.wait()
            finally:
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)
            code = 128 - code if code < 0 else code
            return code
        finally:
            # tinyproxy's log helps when something failed; otherwise it is
            # noise (it logs a client closing a tunnel as an error).
            await asyncio.gather(
                stop(shutdown, tasks),
                ws_stop(ws_servers),
                proxy.stop(show_log=code != 0),
                node_peer.stop(),
            )


def main() -> int:
    argv = sys.argv[1:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 2
    raise_nofile_limit()
    return asyncio.run(run(argv))


if __name__ == "__main__":
    sys.exit(main())
