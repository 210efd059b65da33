//! The general request behind `net.request` and `luanet_request_perform`:
//! any method, headers both ways, per-request TLS, proxy, body limit and
//! output file.
//!
//! Redirects are followed here, hop by hop on the same handle (so the
//! connection is reused), rather than by libcurl: the rules are ours and
//! browsers' — 303 becomes a GET, 301 and 302 turn a POST into a GET, 307
//! and 308 keep method and body, https never goes down to http, and
//! `Authorization`, `Cookie` and `Host` are not sent on to another origin.

use std::borrow::Borrow;
use std::ffi::{CStr, OsString};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use curl::easy::{Easy2, HttpVersion};

use super::collector::{Collector, Stop};
use super::error::{self, ErrorKind, RequestError};
use super::header_list::HeaderList;
use super::headers::ResponseHeaders;
use super::options::{same_header, Proxy, RequestOptions, Version, SCHEMES};
use super::{pool, set_pointer, set_trust_store, DEFAULT_CONNECT_TIMEOUT};
use crate::endpoint::Endpoint;

/// A response, whatever its status.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    /// The final response's status.
    pub status: u32,
    /// The final response's header lines in arrival order, names in lower
    /// case (no 1xx, no earlier redirect hop).
    pub headers: ResponseHeaders,
    /// The body; empty when it went to the output file.
    pub body: Vec<u8>,
    /// The final URL, after redirects.
    pub url: String,
    /// Redirects followed.
    pub redirects: u32,
    /// `"1.0"`, `"1.1"`, `"2"` or `"3"`, NUL-terminated for C.
    pub http_version: &'static CStr,
    /// When each phase ended.
    pub timings: Timings,
}

/// Milliseconds from the start of the request to the end of each phase,
/// each at least the one before (libcurl's `*_TIME` values, cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Name resolved.
    pub dns: f64,
    /// TCP connected.
    pub connect: f64,
    /// TLS handshake done (`connect` without TLS).
    pub tls: f64,
    /// First response byte received.
    pub first_byte: f64,
    /// Everything received.
    pub total: f64,
}

/// The statuses whose `Location` is followed.
pub(super) fn is_redirect(status: u32) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Performs `options` on the calling thread and waits for the whole
/// response. Safe to call from many threads at once.
pub fn request(options: &RequestOptions) -> Result<Reply, RequestError> {
    let mut exchange = Exchange::new(options, Instant::now())?;
    let mut easy = pool::take()
        .map_err(|e| RequestError::new(ErrorKind::Io, format!("cannot set up a transfer: {e}")))?;
    let outcome = match exchange.start(&mut easy) {
        Ok(()) => loop {
            let performed = easy.perform();
            if let Some(outcome) = exchange.hop_done(&mut easy, performed) {
                break outcome;
            }
        },
        Err(e) => Err(e),
    };
    let outcome = exchange.finish(&mut easy, outcome);
    pool::give_back(easy);
    outcome
}

/// One request from its first hop to its reply, driven hop by hop by
/// whoever performs the handle: [`request`] on the caller's thread, or the
/// I/O thread's transfers. `O` owns or borrows the options; the handle
/// points into them (body, header lines) until [`Exchange::finish`].
pub(crate) struct Exchange<O: Borrow<RequestOptions>> {
    options: O,
    started: Instant,
    output: Option<Output>,
    /// The current hop's URL once a redirect changed it.
    url: Option<Endpoint>,
    /// A redirect turned the method into a GET.
    method_reset: bool,
    dropped: Dropped,
    redirects: u32,
    /// Time spent before the current hop began.
    spent: Duration,
    /// Header lines of every hop, alive until the handle is restored.
    lists: Vec<HeaderList>,
    touched: Touched,
}

impl<O: Borrow<RequestOptions>> Exchange<O> {
    /// A request that began at `started` (its budget counts from there),
    /// with its output file created.
    pub(crate) fn new(options: O, started: Instant) -> Result<Self, RequestError> {
        let output = match &options.borrow().output {
            Some(path) => Some(Output::create(path)?),
            None => None,
        };
        Ok(Exchange {
            options,
            started,
            output,
            url: None,
            method_reset: false,
            dropped: Dropped::default(),
            redirects: 0,
            spent: Duration::ZERO,
            lists: Vec::new(),
            touched: Touched::default(),
        })
    }

    pub(crate) fn options(&self) -> &RequestOptions {
        self.options.borrow()
    }

