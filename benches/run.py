#!/usr/bin/env python3
"""luanet's benchmarks, side by side with the peers a user would pick.

    python3 benches/run.py [--runs N] [--smoke] [--out DIR] [--cases a,b]

Run through scripts/bench.sh, which builds and installs everything first.
Every client runs as its own process against local servers on loopback:
nginx for HTTP, and benches/peers' ws_echo_server (tokio-tungstenite) for
WebSocket. A client's time is the wall time of a run with COUNT operations
minus that of the same client with COUNT=0 (start-up, loading and
connecting excluded). Each client runs --runs times, the clients of a case
interleaved, and the table shows the median and the spread (min-max).
Ratios are taken pair by pair from the same run: luanet against the raw
libcurl / tungstenite programs on Lua 5.4, and against each Lua peer on the
interpreter that peer supports.

Writes DIR/benchmarks.md and DIR/benchmarks.svg (docs/ by default).
--smoke runs every case once with tiny counts, to keep the harness working
(the test command does this); its numbers mean nothing.
--cases a,b runs only those cases, and then writes to build/bench-cases
unless --out says otherwise, so that docs/ keeps the full report. The
cases: get, request_get, download, download_output, post, ws_echo,
ws_stream, ws_fanout, poll_empty, idle, fetch_get, fetch_h2, fetch_poll, fetch_frame,
fetch_many. nginx always starts; the WebSocket echo server only for the
ws_* cases, poll_empty and idle.

The fetch_* cases measure the non-blocking requests (net.fetch).
HTTP/2 goes to nginx over TLS with a self-signed certificate made at run
time (clients do not verify it); the slow requests go to /trickle, which
nginx sends at 16 bytes a second, so that they stay pending.
"""

import argparse
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
TARGET = os.path.join(ROOT, "target", "release")
LUA_DIR = os.path.join(ROOT, "benches", "lua")


# ---------------------------------------------------------------------------
# Clients
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Client:
    """A program that performs one case: `argv + case args`."""

    name: str  # shown in the tables, e.g. "luanet"
    where: str  # the interpreter or "C" / "Rust" / "CLI"
    argv: tuple
    env: tuple = ()

    @property
    def label(self):
        return f"{self.name} ({self.where})"


def lua_client(name, script, interpreter, abi=None):
    env = ()
    if abi:
        env = (("LUA_CPATH", os.path.join(BUILD, f"lua-{abi}", "?.so") + ";;"),)
    return Client(name, interpreter, (interpreter, os.path.join(LUA_DIR, script)), env)


LUANET_54 = lua_client("luanet", "luanet.lua", "lua5.4", "lua54")
LUANET_53 = lua_client("luanet", "luanet.lua", "lua5.3", "lua53")
LUANET_52 = lua_client("luanet", "luanet.lua", "lua5.2", "lua52")
LUASOCKET = lua_client("LuaSocket+LuaSec", "luasocket.lua", "lua5.4")
LUAHTTP = lua_client("lua-http", "luahttp.lua", "lua5.3")
LUACURL = lua_client("lua-curl", "luacurl.lua", "lua5.2")
CURL_C = Client("libcurl", "C", (os.path.join(BUILD, "bench", "curl_client"),))
CURL_MULTI = Client("libcurl multi", "C", (os.path.join(BUILD, "bench", "curl_multi"),))
# The luanet client running a loop without the call it measures.
LUANET_54_LOOP = lua_client("luanet, empty loop", "luanet.lua", "lua5.4", "lua54")
CURL_CLI = Client("curl", "CLI", ("curl",))
TUNGSTENITE = Client("tungstenite", "Rust", (os.path.join(TARGET, "ws_client"),))


# ---------------------------------------------------------------------------
# Running one measurement
# ---------------------------------------------------------------------------


class ClientFailed(Exception):
    pass


