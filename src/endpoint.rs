//! Validation of the URLs scripts pass in, shared by the HTTP and WebSocket
//! engines, so both reject the same inputs with the same words.

use url::Url;

/// A URL that parsed, has a host, and uses one of the schemes its caller allows.
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: Url,
}

/// "invalid URL '<raw>': <why>", the URL cut to its first
/// [`QUOTED_URL_CHARS`] characters when longer.
pub fn invalid(raw: &str, why: impl std::fmt::Display) -> String {
    match raw.char_indices().nth(QUOTED_URL_CHARS) {
        Some((cut, _)) => format!("invalid URL '{}...' ({} bytes): {why}", &raw[..cut], raw.len()),
        None => format!("invalid URL '{raw}': {why}"),
    }
}

/// The most of a URL an error message quotes.
pub const QUOTED_URL_CHARS: usize = 200;

impl Endpoint {
    /// Parses `raw` and checks that its scheme is one of `schemes`
    /// (lower-case names such as `"http"`).
    pub fn parse(raw: &str, schemes: &[&str]) -> Result<Endpoint, String> {
        if raw.trim().is_empty() {
            return Err("invalid URL: empty".to_owned());
        }
        let url = Url::parse(raw).map_err(|e| invalid(raw, e))?;
        if !schemes.contains(&url.scheme()) {
            return Err(format!(
                "unsupported URL scheme '{}' (expected {})",
                url.scheme(),
                schemes.join(" or ")
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(raw, "no host"));
        }
        Ok(Endpoint { url })
    }

    /// The same URL under another scheme of the same family (`ws` to
    /// `http`), for engines that share a transport.
    pub fn with_scheme(&self, scheme: &str) -> Endpoint {
        let mut url = self.url.clone();
        // Both schemes are "special" in the URL standard, so this succeeds.
        let _ = url.set_scheme(scheme);
        Endpoint { url }
    }

    /// The URL in its normalised form.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The scheme, lower case.
    pub fn scheme(&self) -> &str {
        self.url.scheme()
    }

    /// `host:port` as a person would write it (`[::1]:8080` for IPv6),
    /// with the scheme's default port filled in.
    pub fn authority(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// What a request line names: the path and the query.
    pub fn request_target(&self) -> String {
        match self.url.query() {
            Some(query) => format!("{}?{query}", self.url.path()),
            None => self.url.path().to_owned(),
        }
    }

    /// The `Host` header's value: the host, with the port when it is not
    /// the scheme's default.
    pub fn host_header(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// The host name or address, without brackets.
    pub fn host(&self) -> &str {
        let host = self.url.host_str().unwrap_or_default();
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_quote_at_most_200_characters_of_a_url() {
        assert_eq!(
            invalid("http://x:99999/", "bad port"),
            "invalid URL 'http://x:99999/': bad port"
        );
        let long = format!("http://x/{}", "é".repeat(300));
        let message = invalid(&long, "too long");
        let quoted: String = long.chars().take(QUOTED_URL_CHARS).collect();
        assert_eq!(message, format!("invalid URL '{quoted}...' ({} bytes): too long", long.len()));
    }

    #[test]
    fn schemes_and_hosts() {
        assert!(Endpoint::parse("ws://127.0.0.1:1/", &["ws", "wss"]).is_ok());
        assert_eq!(
            Endpoint::parse("ftp://h/", &["http", "https"]).unwrap_err(),
            "unsupported URL scheme 'ftp' (expected http or https)"
        );
        assert_eq!(Endpoint::parse(" ", &["http"]).unwrap_err(), "invalid URL: empty");
        assert_eq!(
            Endpoint::parse("http://[::1]:8080/", &["http"]).unwrap().authority(),
            "[::1]:8080"
        );
        let ws = Endpoint::parse("ws://[::1]:8080/a/b?x=1", &["ws"]).unwrap();
        assert_eq!(
            (ws.request_target(), ws.host_header()),
            ("/a/b?x=1".into(), "[::1]:8080".into())
        );
        let plain = Endpoint::parse("wss://example.com", &["wss"]).unwrap();
        assert_eq!(
            (plain.request_target(), plain.host_header()),
            ("/".into(), "example.com".into())
        );
    }
}
