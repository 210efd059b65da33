//! Validation of the URLs scripts pass in, shared by the HTTP and WebSocket
//! engines, so both reject the same inputs with the same words.

use url::Url;

/// A URL that parsed, has a host, and uses one of the schemes its caller allows.
#[derive(Debug, Clone)]
pub struct Endpoint {
    url: Url,
}

impl Endpoint {
    /// Parses `raw` and checks that its scheme is one of `schemes`
    /// (lower-case names such as `"http"`).
    pub fn parse(raw: &str, schemes: &[&str]) -> Result<Endpoint, String> {
        if raw.trim().is_empty() {
            return Err("invalid URL: empty".to_owned());
        }
        let url = Url::parse(raw).map_err(|e| format!("invalid URL '{raw}': {e}"))?;
        if !schemes.contains(&url.scheme()) {
            return Err(format!(
                "unsupported URL scheme '{}' (expected {})",
                url.scheme(),
                schemes.join(" or ")
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("invalid URL '{raw}': no host"));
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

    /// The host name or address, without brackets.
    pub fn host(&self) -> &str {
        let host = self.url.host_str().unwrap_or_default();
        host.trim_start_matches('[').trim_end_matches(']')
    }
}