    /// Sets `easy` up for the request and aims it at the first hop.
    pub(crate) fn start(&mut self, easy: &mut Easy2<Collector>) -> Result<(), RequestError> {
        // A handle a contract call used last may still have its budget set.
        self.touched.budget = easy.get_ref().target.as_ref().is_some_and(|t| t.budget.is_some());
        let options = self.options.borrow();
        apply(easy, options).map_err(|e| self.fail(e, easy))?;
        let collector = easy.get_mut();
        collector.headers = Some(ResponseHeaders::with_room());
        collector.following = options.follow_redirects;
        collector.limit = options.max_body_bytes;
        collector.sink = self.output.as_mut().and_then(|output| output.file.take());
        self.aim(easy)
    }

    fn url(&self) -> &Endpoint {
        self.url.as_ref().unwrap_or(&self.options().url)
    }

    fn method(&self) -> &str {
        if self.method_reset {
            "GET"
        } else {
            &self.options().method
        }
    }

    fn fail(&self, e: curl::Error, easy: &Easy2<Collector>) -> RequestError {
        error::describe_hop(&e, easy, self.url(), self.options().timeout, self.spent)
    }

    /// Aims `easy` at the current hop, within what is left of the budget.
    fn aim(&mut self, easy: &mut Easy2<Collector>) -> Result<(), RequestError> {
        let options = self.options.borrow();
        self.spent = self.started.elapsed();
        let budget = match options.timeout {
            Some(total) if self.spent >= total => return Err(error::out_of_budget(total)),
            Some(total) => total - self.spent,
            None => Duration::ZERO,
        };
        let body = if self.dropped.body { None } else { options.body.as_deref() };
        let sent = sent_body(self.method(), body);
        let headers = options.headers.iter().filter(|(name, _)| !self.dropped.drops(name));
        let list = HeaderList::new(headers, sent.is_some())?;
        let mut touched = std::mem::take(&mut self.touched);
        let hop = Hop { url: self.url(), method: self.method(), body: sent, budget };
        let aimed = aim_hop(easy, &hop, &list, &mut touched);
        self.touched = touched;
        aimed.map_err(|e| self.fail(e, easy))?;
        self.lists.push(list);
        easy.get_mut().start_response();
        Ok(())
    }

    /// After a hop's transfer ended with `performed`: the request's outcome,
    /// or `None` when `easy` is aimed at the next hop, to be performed.
    pub(crate) fn hop_done(
        &mut self,
        easy: &mut Easy2<Collector>,
        performed: Result<(), curl::Error>,
    ) -> Option<Result<Reply, RequestError>> {
        match self.next_hop(easy, performed) {
            Ok(Some(reply)) => Some(Ok(reply)),
            Ok(None) => self.aim(easy).err().map(Err),
            Err(e) => Some(Err(e)),
        }
    }

    fn next_hop(
        &mut self,
        easy: &mut Easy2<Collector>,
        performed: Result<(), curl::Error>,
    ) -> Result<Option<Reply>, RequestError> {
        let options = self.options.borrow();
        if let Some(stop) = easy.get_mut().stop.take() {
            return Err(stopped(stop, options));
        }
        performed.map_err(|e| self.fail(e, easy))?;
        if !easy.get_ref().headers_complete {
            return Err(error::cut_in_headers(self.url()));
        }
        let status = easy.response_code().unwrap_or(0);
        let location = match options.follow_redirects && is_redirect(status) {
            true => easy.redirect_url().ok().flatten().map(str::to_owned),
            false => None,
        };
        let Some(location) = location else {
            let collector = easy.get_mut();
            return Ok(Some(Reply {
                status,
                headers: collector.headers.take().unwrap_or_default(),
                body: std::mem::take(&mut collector.body),
                url: self.url().as_str().to_owned(),
                redirects: self.redirects,
                http_version: version_name(easy),
                timings: timings(easy, self.spent),
            }));
        };
        if self.redirects == options.max_redirects {
            return Err(RequestError::new(
                ErrorKind::Redirect,
                error::too_many_redirects(options.max_redirects),
            ));
        }
        let next = redirect_target(self.url(), &location)?;
        if !keeps_method(status, self.method()) {
            if self.method() != "HEAD" {
                self.method_reset = true;
            }
            self.dropped.body = true;
        }
        if !same_origin(self.url(), &next) {
            self.dropped.origin = true;
        }
        self.url = Some(next);
        self.redirects += 1;
        Ok(None)
    }

