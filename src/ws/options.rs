//! What a WebSocket may ask for beyond its URL (`ws_connect(url, options)`
//! and `luanet_ws_options`), with each value's rule, so that Lua and C
//! refuse the same values with the same words.

use std::path::PathBuf;
use std::time::Duration;

use super::Upgrade;
use crate::http::Proxy;

/// Largest incoming message by default; a larger one fails the connection
/// with close code 1009 (message too big).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Unread messages past which the I/O thread stops reading a socket.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 64 << 20;
/// Unwritten output past which `send` refuses a message.
pub const DEFAULT_MAX_SEND_BUFFER_BYTES: usize = 16 << 20;
/// How often a keepalive ping goes out by default: under the 30 to 60 s
/// after which NAT tables and proxies commonly drop an idle connection,
/// and the interval Python `websockets` uses.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long a keepalive ping waits for its pong by default: generous for a
/// slow link or a peer busy for a moment, so that a dead peer is noticed
/// within 40 s of its last pong.
pub const DEFAULT_PONG_TIMEOUT: Duration = Duration::from_secs(20);

/// The most any byte bound may be.
pub const MAX_BOUND: u64 = i64::MAX as u64;

/// How much a socket may hold, and how it checks that its peer lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest incoming message.
    pub max_message_bytes: usize,
    /// Unread messages past which reading stops (each counts its payload
    /// plus 48 bytes; checked between messages: one larger message is
    /// still taken whole).
    pub max_queued_bytes: usize,
    /// Unwritten output past which `send` refuses a message (checked
    /// between messages: one larger message still goes when less waits).
    pub max_send_buffer_bytes: usize,
    /// The keepalive ping's period; `None`: no keepalive.
    pub ping_interval: Option<Duration>,
    /// How long a keepalive ping waits for its pong; `None`: forever.
    pub pong_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            max_send_buffer_bytes: DEFAULT_MAX_SEND_BUFFER_BYTES,
            ping_interval: Some(DEFAULT_PING_INTERVAL),
            pong_timeout: Some(DEFAULT_PONG_TIMEOUT),
        }
    }
}

/// A byte bound: a whole number from 1 to [`MAX_BOUND`].
pub fn byte_bound(bytes: u64) -> Result<usize, &'static str> {
    match bytes {
        1..=MAX_BOUND => Ok(usize::try_from(bytes).unwrap_or(usize::MAX)),
        _ => Err("must be a whole number from 1 to 2^63-1"),
    }
}

/// `ping_interval_ms`, under the [`crate::timeout`] rule but for 0, which
/// turns keepalive off (as an infinite interval does).
pub fn ping_interval(ms: f64) -> Result<Option<Duration>, &'static str> {
    crate::timeout::from_millis(ms).map_err(|_| "must be a non-negative number")
}

/// `pong_timeout_ms`, under the [`crate::timeout`] rule: 0 is the default,
/// an infinite one never fails the connection (pings then only measure
/// latency).
pub fn pong_timeout(ms: f64) -> Result<Option<Duration>, &'static str> {
    match crate::timeout::from_millis(ms) {
        Err(_) => Err("must be a non-negative number"),
        Ok(None) if ms == 0.0 => Ok(Some(DEFAULT_PONG_TIMEOUT)),
        Ok(timeout) => Ok(timeout),
    }
}

/// Everything a connect may say.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// One budget for resolve, connect, TLS and the upgrade; `None` for
    /// the defaults.
    pub timeout: Option<Duration>,
    /// Upgrade headers and subprotocols.
    pub upgrade: Upgrade,
    /// Bounds and keepalive.
    pub limits: Limits,
    /// `false`: no certificate or host name check at all.
    pub verify: bool,
    /// Trust exactly the CAs in this PEM file.
    pub ca_file: Option<PathBuf>,
    /// Which proxy, if any (a CONNECT tunnel through an HTTP proxy).
    pub proxy: Proxy,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            timeout: None,
            upgrade: Upgrade::default(),
            limits: Limits::default(),
            verify: true,
            ca_file: None,
            proxy: Proxy::Environment,
        }
    }
}

/// "an incoming message exceeded the 64 MiB limit", in MiB when the limit
/// is a whole number of them.
pub(super) fn too_big(limit: usize) -> String {
    let limit = match limit % (1 << 20) {
        0 => format!("{} MiB", limit >> 20),
        _ => format!("{limit}-byte"),
    };
    format!("an incoming message exceeded the {limit} limit: connection closed (1009)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_bounds() {
        assert_eq!(byte_bound(1), Ok(1));
        assert_eq!(byte_bound(64 << 20), Ok(64 << 20));
        assert_eq!(byte_bound(MAX_BOUND), Ok(MAX_BOUND as usize));
        assert!(byte_bound(0).is_err());
        assert!(byte_bound(MAX_BOUND + 1).is_err());
    }

    #[test]
    fn keepalive_values() {
        assert_eq!(ping_interval(0.0), Ok(None));
        assert_eq!(ping_interval(f64::INFINITY), Ok(None));
        assert_eq!(ping_interval(1500.0), Ok(Some(Duration::from_millis(1500))));
        assert!(ping_interval(-1.0).is_err());
        assert_eq!(pong_timeout(0.0), Ok(Some(DEFAULT_PONG_TIMEOUT)));
        assert_eq!(pong_timeout(f64::INFINITY), Ok(None));
        assert_eq!(pong_timeout(7.0), Ok(Some(Duration::from_millis(7))));
        assert_eq!(pong_timeout(f64::NAN), Err("must be a non-negative number"));
    }

    #[test]
    fn too_big_names_the_limit() {
        assert_eq!(
            too_big(64 << 20),
            "an incoming message exceeded the 64 MiB limit: connection closed (1009)"
        );
        assert_eq!(
            too_big(1000),
            "an incoming message exceeded the 1000-byte limit: connection closed (1009)"
        );
    }
}
