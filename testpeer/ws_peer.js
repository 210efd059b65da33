#!/usr/bin/env node
// A second WebSocket test peer for luanet's tests, written with the npm
// package `ws` (testpeer/serve.py is the first one, in Python).
//
// Usage: node ws_peer.js <tls-pem-file>
//
// The PEM file holds the server's private key and its certificate chain.
// Listens, on ports chosen by the kernel, with
//     ws   plain WebSocket on 127.0.0.1
//     wss  TLS on 127.0.0.1 and on ::1 (same port; ::1 is skipped, with a
//          note on stderr, when this host has no IPv6 loopback)
// then prints one line of JSON on stdout, {"ws":PORT,"wss":PORT}, and
// nothing else there (errors go to stderr). Exits when stdin closes (the
// parent died) or on SIGTERM.
//
// No compression, no message size limit, no pings from the server.
// Endpoints (the path of the upgrade request; the same on ws and wss, which
// share the state below; unknown paths get 404 "not found\n", a bad number
// in the query 400 "bad query\n"). "Then echoes": every message received
// is sent back with its type (text stays text, binary stays binary).
//   /echo                    echoes
//   /reject                  refuses the upgrade: 403, body "forbidden\n"
//   /upgrade-headers         sends the upgrade request's header lines,
//                            "name: value" (name in lower case), in order,
//                            joined by "\n"; then echoes
//   /protocol?choose=C       C: first (default: the first offered), none,
//                            or a name (chosen even when not offered); sends
//                            "protocol=<chosen>" ("None" when none); echoes
//   /send?count=N&size=S&type=text|binary&close=CODE&reason=R
//                            sends N messages (default 1): text "msg <i>"
//                            padded with "x" to S characters, or binary, S
//                            bytes (default 0), byte k = (i + k) % 256; then
//                            closes with CODE and R (default "bye") when
//                            close is given, else echoes
//   /last-close              sends "code=<C> reason=<R>" of the latest close
//                            frame a client sent first ("code=none reason="
//                            before any), then closes with 1000
//   /flood?count=N&size=S&tag=T
//                            sends N binary messages of S bytes (at least 8;
//                            defaults 1 and 8): i as 8 ASCII digits, then
//                            S - 8 bytes of i % 256; heeds TCP back-pressure
//                            (one send at a time, at most ~1 MiB queued);
//                            then the text "flood done"; then echoes
//   /flood-state?tag=T       sends "sent=<n>": /flood T's messages whose send
//                            completed; then closes with 1000
//   /stall?ms=M              sends "stalling", after M ms (default 0) stops
//                            reading (so pings get no pong), after 60 s more
//                            drops the TCP connection
//   /sink?tag=T              reads nothing until /sink-release?tag=T, then
//                            reads and counts messages and payload bytes
//   /sink-release?tag=T      lets sink T read; sends "released"; closes 1000
//   /sink-state?tag=T        sends "messages=<n> bytes=<b>" of sink T (0 0
//                            when unknown); closes with 1000
"use strict";

const fs = require("fs");
const http = require("http");
const https = require("https");
const { WebSocketServer, WebSocket } = require("ws");

const MAX_N = 2 ** 30; // refuse absurd numbers (as serve.py does)
const HIGH_WATER = 1024 * 1024; // most bytes queued in Node before waiting for 'drain'
const STALL_DROP_MS = 60 * 1000;

// State shared by the ws and wss servers.
let lastClose = null; // {code, reason} of the latest client-initiated close
const floodSent = new Map(); // tag -> messages of /flood whose send completed
const sinks = new Map(); // tag -> {ws, messages, bytes}

function log(...args) {
  console.error("ws_peer:", ...args);
}

// ---------------------------------------------------------------------------
// Requests: routing, query checks, refusals
// ---------------------------------------------------------------------------

const PATHS = new Set([
  "/echo", "/upgrade-headers", "/protocol", "/send", "/last-close",
  "/flood", "/flood-state", "/stall", "/sink", "/sink-release", "/sink-state",
]);
const NUMBERS = ["count", "size", "close", "ms"];
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/; // an HTTP token (a subprotocol name)