def run_measured(client, args):
    """Runs the client; returns (seconds, peak RSS in KiB, the counters of
    its `ok key=value...` line).

    The peak RSS comes from GNU time, not from our own wait4: a child that
    Python spawns (vfork, then exec) is charged Python's own peak."""
    env = dict(os.environ)
    env.update(client.env)
    argv = list(client.argv) + [str(a) for a in args]
    with tempfile.NamedTemporaryFile("r") as rss_file:
        started = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", rss_file.name] + argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        elapsed = time.perf_counter() - started
        rss_text = rss_file.read().strip().splitlines()
    out, err, code = proc.stdout, proc.stderr, proc.returncode
    if code != 0:
        raise ClientFailed(f"{client.label} {' '.join(argv[1:])}: exit {code}\n{err.decode(errors='replace')}")
    line = out.decode().strip().splitlines()[-1] if out.strip() else ""
    if not line.startswith("ok"):
        raise ClientFailed(f"{client.label} {' '.join(argv[1:])}: no 'ok' line\n{out.decode()}{err.decode()}")
    counters = dict(part.split("=", 1) for part in line.split()[1:])
    return elapsed, int(rss_text[-1]), counters


@dataclass
class Series:
    """Repeated measurements of one client in one case."""

    client: Client
    values: list = field(default_factory=list)  # per-run metric
    rss_kib: list = field(default_factory=list)
    counters: dict = field(default_factory=dict)

    @property
    def median(self):
        return statistics.median(self.values)

    @property
    def spread(self):
        return min(self.values), max(self.values)


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, what, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not start on port {port}")


# worker_connections: fetch_many holds 10,000 connections at once (the
# open-file limit that main() raises, and nginx inherits, must allow them).
# /trickle: a slow answer (16 bytes a second, headers included), for requests
# that must stay pending; a byte a second would trip a client's low-speed
# limit of 1 byte/s. Its file stays open in the cache, shared: without that,
# every pending request would hold one more of nginx's descriptors. The TLS
# port speaks HTTP/2 (`listen ... ssl http2` works on nginx 1.22 as on later
# ones, which warn that it is deprecated).
NGINX_CONF = """
worker_processes 1;
error_log {tmp}/error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {tmp}/cert.pem;
        ssl_certificate_key {tmp}/key.pem;
        root {tmp}/www;
        location = /small {{ default_type text/plain; return 200 "hello from nginx"; }}
        location = /trickle {{
            default_type application/octet-stream;
            limit_rate 16;
            open_file_cache max=16;  # one descriptor for every request, not one each
        }}
        location = /upload {{
            client_max_body_size 16m;
            client_body_buffer_size 2m;
            default_type text/plain;
            return 200 "ok";
        }}
    }}
}}
"""


class Servers:
    """nginx (HTTP on self.http, HTTPS with HTTP/2 on self.https) and, with
    ws, the WebSocket echo server (self.ws), in a temporary directory."""

    def __init__(self, big_bytes, ws=True):
        self.tmp = tempfile.mkdtemp(prefix="luanet-bench-")
        self.procs = []
        self.big_bytes = big_bytes
        self.with_ws = ws

    def __enter__(self):
        www = os.path.join(self.tmp, "www")
        os.makedirs(www)
        os.chmod(self.tmp, 0o755)  # nginx's workers drop root
        with open(os.path.join(www, "big"), "wb") as f:
            block = bytes(range(256)) * 4096  # 1 MiB
            left = self.big_bytes
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)
        with open(os.path.join(www, "trickle"), "wb") as f:
            f.write(bytes(range(256)) * 4096)  # 1 MiB: days at 16 bytes a second
        # A throwaway certificate for the TLS port; nobody verifies it.
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", os.path.join(self.tmp, "key.pem"), "-out", os.path.join(self.tmp, "cert.pem"),
             "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port, tls_port = free_port(), free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, port=port, tls_port=tls_port))
        self.start(["nginx", "-p", self.tmp, "-c", conf, "-g", "daemon off;"])
        wait_for_port(port, "nginx")
        wait_for_port(tls_port, "nginx (TLS)")
        self.http = f"http://127.0.0.1:{port}"
        self.https = f"https://127.0.0.1:{tls_port}"
        if not self.with_ws:
            return self

        port_file = os.path.join(self.tmp, "ws.port")
        self.start([os.path.join(TARGET, "ws_echo_server"), port_file])
        deadline = time.monotonic() + 10
        while not os.path.exists(port_file):
            if time.monotonic() > deadline:
                raise RuntimeError("ws_echo_server did not start")
            time.sleep(0.05)
        ws_port = int(open(port_file).read())
        wait_for_port(ws_port, "ws_echo_server")
        self.ws = f"ws://127.0.0.1:{ws_port}"
        return self

    def start(self, argv):
        self.procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))

    def __exit__(self, *exc):
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------


