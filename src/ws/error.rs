//! Readable messages for tungstenite's errors.

use tungstenite::error::ProtocolError;
use tungstenite::Error;

pub(super) fn describe(error: &Error) -> String {
    match error {
        Error::Http(response) => {
            let status = response.status();
            let reason = status.canonical_reason().map(|r| format!(" {r}")).unwrap_or_default();
            format!("WebSocket upgrade refused: HTTP {}{reason}", status.as_u16())
        }
        Error::Io(e) => format!("connection broken: {e}"),
        Error::Capacity(e) => format!("message too big: {e}"),
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            "the server closed the connection without a closing handshake".to_owned()
        }
        Error::Protocol(e) => format!("WebSocket protocol error: {e}"),
        Error::Utf8(_) => "the server sent a text message that is not valid UTF-8".to_owned(),
        other => format!("WebSocket error: {other}"),
    }
}
