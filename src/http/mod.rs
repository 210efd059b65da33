//! The HTTP engine, on libcurl: one request in, one response out.
//!
//! Behaviour every caller gets: redirects followed (at most
//! [`MAX_REDIRECTS`], never from https down to http), keep-alive across
//! calls, HTTP/2 over TLS when offered, compressed bodies decoded, proxies
//! from the standard environment variables, and defaults under which nothing
//! hangs forever.

mod collector;
mod error;
mod fetch;
mod header_list;
mod headers;
mod options;
mod pool;
mod request;
pub(crate) mod transfers;
pub mod tunnel;

pub use error::{ErrorKind, RequestError};
pub use fetch::{
    check_stream, configure, limits, Chunk, Fetch, Finished, Limits, Progress, State, STREAM_BOUND,
};
pub(crate) use fetch::{FetchId, Job};
pub use headers::ResponseHeaders;
pub use options::{
    check_header_name, check_header_value, check_method, check_subprotocol, parse_url, Proxy,
    RequestOptions, Version, SCHEMES,
};
pub(crate) use pool::hold_for_fork;
pub use request::{request, Reply, Timings};

use std::time::Duration;

use collector::{Collector, OwnHandle};
use curl::easy::{Easy2, HttpVersion};
use header_list::HeaderList;

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
    if let Some((content_type, _)) = request.post {
        if options::check_header_value("Content-Type", content_type).is_err() {
            return Err("invalid content type: it contains a line break or NUL".to_owned());
        }
    }
    let mut easy = pool::take().map_err(|e| format!("cannot set up a transfer: {e}"))?;
    let result = perform_on(&mut easy, request);
    pool::give_back(easy);
    result
}

fn perform_on(easy: &mut Easy2<Collector>, request: &Request<'_>) -> Result<Response, String> {
    // Out of the handle while its options change: a failure leaves no
    // stale record behind.
    let previous = easy.get_mut().target.take();
    let target = aim(easy, previous, request)?;
    easy.get_mut().start_response();
    let describe = |e: curl::Error, easy: &Easy2<Collector>| {
        error::describe(&e, easy, &target.endpoint, request.timeout).message
    };
    let prepared = match request.post {
        Some((content_type, body)) => prepare_post(easy, content_type, body).map(Some),
        None => Ok(None),
    };
    let outcome = match &prepared {
        Ok(_) => easy.perform().map_err(|e| describe(e, easy)),
        Err(e) => Err(describe(e.clone(), easy)),
    };
    let restored = if request.post.is_some() { back_to_get(easy) } else { Ok(()) };
    drop(prepared);
    let collector = easy.get_mut();
    let body = std::mem::take(&mut collector.body);
    collector.target = Some(target);
    if restored.is_err() {
        // A handle that may still point at the caller's body is not reused.
        collector.broken = true;
    }
    outcome?;
    if !collector.headers_complete {
        let endpoint = &collector.target.as_ref().expect("set above").endpoint;
        return Err(error::cut_in_headers(endpoint).message);
    }
    Ok(Response { status: easy.response_code().unwrap_or(0), body })
}

/// The URL and budget a handle's options are set to: a script that asks for
/// one URL again and again has it parsed and set once.
struct Target {
    url: String,
    endpoint: Endpoint,
    budget: Option<Duration>,
}

/// Sets the handle to `request`'s URL and budget, unless it already is.
fn aim(
    easy: &mut Easy2<Collector>,
    previous: Option<Target>,
    request: &Request<'_>,
) -> Result<Target, String> {
    if let Some(target) = previous.filter(|t| t.url == request.url) {
        if target.budget != request.timeout {
            set_budget(easy, request.timeout).map_err(|e| {
                error::describe(&e, easy, &target.endpoint, request.timeout).message
            })?;
        }
        return Ok(Target { budget: request.timeout, ..target });
    }
    let endpoint = Endpoint::parse(request.url, SCHEMES)?;
    configure_target(easy, &endpoint, request.timeout)
        .map_err(|e| error::describe(&e, easy, &endpoint, request.timeout).message)?;
    Ok(Target { url: request.url.to_owned(), endpoint, budget: request.timeout })
}

/// A new pooled handle: the options every request shares, set once.
fn new_handle() -> Result<Easy2<Collector>, curl::Error> {
    let mut easy = Easy2::new(Collector::default());
    easy.get_mut().handle = OwnHandle(easy.raw());
    configure_idle(&mut easy)?;
    Ok(easy)
}

/// The options of an idle pooled handle: a GET as the contract functions
/// make it, before a URL and a budget are set.
fn configure_idle(easy: &mut Easy2<Collector>) -> Result<(), curl::Error> {
    configure_connection(easy)?;
    easy.follow_location(true)?;
    easy.max_redirections(MAX_REDIRECTS)?;
    easy.http_version(HttpVersion::V2TLS)?;
    // "" asks for every encoding this libcurl decodes.
    easy.accept_encoding("")?;
    easy.low_speed_limit(1)?;
    easy.low_speed_time(DEFAULT_IDLE_TIMEOUT)?;
    easy.buffer_size(RECEIVE_BUFFER_SIZE)
}

