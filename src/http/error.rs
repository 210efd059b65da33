//! Turns libcurl's error codes into typed failures: a kind scripts branch
//! on and a short, readable message for people.

use std::time::Duration;

use curl::easy::Easy2;

use super::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT};
use crate::endpoint::Endpoint;

/// What went wrong, as a stable name scripts can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The host name did not resolve.
    Resolve,
    /// The connection was refused or the host unreachable.
    Connect,
    /// The TLS handshake or the certificate failed.
    Tls,
    /// A budget ran out.
    Timeout,
    /// The proxy failed: unreachable, unresolvable, or it refused.
    Proxy,
    /// A malformed or incomplete response, or a connection broken
    /// during the exchange.
    Protocol,
    /// Too many redirects, or a forbidden one.
    Redirect,
    /// The body passed `max_body_bytes`.
    TooLarge,
    /// Writing the output file failed.
    Io,
    /// The request was cancelled.
    Aborted,
}

impl ErrorKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Resolve,
        ErrorKind::Connect,
        ErrorKind::Tls,
        ErrorKind::Timeout,
        ErrorKind::Proxy,
        ErrorKind::Protocol,
        ErrorKind::Redirect,
        ErrorKind::TooLarge,
        ErrorKind::Io,
        ErrorKind::Aborted,
    ];

    /// The name scripts see: `"resolve"`, `"too_large"`, ...
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Resolve => "resolve",
            ErrorKind::Connect => "connect",
            ErrorKind::Tls => "tls",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Proxy => "proxy",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Redirect => "redirect",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Io => "io",
            ErrorKind::Aborted => "aborted",
        }
    }
}

/// A request that got no usable response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// Which kind of failure.
    pub kind: ErrorKind,
    /// What happened, for people.
    pub message: String,
}

impl RequestError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> RequestError {
        RequestError { kind, message: message.into() }
    }
}

pub(super) fn describe<H>(
    error: &curl::Error,
    easy: &Easy2<H>,
    endpoint: &Endpoint,
    budget: Option<Duration>,
) -> RequestError {
    describe_hop(error, easy, endpoint, budget, Duration::ZERO)
}

/// As [`describe`], for a hop of a redirect chain that began `spent` before
/// this hop did; `budget` is the whole chain's.
pub(super) fn describe_hop<H>(
    error: &curl::Error,
    easy: &Easy2<H>,
    endpoint: &Endpoint,
    budget: Option<Duration>,
    spent: Duration,
) -> RequestError {
    let (kind, message) = classify(error, easy, endpoint, budget, spent);
    RequestError { kind, message }
}

/// The whole budget was spent between two hops.
pub(super) fn out_of_budget(budget: Duration) -> RequestError {
    RequestError::new(ErrorKind::Timeout, format!("timed out after {} ms", budget.as_millis()))
}

