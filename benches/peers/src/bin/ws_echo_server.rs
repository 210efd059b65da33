//! The benchmarks' WebSocket peer: an independent server implementation
//! (tokio + tokio-tungstenite), so luanet is measured against code it shares
//! nothing with but the tungstenite protocol core.
//!
//! `ws_echo_server PORT_FILE` binds 127.0.0.1:0, writes the port into
//! PORT_FILE (atomically, through PORT_FILE.tmp) and serves until killed:
//!
//! - `/echo`: every text or binary message is sent back unchanged.
//! - `/stream?count=N&size=S&type=text|binary`: N messages of S bytes, as
//!   fast as the client reads them, then the connection stays open until the
//!   client closes it.
//! - `/idle`: nothing is sent; incoming messages are read and discarded until
//!   the client closes.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tungstenite::error::ProtocolError;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::StatusCode;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Error, Message, Utf8Bytes};

const MAX_MESSAGE_SIZE: usize = 64 << 20;
/// `/stream` flushes after this many queued messages (and once at the end).
const STREAM_BATCH: u64 = 64;

enum Route {
    Echo,
    Stream { count: u64, size: usize, text: bool },
    Idle,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 2 {
        eprintln!("usage: ws_echo_server PORT_FILE");
        std::process::exit(2);
    }
    raise_nofile_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("tokio runtime: {e}")));
    runtime.block_on(serve(PathBuf::from(&args[1])));
}

fn fail(message: &str) -> ! {
    eprintln!("ws_echo_server: {message}");
    std::process::exit(1);
}

/// Holding 10,000 idle connections needs more descriptors than the usual
/// soft limit of 1024: take everything the hard limit allows.
fn raise_nofile_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain libc calls on a valid, initialised struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            fail(&format!("getrlimit: {}", io::Error::last_os_error()));
        }
        if limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                fail(&format!("setrlimit: {}", io::Error::last_os_error()));
            }
        }
    }
}

fn write_port_file(path: &Path, port: u16) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, format!("{port}\n"))?;
    std::fs::rename(&tmp, path)
}

async fn serve(port_file: PathBuf) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| fail(&format!("bind 127.0.0.1:0: {e}")));
    let port = listener.local_addr().unwrap_or_else(|e| fail(&format!("local_addr: {e}"))).port();
    write_port_file(&port_file, port)
        .unwrap_or_else(|e| fail(&format!("writing {}: {e}", port_file.display())));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(connection(stream, peer));
            }
            Err(e) => {
                // Typically EMFILE: report it, let connections drain, go on.
                eprintln!("ws_echo_server: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
}

async fn connection(stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let mut route = None;
    // The callback's type, error response included, is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| match parse_route(request) {
        Ok(r) => {
            route = Some(r);
            Ok(response)
        }
        Err(message) => {
            let mut error = ErrorResponse::new(Some(message));
            *error.status_mut() = StatusCode::NOT_FOUND;
            Err(error)
        }
    };
    let ws = match tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config()))
        .await
    {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("ws_echo_server: handshake with {peer}: {e}");
            return;
        }
    };
    let result = match route {
        Some(Route::Echo) => echo(ws).await,
        Some(Route::Stream { count, size, text }) => stream_messages(ws, count, size, text).await,
        Some(Route::Idle) => idle(ws).await,
        None => return,
    };
    match result {
        // A client that goes away without a closing handshake is not worth a line.
        Ok(())
        | Err(Error::ConnectionClosed)
        | Err(Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {}
        Err(Error::Io(e))
            if matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe) => {}
        Err(e) => eprintln!("ws_echo_server: {peer}: {e}"),
    }
}

fn parse_route(request: &Request) -> Result<Route, String> {
    let uri = request.uri();
    match uri.path() {
        "/echo" => Ok(Route::Echo),
        "/idle" => Ok(Route::Idle),
        "/stream" => {
            let (mut count, mut size, mut text) = (None, None, false);
            for pair in uri.query().unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                match key {
                    "count" => count = value.parse::<u64>().ok(),
                    "size" => size = value.parse::<usize>().ok(),
                    "type" => {
                        text = match value {
                            "text" => true,
                            "binary" => false,
                            _ => return Err(format!("bad type '{value}'")),
                        }
                    }
                    _ => return Err(format!("unknown parameter '{key}'")),
                }
            }
            match (count, size) {
                (Some(count), Some(size)) if size <= MAX_MESSAGE_SIZE => {
                    Ok(Route::Stream { count, size, text })
                }
                _ => Err("stream needs count=N&size=S (S at most 64 MiB)".to_string()),
            }
        }
        other => Err(format!("no such path '{other}'")),
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn echo(mut ws: Ws) -> tungstenite::Result<()> {
    while let Some(message) = ws.next().await {
        // Pings are answered by tungstenite; a Close is answered too, and
        // the stream then ends.
        if let message @ (Message::Text(_) | Message::Binary(_)) = message? {
            ws.send(message).await?;
        }
    }
    Ok(())
}

async fn stream_messages(
    mut ws: Ws,
    count: u64,
    size: usize,
    text: bool,
) -> tungstenite::Result<()> {
    // One payload, shared by reference count: the server costs no copies.
    let message = if text {
        let payload: String = (0..size).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        Message::Text(Utf8Bytes::from(payload))
    } else {
        let payload: Vec<u8> = (0..size).map(|i| i as u8).collect();
        Message::Binary(Bytes::from(payload))
    };
    for i in 1..=count {
        ws.feed(message.clone()).await?;
        if i % STREAM_BATCH == 0 {
            ws.flush().await?;
        }
    }
    ws.flush().await?;
    drain(ws).await
}

/// Like `drain`, but first waits for the socket to become readable without
/// reading: tungstenite's first read fills (and so commits) its 128 KiB read
/// buffer, which 10,000 idle connections would turn into 1.3 GB of server RSS.
async fn idle(ws: Ws) -> tungstenite::Result<()> {
    ws.get_ref().readable().await?;
    drain(ws).await
}

async fn drain(mut ws: Ws) -> tungstenite::Result<()> {
    while let Some(message) = ws.next().await {
        message?;
    }
    Ok(())
}
