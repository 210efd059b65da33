//! Raw byte streams for protocols layered on HTTP's transport (WebSocket).
//!
//! libcurl does the part both engines share: resolving (with a timeout),
//! connecting (IPv4/IPv6, proxies through a CONNECT tunnel) and TLS with the
//! same trust store and error messages as HTTP requests. With
//! `CONNECT_ONLY` it stops there and lends us the connection, which we read
//! and write without blocking.

use std::io::{self, Read, Write};
use std::os::fd::RawFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use curl::easy::{Easy2, Handler, HttpVersion};

use super::{apply_trust_and_proxy, configure_connection, configure_target, error, Proxy};
use crate::endpoint::Endpoint;

/// An open TCP (or TLS over TCP) connection owned by libcurl. Reads and
/// writes never block: they fail with `WouldBlock` instead.
pub struct Tunnel {
    easy: Easy2<Unused>,
    fd: RawFd,
    /// Lowered by every byte written, never below 0 (see
    /// [`Tunnel::count_unsent`]).
    unsent: Option<Arc<AtomicUsize>>,
}

/// How a tunnel reaches its host: trust and proxy.
#[derive(Debug, Clone, Copy)]
pub struct Route<'a> {
    /// `false`: no certificate or host name check.
    pub verify: bool,
    /// Trust exactly the CAs in this PEM file.
    pub ca_file: Option<&'a Path>,
    /// Which proxy, if any.
    pub proxy: &'a Proxy,
}

/// CONNECT_ONLY transfers have no body to collect.
struct Unused;
impl Handler for Unused {}

impl Tunnel {
    /// Connects to `endpoint` (an `http://` or `https://` URL; only its host
    /// and port matter) within `budget`.
    pub fn open(
        endpoint: &Endpoint,
        budget: Option<Duration>,
        route: Route<'_>,
    ) -> Result<Tunnel, String> {
        let mut easy = Easy2::new(Unused);
        let setup = configure_connection(&mut easy)
            .and_then(|()| configure_target(&mut easy, endpoint, budget))
            .and_then(|()| {
                apply_trust_and_proxy(&mut easy, route.verify, route.ca_file, route.proxy)
            })
            .and_then(|()| easy.connect_only(true))
            // The protocols we carry start with an HTTP/1.1 request: offer
            // only http/1.1 in ALPN.
            .and_then(|()| easy.http_version(HttpVersion::V11))
            // Through an HTTP proxy, ask for a tunnel rather than forwarding.
            .and_then(|()| easy.http_proxy_tunnel(true))
            .and_then(|()| easy.perform());
        if let Err(e) = setup {
            return Err(error::describe(&e, &easy, endpoint, budget).message);
        }
        let fd = active_socket(&easy).ok_or("the connection has no socket")?;
        Ok(Tunnel { easy, fd, unsent: None })
    }

    /// From now on, every byte written lowers `unsent` (not below 0): a
    /// writer that raises it by what it hands over reads what is still
    /// held back.
    pub fn count_unsent(&mut self, unsent: Arc<AtomicUsize>) {
        self.unsent = Some(unsent);
    }

    /// The socket, for readiness polling only.
    pub fn fd(&self) -> RawFd {
        self.fd
    }
}

fn active_socket<H>(easy: &Easy2<H>) -> Option<RawFd> {
    // CURLINFO_SOCKET + 44; not in curl-sys.
    const CURLINFO_ACTIVESOCKET: curl_sys::CURLINFO = 0x50_0000 + 44;
    let mut socket: curl_sys::curl_socket_t = -1;
    // SAFETY: a valid handle and an out-pointer of the documented type.
    let code =
        unsafe { curl_sys::curl_easy_getinfo(easy.raw(), CURLINFO_ACTIVESOCKET, &mut socket) };
    (code == curl_sys::CURLE_OK && socket >= 0).then_some(socket)
}

fn io_error(e: curl::Error) -> io::Error {
    if e.is_again() {
        io::ErrorKind::WouldBlock.into()
    } else {
        io::Error::new(
            io::ErrorKind::ConnectionAborted,
            e.extra_description().unwrap_or(e.description()).to_owned(),
        )
    }
}

impl Read for Tunnel {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.easy.recv(buf).map_err(io_error)
    }
}

impl Write for Tunnel {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.easy.send(buf).map_err(io_error)?;
        if let Some(unsent) = &self.unsent {
            // Only ever changed by the writer, which holds the tunnel.
            let left = unsent.load(Ordering::Relaxed).saturating_sub(written);
            unsent.store(left, Ordering::Release);
        }
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