@dataclass
class Result:
    """One case: its series and the pairwise comparisons."""

    title: str
    unit: str
    series: list
    comparisons: list  # (text, value, goal text, met)
    notes: list = field(default_factory=list)
    tables: list = field(default_factory=list)  # extra tables: (header cells, rows of cells)


def measure_rates(clients, args_for, count, runs, per="ops"):
    """Rates (COUNT / (t(COUNT) - t(0))) for each client, interleaved."""
    series = [Series(c) for c in clients]
    for _ in range(runs):
        for s in series:
            zero, _, _ = run_measured(s.client, args_for(s.client, 0))
            full, rss, counters = run_measured(s.client, args_for(s.client, count))
            work = max(full - zero, 1e-9)
            amount = float(counters.get(per, count)) if per != "ops" else count
            s.values.append(amount / work)
            s.rss_kib.append(rss)
            s.counters = counters
    return series


def ratio_line(a, b, goal=None, higher_is_better=True):
    value = a.median / b.median
    met = None
    goal_text = ""
    if goal is not None:
        met = value >= goal if higher_is_better else value <= goal
        goal_text = f"≥ {goal:g}×" if higher_is_better else f"≤ {goal:g}×"
    return (f"{a.client.label} / {b.client.label}", value, goal_text, met)


def case_get(servers, scale, runs):
    url = servers.http + "/small"
    clients = [LUANET_54, CURL_C, LUASOCKET, LUANET_53, LUAHTTP, LUANET_52, LUACURL]
    series = measure_rates(
        clients,
        lambda c, n: (["get", url, n]),
        scale(10000, 20),
        runs,
    )
    by = {s.client: s for s in series}
    comparisons = [
        ratio_line(by[LUANET_54], by[CURL_C], 0.9),
        ratio_line(by[LUANET_54], by[LUASOCKET], 1.0),
        ratio_line(by[LUANET_53], by[LUAHTTP], 1.0),
        ratio_line(by[LUANET_52], by[LUACURL], 1.0),
    ]
    notes = [
        "LuaSocket's `socket.http.request` opens a new connection for every request: it has no keep-alive.",
    ]
    return Result(f"{scale(10000, 20):,} small GETs to one host", "requests/s", series, comparisons, notes)


def case_request_get(servers, scale, runs):
    url = servers.http + "/small"
    clients = [LUANET_54, CURL_C]
    series = measure_rates(
        clients,
        lambda c, n: ["request_get" if c is LUANET_54 else "get_headers", url, n],
        scale(10000, 20),
        runs,
    )
    by = {s.client: s for s in series}
    comparisons = [ratio_line(by[LUANET_54], by[CURL_C], 0.9)]
    notes = [
        "Both send the same two request headers. `net.request` also hands the script every "
        "response header, as a table by name and as a list of lines.",
    ]
    return Result(f"{scale(10000, 20):,} small GETs through `net.request`", "requests/s", series, comparisons, notes)


def case_download_output(servers, scale, runs, big_bytes):
    url = servers.http + "/big"
    path = os.path.join(servers.tmp, "download.out")
    clients = [LUANET_54, CURL_CLI]

    def args(client, n):
        if client is CURL_CLI:
            return ["-s", "-o", path, "-w", "ok ops=1\\n", url if n else servers.http + "/small"]
        return ["download_output", url if n else servers.http + "/small", 1, path]

    series = [Series(c) for c in clients]
    for _ in range(runs):
        for s in series:
            zero, _, _ = run_measured(s.client, args(s.client, 0))
            full, rss, _ = run_measured(s.client, args(s.client, 1))
            if os.path.getsize(path) != big_bytes:
                raise ClientFailed(f"{s.client.label}: wrote {os.path.getsize(path)} bytes, not {big_bytes}")
            os.remove(path)
            s.values.append(big_bytes / max(full - zero, 1e-9) / 1e6)
            s.rss_kib.append(rss)
    by = {s.client: s for s in series}
    luanet_rss_mib = statistics.median(by[LUANET_54].rss_kib) / 1024
    comparisons = [
        ratio_line(by[LUANET_54], by[CURL_CLI], 0.8),
        ("luanet (lua5.4) peak RSS, MiB", luanet_rss_mib, "flat (≤ 32)", luanet_rss_mib <= 32),
    ]
    notes = ["Both write the body to a file in the same directory; luanet writes `<path>.part` and renames it."]
    return Result(f"{big_bytes / 1e6:g} MB download to a file", "MB/s", series, comparisons, notes)