fn classify<H>(
    error: &curl::Error,
    easy: &Easy2<H>,
    endpoint: &Endpoint,
    budget: Option<Duration>,
    spent: Duration,
) -> (ErrorKind, String) {
    use ErrorKind::*;
    let detail = error.extra_description().unwrap_or_else(|| error.description());
    let errno = easy.os_errno().unwrap_or(0);
    if let Some(code) = refused_tunnel(easy) {
        return (
            Proxy,
            format!("the proxy refused the tunnel to {} ({code})", endpoint.authority()),
        );
    }
    if error.is_couldnt_connect() {
        if let Some(proxy) = proxy_address(easy) {
            return match errno {
                libc::ECONNREFUSED => (Proxy, format!("connection refused by the proxy{proxy}")),
                _ => (Proxy, format!("could not connect to the proxy{proxy}: {detail}")),
            };
        }
        return match errno {
            libc::ECONNREFUSED => {
                (Connect, format!("connection refused ({})", endpoint.authority()))
            }
            0 => (Connect, format!("could not connect to {}: {detail}", endpoint.authority())),
            _ => (
                Connect,
                format!(
                    "could not connect to {}: {}",
                    endpoint.authority(),
                    std::io::Error::from_raw_os_error(errno)
                ),
            ),
        };
    }
    if error.is_operation_timedout() {
        let elapsed = spent + easy.total_time().unwrap_or_default();
        // Time to the start of the transfer: connected (and TLS done), or
        // reusing a connection.
        let connected = easy.pretransfer_time().is_ok_and(|t| !t.is_zero());
        return (Timeout, timeout_message(budget, elapsed, connected, &endpoint.authority()));
    }
    if error.is_couldnt_resolve_proxy() {
        let name = detail.rsplit(": ").next().unwrap_or(detail);
        return (Proxy, format!("could not resolve proxy host '{name}'"));
    }
    if error.code() == CURLE_PROXY {
        return (Proxy, format!("the proxy failed: {detail}"));
    }
    if error.is_couldnt_resolve_host() {
        return (Resolve, format!("could not resolve host '{}'", endpoint.host()));
    }
    if error.is_peer_failed_verification() || error.is_ssl_cacert() {
        let reason =
            detail.trim_start_matches("SSL certificate problem: ").trim_start_matches("SSL: ");
        return (Tls, format!("TLS: certificate verify failed: {reason}"));
    }
    if error.is_ssl_connect_error() {
        return (Tls, format!("TLS: handshake failed: {detail}"));
    }
    if error.is_ssl_cacert_badfile() {
        return (Tls, format!("TLS: cannot use the CA file: {detail}"));
    }
    if error.is_ssl_certproblem() {
        return (Tls, format!("TLS: cannot use the client certificate: {detail}"));
    }
    if TLS_SETUP_CODES.contains(&error.code()) {
        return (Tls, format!("TLS: {detail}"));
    }
    if error.is_too_many_redirects() {
        return (Redirect, too_many_redirects(super::MAX_REDIRECTS));
    }
    if error.is_unsupported_protocol() {
        // The first URL was checked already, so this came from a Location.
        let scheme = easy
            .effective_url()
            .ok()
            .flatten()
            .and_then(|u| u.split_once("://"))
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
            .unwrap_or_else(|| "unknown".to_owned());
        return (Redirect, forbidden_scheme(&scheme));
    }
    if error.is_got_nothing() {
        return (
            Protocol,
            format!("{} closed the connection without a response", endpoint.authority()),
        );
    }
    if (error.is_recv_error() || error.is_send_error()) && is_tls_alert(detail) {
        // TLS 1.3 reports a refused client certificate after the handshake.
        return (Tls, format!("TLS: the server refused the connection: {detail}"));
    }
    let broken = error.is_recv_error() || error.is_send_error();
    if broken && refused_after_handshake(easy, endpoint) {
        return (
            Tls,
            format!(
                "TLS: {} closed the connection right after the handshake \
                 (does it require a client certificate?): {detail}",
                endpoint.authority()
            ),
        );
    }
    if error.is_partial_file() || error.is_recv_error() {
        return (
            Protocol,
            format!("connection to {} broken during the response: {detail}", endpoint.authority()),
        );
    }
    if error.is_aborted_by_callback() {
        return (Aborted, "cancelled".to_owned());
    }
    (Protocol, format!("{}: {detail}", error.description()))
}

/// CURLE_PROXY: a SOCKS or HTTPS proxy's handshake failed; not in curl-sys.
const CURLE_PROXY: curl_sys::CURLcode = 97;
/// Local TLS set-up failures beyond the ones named above: cipher list,
/// engine, CRL file, issuer check, pinned key, TLS required.
const TLS_SETUP_CODES: &[curl_sys::CURLcode] = &[53, 54, 59, 64, 66, 80, 82, 83, 90, 91];

/// OpenSSL's words for an alert the peer sent.
fn is_tls_alert(detail: &str) -> bool {
    detail.contains("SSL_read") && detail.contains("alert")
}

/// A TLS 1.3 server that refuses the client's certificate does so after the
/// handshake; when its alert is lost to a reset, the sign left is a new
/// TLS connection broken before a single response byte.
fn refused_after_handshake<H>(easy: &Easy2<H>, endpoint: &Endpoint) -> bool {
    const CURLINFO_NUM_CONNECTS: curl_sys::CURLINFO = curl_sys::CURLINFO_LONG + 26;
    let mut connects: libc::c_long = 0;
    // SAFETY: a valid handle and an out-pointer of the documented type.
    let code =
        unsafe { curl_sys::curl_easy_getinfo(easy.raw(), CURLINFO_NUM_CONNECTS, &mut connects) };
    let handshaken = easy.appconnect_time().is_ok_and(|t| !t.is_zero());
    endpoint.scheme() == "https"
        && code == curl_sys::CURLE_OK
        && connects > 0
        && handshaken
        && easy.header_size().unwrap_or(1) == 0
}

/// The message for a redirect chain longer than `max` hops.
pub(super) fn too_many_redirects(max: u32) -> String {
    format!("too many redirects (more than {max})")
}

