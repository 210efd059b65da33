//! Opening a WebSocket on the caller's thread: libcurl connects (TCP, TLS,
//! proxy), then tungstenite performs the HTTP upgrade, all within one
//! budget.

use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use tungstenite::client::{client_with_config, IntoClientRequest};
use tungstenite::handshake::HandshakeError;
use tungstenite::http::header::{HeaderValue, USER_AGENT};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::WebSocket;

use super::{error, MAX_MESSAGE_SIZE};

/// Bytes read from a socket at a time: large enough for streams of small
/// messages to cost few reads, small enough for 10,000 idle sockets.
const READ_BUFFER_SIZE: usize = 32 << 10;
use crate::endpoint::Endpoint;
use crate::http::tunnel::Tunnel;
use crate::http::DEFAULT_IDLE_TIMEOUT;

pub(super) fn open(url: &str, budget: Option<Duration>) -> Result<WebSocket<Tunnel>, String> {
    let started = Instant::now();
    let endpoint = Endpoint::parse(url, &["ws", "wss"])?;
    let transport = endpoint.with_scheme(if endpoint.scheme() == "wss" { "https" } else { "http" });
    let tunnel = Tunnel::open(&transport, budget)?;
    // Without a budget the upgrade answer may take as long as any idle read.
    let deadline = match budget {
        Some(budget) => started + budget,
        None => Instant::now() + DEFAULT_IDLE_TIMEOUT,
    };
    let mut request =
        endpoint.as_str().into_client_request().map_err(|e| crate::endpoint::invalid(url, e))?;
    request.headers_mut().insert(USER_AGENT, HeaderValue::from_static(crate::USER_AGENT));
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
        // tungstenite's default read buffer is 128 KiB per socket, allocated
        // up front: most of an idle socket's memory.
        .read_buffer_size(READ_BUFFER_SIZE);
    let mut attempt = client_with_config(request, tunnel, Some(config));
    loop {
        match attempt {
            Ok((websocket, _response)) => return Ok(websocket),
            Err(HandshakeError::Interrupted(handshake)) => {
                if !wait_readable(handshake.get_ref().get_ref().fd(), deadline) {
                    return Err(match budget {
                        Some(budget) => format!("timed out after {} ms", budget.as_millis()),
                        None => format!(
                            "timed out after {} ms waiting for the WebSocket upgrade",
                            DEFAULT_IDLE_TIMEOUT.as_millis()
                        ),
                    });
                }
                attempt = handshake.handshake();
            }
            Err(HandshakeError::Failure(e)) => return Err(error::describe(&e)),
        }
    }
}

/// Waits for `fd` to become readable until `deadline`; false on timeout.
/// The upgrade request is small and written at once, so only the answer is
/// ever waited for.
fn wait_readable(fd: RawFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pollfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
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