def case_post(servers, scale, runs):
    url = servers.http + "/upload"
    size = 1 << 20
    clients = [LUANET_54, CURL_C, LUASOCKET, LUANET_53, LUAHTTP]
    # 1,000 (about 0.4 s a run): with fewer, start-up jitter shows in the ratio.
    series = measure_rates(clients, lambda c, n: ["post", url, n, size], scale(1000, 3), runs)
    by = {s.client: s for s in series}
    comparisons = [
        ratio_line(by[LUANET_54], by[CURL_C], 0.9),
        ratio_line(by[LUANET_54], by[LUASOCKET], 1.0),
        ratio_line(by[LUANET_53], by[LUAHTTP], 1.0),
    ]
    return Result("1 MiB POSTs", "requests/s", series, comparisons)


def case_download(servers, scale, runs, big_bytes):
    url = servers.http + "/big"
    clients = [LUANET_54, CURL_CLI, CURL_C, LUASOCKET]

    def args(client, n):
        if client is CURL_CLI:  # curl itself: the body goes to /dev/null
            return ["-s", "-o", "/dev/null", "-w", "ok ops=1\\n", url if n else servers.http + "/small"]
        return ["download", url, n]

    series = [Series(c) for c in clients]
    for _ in range(runs):
        for s in series:
            zero, _, _ = run_measured(s.client, args(s.client, 0))
            full, rss, counters = run_measured(s.client, args(s.client, 1))
            s.values.append(big_bytes / max(full - zero, 1e-9) / 1e6)
            s.rss_kib.append(rss)
    by = {s.client: s for s in series}
    luanet_rss = statistics.median(by[LUANET_54].rss_kib) * 1024
    rss_ratio = luanet_rss / big_bytes
    comparisons = [
        ratio_line(by[LUANET_54], by[CURL_CLI], 0.8),
        ratio_line(by[LUANET_54], by[CURL_C], None),
        ratio_line(by[LUANET_54], by[LUASOCKET], 1.0),
        ("luanet (lua5.4) peak RSS / body size", rss_ratio, "≤ 2.5×", rss_ratio <= 2.5),
    ]
    notes = [
        "`curl -o /dev/null` keeps nothing. luanet hands the script the body as one Lua string, "
        "so it fills 100 MB of fresh memory, a page fault every 4 KiB: its own receive buffer asks "
        "for huge pages, but the string comes from the host's allocator. libcurl (C) keeps the "
        "body in memory as luanet does.",
    ]
    return Result(f"{big_bytes / 1e6:g} MB download", "MB/s", series, comparisons, notes)


def case_ws_echo(servers, scale, runs):
    url = servers.ws + "/echo"
    clients = [LUANET_54, TUNGSTENITE, LUANET_53, LUAHTTP]
    series = measure_rates(clients, lambda c, n: ["ws_echo" if c is not TUNGSTENITE else "echo", url, n, 64],
                           scale(20000, 20), runs)
    by = {s.client: s for s in series}
    comparisons = [
        ratio_line(by[LUANET_54], by[TUNGSTENITE], 0.8),
        ratio_line(by[LUANET_53], by[LUAHTTP], 1.0),
    ]
    notes = [
        "luanet's `ws:recv` checks for the answer for up to 50 µs before it sleeps; the raw "
        "tungstenite client sleeps in a blocking `read()`. On a VM a wake-up costs tens of "
        "microseconds, so on loopback that difference is most of the round trip.",
    ]
    return Result("WebSocket echo, 64-byte messages", "round trips/s", series, comparisons, notes)


