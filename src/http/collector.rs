//! A pooled handle's own state, filled by libcurl's callbacks: the body
//! (in memory or in a file, under a size limit), the final response's
//! header lines, and where the handle is set to go.

use std::fs::File;
use std::io::Write;
use std::sync::Arc;

use curl::easy::{Handler, WriteError};

use super::fetch::{Progress, Pushed, Shared};
use super::headers::ResponseHeaders;
use super::Target;

/// The most a `Content-Length` may make us reserve up front; a larger body
/// still arrives, it just grows as it comes.
const MAX_RESERVE: usize = 256 << 20;
/// The most body buffer an idle handle keeps.
const KEPT_BODY_CAPACITY: usize = 64 << 10;
/// Bodies from this size on ask for huge pages.
const HUGE_PAGE_BODY: usize = 8 << 20;

#[derive(Default)]
pub(crate) struct Collector {
    pub(super) body: Vec<u8>,
    /// Body bytes go here instead of `body`.
    pub(super) sink: Option<File>,
    /// A body larger than this stops the transfer.
    pub(super) limit: Option<u64>,
    /// Body bytes of the current response so far.
    pub(super) received: u64,
    /// Why the write callback refused data, when it did.
    pub(super) stop: Option<Stop>,
    /// `Some`: keep the current response's header lines.
    pub(super) headers: Option<ResponseHeaders>,
    /// The status of the current header section.
    pub(super) status: u32,
    /// A status line was seen and its blank line not yet.
    in_section: bool,
    /// The last header section began ended with its blank line. libcurl
    /// counts a response cut inside its headers as a success; RFC 9112
    /// section 8 calls it incomplete.
    pub(super) headers_complete: bool,
    /// Redirects will be followed: a redirect's body is dropped, not kept.
    pub(super) following: bool,
    /// The current response is a redirect being followed.
    discard: bool,
    pub(super) target: Option<Target>,
    /// A non-blocking request's shared state: progress goes there, and with
    /// `stream` the body too.
    pub(super) fetch: Option<Arc<Shared>>,
    /// The current response's `Content-Length` once its headers are in
    /// (`Some(None)`: it announced none), for progress.
    announced: Option<Option<u64>>,
    /// The handle could not be put back in its idle state; drop it.
    pub(super) broken: bool,
    pub(super) handle: OwnHandle,
}

/// Why a transfer was stopped from the write callback.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The body passed `limit`.
    TooLarge,
    /// Writing the output file failed.
    Output(std::io::Error),
}

impl Collector {
    /// Ready for a new response on the same request (a redirect's next hop).
    pub(super) fn start_response(&mut self) {
        self.body.clear();
        self.received = 0;
        self.stop = None;
        self.status = 0;
        self.in_section = false;
        self.headers_complete = false;
        self.discard = false;
        self.announced = None;
        if let Some(headers) = &mut self.headers {
            headers.clear();
        }
    }

    /// Back to what the contract functions expect: body in memory, no
    /// limit, no header lines kept. A large body buffer left by a failed
    /// or cancelled transfer is not kept with the idle handle.
    pub(super) fn plain(&mut self) {
        if self.body.capacity() > KEPT_BODY_CAPACITY {
            self.body = Vec::new();
        }
        self.sink = None;
        self.limit = None;
        self.headers = None;
        self.following = false;
        self.start_response();
    }

    /// Whether the section that just ended is a redirect that will be
    /// followed: then its body is not the caller's.
    fn is_followed_redirect(&self) -> bool {
        let has_location = self.headers.as_ref().is_some_and(|h| h.contains(b"location"));
        self.following && super::request::is_redirect(self.status) && has_location
    }

    fn keep_header_line(&mut self, line: &[u8]) {
        let Some(headers) = &mut self.headers else { return };
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // An obsolete folded line continues the previous value.
            headers.continue_last(line.trim_ascii());
            return;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            headers.push(&line[..colon], line[colon + 1..].trim_ascii());
        }
    }
}