    /// Puts `easy` back to an idle GET (no pointer into the options or the
    /// header lines remains) and commits the output file on success.
    pub(crate) fn finish(
        self,
        easy: &mut Easy2<Collector>,
        outcome: Result<Reply, RequestError>,
    ) -> Result<Reply, RequestError> {
        let restored = restore(easy, self.options.borrow(), &self.touched);
        let collector = easy.get_mut();
        collector.plain();
        collector.target = None;
        collector.broken |= restored.is_err();
        drop(self.lists);
        let reply = outcome?;
        match self.output {
            Some(output) => output.commit().map(|()| reply),
            None => Ok(reply),
        }
    }
}

/// Which per-hop options a request set beyond an idle handle's, so that
/// only those are set again and undone.
#[derive(Default)]
struct Touched {
    /// A method other than a plain GET (custom request, body, HEAD).
    method: bool,
    /// A timeout for the whole transfer.
    budget: bool,
    /// Header lines.
    headers: bool,
}

/// The options that stay the same on every hop.
fn apply(easy: &mut Easy2<Collector>, options: &RequestOptions) -> Result<(), curl::Error> {
    easy.follow_location(false)?;
    if let Some(timeout) = options.connect_timeout {
        easy.connect_timeout(timeout)?;
    }
    super::apply_trust_and_proxy(easy, options.verify, options.ca_file.as_deref(), &options.proxy)?;
    if let Some(cert) = &options.client_cert {
        easy.ssl_cert(cert)?;
    }
    if let Some(key) = &options.client_key {
        easy.ssl_key(key)?;
    }
    match options.http_version {
        None => Ok(()),
        Some(Version::Http11) => easy.http_version(HttpVersion::V11),
        Some(Version::Http2) => easy.http_version(HttpVersion::V2),
    }
}

/// Undoes what [`apply`] and [`aim_hop`] set, option by option (cheaper
/// than `curl_easy_reset` and setting every idle option again).
fn restore(
    easy: &mut Easy2<Collector>,
    options: &RequestOptions,
    touched: &Touched,
) -> Result<(), curl::Error> {
    if touched.headers {
        set_pointer(easy, curl_sys::CURLOPT_HTTPHEADER, std::ptr::null())?;
    }
    if touched.method {
        set_pointer(easy, curl_sys::CURLOPT_POSTFIELDS, std::ptr::null())?;
        set_pointer(easy, curl_sys::CURLOPT_CUSTOMREQUEST, std::ptr::null())?;
        easy.get(true)?;
    }
    if touched.budget {
        easy.timeout(Duration::ZERO)?;
    }
    easy.follow_location(true)?;
    if options.connect_timeout.is_some() {
        easy.connect_timeout(DEFAULT_CONNECT_TIMEOUT)?;
    }
    if !options.verify {
        easy.ssl_verify_peer(true)?;
        easy.ssl_verify_host(true)?;
    }
    if options.ca_file.is_some() {
        set_pointer(easy, curl_sys::CURLOPT_CAINFO, std::ptr::null())?;
        set_trust_store(easy)?;
    }
    if options.client_cert.is_some() || options.client_key.is_some() {
        set_pointer(easy, curl_sys::CURLOPT_SSLCERT, std::ptr::null())?;
        set_pointer(easy, curl_sys::CURLOPT_SSLKEY, std::ptr::null())?;
    }
    if options.proxy != Proxy::Environment {
        set_pointer(easy, curl_sys::CURLOPT_PROXY, std::ptr::null())?;
    }
    if options.http_version.is_some() {
        easy.http_version(HttpVersion::V2TLS)?;
    }
    Ok(())
}

/// One hop's URL, method, body, header lines and what is left of the
/// budget (zero: none), recording in `touched` what it set.
fn aim_hop(
    easy: &mut Easy2<Collector>,
    hop: &Hop<'_>,
    list: &HeaderList,
    touched: &mut Touched,
) -> Result<(), curl::Error> {
    easy.url(hop.url.as_str())?;
    if touched.budget || !hop.budget.is_zero() {
        easy.timeout(hop.budget)?;
        touched.budget = !hop.budget.is_zero();
    }
    let plain_get = hop.method == "GET" && hop.body.is_none();
    if touched.method {
        set_pointer(easy, curl_sys::CURLOPT_CUSTOMREQUEST, std::ptr::null())?;
        set_pointer(easy, curl_sys::CURLOPT_POSTFIELDS, std::ptr::null())?;
        if plain_get {
            easy.get(true)?;
        }
    }
    touched.method = !plain_get;
    match hop.body {
        _ if plain_get => {}
        _ if hop.method == "HEAD" => easy.nobody(true)?,
        None => {
            easy.get(true)?;
            easy.custom_request(hop.method)?;
        }
        Some(body) => {
            easy.post(true)?;
            easy.post_field_size(body.len() as u64)?;
            // Borrowed, not copied: the caller's options outlive the
            // transfer, and `request` restores the handle right after.
            set_pointer(easy, curl_sys::CURLOPT_POSTFIELDS, body.as_ptr().cast())?;
            if hop.method != "POST" {
                easy.custom_request(hop.method)?;
            }
        }
    }
    if touched.headers || !list.0.is_null() {
        set_pointer(easy, curl_sys::CURLOPT_HTTPHEADER, list.0.cast())?;
        touched.headers = !list.0.is_null();
    }
    Ok(())
}

