//! The header lines of a response, in one buffer: every name (in lower
//! case) and every value is followed by a NUL, so that C can borrow them as
//! strings, and a response costs two allocations however many lines it has.

use std::borrow::Cow;
use std::collections::hash_map::{Entry, HashMap};

/// Up to this many lines, repeated names are found by scanning.
const SCAN_LINES: usize = 32;

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

    /// The by-name view, one entry per line: `None` for a line whose name
    /// came earlier, else its value with the values of later lines of the
    /// same name joined on with `", "`. Linear in the number of lines, so a
    /// response with a hundred thousand tiny lines costs no more than its
    /// size.
    pub fn joined(&self) -> Vec<Option<Cow<'_, [u8]>>> {
        let mut joined: Vec<Option<Cow<'_, [u8]>>> = Vec::with_capacity(self.len());
        let mut first: HashMap<&[u8], usize> = HashMap::new();
        for i in 0..self.len() {
            let name = self.name(i);
            // Few lines: a scan is cheaper than hashing.
            let earlier = if self.len() <= SCAN_LINES {
                (0..i).find(|&j| self.name(j) == name)
            } else {
                match first.entry(name) {
                    Entry::Occupied(entry) => Some(*entry.get()),
                    Entry::Vacant(entry) => {
                        entry.insert(i);
                        None
                    }
                }
            };
            match earlier {
                Some(j) => {
                    let all = joined[j].as_mut().expect("a first line has a value").to_mut();
                    all.extend_from_slice(b", ");
                    all.extend_from_slice(self.value(i));
                    joined.push(None);
                }
                None => joined.push(Some(Cow::Borrowed(self.value(i)))),
            }
        }
        joined
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
    fn many_lines_join_as_few_do() {
        let mut h = ResponseHeaders::default();
        for i in 0..1000 {
            h.push(if i % 2 == 0 { b"a" } else { b"b" }, i.to_string().as_bytes());
        }
        let joined = h.joined();
        let evens: Vec<String> = (0..1000).step_by(2).map(|i: i32| i.to_string()).collect();
        assert_eq!(joined[0].as_deref(), Some(evens.join(", ").as_bytes()));
        assert!(joined[1].as_deref().unwrap().starts_with(b"1, 3, 5"));
        assert_eq!(joined.iter().filter(|v| v.is_some()).count(), 2);
    }

    #[test]
    fn repeated_names_join_in_arrival_order() {
        let mut h = ResponseHeaders::default();
        h.push(b"set-cookie", b"a=1");
        h.push(b"x", b"1");
        h.push(b"Set-Cookie", b"b=2");
        let joined = h.joined();
        assert_eq!(joined[0].as_deref(), Some(&b"a=1, b=2"[..]));
        assert!(matches!(joined[1], Some(Cow::Borrowed(b"1"))));
        assert_eq!(joined[2], None);
        h.clear();
        assert!(h.is_empty());
    }
}