/// The code in a status line (`HTTP/1.1 200 OK`, `HTTP/2 204`).
fn status_code(line: &[u8]) -> u32 {
    let code = line.split(|&b| b == b' ').nth(1).unwrap_or_default();
    std::str::from_utf8(code).ok().and_then(|c| c.trim().parse().ok()).unwrap_or(0)
}

impl Handler for Collector {
    /// On the first piece in memory, reserves the announced body size at
    /// once: no reallocation while a large body arrives, and no doubled
    /// capacity at its peak.
    fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
        if self.discard {
            return Ok(data.len());
        }
        let received = self.received + data.len() as u64;
        if self.limit.is_some_and(|limit| received > limit) {
            self.stop = Some(Stop::TooLarge);
            return Ok(0);
        }
        if let Some(fetch) = self.fetch.as_ref().filter(|f| f.is_streaming()) {
            // A paused piece comes again on resume: counted then.
            if fetch.push(data) == Pushed::Pause {
                return Err(WriteError::Pause);
            }
            self.received = received;
            return Ok(data.len());
        }
        self.received = received;
        if let Some(file) = &mut self.sink {
            if let Err(e) = file.write_all(data) {
                self.stop = Some(Stop::Output(e));
                return Ok(0);
            }
            return Ok(data.len());
        }
        if self.body.capacity() == 0 {
            if let Some(length) = self.handle.content_length() {
                let length = self.limit.map_or(length, |l| length.min(l as usize));
                reserve_body(&mut self.body, length.min(MAX_RESERVE));
            }
        }
        self.body.extend_from_slice(data);
        Ok(data.len())
    }

    /// libcurl's counters, as bytes come off the wire (before decoding).
    fn progress(&mut self, dltotal: f64, dlnow: f64, ultotal: f64, ulnow: f64) -> bool {
        if let Some(fetch) = &self.fetch {
            let total = |t: f64| (t > 0.0).then_some(t as u64);
            // libcurl says 0 for both "none" and "0 bytes": asked once.
            if self.headers_complete && self.announced.is_none() {
                self.announced = Some(self.handle.content_length().map(|l| l as u64));
            }
            let receive_total = total(dltotal).or(self.announced.flatten());
            fetch.set_progress(Progress {
                received: dlnow as u64,
                receive_total,
                sent: ulnow as u64,
                send_total: total(ultotal),
            });
        }
        true
    }

    /// Sees every header line, of every response (1xx, redirects, the
    /// proxy's answer to CONNECT): a status line opens a section, a blank
    /// line closes it. Lines after that (trailers) are not kept.
    fn header(&mut self, line: &[u8]) -> bool {
        if line.starts_with(b"HTTP/") {
            self.headers_complete = false;
            self.in_section = true;
            self.status = status_code(line);
            if let Some(headers) = &mut self.headers {
                headers.clear();
            }
        } else if line == b"\r\n" || line == b"\n" {
            self.headers_complete = true;
            self.in_section = false;
            self.discard = self.is_followed_redirect();
        } else if self.in_section {
            self.keep_header_line(line);
        }
        true
    }
}

/// Reserves exactly `length` bytes. A large body asks the kernel for huge
/// pages: filling fresh memory 4 KiB page fault by page fault costs more
/// than copying the bytes.
fn reserve_body(body: &mut Vec<u8>, length: usize) {
    body.reserve_exact(length);
    if length < HUGE_PAGE_BODY {
        return;
    }
    const HUGE_PAGE: usize = 2 << 20;
    let start = body.as_mut_ptr() as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    let end = (start + body.capacity()) & !(HUGE_PAGE - 1);
    if end > aligned {
        // SAFETY: advice only, on whole pages inside the vector's own
        // allocation; its contents are untouched. Failure (no THP) is fine.
        unsafe { libc::madvise(aligned as *mut libc::c_void, end - aligned, libc::MADV_HUGEPAGE) };
    }
}

/// The libcurl handle a [`Collector`] belongs to, for asking it about the
/// transfer in progress from inside a callback.
pub(crate) struct OwnHandle(pub(super) *mut curl_sys::CURL);