def case_ws_stream(servers, scale, runs):
    def args(client, n):
        url = f"{servers.ws}/stream?count={n}&size=1024&type=binary"
        return ["ws_stream" if client is not TUNGSTENITE else "stream", url, n, 1024]

    clients = [LUANET_54, TUNGSTENITE]
    # 1,000,000 (about half a second a run), for the same reason.
    series = measure_rates(clients, args, scale(1_000_000, 100), runs)
    by = {s.client: s for s in series}
    comparisons = [ratio_line(by[LUANET_54], by[TUNGSTENITE], 0.8)]
    notes = [
        "luanet reads with `ws:poll()` in a loop, as a frame loop would; tungstenite reads blocking. "
        "A polling script reads the socket on its own thread, as tungstenite does, then copies each "
        "message into a Lua string; the Lua call and that copy are what luanet adds per message.",
        "Each of luanet's reads takes at most 32 KiB (what keeps 10,000 idle sockets at about 45 KiB "
        "each); tungstenite's default is 128 KiB, so luanet makes about four times the `recv` calls "
        "(40,000 against 10,000 per million messages, counted with strace).",
    ]
    return Result("WebSocket one-way stream, 1 KiB messages", "messages/s", series, comparisons, notes)


# Sockets the ws_fanout case reads at once.
FANOUT_SOCKETS = 1000


def case_ws_fanout(servers, scale, runs):
    sockets = scale(FANOUT_SOCKETS, 10)

    def args(client, n):
        url = f"{servers.ws}/stream?count={n}&size=64&type=binary"
        return ["ws_fanout" if client is not TUNGSTENITE else "fanout", url, n, 64, sockets]

    clients = [LUANET_54, TUNGSTENITE]
    series = measure_rates(clients, args, scale(1000, 10), runs)
    for s in series:
        # measure_rates counts messages per socket.
        s.values = [v * sockets for v in s.values]
    by = {s.client: s for s in series}
    comparisons = [ratio_line(by[LUANET_54], by[TUNGSTENITE], 0.8)]
    notes = [
        f"{sockets:,} sockets, each sent {scale(1000, 10):,} binary messages of 64 B by the server. "
        "luanet polls every socket each frame until it has nothing more; the raw client is "
        "tokio-tungstenite on one thread, a task per socket, as luanet moves every socket's frames "
        "on one I/O thread.",
    ]
    return Result(f"WebSocket fan-in, {sockets:,} sockets × 64-byte messages", "messages/s", series,
                  comparisons, notes)


def case_poll_empty(servers, scale, runs):
    url = servers.ws + "/idle"
    count = scale(10_000_000, 1000)
    series = measure_rates([LUANET_54], lambda c, n: ["poll_empty", url, n], count, runs)
    s = series[0]
    # Reported as time per call; the loop's own cost is included.
    s.values = [1e9 / rate for rate in s.values]
    ns = s.median
    comparisons = [("ws:poll() on an empty queue, ns per call", ns, "≤ 150", ns <= 150)]
    return Result("`poll()` on an empty queue (Lua 5.4)", "ns/call", series, comparisons)


def case_idle(servers, scale, runs):
    url = servers.ws + "/idle"
    rows = []
    comparisons = []
    for count in (scale(1000, 10), scale(10000, 20)):
        _, rss, c = run_measured(LUANET_54, ["idle", url, count])
        threads_added = int(c["threads_after"]) - int(c["threads_before"])
        per_socket = (int(c["rss_after_kb"]) - int(c["rss_before_kb"])) / count
        rows.append((f"{count:,}", c["threads_before"], c["threads_after"], f"{per_socket:.1f} KiB"))
        comparisons.append((f"{count:,} idle sockets: library threads added", threads_added, "1 (fixed)", threads_added == 1))
        comparisons.append((f"{count:,} idle sockets: RSS per socket, KiB", per_socket, "≤ 64", per_socket <= 64))
    result = Result("Idle WebSockets (Lua 5.4)", "", [], comparisons)
    result.tables.append((("sockets", "threads before", "threads after", "RSS per socket"), rows))
    return result


# Requests the fetch_get / fetch_h2 clients keep outstanding at once.
FETCH_INFLIGHT = 50
FETCH_H2_INFLIGHT = 100