// A close code that may be sent in a close frame (RFC 6455, 7.4).
function sendableCloseCode(code) {
  return (code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code)) ||
    (code >= 3000 && code <= 4999);
}

// Parses the request target: {path, query, bad}, where query maps a name to
// its first value and numbers to ints; bad is true when the query is invalid.
// Blank values count as absent (as Python's parse_qs has it in serve.py).
function parseTarget(url) {
  const parsed = new URL(url, "http://peer.invalid");
  const query = {};
  for (const [name, value] of parsed.searchParams) {
    if (value !== "" && !(name in query)) query[name] = value;
  }
  let bad = false;
  for (const name of NUMBERS) {
    if (query[name] === undefined) continue;
    if (!/^[0-9]+$/.test(query[name]) || Number(query[name]) > MAX_N) bad = true;
    else query[name] = Number(query[name]);
  }
  const path = parsed.pathname;
  if (path === "/send") {
    if (query.type !== undefined && query.type !== "text" && query.type !== "binary") bad = true;
    if (query.close !== undefined && !bad) {
      const reason = query.reason === undefined ? "bye" : query.reason;
      if (!sendableCloseCode(query.close) || Buffer.byteLength(reason) > 123) bad = true;
    }
  }
  if (path === "/protocol" && query.choose !== undefined && !TOKEN.test(query.choose)) bad = true;
  return { path, query, bad };
}

// The refusal for a request, [status, reason, body], or null to accept it.
function refusal(target) {
  if (target.path === "/reject") return [403, "Forbidden", "forbidden\n"];
  if (!PATHS.has(target.path)) return [404, "Not Found", "not found\n"];
  if (target.bad) return [400, "Bad Request", "bad query\n"];
  return null;
}