/// The caller's headers a redirect has dropped.
#[derive(Default)]
struct Dropped {
    /// Those about the body, since the body went.
    body: bool,
    /// Those bound to the first origin, since the chain left it.
    origin: bool,
}

impl Dropped {
    fn drops(&self, name: &str) -> bool {
        (self.body && is_body_header(name)) || (self.origin && is_origin_bound(name))
    }
}

/// Where one hop goes and what it sends.
struct Hop<'a> {
    url: &'a Endpoint,
    method: &'a str,
    body: Option<&'a [u8]>,
    /// What is left of the budget; zero: none.
    budget: Duration,
}

/// The body a hop sends: POST, PUT and PATCH send one, if only an empty
/// one (`Content-Length: 0`, which servers expect); HEAD never does.
fn sent_body<'a>(method: &str, body: Option<&'a [u8]>) -> Option<&'a [u8]> {
    match method {
        "HEAD" => None,
        "POST" | "PUT" | "PATCH" => Some(body.unwrap_or_default()),
        _ => body,
    }
}

/// Where a `Location` leads, if the rules allow going there.
fn redirect_target(from: &Endpoint, location: &str) -> Result<Endpoint, RequestError> {
    let next =
        Endpoint::parse(location, SCHEMES).map_err(|e| match location.split_once("://") {
            Some((scheme, _)) if !SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) => {
                RequestError::new(
                    ErrorKind::Redirect,
                    error::forbidden_scheme(&scheme.to_ascii_lowercase()),
                )
            }
            _ => RequestError::new(ErrorKind::Protocol, format!("invalid redirect: {e}")),
        })?;
    if from.scheme() == "https" && next.scheme() == "http" {
        return Err(RequestError::new(
            ErrorKind::Redirect,
            "redirect from https to http refused".to_owned(),
        ));
    }
    Ok(next)
}

/// Whether the next hop keeps the method and body: 307 and 308 always; 301
/// and 302 except for a POST (which becomes a GET, as in browsers); 303
/// never (a HEAD stays a HEAD).
fn keeps_method(status: u32, method: &str) -> bool {
    match status {
        301 | 302 => method != "POST",
        303 => method == "GET",
        _ => true,
    }
}

/// Headers about the body, dropped with it.
fn is_body_header(name: &str) -> bool {
    ["Content-Type", "Content-Length", "Content-Encoding", "Content-Language", "Content-Location"]
        .iter()
        .any(|h| same_header(name, h))
}

/// Headers bound to the first origin, never sent on to another: the
/// credentials, and a `Host` the caller set.
fn is_origin_bound(name: &str) -> bool {
    ["Authorization", "Cookie", "Host"].iter().any(|h| same_header(name, h))
}

/// Same scheme, host and port.
fn same_origin(a: &Endpoint, b: &Endpoint) -> bool {
    a.scheme() == b.scheme() && a.authority().eq_ignore_ascii_case(&b.authority())
}

fn stopped(stop: Stop, options: &RequestOptions) -> RequestError {
    match stop {
        Stop::TooLarge => RequestError::new(
            ErrorKind::TooLarge,
            format!("response body larger than {} bytes", options.max_body_bytes.unwrap_or(0)),
        ),
        Stop::Output(e) => {
            RequestError::new(ErrorKind::Io, format!("cannot write the output file: {e}"))
        }
    }
}

fn version_name(easy: &Easy2<Collector>) -> &'static CStr {
    const CURLINFO_HTTP_VERSION: curl_sys::CURLINFO = curl_sys::CURLINFO_LONG + 46;
    let mut version: libc::c_long = 0;
    // SAFETY: a valid handle and an out-pointer of the documented type.
    unsafe { curl_sys::curl_easy_getinfo(easy.raw(), CURLINFO_HTTP_VERSION, &mut version) };
    match version {
        1 => c"1.0",
        3 => c"2",
        30 => c"3",
        _ => c"1.1",
    }
}