def case_fetch_get(servers, scale, runs):
    url = servers.http + "/small"
    clients = [LUANET_54, CURL_MULTI, LUANET_53, LUAHTTP]

    def args(client, n):
        if client is CURL_MULTI:
            return ["get", url, n, FETCH_INFLIGHT]
        if client is LUAHTTP:
            return ["get_parallel", url, n, FETCH_INFLIGHT]
        return ["fetch_get", url, n, FETCH_INFLIGHT]

    count = scale(2000, 20)
    series = measure_rates(clients, args, count, runs)
    by = {s.client: s for s in series}
    comparisons = [
        ratio_line(by[LUANET_54], by[CURL_MULTI], 0.9),
        ratio_line(by[LUANET_53], by[LUAHTTP], 1.5),
    ]
    notes = [
        f"{FETCH_INFLIGHT} requests in flight over HTTP/1.1, so {FETCH_INFLIGHT} connections. luanet keeps "
        f"{FETCH_INFLIGHT} `net.fetch` requests outstanding "
        f"(`net.configure{{max_host_connections = {FETCH_INFLIGHT}}}`): "
        "it polls them all, starts a new one in the place of each that finished, and sleeps in `wait()` "
        "on the oldest when none did. libcurl multi (C) is one multi handle driven with "
        f"`curl_multi_perform` / `curl_multi_poll`, its {FETCH_INFLIGHT} easy handles reused. lua-http runs "
        f"{FETCH_INFLIGHT} coroutines in one cqueue, each doing GET after GET on its own kept connection.",
    ]
    return Result(f"{count:,} small GETs, {FETCH_INFLIGHT} in flight (`net.fetch`)", "requests/s", series,
                  comparisons, notes)


def case_fetch_h2(servers, scale, runs):
    url = servers.https + "/small"
    clients = [LUANET_54, CURL_MULTI]

    def args(client, n):
        if client is CURL_MULTI:
            return ["h2", url, n, FETCH_H2_INFLIGHT]
        return ["fetch_h2", url, n, FETCH_H2_INFLIGHT]

    count = scale(2000, 20)
    series = measure_rates(clients, args, count, runs)
    by = {s.client: s for s in series}
    comparisons = [ratio_line(by[LUANET_54], by[CURL_MULTI], 0.9)]
    notes = [
        f"{FETCH_H2_INFLIGHT} streams in flight on one HTTP/2 connection over TLS (nginx, a self-signed "
        "certificate that neither client verifies). luanet: `net.fetch{verify = false, http_version = \"2\"}` "
        "with `max_host_connections = 1`, every reply checked to be HTTP/2; libcurl multi (C): "
        "`CURLPIPE_MULTIPLEX`, `CURLOPT_PIPEWAIT`, `CURLMOPT_MAX_HOST_CONNECTIONS` 1, and it checks that it "
        "made one connection. Both include the one TLS handshake.",
    ]
    return Result(f"{count:,} small GETs multiplexed over one HTTP/2 TLS connection (`net.fetch`)",
                  "requests/s", series, comparisons, notes)


def case_fetch_poll(servers, scale, runs):
    url = servers.http + "/trickle"
    count = scale(10_000_000, 1000)
    clients = [LUANET_54, LUANET_54_LOOP]
    series = measure_rates(clients, lambda c, n: ["fetch_poll" if c is LUANET_54 else "fetch_poll_loop", url, n],
                           count, runs)
    poll, loop = series
    for s in series:
        s.values = [1e9 / rate for rate in s.values]  # ns per iteration
    # Pairwise, run by run: the loop's own cost taken off.
    ns = statistics.median([p - e for p, e in zip(poll.values, loop.values)])
    comparisons = [("req:poll() on a pending request, ns per call (empty loop subtracted)", ns, "≤ 100", ns <= 100)]
    notes = [
        "One `net.fetch` to a location that nginx answers at 16 bytes a second, so it stays pending; "
        "the same loop without the call is run as the empty loop, and its time per iteration is taken off.",
    ]
    return Result("`req:poll()` on a pending request (Lua 5.4)", "ns/iteration", series, comparisons, notes)


def case_fetch_frame(servers, scale, runs):
    url = servers.http + "/trickle"
    requests = scale(1000, 10)
    frames = scale(10_000, 5)
    series = measure_rates([LUANET_54], lambda c, n: ["fetch_frame", url, n, requests], frames, runs)
    s = series[0]
    s.values = [1e6 / rate for rate in s.values]  # µs per frame
    us = s.median
    comparisons = [(f"one frame polling {requests:,} pending requests, µs", us, "≤ 100", us <= 100)]
    notes = [
        f"{requests:,} `net.fetch` requests to a location that nginx answers at 16 bytes a second, all "
        "connected (caps raised with `net.configure`) before the frames start; a frame calls `req:poll()` "
        "on every one of them. The loop's own cost is included, as it is in a real frame.",
    ]
    return Result(f"A frame polling {requests:,} pending requests (Lua 5.4)", "µs/frame", series, comparisons,
                  notes)


