//! The header lines of a response, in one buffer: every name (in lower
//! case) and every value is followed by a NUL, so that C can borrow them as
//! strings, and a response costs two allocations however many lines it has.

use std::borrow::Cow;

/// A response's header lines in arrival order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseHeaders {
    bytes: Vec<u8>,
    lines: Vec<Line>,
}

/// Where one line's name and value are in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line {
    name: usize,
    value: usize,
    value_len: usize,
}

impl ResponseHeaders {
    /// Room for a typical response's lines, so they rarely grow.
    pub(crate) fn with_room() -> ResponseHeaders {
        ResponseHeaders { bytes: Vec::with_capacity(512), lines: Vec::with_capacity(16) }
    }

    /// The number of lines.
    pub fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.lines.clear();
    }

    /// Adds a line; the name is stored in lower case.
    pub(crate) fn push(&mut self, name: &[u8], value: &[u8]) {
        let start = self.bytes.len();
        self.bytes.extend(name.iter().map(u8::to_ascii_lowercase));
        self.bytes.push(0);
        let value_start = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.bytes.push(0);
        self.lines.push(Line { name: start, value: value_start, value_len: value.len() });
    }

    /// Continues the last line's value (an obsolete folded line), joined by
    /// a space.
    pub(crate) fn continue_last(&mut self, more: &[u8]) {
        let Some(last) = self.lines.last_mut() else { return };
        self.bytes.pop();
        self.bytes.push(b' ');
        self.bytes.extend_from_slice(more);
        self.bytes.push(0);
        last.value_len += 1 + more.len();
    }

    /// Line `i`'s name, lower case.
    pub fn name(&self, i: usize) -> &[u8] {
        let line = self.lines[i];
        &self.bytes[line.name..line.value - 1]
    }

    /// Line `i`'s value.
    pub fn value(&self, i: usize) -> &[u8] {
        let line = self.lines[i];
        &self.bytes[line.value..line.value + line.value_len]
    }

    /// Line `i`'s name with the NUL after it.
    pub fn name_with_nul(&self, i: usize) -> &[u8] {
        let line = self.lines[i];
        &self.bytes[line.name..line.value]
    }

    /// Line `i`'s value with the NUL after it.
    pub fn value_with_nul(&self, i: usize) -> &[u8] {
        let line = self.lines[i];
        &self.bytes[line.value..=line.value + line.value_len]
    }

    /// The lines as (name, value).
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        (0..self.len()).map(|i| (self.name(i), self.value(i)))
    }

    /// Whether a line has this (lower-case) name.
    pub fn contains(&self, name: &[u8]) -> bool {
        (0..self.len()).any(|i| self.name(i) == name)
    }

    /// The by-name view, one entry per name in order of first arrival:
    /// `None` for a line whose name came earlier, else the value, with the
    /// values of later lines of the same name joined on with `", "`.
    pub fn joined_at(&self, i: usize) -> Option<Cow<'_, [u8]>> {
        let name = self.name(i);
        if (0..i).any(|j| self.name(j) == name) {
            return None;
        }
        let mut joined = Cow::Borrowed(self.value(i));
        for j in i + 1..self.len() {
            if self.name(j) == name {
                let all = joined.to_mut();
                all.extend_from_slice(b", ");
                all.extend_from_slice(self.value(j));
            }
        }
        Some(joined)
    }

    /// The first line named `name` (any case), if any.
    pub fn position(&self, name: &[u8]) -> Option<usize> {
        (0..self.len()).find(|&i| self.name(i).eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_names_values_and_their_nuls() {
        let mut h = ResponseHeaders::default();
        h.push(b"Set-Cookie", b"a=1");
        h.push(b"X-Long", b"one");
        h.continue_last(b"two");
        h.push(b"set-cookie", b"");
        assert_eq!(h.len(), 3);
        let lines: Vec<_> = h.iter().collect();
        assert_eq!(
            lines,
            [(&b"set-cookie"[..], &b"a=1"[..]), (b"x-long", b"one two"), (b"set-cookie", b"")]
        );
        assert_eq!(h.name_with_nul(1), b"x-long\0");
        assert_eq!(h.value_with_nul(1), b"one two\0");
        assert_eq!(h.value_with_nul(2), b"\0");
        assert!(h.contains(b"x-long") && !h.contains(b"X-Long"));
        assert_eq!(h.position(b"X-LONG"), Some(1));
        assert_eq!(h.position(b"none"), None);
    }

    #[test]
    fn repeated_names_join_in_arrival_order() {
        let mut h = ResponseHeaders::default();
        h.push(b"set-cookie", b"a=1");
        h.push(b"x", b"1");
        h.push(b"Set-Cookie", b"b=2");
        assert_eq!(h.joined_at(0).as_deref(), Some(&b"a=1, b=2"[..]));
        assert!(matches!(h.joined_at(1), Some(Cow::Borrowed(b"1"))));
        assert_eq!(h.joined_at(2), None);
        h.clear();
        assert!(h.is_empty());
    }
}
