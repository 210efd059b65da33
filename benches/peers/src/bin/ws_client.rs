//! The raw WebSocket client the benchmarks compare luanet with: plain
//! synchronous tungstenite over a std `TcpStream`, no TLS, no I/O thread, no
//! Lua. What is left is the protocol and the kernel, the physical limit.
//!
//! - `ws_client echo URL COUNT SIZE`: COUNT round trips of a SIZE-byte text
//!   message to `/echo`, each echo checked. Prints `ok ops=COUNT`.
//! - `ws_client stream URL COUNT SIZE`: reads COUNT binary messages from
//!   `/stream?count=COUNT&size=SIZE&type=binary`, checking each length.
//!   Prints `ok ops=COUNT bytes=TOTAL`.
//!
//! - `ws_client fanout URL COUNT SIZE SOCKETS`: opens SOCKETS connections
//!   to `/stream?count=COUNT&size=SIZE&type=binary` and reads COUNT binary
//!   messages on each, all on one thread: tokio-tungstenite on a
//!   current-thread runtime, a task per socket (luanet too moves every
//!   socket's frames on one I/O thread). Prints `ok ops=SOCKETS*COUNT`.
//!
//! With COUNT=0 they only connect and close cleanly, so the caller can
//! subtract start-up and connecting from the timing.

use std::net::TcpStream;

use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Error, Message, Utf8Bytes, WebSocket};

const MAX_MESSAGE_SIZE: usize = 64 << 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, url, count, size, sockets] = args.as_slice() {
        if mode == "fanout" {
            let summary = fanout(url, number(count), number(size), number(sockets));
            println!("ok {summary}");
            return;
        }
    }
    let (mode, url, count, size) = match args.as_slice() {
        [_, mode, url, count, size] => (mode.as_str(), url.as_str(), number(count), number(size)),
        _ => usage(),
    };
    let mut ws = connect(url);
    let summary = match mode {
        "echo" => echo(&mut ws, count, size),
        "stream" => stream(&mut ws, count, size),
        _ => usage(),
    };
    close(&mut ws);
    println!("ok {summary}");
}

fn usage() -> ! {
    eprintln!("usage: ws_client echo|stream URL COUNT SIZE | fanout URL COUNT SIZE SOCKETS");
    std::process::exit(2);
}

fn fail(message: &str) -> ! {
    eprintln!("ws_client: {message}");
    std::process::exit(1);
}

fn number(text: &str) -> usize {
    text.parse().unwrap_or_else(|_| fail(&format!("not a count or size: '{text}'")))
}

fn connect(url: &str) -> WebSocket<TcpStream> {
    let request = url.into_client_request().unwrap_or_else(|e| fail(&format!("URL {url}: {e}")));
    let uri = request.uri();
    if uri.scheme_str() != Some("ws") {
        fail(&format!("only ws:// URLs: {url}"));
    }
    let host = uri.host().unwrap_or_else(|| fail(&format!("no host in {url}")));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .unwrap_or_else(|e| fail(&format!("connect {host}:{port}: {e}")));
    stream.set_nodelay(true).unwrap_or_else(|e| fail(&format!("TCP_NODELAY: {e}")));
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE));
    match tungstenite::client::client_with_config(request, stream, Some(config)) {
        Ok((ws, _response)) => ws,
        Err(e) => fail(&format!("handshake with {url}: {e}")),
    }
}

/// The next text or binary message; control frames are tungstenite's business.
fn next_data(ws: &mut WebSocket<TcpStream>) -> Message {
    loop {
        match ws.read() {
            Ok(message @ (Message::Text(_) | Message::Binary(_))) => return message,
            Ok(Message::Close(frame)) => fail(&format!("server closed early: {frame:?}")),
            Ok(_) => {}
            Err(e) => fail(&format!("read: {e}")),
        }
    }
}

fn echo(ws: &mut WebSocket<TcpStream>, count: usize, size: usize) -> String {
    let payload: String = (0..size).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    // Shared by reference count: sending costs no copy of the payload.
    let payload = Utf8Bytes::from(payload);
    for i in 0..count {
        ws.send(Message::Text(payload.clone()))
            .unwrap_or_else(|e| fail(&format!("send #{}: {e}", i + 1)));
        match next_data(ws) {
            Message::Text(echoed) if echoed == payload => {}
            Message::Text(echoed) => fail(&format!(
                "echo #{} differs: sent {} bytes, got {} bytes",
                i + 1,
                payload.len(),
                echoed.len()
            )),
            _ => fail(&format!("echo #{} came back as binary", i + 1)),
        }
    }
    format!("ops={count}")
}

fn stream(ws: &mut WebSocket<TcpStream>, count: usize, size: usize) -> String {
    let mut total: u64 = 0;
    for i in 0..count {
        match next_data(ws) {
            Message::Binary(data) if data.len() == size => total += data.len() as u64,
            Message::Binary(data) => {
                fail(&format!("message #{} has {} bytes, expected {size}", i + 1, data.len()))
            }
            _ => fail(&format!("message #{} is text, expected binary", i + 1)),
        }
    }
    format!("ops={count} bytes={total}")
}

/// The closing handshake: send Close, then read until the server's reply
/// ends the connection.
fn close(ws: &mut WebSocket<TcpStream>) {
    if let Err(e) = ws.close(None) {
        fail(&format!("close: {e}"));
    }
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(Error::ConnectionClosed) => return,
            Err(e) => fail(&format!("closing: {e}")),
        }
    }
}

fn fanout(url: &str, count: usize, size: usize, sockets: usize) -> String {
    use futures_util::{SinkExt, StreamExt};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio runtime: {e}")));
    runtime.block_on(async {
        let request = url.into_client_request().unwrap_or_else(|e| fail(&format!("URL {url}: {e}")));
        let host = request.uri().host().unwrap_or_else(|| fail(&format!("no host in {url}")));
        let address = format!("{host}:{}", request.uri().port_u16().unwrap_or(80));
        let mut connected = Vec::with_capacity(sockets);
        for i in 0..sockets {
            let stream = tokio::net::TcpStream::connect(&address)
                .await
                .unwrap_or_else(|e| fail(&format!("connect #{} to {address}: {e}", i + 1)));
            stream.set_nodelay(true).unwrap_or_else(|e| fail(&format!("TCP_NODELAY: {e}")));
            let config = WebSocketConfig::default()
                .max_message_size(Some(MAX_MESSAGE_SIZE))
                .max_frame_size(Some(MAX_MESSAGE_SIZE));
            match tokio_tungstenite::client_async_with_config(request.clone(), stream, Some(config))
                .await
            {
                Ok((ws, _response)) => connected.push(ws),
                Err(e) => fail(&format!("handshake #{}: {e}", i + 1)),
            }
        }
        let tasks: Vec<_> = connected
            .into_iter()
            .map(|mut ws| {
                tokio::spawn(async move {
                    let mut got = 0;
                    while got < count {
                        match ws.next().await {
                            Some(Ok(Message::Binary(data))) if data.len() == size => got += 1,
                            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                            other => fail(&format!("message #{}: {other:?}", got + 1)),
                        }
                    }
                    if let Err(e) = ws.close(None).await {
                        fail(&format!("close: {e}"));
                    }
                    while let Some(Ok(_)) = ws.next().await {}
                    let _ = ws.flush().await;
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap_or_else(|e| fail(&format!("task: {e}")));
        }
    });
    format!("ops={}", count * sockets)
}
