//! One rule for every timeout a caller passes in milliseconds, from Lua or
//! from C: NaN and negative values are errors; `0` (and `-0.0`) means the
//! default; `+inf`, or more than [`MAX_MS`], means no limit, as no timeout
//! does.

use std::time::Duration;

/// The longest timeout the engines take: libcurl's `long` milliseconds on
/// every platform (32 bits on Windows), about 24.8 days.
pub const MAX_MS: f64 = i32::MAX as f64;

/// The error for a timeout that is NaN or negative.
pub const INVALID: &str = "timeout_ms must be a non-negative number";

/// `None` for the default or no limit, else the timeout; a fraction of a
/// millisecond rounds up, so that 0.5 is not "no timeout".
pub fn from_millis(ms: f64) -> Result<Option<Duration>, &'static str> {
    if ms.is_nan() || ms < 0.0 {
        return Err(INVALID);
    }
    if ms == 0.0 || ms > MAX_MS {
        return Ok(None);
    }
    Ok(Some(Duration::from_millis(ms.ceil() as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        assert_eq!(from_millis(f64::NAN), Err(INVALID));
        assert_eq!(from_millis(-1.0), Err(INVALID));
        assert_eq!(from_millis(f64::NEG_INFINITY), Err(INVALID));
        assert_eq!(from_millis(0.0), Ok(None));
        assert_eq!(from_millis(-0.0), Ok(None));
        assert_eq!(from_millis(f64::INFINITY), Ok(None));
        assert_eq!(from_millis(2f64.powi(63)), Ok(None));
        assert_eq!(from_millis(MAX_MS + 1.0), Ok(None));
        assert_eq!(from_millis(MAX_MS), Ok(Some(Duration::from_millis(i32::MAX as u64))));
        assert_eq!(from_millis(0.5), Ok(Some(Duration::from_millis(1))));
        assert_eq!(from_millis(1500.0), Ok(Some(Duration::from_millis(1500))));
    }
}