function writeRefusal(socket, [status, reason, body]) {
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\n` +
    "Content-Type: text/plain\r\n" +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    "Connection: close\r\n\r\n" + body
  );
}

// ---------------------------------------------------------------------------
// Subprotocols
// ---------------------------------------------------------------------------

// The subprotocol chosen for a request, or null for none.
function chooseProtocol(offered, query) {
  const choose = query.choose === undefined ? "first" : query.choose;
  if (choose === "first") return offered.length ? offered[0] : null;
  if (choose === "none") return null;
  return choose;
}

// Called by ws only when the client offered at least one subprotocol.
function handleProtocols(protocols, req) {
  if (req.target.path !== "/protocol") return false;
  req.chosenProtocol = chooseProtocol([...protocols], req.target.query);
  return req.chosenProtocol || false;
}

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  clientTracking: false,
  handleProtocols,
  maxPayload: 0, // 0: no limit (ws checks `maxPayload > 0`)
  maxFragments: 0, // 0: no limit
  maxBufferedChunks: 0, // 0: no limit
  maxPendingAutoPongs: 0, // 0: no limit (pongs wait behind a flood)
});

// When nothing was offered, ws does not ask handleProtocols: a named choice
// is then added to the answer by hand (as serve.py would send it).
wss.on("headers", (headers, req) => {
  if (req.target.path !== "/protocol" || req.headers["sec-websocket-protocol"] !== undefined) return;
  req.chosenProtocol = chooseProtocol([], req.target.query);
  if (req.chosenProtocol) headers.push(`Sec-WebSocket-Protocol: ${req.chosenProtocol}`);
});

function onUpgrade(req, socket, head) {
  socket.on("error", (err) => log("socket error:", err.message));
  let target;
  try {
    target = parseTarget(req.url);
  } catch (err) {
    writeRefusal(socket, [400, "Bad Request", "bad query\n"]);
    return;
  }
  const refused = refusal(target);
  if (refused) {
    writeRefusal(socket, refused);
    return;
  }
  req.target = target;
  wss.handleUpgrade(req, socket, head, (ws) => onConnection(ws, req));
}

// A request without an upgrade: the same refusals, else 426.
function onRequest(req, res) {
  let refused;
  try {
    refused = refusal(parseTarget(req.url));
  } catch (err) {
    refused = [400, "Bad Request", "bad query\n"];
  }
  const [status, reason, body] = refused || [426, "Upgrade Required", "upgrade required\n"];
  res.writeHead(status, reason, { "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(body) });
  res.end(body);
}

// ---------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------

// Sends count messages, make(i) for i = 1..count, one at a time: each waits
// for the previous one's callback, and for 'drain' while more than
// HIGH_WATER bytes are queued. Calls onSent(i) as each completes, then done().
function sendPaced(ws, count, make, onSent, done) {
  let i = 0;
  const next = () => {
    if (ws.readyState !== WebSocket.OPEN) return;
    if (i === count) return done();
    if (ws.bufferedAmount > HIGH_WATER) {
      ws._socket.once("drain", next);
      return;
    }
    i += 1;
    const n = i;
    ws.send(make(n), (err) => {
      if (err) return; // the connection is gone
      onSent(n);
      next();
    });
  };
  next();
}

// S bytes, byte k = (i + k) % 256.
function numberedBytes(i, size) {
  const buf = Buffer.allocUnsafe(size);
  for (let k = 0; k < Math.min(size, 256); k++) buf[k] = (i + k) & 255;
  for (let n = 256; n < size; n *= 2) buf.copyWithin(n, 0, Math.min(n, size - n));
  return buf;
}

// Message i of /flood: i in 8 ASCII digits, then S - 8 bytes of i % 256.
function floodMessage(i, size) {
  const buf = Buffer.alloc(size, i & 255);
  buf.write(String(i).padStart(8, "0"), 0, "latin1");
  return buf;
}

// Echoes every message, the ones received before this call first. Stops
// reading while more than HIGH_WATER bytes wait to be sent.
function startEcho(ws) {
  const echo = (data, isBinary) => {
    ws.send(data, { binary: isBinary });
    if (ws.bufferedAmount > HIGH_WATER && !ws.isPaused) {
      ws.pause();
      ws._socket.once("drain", () => ws.resume());
    }
  };
  for (const [data, isBinary] of ws.early) echo(data, isBinary);
  ws.early = null;
  ws.onMessage = echo;
}

function onConnection(ws, req) {
  const { path, query } = req.target;
  const tag = query.tag === undefined ? "" : query.tag;

  ws.on("error", (err) => log(`${path}:`, err.message));

  // Messages are kept until the endpoint decides what to do with them.
  ws.early = [];
  ws.onMessage = (data, isBinary) => ws.early && ws.early.push([data, isBinary]);
  ws.on("message", (data, isBinary) => ws.onMessage(data, isBinary));

  // Record a client-initiated close as soon as its frame arrives, before
  // ws answers it: the readyState is still OPEN only if this server had not
  // started closing. (The receiver is ws's own; this listener runs first.)
  ws._receiver.prependListener("conclude", (code, reason) => {
    if (ws.readyState === WebSocket.OPEN) lastClose = { code, reason: reason.toString() };
  });

  switch (path) {
    case "/echo":
      startEcho(ws);
      break;

    case "/upgrade-headers": {
      const lines = [];
      for (let k = 0; k < req.rawHeaders.length; k += 2) {
        lines.push(`${req.rawHeaders[k].toLowerCase()}: ${req.rawHeaders[k + 1]}`);
      }
      ws.send(lines.join("\n"));
      startEcho(ws);
      break;
    }

    case "/protocol":
      ws.send(`protocol=${req.chosenProtocol || "None"}`);
      startEcho(ws);
      break;

    case "/send": {
      const count = query.count === undefined ? 1 : query.count;
      const size = query.size;
      const make = query.type === "binary"
        ? (i) => numberedBytes(i, size || 0)
        : (i) => (size === undefined ? `msg ${i}` : `msg ${i}`.padEnd(size, "x"));
      sendPaced(ws, count, make, () => {}, () => {
        if (query.close !== undefined) {
          ws.close(query.close, query.reason === undefined ? "bye" : query.reason);
        } else {
          startEcho(ws);
        }
      });
      break;
    }

    case "/last-close":
      ws.send(lastClose ? `code=${lastClose.code} reason=${lastClose.reason}` : "code=none reason=");
      ws.close(1000);
      break;

    case "/flood": {
      const count = query.count === undefined ? 1 : query.count;
      const size = Math.max(query.size === undefined ? 8 : query.size, 8);
      floodSent.set(tag, 0);
      sendPaced(ws, count, (i) => floodMessage(i, size), (i) => floodSent.set(tag, i), () => {
        ws.send("flood done");
        startEcho(ws);
      });
      break;
    }

    case "/flood-state":
      ws.send(`sent=${floodSent.get(tag) || 0}`);
      ws.close(1000);
      break;

    case "/stall": {
      // Stop reading: pings get no pong and nothing more is read. ws.pause()
      // pauses ws._socket and keeps ws from resuming it by itself.
      ws.send("stalling");
      const ms = query.ms === undefined ? 0 : query.ms;
      const stall = () => {
        ws.pause();
        ws.stallTimer = setTimeout(() => ws._socket && ws._socket.destroy(), STALL_DROP_MS);
      };
      if (ms === 0) stall();
      else ws.stallTimer = setTimeout(stall, ms);
      ws.on("close", () => clearTimeout(ws.stallTimer));
      break;
    }

    case "/sink": {
      // Read nothing until /sink-release?tag=T, then count everything.
      const sink = { ws, messages: 0, bytes: 0 };
      sinks.set(tag, sink);
      ws.pause();
      ws.early = null;
      ws.onMessage = (data) => {
        sink.messages += 1;
        sink.bytes += data.length;
      };
      break;
    }

    case "/sink-release": {
      const sink = sinks.get(tag);
      if (sink) sink.ws.resume();
      ws.send("released");
      ws.close(1000);
      break;
    }

    case "/sink-state": {
      const sink = sinks.get(tag) || { messages: 0, bytes: 0 };
      ws.send(`messages=${sink.messages} bytes=${sink.bytes}`);
      ws.close(1000);
      break;
    }
  }
}

// ---------------------------------------------------------------------------
// Listening
// ---------------------------------------------------------------------------

function newServer(tls) {
  const server = tls ? https.createServer(tls) : http.createServer();
  server.on("request", onRequest);
  server.on("upgrade", onUpgrade);
  server.on("clientError", (err, socket) => socket.destroy());
  server.on("tlsClientError", (err) => log("TLS handshake failed:", err.message));
  return server;
}

function listen(server, host, port) {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port, ipv6Only: host === "::1" }, () => {
      server.removeListener("error", reject);
      resolve(server.address().port);
    });
  });
}

function close(server) {
  return new Promise((resolve) => server.close(() => resolve()));
}

// wss on 127.0.0.1 and on ::1 with the same port: tries a few ports when
// the one the kernel gave on 127.0.0.1 is taken on ::1.
async function listenTls(tls) {
  for (let attempt = 0; attempt < 20; attempt++) {
    const v4 = newServer(tls);
    const port = await listen(v4, "127.0.0.1", 0);
    try {
      await listen(newServer(tls), "::1", port);
      return port;
    } catch (err) {
      if (err.code === "EADDRINUSE") {
        await close(v4);
        continue;
      }
      log(`wss not on ::1 (${err.code || err.message}); 127.0.0.1 only`);
      return port;
    }
  }
  throw new Error("no port free on both 127.0.0.1 and ::1");
}

async function main() {
  if (process.argv.length !== 3) {
    log("usage: node ws_peer.js <tls-pem-file>");
    process.exit(2);
  }
  // The same PEM as key and as cert: each reader takes the blocks it needs.
  const pem = fs.readFileSync(process.argv[2]);
  const tls = { key: pem, cert: pem };

  // The parent keeps stdin open while it lives.
  process.stdin.on("end", () => process.exit(0));
  process.stdin.on("close", () => process.exit(0));
  process.stdin.on("error", () => process.exit(0));
  process.stdin.resume();
  process.on("SIGTERM", () => process.exit(0));

  const wsPort = await listen(newServer(null), "127.0.0.1", 0);
  const wssPort = await listenTls(tls);
  process.stdout.write(JSON.stringify({ ws: wsPort, wss: wssPort }) + "\n");
}

main().catch((err) => {
  log(err.stack || String(err));
  process.exit(1);
});