def case_fetch_many(servers, scale, runs):
    url = servers.http + "/trickle"
    rows = []
    comparisons = []
    during = {}
    counts = (10, scale(10_000, 20))
    for count in counts:
        _, rss, c = run_measured(LUANET_54, ["fetch_many", url, count])
        connected = int(c["connected"])
        per_request = (int(c["hwm_during_kb"]) - int(c["hwm_before_kb"])) / count
        during[count] = int(c["threads_during"])
        rows.append((f"{count:,}", f"{connected:,}", c["threads_before"], c["threads_during"],
                     f"{per_request:.1f} KiB"))
        comparisons.append((f"{count:,} in flight: requests connected", connected, f"{count:,}", connected >= count))
    small, big = counts
    added = during[big] - during[small]
    comparisons.append((f"threads with {big:,} in flight less those with {small:,}", added, "0 (fixed)", added == 0))
    per_request = float(rows[-1][-1].split()[0])
    comparisons.append((f"{big:,} in flight: peak RSS growth per request, KiB", per_request, "≤ 64",
                        per_request <= 64))
    result = Result(f"{big:,} requests in flight at once (`net.fetch`, Lua 5.4)", "", [], comparisons)
    result.tables.append((("requests", "connected", "threads before", "threads in flight",
                           "peak RSS growth per request"), rows))
    result.notes.append(
        "Each request goes to a location that nginx answers at 16 bytes a second, with the connection caps "
        "raised to the count. Threads and VmHWM (peak RSS) are read from /proc/self/status before the first "
        "`net.fetch` and once every request is connected (established connections to nginx, from "
        "/proc/net/tcp); then every request is cancelled.")
    return result


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def fmt(value):
    if isinstance(value, int):
        return f"{value:,}"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def markdown(results, runs, smoke, machine):
    lines = [
        "# Benchmarks",
        "",
        "Generated by `scripts/bench.sh` (benches/run.py): every figure below comes from one run of it,",
        "on one machine, with every peer measured in the same run. Servers are local, on loopback:",
        "nginx for HTTP, a tokio-tungstenite echo server for WebSocket. A client's time is its run with",
        "COUNT operations minus its run with none; each client ran "
        f"{runs} time{'s' if runs != 1 else ''}, interleaved with the others; the table gives the median and the spread.",
        "",
        f"Machine: {machine}.",
        "",
    ]
    if smoke:
        lines += ["**Smoke run: tiny counts, the numbers mean nothing.**", ""]
    lines += ["![luanet against its peers](benchmarks.svg)", ""]
    for r in results:
        lines += [f"## {r.title}", ""]
        if r.series:
            lines += [f"| client | median {r.unit} | spread | peak RSS |", "| --- | ---: | ---: | ---: |"]
            for s in r.series:
                lo, hi = s.spread
                rss = statistics.median(s.rss_kib) / 1024
                lines.append(f"| {s.client.label} | {fmt(s.median)} | {fmt(lo)}–{fmt(hi)} | {rss:,.1f} MiB |")
            lines.append("")
        for header, rows in r.tables:
            lines += ["| " + " | ".join(header) + " |", "|" + " ---: |" * len(header)]
            for row in rows:
                lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
            lines.append("")
        if r.comparisons:
            lines += ["| comparison | value | goal | met |", "| --- | ---: | --- | --- |"]
            for text, value, goal, met in r.comparisons:
                mark = "" if met is None else ("yes" if met else "**no**")
                shown = f"{value:.2f}×" if "/" in text else fmt(value)
                lines.append(f"| {text} | {shown} | {goal} | {mark} |")
            lines.append("")
        for note in r.notes:
            lines += [note, ""]
    return "\n".join(lines)


