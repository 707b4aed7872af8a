//! `Retry-After` (RFC 9110 §10.2.3): the one parser of the header in the workspace. Pure: the
//! caller passes the clock, so an HTTP-date is read against `now` and tests need no real time.
//! Used by this crate's client for engine replies and by the watcher's fetcher for feeds.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

/// The wait a `Retry-After` value asks for: delay-seconds (`120`) or an HTTP-date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, read relative to `now`; a date in the past means no wait).
/// `None` when the value is neither (or is not visible ASCII).
pub fn parse(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    parse_str(value.to_str().ok()?, now)
}

/// [`parse`] for a value already read as text; surrounding white space is ignored.
pub fn parse_str(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let then = SystemTime::from(date);
    Some(then.duration_since(now).unwrap_or(Duration::ZERO))
}

/// [`parse`] applied to the `Retry-After` header of `headers`, if there is one.
pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    parse(headers.get(RETRY_AFTER)?, now)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sun, 06 Nov 1994 08:49:27 GMT
    const NOW_SECS: u64 = 784_111_767;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_SECS)
    }

    #[test]
    fn parses_seconds_and_http_dates() {
        assert_eq!(parse_str("120", now()), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_str("Sun, 06 Nov 1994 08:49:37 GMT", now()),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_str("Sun, 06 Nov 1994 08:49:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_str("soon", now()), None);
    }

    #[test]
    fn reads_header_values_and_maps() {
        let value = HeaderValue::from_static(" 3600 ");
        assert_eq!(parse(&value, now()), Some(Duration::from_secs(3600)));
        let mut headers = HeaderMap::new();
        assert_eq!(from_headers(&headers, now()), None);
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:51:27 GMT"),
        );
        assert_eq!(
            from_headers(&headers, now()),
            Some(Duration::from_secs(120))
        );
        headers.insert(RETRY_AFTER, HeaderValue::from_static("-5"));
        assert_eq!(from_headers(&headers, now()), None);
    }
}
