//! A request's header lines as libcurl takes them (a `curl_slist`), built
//! by one rule for the contract calls and the general request.

use super::error::{ErrorKind, RequestError};
use super::options::same_header;

/// A request's header lines as libcurl takes them, freed on drop.
pub(super) struct HeaderList(pub(super) *mut curl_sys::curl_slist);

// SAFETY: an owned list, only ever used by the thread that holds it.
unsafe impl Send for HeaderList {}

impl HeaderList {
    /// The caller's lines, plus, when a body is sent, the removal of the
    /// two headers libcurl would add on its own: a form `Content-Type` and
    /// `Expect: 100-continue`.
    pub(super) fn new<'a>(
        headers: impl Iterator<Item = &'a (String, Vec<u8>)>,
        has_body: bool,
    ) -> Result<HeaderList, RequestError> {
        let mut list = HeaderList(std::ptr::null_mut());
        let (mut content_type, mut expect) = (false, false);
        let mut line = Vec::new();
        for (name, value) in headers {
            content_type |= same_header(name, "Content-Type");
            expect |= same_header(name, "Expect");
            line.clear();
            line.extend_from_slice(name.as_bytes());
            // libcurl's syntax: "Name;" sends an empty value, "Name:"
            // would remove the header.
            if value.is_empty() {
                line.push(b';');
            } else {
                line.extend_from_slice(b": ");
                line.extend_from_slice(value);
            }
            list.append(&mut line)?;
        }
        if has_body && !content_type {
            list.append(&mut b"Content-Type:".to_vec())?;
        }
        if has_body && !expect {
            list.append(&mut b"Expect:".to_vec())?;
        }
        Ok(list)
    }

    fn append(&mut self, line: &mut Vec<u8>) -> Result<(), RequestError> {
        // Values were checked for NUL, CR and LF.
        line.push(0);
        // SAFETY: a NUL-terminated line, copied by libcurl; the list is
        // ours (or NULL for a new one).
        let appended = unsafe { curl_sys::curl_slist_append(self.0, line.as_ptr().cast()) };
        if appended.is_null() {
            return Err(RequestError::new(ErrorKind::Io, "out of memory for the request headers"));
        }
        self.0 = appended;
        Ok(())
    }
}

impl Drop for HeaderList {
    fn drop(&mut self) {
        // SAFETY: a list from curl_slist_append (or NULL), freed once.
        unsafe { curl_sys::curl_slist_free_all(self.0) }
    }
}