/// The message for a redirect to a scheme other than http(s).
pub(super) fn forbidden_scheme(scheme: &str) -> String {
    format!("redirect to a forbidden scheme ({scheme}) refused")
}

/// The status a proxy answered a CONNECT with, when it refused the tunnel.
fn refused_tunnel<H>(easy: &Easy2<H>) -> Option<libc::c_long> {
    const CURLINFO_HTTP_CONNECTCODE: curl_sys::CURLINFO = curl_sys::CURLINFO_LONG + 22;
    let mut code: libc::c_long = 0;
    // SAFETY: a valid handle and an out-pointer of the documented type.
    let status =
        unsafe { curl_sys::curl_easy_getinfo(easy.raw(), CURLINFO_HTTP_CONNECTCODE, &mut code) };
    (status == curl_sys::CURLE_OK && code >= 300).then_some(code)
}

/// Which of the three timers ran out: the caller's budget for the whole
/// request, or, before it, the connect timeout or the idle timeout.
fn timeout_message(
    budget: Option<Duration>,
    elapsed: Duration,
    connected: bool,
    authority: &str,
) -> String {
    // libcurl's own clock; a millisecond of slack for its rounding.
    let slack = Duration::from_millis(1);
    match budget {
        Some(budget) if elapsed + slack >= budget => out_of_budget(budget).message,
        _ if !connected => format!(
            "timed out connecting to {authority} after {} ms",
            DEFAULT_CONNECT_TIMEOUT.as_millis()
        ),
        _ => format!("timed out: nothing received for {} s", DEFAULT_IDLE_TIMEOUT.as_secs()),
    }
}

/// A response whose header section never ended (RFC 9112 section 8: an
/// incomplete message), which libcurl reports as a success.
pub(super) fn cut_in_headers(endpoint: &Endpoint) -> RequestError {
    let message = format!("connection to {} broken in the response headers", endpoint.authority());
    RequestError::new(ErrorKind::Protocol, message)
}

/// `Some(" (ip:port)")` when the failed connection went to a proxy (just
/// `Some("")` when libcurl did not record its address).
fn proxy_address<H>(easy: &Easy2<H>) -> Option<String> {
    const CURLINFO_USED_PROXY: curl_sys::CURLINFO = curl_sys::CURLINFO_LONG + 66;
    let mut used: libc::c_long = 0;
    // SAFETY: a valid handle and an out-pointer of the documented type.
    let code = unsafe { curl_sys::curl_easy_getinfo(easy.raw(), CURLINFO_USED_PROXY, &mut used) };
    if code != curl_sys::CURLE_OK || used == 0 {
        return None;
    }
    let ip = easy.primary_ip().ok().flatten().unwrap_or_default();
    let port = easy.primary_port().unwrap_or(0);
    Some(match (ip.is_empty(), ip.contains(':')) {
        (true, _) => String::new(),
        (false, true) => format!(" ([{ip}]:{port})"),
        (false, false) => format!(" ({ip}:{port})"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn kinds_have_stable_distinct_names() {
        let names: Vec<&str> = ErrorKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(
            names,
            [
                "resolve",
                "connect",
                "tls",
                "timeout",
                "proxy",
                "protocol",
                "redirect",
                "too_large",
                "io",
                "aborted"
            ]
        );
    }

    #[test]
    fn tls_alerts_after_the_handshake() {
        assert!(is_tls_alert(
            "OpenSSL SSL_read: error:0A00045C:SSL routines::tlsv13 alert certificate required, errno 0"
        ));
        assert!(!is_tls_alert("Connection reset by peer"));
    }

    #[test]
    fn the_budget_ran_out() {
        let message = timeout_message(Some(MS(500)), MS(500), true, "h:1");
        assert_eq!(message, "timed out after 500 ms");
        assert_eq!(timeout_message(Some(MS(500)), MS(501), false, "h:1"), message);
    }

    #[test]
    fn the_connect_timeout_ran_out_within_a_longer_budget() {
        let message = timeout_message(Some(MS(120_000)), MS(60_000), false, "h:1");
        assert_eq!(message, "timed out connecting to h:1 after 60000 ms");
        assert_eq!(timeout_message(None, MS(60_000), false, "h:1"), message);
    }

    #[test]
    fn the_idle_timeout_ran_out_within_a_longer_budget() {
        let message = timeout_message(Some(MS(45_000)), MS(30_010), true, "h:1");
        assert_eq!(message, "timed out: nothing received for 30 s");
        assert_eq!(timeout_message(None, MS(31_000), true, "h:1"), message);
    }
}
