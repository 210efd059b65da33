//! What a general request ([`super::request`]) may ask for, and the rules
//! its parts obey. The Lua option table and the C request object both build
//! a [`RequestOptions`] through these checks, so they reject the same
//! inputs with the same words.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use crate::endpoint::Endpoint;

/// The schemes a request may use, first URL or redirect.
pub const SCHEMES: &[&str] = &["http", "https"];

/// A request's URL, checked: http or https, with a host. A script that
/// asks for one URL again and again has it parsed once per thread.
pub fn parse_url(raw: &str) -> Result<Endpoint, String> {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(String, Endpoint)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        if let Some((url, endpoint)) = &*last.borrow() {
            if url == raw {
                return Ok(endpoint.clone());
            }
        }
        let endpoint = Endpoint::parse(raw, SCHEMES)?;
        *last.borrow_mut() = Some((raw.to_owned(), endpoint.clone()));
        Ok(endpoint)
    })
}

/// Everything one request says, owned: nothing borrows from the caller.
#[derive(Debug, Clone)]
pub struct RequestOptions {
    /// Where it goes.
    pub url: Endpoint,
    /// An HTTP token; `"GET"` by default.
    pub method: Cow<'static, str>,
    /// Request header lines in the order they are sent; names checked by
    /// [`check_header_name`], values by [`check_header_value`].
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body to send, when there is one.
    pub body: Option<Vec<u8>>,
    /// One budget for the whole request, redirects included (the
    /// [`crate::timeout`] rule); `None` for the defaults.
    pub timeout: Option<Duration>,
    /// The connect phase's own budget; `None` for the default.
    pub connect_timeout: Option<Duration>,
    /// Whether 301, 302, 303, 307 and 308 answers are followed.
    pub follow_redirects: bool,
    /// Redirects followed before the request fails.
    pub max_redirects: u32,
    /// `false`: no certificate or host name check at all.
    pub verify: bool,
    /// Trust exactly the CAs in this PEM file.
    pub ca_file: Option<PathBuf>,
    /// A client certificate (PEM) for mutual TLS, and its key when it is
    /// not in the same file.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    pub client_key: Option<PathBuf>,
    /// Which proxy, if any.
    pub proxy: Proxy,
    /// A larger body fails the request with [`super::ErrorKind::TooLarge`].
    pub max_body_bytes: Option<u64>,
    /// Write the body to this file instead of memory.
    pub output: Option<PathBuf>,
    /// The HTTP version to ask for; `None`: HTTP/2 over TLS when offered.
    pub http_version: Option<Version>,
}

impl RequestOptions {
    /// A GET of `url` with every default, as `net_http_get` makes it.
    pub fn get(url: Endpoint) -> RequestOptions {
        RequestOptions {
            url,
            method: Cow::Borrowed("GET"),
            headers: Vec::new(),
            body: None,
            timeout: None,
            connect_timeout: None,
            follow_redirects: true,
            max_redirects: super::MAX_REDIRECTS,
            verify: true,
            ca_file: None,
            client_cert: None,
            client_key: None,
            proxy: Proxy::Environment,
            max_body_bytes: None,
            output: None,
            http_version: None,
        }
    }

    /// The checks that span options: a key needs its certificate.
    pub fn check(&self) -> Result<(), String> {
        if self.client_key.is_some() && self.client_cert.is_none() {
            return Err("client_key needs client_cert".to_owned());
        }
        Ok(())
    }
}

/// Which proxy a request goes through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proxy {
    /// libcurl's environment variables (`http_proxy`, `https_proxy`,
    /// `no_proxy`, ...), as the contract functions do.
    Environment,
    /// None, whatever the environment says.
    Direct,
    /// This proxy URL.
    Url(String),
}

/// The proxy schemes libcurl speaks.
const PROXY_SCHEMES: &[&str] = &["http", "https", "socks4", "socks4a", "socks5", "socks5h"];

impl Proxy {
    /// A proxy URL, checked: it parses, has a host, and names a scheme
    /// libcurl speaks.
    pub fn url(raw: &str) -> Result<Proxy, String> {
        let endpoint = Endpoint::parse(raw, PROXY_SCHEMES)?;
        Ok(Proxy::Url(endpoint.as_str().to_owned()))
    }
}

/// An HTTP version a request may insist on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.1 only.
    Http11,
    /// HTTP/2: over TLS through ALPN, over plain http by an upgrade.
    Http2,
}

impl Version {
    /// `"1.1"` or `"2"`.
    pub fn parse(name: &[u8]) -> Result<Version, String> {
        match name {
            b"1.1" => Ok(Version::Http11),
            b"2" => Ok(Version::Http2),
            _ => Err(format!("'{}' is not \"1.1\" or \"2\"", String::from_utf8_lossy(name))),
        }
    }
}

/// RFC 9110's `tchar`: what a method and a header name are made of.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(text: &[u8]) -> bool {
    !text.is_empty() && text.iter().copied().all(is_token_byte)
}

/// The most of a name an error message quotes.
const QUOTED_NAME_BYTES: usize = 64;

