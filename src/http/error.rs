//! Turns libcurl's error codes into the short, readable messages scripts get
//! as the fourth return value.

use std::time::Duration;

use curl::easy::Easy2;

use super::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, MAX_REDIRECTS};
use crate::endpoint::Endpoint;

pub(super) fn describe<H>(
    error: &curl::Error,
    easy: &Easy2<H>,
    endpoint: &Endpoint,
    budget: Option<Duration>,
) -> String {
    let detail = error.extra_description().unwrap_or_else(|| error.description());
    let errno = easy.os_errno().unwrap_or(0);
    if error.is_couldnt_connect() {
        if let Some(proxy) = proxy_address(easy) {
            return match errno {
                libc::ECONNREFUSED => format!("connection refused by the proxy{proxy}"),
                _ => format!("could not connect to the proxy{proxy}: {detail}"),
            };
        }
        return match errno {
            libc::ECONNREFUSED => format!("connection refused ({})", endpoint.authority()),
            0 => format!("could not connect to {}: {detail}", endpoint.authority()),
            _ => format!(
                "could not connect to {}: {}",
                endpoint.authority(),
                std::io::Error::from_raw_os_error(errno)
            ),
        };
    }
    if error.is_operation_timedout() {
        let elapsed = easy.total_time().unwrap_or_default();
        // Time to the start of the transfer: connected (and TLS done), or
        // reusing a connection.
        let connected = easy.pretransfer_time().is_ok_and(|t| !t.is_zero());
        return timeout_message(budget, elapsed, connected, &endpoint.authority());
    }
    if error.is_couldnt_resolve_proxy() {
        let name = detail.rsplit(": ").next().unwrap_or(detail);
        return format!("could not resolve proxy host '{name}'");
    }
    if error.is_couldnt_resolve_host() {
        return format!("could not resolve host '{}'", endpoint.host());
    }
    if error.is_peer_failed_verification() || error.is_ssl_cacert() {
        let reason =
            detail.trim_start_matches("SSL certificate problem: ").trim_start_matches("SSL: ");
        return format!("TLS: certificate verify failed: {reason}");
    }
    if error.is_ssl_connect_error() {
        return format!("TLS: handshake failed: {detail}");
    }
    if error.is_too_many_redirects() {
        return format!("too many redirects (more than {MAX_REDIRECTS})");
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
        return format!("redirect to a forbidden scheme ({scheme}) refused");
    }
    if error.is_got_nothing() {
        return format!("{} closed the connection without a response", endpoint.authority());
    }
    if error.is_partial_file() || error.is_recv_error() {
        return format!(
            "connection to {} broken during the response: {detail}",
            endpoint.authority()
        );
    }
    format!("{}: {detail}", error.description())
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
        Some(budget) if elapsed + slack >= budget => {
            format!("timed out after {} ms", budget.as_millis())
        }
        _ if !connected => format!(
            "timed out connecting to {authority} after {} ms",
            DEFAULT_CONNECT_TIMEOUT.as_millis()
        ),
        _ => format!("timed out: nothing received for {} s", DEFAULT_IDLE_TIMEOUT.as_secs()),
    }
}

/// A response whose header section never ended (RFC 9112 section 8: an
/// incomplete message), which libcurl reports as a success.
pub(super) fn cut_in_headers(endpoint: &Endpoint) -> String {
    format!("connection to {} broken in the response headers", endpoint.authority())
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
