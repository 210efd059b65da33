//! The client side of the HTTP upgrade (RFC 6455 section 4), ours rather
//! than tungstenite's: its subprotocol check is stricter than the RFC and
//! browsers (a server may choose none of those offered), and a refused
//! upgrade's response is the caller's to see.

use std::io::{ErrorKind, Read, Write};

use tungstenite::handshake::client::generate_key;
use tungstenite::handshake::derive_accept_key;
use tungstenite::http::StatusCode;

use crate::endpoint::Endpoint;
use crate::http::tunnel::Tunnel;
use crate::http::ResponseHeaders;

/// The most a response's head may take; a larger one is refused.
const MAX_HEAD: usize = 64 << 10;
/// The most of a refusal's body kept for the caller.
const MAX_REFUSAL_BODY: usize = 64 << 10;

/// What the upgrade sends beyond the protocol's own lines.
#[derive(Debug, Clone, Default)]
pub struct Upgrade {
    /// Header lines, in order (names and values checked by the HTTP rules).
    pub headers: Vec<(String, Vec<u8>)>,
    /// Subprotocols offered, in order of preference (HTTP tokens).
    pub protocols: Vec<String>,
}

/// The header lines the handshake itself writes: a script's own would
/// contradict them.
const HANDSHAKE_HEADERS: &[&str] = &[
    "Connection",
    "Upgrade",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "Sec-WebSocket-Protocol",
    "Sec-WebSocket-Extensions",
];

/// A header a script may add to the upgrade: any but the handshake's own
/// (subprotocols go in [`Upgrade::protocols`]).
pub fn check_upgrade_header(name: &str) -> Result<(), String> {
    match HANDSHAKE_HEADERS.iter().find(|h| h.eq_ignore_ascii_case(name)) {
        Some(own) => Err(format!("header '{own}' is set by the WebSocket handshake")),
        None => Ok(()),
    }
}

/// A server's answer other than 101.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The status code.
    pub status: u16,
    /// The header lines, names in lower case.
    pub headers: ResponseHeaders,
    /// The body, as far as `Content-Length` announced it (64 KiB at most).
    pub body: Vec<u8>,
}

/// Why an upgrade failed.
#[derive(Debug)]
pub(super) enum Failed {
    /// The server answered, but not with 101.
    Refused(Refusal),
    /// Anything else, said in words.
    Other(String),
}

impl Refusal {
    /// `WebSocket upgrade refused: HTTP 403 Forbidden`.
    pub fn message(&self) -> String {
        let reason = StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .map(|r| format!(" {r}"))
            .unwrap_or_default();
        format!("WebSocket upgrade refused: HTTP {}{reason}", self.status)
    }
}

/// A completed upgrade: what the server chose, and the bytes it sent after
/// its answer (frames already on their way).
pub(super) struct Upgraded {
    pub protocol: Option<String>,
    pub leftover: Vec<u8>,
}

/// Sends the upgrade request for `endpoint` over `tunnel` and reads the
/// answer, waiting with `wait` (false: the deadline passed).
pub(super) fn upgrade(
    tunnel: &mut Tunnel,
    endpoint: &Endpoint,
    upgrade: &Upgrade,
    wait: &mut dyn FnMut(&Tunnel, bool) -> bool,
) -> Result<Upgraded, Failed> {
    let key = generate_key();
    let request = request_bytes(endpoint, upgrade, &key);
    write_all(tunnel, &request, wait)?;
    let mut buffer = Vec::with_capacity(4096);
    let (head_len, status, headers) = loop {
        if let Some(parsed) = parse_head(&buffer)? {
            break parsed;
        }
        if buffer.len() > MAX_HEAD {
            return Err(Failed::Other("the upgrade answer's headers are too large".to_owned()));
        }
        if !read_more(tunnel, &mut buffer, wait)? {
            return Err(Failed::Other(
                "the server closed the connection during the WebSocket upgrade".to_owned(),
            ));
        }
    };
    let mut leftover = buffer.split_off(head_len);
    if status != 101 {
        // The body as far as `Content-Length` announces it (and the limit
        // allows); a refusal without one has none worth waiting for.
        let announced = header(&headers, b"content-length")
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
        let want = announced.unwrap_or(0).min(MAX_REFUSAL_BODY);
        while leftover.len() < want && matches!(read_more(tunnel, &mut leftover, wait), Ok(true)) {}
        leftover.truncate(want);
        return Err(Failed::Refused(Refusal { status, headers, body: leftover }));
    }
    let is = |name: &[u8], value: &str| {
        header(&headers, name).is_some_and(|v| {
            v.split(|&b| b == b',')
                .any(|part| part.trim_ascii().eq_ignore_ascii_case(value.as_bytes()))
        })
    };
    if !is(b"upgrade", "websocket") || !is(b"connection", "upgrade") {
        return Err(Failed::Other("the server did not upgrade to WebSocket".to_owned()));
    }
    let accept = derive_accept_key(key.as_bytes());
    if header(&headers, b"sec-websocket-accept") != Some(accept.as_bytes()) {
        return Err(Failed::Other("the server's Sec-WebSocket-Accept is wrong".to_owned()));
    }
    let protocol = match header(&headers, b"sec-websocket-protocol") {
        None => None,
        Some(chosen) => {
            let chosen = String::from_utf8_lossy(chosen).trim().to_owned();
            if !upgrade.protocols.contains(&chosen) {
                return Err(Failed::Other(format!(
                    "the server chose the subprotocol '{chosen}', which was not offered"
                )));
            }
            Some(chosen)
        }
    };
    leftover.shrink_to_fit();
    Ok(Upgraded { protocol, leftover })
}