/// A POST's options: its body and its header lines (returned, to be kept
/// until the transfer is over). An idle handle is a GET; `back_to_get`
/// restores that.
fn prepare_post(
    easy: &mut Easy2<Collector>,
    content_type: &[u8],
    body: &[u8],
) -> Result<HeaderList, curl::Error> {
    // An empty content type sends none, as it always has.
    let line =
        (!content_type.is_empty()).then(|| ("Content-Type".to_owned(), content_type.to_vec()));
    let list = HeaderList::new(line.iter(), true)
        .map_err(|_| curl::Error::new(curl_sys::CURLE_OUT_OF_MEMORY))?;
    set_pointer(easy, curl_sys::CURLOPT_HTTPHEADER, list.0.cast())?;
    easy.post(true)?;
    easy.post_field_size(body.len() as u64)?;
    // The body is borrowed, not copied: `perform` sends it before it
    // returns, and `back_to_get` clears the pointer right after.
    set_pointer(easy, curl_sys::CURLOPT_POSTFIELDS, body.as_ptr().cast())?;
    Ok(list)
}

/// Undoes a POST's options, so the handle holds no pointer to the caller's
/// body and its next request is a GET with no extra headers.
fn back_to_get(easy: &mut Easy2<Collector>) -> Result<(), curl::Error> {
    set_pointer(easy, curl_sys::CURLOPT_POSTFIELDS, std::ptr::null())?;
    set_pointer(easy, curl_sys::CURLOPT_HTTPHEADER, std::ptr::null())?;
    easy.get(true)
}

fn set_pointer<H>(
    easy: &mut Easy2<H>,
    option: curl_sys::CURLoption,
    value: *const std::ffi::c_void,
) -> Result<(), curl::Error> {
    // SAFETY: a valid handle, and `option` takes a pointer that libcurl
    // uses only during a transfer (callers keep it alive until then).
    let code = unsafe { curl_sys::curl_easy_setopt(easy.raw(), option, value) };
    match code {
        curl_sys::CURLE_OK => Ok(()),
        _ => Err(curl::Error::new(code)),
    }
}

/// TCP keepalive on every connection, so that a peer that vanished is
/// noticed even with no traffic: the first probe after this long idle...
pub const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
/// ...then one probe this often...
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// ...and the connection fails after this many unanswered probes (two
/// minutes after the last sign of life).
pub const KEEPALIVE_PROBES: libc::c_long = 4;

/// What every connection libcurl opens for us shares: user agent, allowed
/// protocols, trust store, connect timeout and TCP keepalive.
fn configure_connection<H>(easy: &mut Easy2<H>) -> Result<(), curl::Error> {
    const CURLOPT_PROTOCOLS_STR: curl_sys::CURLoption = curl_sys::CURLOPTTYPE_OBJECTPOINT + 318;
    const CURLOPT_TCP_KEEPCNT: curl_sys::CURLoption = curl_sys::CURLOPTTYPE_LONG + 326;
    easy.tcp_keepalive(true)?;
    easy.tcp_keepidle(KEEPALIVE_IDLE)?;
    easy.tcp_keepintvl(KEEPALIVE_INTERVAL)?;
    // SAFETY: a valid handle; this option takes a long.
    let code =
        unsafe { curl_sys::curl_easy_setopt(easy.raw(), CURLOPT_TCP_KEEPCNT, KEEPALIVE_PROBES) };
    if code != curl_sys::CURLE_OK {
        return Err(curl::Error::new(code));
    }
    easy.useragent(crate::USER_AGENT)?;
    set_pointer(easy, CURLOPT_PROTOCOLS_STR, c"http,https".as_ptr().cast())?;
    set_trust_store(easy)?;
    easy.connect_timeout(DEFAULT_CONNECT_TIMEOUT)
}

/// The process-wide trust store (see [`tls`]).
fn set_trust_store<H>(easy: &mut Easy2<H>) -> Result<(), curl::Error> {
    let trust = tls::trust_store();
    if let Some(file) = &trust.ca_file {
        easy.cainfo(file)?;
    }
    if let Some(dir) = &trust.ca_dir {
        easy.capath(dir)?;
    }
    Ok(())
}

/// A caller's trust (`verify = false`, or exactly the CAs of `ca_file`) and
/// proxy, for requests and WebSockets alike.
fn apply_trust_and_proxy<H>(
    easy: &mut Easy2<H>,
    verify: bool,
    ca_file: Option<&std::path::Path>,
    proxy: &Proxy,
) -> Result<(), curl::Error> {
    if !verify {
        easy.ssl_verify_peer(false)?;
        easy.ssl_verify_host(false)?;
    }
    if let Some(ca_file) = ca_file {
        easy.cainfo(ca_file)?;
        set_pointer(easy, curl_sys::CURLOPT_CAPATH, std::ptr::null())?;
    }
    match proxy {
        Proxy::Environment => Ok(()),
        // libcurl: an empty proxy disables the environment's.
        Proxy::Direct => easy.proxy(""),
        Proxy::Url(url) => easy.proxy(url),
    }
}

/// Where one request goes and its budget; `endpoint` is an http(s) URL.
/// http may redirect to https, https only to https.
fn configure_target<H>(
    easy: &mut Easy2<H>,
    endpoint: &Endpoint,
    budget: Option<Duration>,
) -> Result<(), curl::Error> {
    const CURLOPT_REDIR_PROTOCOLS_STR: curl_sys::CURLoption =
        curl_sys::CURLOPTTYPE_OBJECTPOINT + 319;
    easy.url(endpoint.as_str())?;
    let redirect: &std::ffi::CStr =
        if endpoint.scheme() == "https" { c"https" } else { c"http,https" };
    set_pointer(easy, CURLOPT_REDIR_PROTOCOLS_STR, redirect.as_ptr().cast())?;
    set_budget(easy, budget)
}

/// The caller's budget for the whole transfer; `None` sets none beyond the
/// connect and idle defaults (libcurl's 0).
fn set_budget<H>(easy: &mut Easy2<H>, budget: Option<Duration>) -> Result<(), curl::Error> {
    easy.timeout(budget.unwrap_or(Duration::ZERO))
}