fn quoted(text: &[u8]) -> String {
    let cut = &text[..text.len().min(QUOTED_NAME_BYTES)];
    let more = if cut.len() < text.len() { "..." } else { "" };
    format!("'{}{more}'", String::from_utf8_lossy(cut))
}

/// A method is any HTTP token; it is sent as given (methods are case
/// sensitive).
pub fn check_method(method: &[u8]) -> Result<String, String> {
    if !is_token(method) {
        return Err(format!("method {} is not an HTTP token", quoted(method)));
    }
    Ok(String::from_utf8_lossy(method).into_owned())
}

/// A WebSocket subprotocol is an HTTP token (RFC 6455 section 4.1).
pub fn check_subprotocol(name: &[u8]) -> Result<String, String> {
    if !is_token(name) {
        return Err(format!("subprotocol {} is not an HTTP token", quoted(name)));
    }
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// A header name is an HTTP token.
pub fn check_header_name(name: &[u8]) -> Result<String, String> {
    if !is_token(name) {
        return Err(format!("header name {} is not an HTTP token", quoted(name)));
    }
    Ok(String::from_utf8_lossy(name).into_owned())
}

/// A header value may hold any byte but CR, LF and NUL, which would end
/// the line (or the C string) early and let a value smuggle in headers.
pub fn check_header_value(name: &str, value: &[u8]) -> Result<(), String> {
    match value.iter().find(|&&b| matches!(b, b'\r' | b'\n' | 0)) {
        None => Ok(()),
        Some(b) => {
            let what = match b {
                b'\r' => "CR",
                b'\n' => "LF",
                _ => "NUL",
            };
            Err(format!("the value of header '{name}' contains a {what}"))
        }
    }
}

/// Whether `name` is `wanted`, as header names compare: ASCII case
/// insensitively.
pub fn same_header(name: &str, wanted: &str) -> bool {
    name.eq_ignore_ascii_case(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_tokens_kept_as_given() {
        assert_eq!(check_method(b"PATCH").unwrap(), "PATCH");
        assert_eq!(check_method(b"purge").unwrap(), "purge");
        assert_eq!(check_method(b"M-SEARCH").unwrap(), "M-SEARCH");
        assert_eq!(check_method(b"").unwrap_err(), "method '' is not an HTTP token");
        assert_eq!(check_method(b"GET /x").unwrap_err(), "method 'GET /x' is not an HTTP token");
        assert!(check_method(b"G\r\nX").is_err());
    }

    #[test]
    fn header_names_are_tokens() {
        assert_eq!(check_header_name(b"X-Trace_Id").unwrap(), "X-Trace_Id");
        assert_eq!(
            check_header_name(b"Bad Name").unwrap_err(),
            "header name 'Bad Name' is not an HTTP token"
        );
        assert!(check_header_name(b"Name:").is_err());
        assert!(check_header_name(b"").is_err());
        assert!(check_header_name("é".as_bytes()).is_err());
        let long = check_header_name(&[b' '; 100]).unwrap_err();
        assert_eq!(long, format!("header name '{}...' is not an HTTP token", " ".repeat(64)));
    }

    #[test]
    fn header_values_refuse_line_breaks_and_nul() {
        assert!(check_header_value("A", b"Bearer x").is_ok());
        assert!(check_header_value("A", b"").is_ok());
        assert!(check_header_value("A", b"\xff latin-1 \t tab").is_ok());
        assert_eq!(
            check_header_value("A", b"x\r\nEvil: 1").unwrap_err(),
            "the value of header 'A' contains a CR"
        );
        assert_eq!(
            check_header_value("A", b"x\nEvil: 1").unwrap_err(),
            "the value of header 'A' contains a LF"
        );
        assert_eq!(
            check_header_value("A", b"x\0").unwrap_err(),
            "the value of header 'A' contains a NUL"
        );
    }

    #[test]
    fn versions_and_proxies() {
        assert_eq!(Version::parse(b"1.1"), Ok(Version::Http11));
        assert_eq!(Version::parse(b"2"), Ok(Version::Http2));
        assert_eq!(Version::parse(b"3").unwrap_err(), "'3' is not \"1.1\" or \"2\"");
        assert_eq!(
            Proxy::url("http://127.0.0.1:3128"),
            Ok(Proxy::Url("http://127.0.0.1:3128/".into()))
        );
        assert!(Proxy::url("socks5h://h:1080").is_ok());
        assert_eq!(
            Proxy::url("ftp://h/").unwrap_err(),
            "unsupported URL scheme 'ftp' (expected http or https or socks4 or socks4a or socks5 or socks5h)"
        );
    }

    #[test]
    fn a_key_needs_its_certificate() {
        let url = Endpoint::parse("https://h/", SCHEMES).unwrap();
        let mut options = RequestOptions::get(url);
        assert!(options.check().is_ok());
        options.client_key = Some("k.pem".into());
        assert_eq!(options.check().unwrap_err(), "client_key needs client_cert");
        options.client_cert = Some("c.pem".into());
        assert!(options.check().is_ok());
    }
}
