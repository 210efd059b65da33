#!/usr/bin/env python3
"""luanet's benchmarks, side by side with the peers a user would pick.

    python3 benches/run.py [--runs N] [--smoke] [--out DIR]

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


NGINX_CONF = """
worker_processes 1;
error_log {tmp}/error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 1024; }}
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
        root {tmp}/www;
        location = /small {{ default_type text/plain; return 200 "hello from nginx"; }}
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
    """nginx and the WebSocket echo server, in a temporary directory."""

    def __init__(self, big_bytes):
        self.tmp = tempfile.mkdtemp(prefix="luanet-bench-")
        self.procs = []
        self.big_bytes = big_bytes

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
        port = free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(tmp=self.tmp, port=port))
        self.start(["nginx", "-p", self.tmp, "-c", conf, "-g", "daemon off;"])
        wait_for_port(port, "nginx")
        self.http = f"http://127.0.0.1:{port}"

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
    ]
    return Result("WebSocket one-way stream, 1 KiB messages", "messages/s", series, comparisons, notes)


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
        rows.append((count, c["threads_before"], c["threads_after"], per_socket))
        comparisons.append((f"{count:,} idle sockets: library threads added", threads_added, "1 (fixed)", threads_added == 1))
        comparisons.append((f"{count:,} idle sockets: RSS per socket, KiB", per_socket, "≤ 64", per_socket <= 64))
    result = Result("Idle WebSockets (Lua 5.4)", "", [], comparisons)
    result.idle_rows = rows
    return result


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def fmt(value):
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
        if getattr(r, "idle_rows", None):
            lines += ["| sockets | threads before | threads after | RSS per socket |", "| ---: | ---: | ---: | ---: |"]
            for count, before, after, per in r.idle_rows:
                lines.append(f"| {count:,} | {before} | {after} | {per:.1f} KiB |")
            lines.append("")
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs"))
    opts = parser.parse_args()
    runs = 1 if opts.smoke else opts.runs
    scale = (lambda full, smoke: smoke) if opts.smoke else (lambda full, smoke: full)
    big_bytes = (1 << 20) if opts.smoke else 100_000_000

    # 10,000 sockets need more descriptors than the default limit (we are
    # allowed to raise it as root, and children inherit it).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 200_000
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    results = []
    with Servers(big_bytes) as servers:
        for name, case in [
            ("get", lambda: case_get(servers, scale, runs)),
            ("request_get", lambda: case_request_get(servers, scale, runs)),
            ("download", lambda: case_download(servers, scale, runs, big_bytes)),
            ("download_output", lambda: case_download_output(servers, scale, runs, big_bytes)),
            ("post", lambda: case_post(servers, scale, runs)),
            ("ws_echo", lambda: case_ws_echo(servers, scale, runs)),
            ("ws_stream", lambda: case_ws_stream(servers, scale, runs)),
            ("poll_empty", lambda: case_poll_empty(servers, scale, runs)),
            ("idle", lambda: case_idle(servers, scale, runs)),
        ]:
            print(f"bench: {name}", file=sys.stderr, flush=True)
            results.append(case())

    os.makedirs(opts.out, exist_ok=True)
    with open(os.path.join(opts.out, "benchmarks.md"), "w") as f:
        f.write(markdown(results, runs, opts.smoke, machine_description()) + "\n")
    with open(os.path.join(opts.out, "benchmarks.svg"), "w") as f:
        f.write(svg_chart(results) + "\n")
    print(f"bench: wrote {opts.out}/benchmarks.md and benchmarks.svg", file=sys.stderr)
    if not opts.smoke:
        for r in results:
            for text, value, goal, met in r.comparisons:
                if met is False:
                    print(f"bench: goal missed: {text}: {value:.2f} (goal {goal})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