def svg_chart(results):
    """Horizontal bars: luanet's speed relative to each peer (1.0 = equal)."""
    bars = []
    for r in results:
        for text, value, goal, met in r.comparisons:
            if "/" in text and "RSS" not in text:
                goal_value = float(goal.split()[1].rstrip("×")) if goal else None
                bars.append((f"{r.title}: {text}", value, goal_value))
    width, left, bar_h, gap = 1100, 620, 18, 8
    scale_max = max([2.0] + [v for _, v, _ in bars])
    plot_w = width - left - 40
    height = 60 + len(bars) * (bar_h + gap)
    x = lambda v: left + plot_w * min(v, scale_max) / scale_max  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{left}" y="20" font-size="14" font-weight="bold">luanet relative to each peer (higher is better; 1.0 = equal)</text>',
    ]
    for i, (label, value, goal) in enumerate(bars):
        y = 40 + i * (bar_h + gap)
        colour = "#2e7d32" if goal is None or value >= goal else "#c62828"
        out.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{escape(label)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{x(value) - left:.1f}" height="{bar_h}" fill="{colour}"/>')
        out.append(f'<text x="{x(value) + 4:.1f}" y="{y + 13}">{value:.2f}×</text>')
        if goal is not None:
            out.append(f'<line x1="{x(goal):.1f}" x2="{x(goal):.1f}" y1="{y - 2}" y2="{y + bar_h + 2}" stroke="black" stroke-dasharray="3,2"/>')
    one = x(1.0)
    out.append(f'<line x1="{one:.1f}" x2="{one:.1f}" y1="30" y2="{height - 10}" stroke="#555"/>')
    out.append("</svg>")
    return "\n".join(out)


def escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def machine_description():
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Linux {os.uname().release}"


# Cases that need the WebSocket echo server.
WS_CASES = {"ws_echo", "ws_stream", "ws_fanout", "poll_empty", "idle"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default=None, help="where to write the report (docs/; build/bench-cases with --cases)")
    parser.add_argument("--cases", default=None, help="comma-separated case names to run (default: all)")
    opts = parser.parse_args()
    runs = 1 if opts.smoke else opts.runs
    scale = (lambda full, smoke: smoke) if opts.smoke else (lambda full, smoke: full)
    big_bytes = (1 << 20) if opts.smoke else 100_000_000

    cases = [
        ("get", lambda s: case_get(s, scale, runs)),
        ("request_get", lambda s: case_request_get(s, scale, runs)),
        ("download", lambda s: case_download(s, scale, runs, big_bytes)),
        ("download_output", lambda s: case_download_output(s, scale, runs, big_bytes)),
        ("post", lambda s: case_post(s, scale, runs)),
        ("ws_echo", lambda s: case_ws_echo(s, scale, runs)),
        ("ws_stream", lambda s: case_ws_stream(s, scale, runs)),
        ("ws_fanout", lambda s: case_ws_fanout(s, scale, runs)),
        ("poll_empty", lambda s: case_poll_empty(s, scale, runs)),
        ("idle", lambda s: case_idle(s, scale, runs)),
        ("fetch_get", lambda s: case_fetch_get(s, scale, runs)),
        ("fetch_h2", lambda s: case_fetch_h2(s, scale, runs)),
        ("fetch_poll", lambda s: case_fetch_poll(s, scale, runs)),
        ("fetch_frame", lambda s: case_fetch_frame(s, scale, runs)),
        ("fetch_many", lambda s: case_fetch_many(s, scale, runs)),
    ]
    names = [name for name, _ in cases]
    if opts.cases is not None:
        wanted = [name.strip() for name in opts.cases.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in names]
        if unknown or not wanted:
            parser.error(f"unknown case(s) {', '.join(unknown) or '(none given)'}; the cases: {', '.join(names)}")
        cases = [(name, case) for name, case in cases if name in wanted]
    out_dir = opts.out or (os.path.join(BUILD, "bench-cases") if opts.cases is not None else os.path.join(ROOT, "docs"))

    # 10,000 sockets need more descriptors than the default limit (we are
    # allowed to raise it as root, and children inherit it).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 200_000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    results = []
    with Servers(big_bytes, ws=any(name in WS_CASES for name, _ in cases)) as servers:
        for name, case in cases:
            print(f"bench: {name}", file=sys.stderr, flush=True)
            results.append(case(servers))

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "benchmarks.md"), "w") as f:
        f.write(markdown(results, runs, opts.smoke, machine_description()) + "\n")
    with open(os.path.join(out_dir, "benchmarks.svg"), "w") as f:
        f.write(svg_chart(results) + "\n")
    print(f"bench: wrote {out_dir}/benchmarks.md and benchmarks.svg", file=sys.stderr)
    if not opts.smoke:
        for r in results:
            for text, value, goal, met in r.comparisons:
                if met is False:
                    print(f"bench: goal missed: {text}: {value:.2f} (goal {goal})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