/// libcurl's phase times of the last hop, shifted by the time spent before
/// it, and made monotonic (a reused connection reports its phases as 0).
fn timings(easy: &Easy2<Collector>, before: Duration) -> Timings {
    let at = |phase: Result<Duration, curl::Error>| {
        (before + phase.unwrap_or_default()).as_secs_f64() * 1000.0
    };
    let dns = at(easy.namelookup_time());
    let connect = dns.max(at(easy.connect_time()));
    let tls = connect.max(at(easy.appconnect_time()));
    let first_byte = tls.max(at(easy.starttransfer_time()));
    let total = first_byte.max(at(easy.total_time()));
    Timings { dns, connect, tls, first_byte, total }
}

/// The output file: written as `<path>.part`, renamed to `<path>` once the
/// transfer succeeded, removed otherwise. An existing `<path>` is never
/// touched by a failed transfer.
struct Output {
    part: PathBuf,
    path: PathBuf,
    /// The open `.part` file, until the transfer takes it.
    file: Option<File>,
}

impl Output {
    /// The output, its `.part` file open.
    fn create(path: &Path) -> Result<Output, RequestError> {
        let mut part = OsString::from(path.as_os_str());
        part.push(".part");
        let part = PathBuf::from(part);
        let file = File::create(&part).map_err(|e| {
            RequestError::new(ErrorKind::Io, format!("cannot create '{}': {e}", part.display()))
        })?;
        Ok(Output { part, path: path.to_owned(), file: Some(file) })
    }

    fn commit(mut self) -> Result<(), RequestError> {
        std::fs::rename(&self.part, &self.path).map_err(|e| {
            RequestError::new(
                ErrorKind::Io,
                format!(
                    "cannot rename '{}' to '{}': {e}",
                    self.part.display(),
                    self.path.display()
                ),
            )
        })?;
        self.part = PathBuf::new();
        Ok(())
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if !self.part.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.part);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint::parse(url, SCHEMES).unwrap()
    }

    #[test]
    fn methods_across_redirects() {
        for status in [307, 308] {
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"] {
                assert!(keeps_method(status, method), "{status} {method}");
            }
        }
        for status in [301, 302] {
            assert!(!keeps_method(status, "POST"));
            assert!(keeps_method(status, "PUT"));
            assert!(keeps_method(status, "GET"));
        }
        assert!(!keeps_method(303, "PUT"));
        assert!(!keeps_method(303, "POST"));
        assert!(!keeps_method(303, "HEAD"));
        assert!(keeps_method(303, "GET"));
    }

    #[test]
    fn redirect_targets() {
        let https = endpoint("https://a.example/x");
        assert_eq!(
            redirect_target(&https, "https://b.example/y").unwrap().as_str(),
            "https://b.example/y"
        );
        let down = redirect_target(&https, "http://a.example/").unwrap_err();
        assert_eq!(
            down,
            RequestError::new(ErrorKind::Redirect, "redirect from https to http refused")
        );
        let ftp = redirect_target(&https, "FTP://a.example/f").unwrap_err();
        assert_eq!(
            ftp,
            RequestError::new(ErrorKind::Redirect, "redirect to a forbidden scheme (ftp) refused")
        );
        assert_eq!(redirect_target(&https, "http://[::1").unwrap_err().kind, ErrorKind::Protocol);
        let plain = endpoint("http://a.example/");
        assert!(redirect_target(&plain, "https://a.example/").is_ok());
    }

    #[test]
    fn origins_and_credentials() {
        let a = endpoint("http://a.example/x");
        assert!(same_origin(&a, &endpoint("http://A.example:80/other")));
        assert!(!same_origin(&a, &endpoint("http://a.example:8080/")));
        assert!(!same_origin(&a, &endpoint("https://a.example/")));
        assert!(!same_origin(&a, &endpoint("http://b.example/")));
        assert!(is_origin_bound("authorization") && is_origin_bound("COOKIE"));
        assert!(is_origin_bound("Host") && !is_origin_bound("X-Authorization"));
        assert!(is_body_header("content-type") && !is_body_header("Accept"));
    }

    #[test]
    fn an_output_file_appears_only_on_commit() {
        let dir = std::env::temp_dir().join(format!("luanet-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("body");
        std::fs::write(&path, b"old").unwrap();
        let failed = Output::create(&path).unwrap();
        assert!(dir.join("body.part").exists());
        drop(failed);
        assert!(!dir.join("body.part").exists());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let mut done = Output::create(&path).unwrap();
        let mut file = done.file.take().unwrap();
        std::io::Write::write_all(&mut file, b"new").unwrap();
        drop(file);
        done.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert!(!dir.join("body.part").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
