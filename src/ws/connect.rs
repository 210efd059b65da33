//! Opening a WebSocket on the caller's thread: libcurl connects (TCP, TLS,
//! proxy), then the HTTP upgrade ([`super::handshake`]), all within one
//! budget; tungstenite takes the connection from there.

use std::os::fd::RawFd;
use std::time::Instant;

use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::{Role, WebSocketConfig};
use tungstenite::WebSocket;

use super::handshake::{self, Failed, Refusal};
use super::options::ConnectOptions;

/// Bytes read from a socket at a time: large enough for streams of small
/// messages to cost few reads, small enough for 10,000 idle sockets.
const READ_BUFFER_SIZE: usize = 32 << 10;
use crate::endpoint::Endpoint;
use crate::http::tunnel::{Route, Tunnel};
use crate::http::DEFAULT_IDLE_TIMEOUT;

/// Why opening failed: in words, and the server's answer when it refused
/// the upgrade.
pub struct OpenError {
    /// What went wrong.
    pub message: String,
    /// The server's answer when it refused the upgrade.
    pub refusal: Option<Refusal>,
}

impl From<String> for OpenError {
    fn from(message: String) -> OpenError {
        OpenError { message, refusal: None }
    }
}

/// An open WebSocket and the subprotocol the server chose.
pub(super) type Opened = (WebSocket<Tunnel>, Option<String>);

pub(super) fn open(url: &str, options: &ConnectOptions) -> Result<Opened, OpenError> {
    let budget = options.timeout;
    let started = Instant::now();
    let endpoint = Endpoint::parse(url, &["ws", "wss"])?;
    // The request line's rules (a URI of at most 64 KiB), as the http
    // crate has them.
    endpoint.as_str().into_client_request().map_err(|e| crate::endpoint::invalid(url, e))?;
    let transport = endpoint.with_scheme(if endpoint.scheme() == "wss" { "https" } else { "http" });
    let route = Route {
        verify: options.verify,
        ca_file: options.ca_file.as_deref(),
        proxy: &options.proxy,
    };
    let mut tunnel = Tunnel::open(&transport, budget, route)?;
    // Without a budget the upgrade answer may take as long as any idle read.
    let deadline = match budget {
        Some(budget) => started + budget,
        None => Instant::now() + DEFAULT_IDLE_TIMEOUT,
    };
    let mut wait = |tunnel: &Tunnel, write: bool| wait_ready(tunnel.fd(), write, deadline);
    let upgraded = match handshake::upgrade(&mut tunnel, &endpoint, &options.upgrade, &mut wait) {
        Ok(upgraded) => upgraded,
        Err(Failed::Refused(refusal)) => {
            return Err(OpenError { message: refusal.message(), refusal: Some(refusal) })
        }
        Err(failed) if handshake::deadline_passed(&failed) => {
            return Err(OpenError::from(match budget {
                Some(budget) => format!("timed out after {} ms", budget.as_millis()),
                None => format!(
                    "timed out after {} ms waiting for the WebSocket upgrade",
                    DEFAULT_IDLE_TIMEOUT.as_millis()
                ),
            }))
        }
        Err(Failed::Other(message)) => return Err(OpenError::from(message)),
    };
    let limits = &options.limits;
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_message_bytes))
        .max_frame_size(Some(limits.max_message_bytes))
        // Every write is flushed at once (the output bound is the
        // engine's, checked between messages).
        .write_buffer_size(0)
        // tungstenite's default read buffer is 128 KiB per socket, allocated
        // up front: most of an idle socket's memory.
        .read_buffer_size(READ_BUFFER_SIZE);
    let websocket =
        WebSocket::from_partially_read(tunnel, upgraded.leftover, Role::Client, Some(config));
    Ok((websocket, upgraded.protocol))
}

/// Waits for `fd` to become readable (or writable) until `deadline`; false
/// on timeout.
fn wait_ready(fd: RawFd, write: bool, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let events = if write { libc::POLLOUT } else { libc::POLLIN };
        let mut pollfd = libc::pollfd { fd, events, revents: 0 };
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd for the duration of the call.
        let ready = unsafe { libc::poll(&mut pollfd, 1, ms) };
        if ready > 0
            || (ready < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR))
        {
            // Readable, or an error the next read reports precisely.
            return true;
        }
    }
}