/// The first value of header `name` (lower case).
fn header<'h>(headers: &'h ResponseHeaders, name: &[u8]) -> Option<&'h [u8]> {
    headers.position(name).map(|i| headers.value(i))
}

fn request_bytes(endpoint: &Endpoint, upgrade: &Upgrade, key: &str) -> Vec<u8> {
    let mut request = Vec::with_capacity(256);
    let target = endpoint.request_target();
    request.extend_from_slice(format!("GET {target} HTTP/1.1\r\n").as_bytes());
    let given = |name: &str| upgrade.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
    if !given("Host") {
        request.extend_from_slice(format!("Host: {}\r\n", endpoint.host_header()).as_bytes());
    }
    if !given("User-Agent") {
        request.extend_from_slice(format!("User-Agent: {}\r\n", crate::USER_AGENT).as_bytes());
    }
    request.extend_from_slice(
        b"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
    );
    request.extend_from_slice(format!("Sec-WebSocket-Key: {key}\r\n").as_bytes());
    if !upgrade.protocols.is_empty() {
        let offered = upgrade.protocols.join(", ");
        request.extend_from_slice(format!("Sec-WebSocket-Protocol: {offered}\r\n").as_bytes());
    }
    for (name, value) in &upgrade.headers {
        request.extend_from_slice(name.as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    request
}

/// The head's length, status and header lines, once it is complete.
fn parse_head(buffer: &[u8]) -> Result<Option<(usize, u16, ResponseHeaders)>, Failed> {
    let mut lines = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut lines);
    match response.parse(buffer) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(length)) => {
            let mut headers = ResponseHeaders::with_room();
            for line in response.headers.iter() {
                headers.push(line.name.to_ascii_lowercase().as_bytes(), line.value.trim_ascii());
            }
            Ok(Some((length, response.code.unwrap_or(0), headers)))
        }
        Err(e) => Err(Failed::Other(format!("invalid WebSocket upgrade answer: {e}"))),
    }
}

fn write_all(
    tunnel: &mut Tunnel,
    mut bytes: &[u8],
    wait: &mut dyn FnMut(&Tunnel, bool) -> bool,
) -> Result<(), Failed> {
    while !bytes.is_empty() {
        match tunnel.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if !wait(tunnel, true) {
                    return Err(Failed::Other(String::new()));
                }
            }
            Err(e) => return Err(Failed::Other(format!("connection broken: {e}"))),
        }
    }
    Ok(())
}

/// Reads what arrived into `buffer`; false at the end of the stream.
fn read_more(
    tunnel: &mut Tunnel,
    buffer: &mut Vec<u8>,
    wait: &mut dyn FnMut(&Tunnel, bool) -> bool,
) -> Result<bool, Failed> {
    let mut chunk = [0u8; 4096];
    loop {
        match tunnel.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                buffer.extend_from_slice(&chunk[..n]);
                return Ok(true);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if !wait(tunnel, false) {
                    return Err(Failed::Other(String::new()));
                }
            }
            Err(e) => return Err(Failed::Other(format!("connection broken: {e}"))),
        }
    }
}

/// When a budget runs out: an empty [`Failed::Other`] stands for it.
pub(super) fn deadline_passed(failed: &Failed) -> bool {
    matches!(failed, Failed::Other(message) if message.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshakes_own_headers_are_not_a_scripts() {
        assert!(check_upgrade_header("Authorization").is_ok());
        assert_eq!(
            check_upgrade_header("sec-websocket-key"),
            Err("header 'Sec-WebSocket-Key' is set by the WebSocket handshake".to_owned())
        );
        assert!(check_upgrade_header("UPGRADE").is_err());
    }

    #[test]
    fn a_refusal_names_its_status() {
        let refusal =
            |status| Refusal { status, headers: ResponseHeaders::default(), body: Vec::new() };
        assert_eq!(refusal(403).message(), "WebSocket upgrade refused: HTTP 403 Forbidden");
        assert_eq!(refusal(599).message(), "WebSocket upgrade refused: HTTP 599");
    }

    #[test]
    fn heads_parse_once_complete() {
        assert!(matches!(parse_head(b"HTTP/1.1 101 Switching"), Ok(None)));
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframe";
        let (length, status, headers) = parse_head(head).ok().flatten().unwrap();
        assert_eq!((length, status), (head.len() - 5, 101));
        assert_eq!(header(&headers, b"upgrade"), Some(&b"websocket"[..]));
        assert!(matches!(parse_head(b"garbage\r\n\r\n"), Err(Failed::Other(_))));
    }
}
