//! One trust-store story for every engine: the system's CA certificates,
//! found at run time, with OpenSSL's `SSL_CERT_FILE` / `SSL_CERT_DIR`
//! conventions honoured so a private CA needs no code.

use std::path::PathBuf;
use std::sync::LazyLock;

/// Where trusted CA certificates are read from.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    /// A PEM bundle: `SSL_CERT_FILE` when set, else the system's bundle.
    pub ca_file: Option<PathBuf>,
    /// A hashed certificate directory: `SSL_CERT_DIR` when set, else the
    /// system's.
    pub ca_dir: Option<PathBuf>,
}

/// The process-wide trust store, probed once on first use.
pub fn trust_store() -> &'static TrustStore {
    static STORE: LazyLock<TrustStore> = LazyLock::new(|| {
        let probe = openssl_probe::probe();
        TrustStore {
            ca_file: probe.cert_file,
            // The probe lists SSL_CERT_DIR first when it is set.
            ca_dir: probe.cert_dir.into_iter().next(),
        }
    });
    &STORE
}
