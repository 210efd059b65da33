//! The HTTP engine, on libcurl: one request in, one response out.
//!
//! Behaviour every caller gets: redirects followed (at most
//! [`MAX_REDIRECTS`], never from https down to http), keep-alive across
//! calls, HTTP/2 over TLS when offered, compressed bodies decoded, proxies
//! from the standard environment variables, and defaults under which nothing
//! hangs forever.

mod error;
mod pool;
pub mod tunnel;

use std::time::Duration;

use curl::easy::{Easy2, Handler, HttpVersion, WriteError};

use crate::endpoint::Endpoint;
use crate::tls;

/// libcurl's receive buffer: 16 times its default, so that a large body
/// takes a sixteenth of the reads and write callbacks.
const RECEIVE_BUFFER_SIZE: usize = 256 << 10;
/// Redirects followed before a request fails.
pub const MAX_REDIRECTS: u32 = 10;
/// Connect timeout when the caller gives no budget (WinHTTP's default).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(60);
/// A transfer that receives nothing for this long fails (WinHTTP's default).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Absolute `http://` or `https://` URL.
    pub url: &'a str,
    /// One budget for resolve, connect, send and receive; `None` for the
    /// defaults.
    pub timeout: Option<Duration>,
    /// `Some((content_type, body))` makes it a POST.
    pub post: Option<(&'a [u8], &'a [u8])>,
}

/// A response received at the transport level, whatever its status.
#[derive(Debug, Default)]
pub struct Response {
    /// The HTTP status code of the final response.
    pub status: u32,
    /// The decoded body bytes.
    pub body: Vec<u8>,
}

/// Performs `request` on the calling thread and waits for the whole
/// response. Safe to call from many threads at once.
pub fn perform(request: &Request<'_>) -> Result<Response, String> {
    let endpoint = Endpoint::parse(request.url, &["http", "https"])?;
    if let Some((content_type, _)) = request.post {
        if content_type.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)) {
            return Err("invalid content type: it contains a line break or NUL".to_owned());
        }
    }
    let mut easy = pool::take();
    let outcome = configure(&mut easy, &endpoint, request)
        .and_then(|()| easy.perform())
        .map_err(|e| error::describe(&e, &easy, &endpoint, request.timeout));
    let result = outcome.map(|()| Response {
        status: easy.response_code().unwrap_or(0),
        body: std::mem::take(&mut easy.get_mut().body),
    });
    pool::give_back(easy);
    result
}

/// Collects the response body.
#[derive(Default)]
pub(crate) struct Collector {
    body: Vec<u8>,
}

/// The most a `Content-Length` may make us reserve up front; a larger body
/// still arrives, it just grows as it comes.
const MAX_RESERVE: usize = 256 << 20;

impl Handler for Collector {
    fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        self.body.extend_from_slice(data);
        Ok(data.len())
    }

    /// Reserves the announced body size at once: no reallocation while a
    /// large body arrives, and no doubled capacity at its peak.
    fn header(&mut self, line: &[u8]) -> bool {
        if let Some(length) = content_length(line) {
            if length <= MAX_RESERVE {
                self.body.reserve_exact(length.saturating_sub(self.body.len()));
            }
        }
        true
    }
}

/// The value of a `Content-Length` header line (any case, as HTTP/2 sends
/// it lower-case).
fn content_length(line: &[u8]) -> Option<usize> {
    let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
    if !name.eq_ignore_ascii_case(b"content-length") {
        return None;
    }
    std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok()
}

fn configure(
    easy: &mut Easy2<Collector>,
    endpoint: &Endpoint,
    request: &Request<'_>,
) -> Result<(), curl::Error> {
    easy.get_mut().body.clear();
    configure_transport(easy, endpoint, request.timeout)?;
    easy.follow_location(true)?;
    easy.max_redirections(MAX_REDIRECTS)?;
    easy.http_version(HttpVersion::V2TLS)?;
    // "" asks for every encoding this libcurl decodes.
    easy.accept_encoding("")?;
    easy.low_speed_limit(1)?;
    easy.low_speed_time(DEFAULT_IDLE_TIMEOUT)?;
    easy.buffer_size(RECEIVE_BUFFER_SIZE)?;
    if let Some((content_type, body)) = request.post {
        let mut headers = curl::easy::List::new();
        let mut line = b"Content-Type: ".to_vec();
        line.extend_from_slice(content_type);
        headers.append(&String::from_utf8_lossy(&line))?;
        // curl would otherwise wait for a 100-continue on large bodies.
        headers.append("Expect:")?;
        easy.http_headers(headers)?;
        easy.post(true)?;
        easy.post_field_size(body.len() as u64)?;
        // The body is borrowed, not copied: `perform` sends it before it
        // returns, and the handle is reset before any other use.
        // SAFETY: a valid handle; `body` outlives the transfer.
        let code = unsafe {
            curl_sys::curl_easy_setopt(easy.raw(), curl_sys::CURLOPT_POSTFIELDS, body.as_ptr())
        };
        if code != curl_sys::CURLE_OK {
            return Err(curl::Error::new(code));
        }
    }
    Ok(())
}

/// What every connection libcurl opens for us shares: URL, user agent,
/// allowed protocols, trust store, connect timeout and the caller's budget.
/// `endpoint` is an http(s) URL.
fn configure_transport<H>(
    easy: &mut Easy2<H>,
    endpoint: &Endpoint,
    budget: Option<Duration>,
) -> Result<(), curl::Error> {
    easy.url(endpoint.as_str())?;
    easy.useragent(crate::USER_AGENT)?;
    restrict_protocols(easy, endpoint.scheme())?;
    let trust = tls::trust_store();
    if let Some(file) = &trust.ca_file {
        easy.cainfo(file)?;
    }
    if let Some(dir) = &trust.ca_dir {
        easy.capath(dir)?;
    }
    easy.connect_timeout(DEFAULT_CONNECT_TIMEOUT)?;
    if let Some(budget) = budget {
        easy.timeout(budget)?;
    }
    Ok(())
}

/// http may redirect to https, https only to https.
fn restrict_protocols<H>(easy: &mut Easy2<H>, scheme: &str) -> Result<(), curl::Error> {
    const CURLOPT_PROTOCOLS_STR: curl_sys::CURLoption = curl_sys::CURLOPTTYPE_OBJECTPOINT + 318;
    const CURLOPT_REDIR_PROTOCOLS_STR: curl_sys::CURLoption =
        curl_sys::CURLOPTTYPE_OBJECTPOINT + 319;
    let redirect: &std::ffi::CStr = if scheme == "https" { c"https" } else { c"http,https" };
    for (option, value) in
        [(CURLOPT_PROTOCOLS_STR, c"http,https"), (CURLOPT_REDIR_PROTOCOLS_STR, redirect)]
    {
        // SAFETY: a valid handle and a NUL-terminated string libcurl copies.
        let code = unsafe { curl_sys::curl_easy_setopt(easy.raw(), option, value.as_ptr()) };
        if code != curl_sys::CURLE_OK {
            return Err(curl::Error::new(code));
        }
    }
    Ok(())
}