// SAFETY: used only from the owning handle's callbacks, on whichever thread
// performs that handle; the handle itself moves between threads with it.
unsafe impl Send for OwnHandle {}

impl Default for OwnHandle {
    fn default() -> Self {
        OwnHandle(std::ptr::null_mut())
    }
}

impl OwnHandle {
    /// The response's `Content-Length`, when it announced one.
    fn content_length(&self) -> Option<usize> {
        // CURLINFO_OFF_T + 15; not in curl-sys.
        const CURLINFO_CONTENT_LENGTH_DOWNLOAD_T: curl_sys::CURLINFO = 0x60_0000 + 15;
        if self.0.is_null() {
            return None;
        }
        let mut length: curl_sys::curl_off_t = -1;
        // SAFETY: a live handle (we are inside its callback) and an
        // out-pointer of the documented type.
        let code = unsafe {
            curl_sys::curl_easy_getinfo(self.0, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &mut length)
        };
        (code == curl_sys::CURLE_OK).then(|| usize::try_from(length).ok()).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(collector: &mut Collector, lines: &[&[u8]]) {
        for line in lines {
            assert!(collector.header(line));
        }
    }

    #[test]
    fn keeps_the_last_sections_lines_with_lower_case_names() {
        let mut c = Collector { headers: Some(ResponseHeaders::default()), ..Collector::default() };
        section(&mut c, &[b"HTTP/1.1 100 Continue\r\n", b"\r\n"]);
        section(
            &mut c,
            &[
                b"HTTP/1.1 200 OK\r\n",
                b"Set-Cookie: a=1\r\n",
                b"X-Long: one\r\n",
                b"  two\r\n",
                b"set-cookie:b=2  \r\n",
                b"\r\n",
                b"X-Trailer: late\r\n",
            ],
        );
        assert_eq!(c.status, 200);
        assert!(c.headers_complete);
        let kept: Vec<(&[u8], &[u8])> = c.headers.as_ref().unwrap().iter().collect();
        assert_eq!(
            kept,
            [(&b"set-cookie"[..], &b"a=1"[..]), (b"x-long", b"one two"), (b"set-cookie", b"b=2")]
        );
    }

    #[test]
    fn a_section_cut_short_is_incomplete() {
        let mut c = Collector::default();
        section(&mut c, &[b"HTTP/2 204\r\n", b"content-length: 0\r\n"]);
        assert_eq!(c.status, 204);
        assert!(!c.headers_complete);
    }

    #[test]
    fn a_followed_redirects_body_is_dropped_and_the_limit_counts_the_rest() {
        let mut c = Collector {
            headers: Some(ResponseHeaders::default()),
            following: true,
            limit: Some(5),
            ..Collector::default()
        };
        section(&mut c, &[b"HTTP/1.1 302 Found\r\n", b"Location: /x\r\n", b"\r\n"]);
        assert_eq!(c.write(b"moved permanently").ok(), Some(17));
        assert!(c.body.is_empty() && c.stop.is_none());
        c.start_response();
        section(&mut c, &[b"HTTP/1.1 200 OK\r\n", b"\r\n"]);
        assert_eq!(c.write(b"12345").ok(), Some(5));
        assert_eq!(c.write(b"6").ok(), Some(0));
        assert!(matches!(c.stop, Some(Stop::TooLarge)));
        assert_eq!(c.body, b"12345");
    }

    #[test]
    fn a_redirect_without_location_or_not_followed_is_kept() {
        let mut c = Collector {
            headers: Some(ResponseHeaders::default()),
            following: true,
            ..Collector::default()
        };
        section(&mut c, &[b"HTTP/1.1 302 Found\r\n", b"\r\n"]);
        assert_eq!(c.write(b"here").ok(), Some(4));
        assert_eq!(c.body, b"here");
        let mut c = Collector { headers: Some(ResponseHeaders::default()), ..Collector::default() };
        section(&mut c, &[b"HTTP/1.1 301 Moved\r\n", b"Location: /x\r\n", b"\r\n"]);
        assert_eq!(c.write(b"here").ok(), Some(4));
        assert_eq!(c.body, b"here");
    }
}
