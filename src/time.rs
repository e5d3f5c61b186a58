//! The appliance's one clock and its one time format.
//!
//! Every timestamp Bulkhead stores or signs is whole seconds since the Unix epoch, read
//! from [`now`]; every timestamp it shows is RFC 3339 in UTC, written by [`rfc3339`] and
//! read by [`parse_rfc3339`]. Keeping them here means the store, the tokens, the audit log
//! and the wire formats cannot drift apart. Pure: no other module of the crate is used.

/// The last second RFC 3339 can write with a four-digit year (`9999-12-31T23:59:59Z`):
/// open-ended periods are shown as ending there.
pub const LATEST_RFC3339: i64 = 253_402_300_799;

/// Seconds since the Unix epoch (0 if the system clock is set before 1970).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

/// `unix_seconds` as RFC 3339 in UTC (`2026-10-01T00:00:00Z`); empty when the time cannot
/// be written that way (see [`LATEST_RFC3339`]).
pub fn rfc3339(unix_seconds: i64) -> String {
    ::time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|at| {
            at.format(&::time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Reads an RFC 3339 time as seconds since the Unix epoch; `None` when it is not one.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    ::time::OffsetDateTime::parse(text, &::time::format_description::well_known::Rfc3339)
        .ok()
        .map(|at| at.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_the_same_instant() {
        assert_eq!(rfc3339(1_790_812_800), "2026-10-01T00:00:00Z");
        assert_eq!(parse_rfc3339("2026-10-01T00:00:00Z"), Some(1_790_812_800));
        assert_eq!(parse_rfc3339("2026-10-01"), None);
        assert_eq!(rfc3339(LATEST_RFC3339), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339(LATEST_RFC3339 + 1), "");
    }

    #[test]
    fn the_clock_is_after_the_epoch() {
        assert!(now() > 1_700_000_000);
    }
}
