//! Wall-clock time and durations, in one place so tests can pin the clock.
//!
//! `GIT_SPRINT_NOW` (unix seconds) fixes "now" for reproducible output, the
//! way `GIT_COMMITTER_DATE` does for git.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix seconds now, or `GIT_SPRINT_NOW` when set.
pub fn now() -> i64 {
    if let Some(fixed) = std::env::var("GIT_SPRINT_NOW")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
    {
        return fixed;
    }
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// RFC 3339 in UTC, e.g. `2026-11-22T04:37:24Z`.
pub(crate) fn rfc3339(unix: i64) -> String {
    match jiff::Timestamp::from_second(unix) {
        Ok(ts) => ts.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => unix.to_string(),
    }
}

pub(crate) fn now_rfc3339() -> String {
    rfc3339(now())
}

/// Unix seconds of an RFC 3339 time such as [`rfc3339`] writes; `None`
/// when it does not parse.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    s.parse::<jiff::Timestamp>().ok().map(|t| t.as_second())
}

/// Parses `90`, `90s`, `10m`, `2h`, `1d`, `1h30m`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad =
        || format!("invalid duration '{s}': use a number with a unit, like 30s, 10m, 2h or 1h30m");
    let s = s.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// `750ms`, `45s`, `10m`, `1h30m`: a duration for people, exact to the second
/// (to the millisecond under a second), and read back by [`parse_duration`].
pub(crate) fn human_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// `3s`, `4m`, `2h`, `5d`: a short age for tables.
pub(crate) fn short_age(secs: i64) -> String {
    let secs = secs.max(0);
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("1h30m").unwrap().as_secs(), 5400);
        for bad in [
            "",
            "m",
            "10x",
            "1.5h",
            "10m5",
            "-3s",
            "99999999999999999999d",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(human_duration(Duration::from_secs(600)), "10m");
        assert_eq!(human_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(human_duration(Duration::from_secs(61)), "1m1s");
        for secs in [1, 59, 61, 3600, 3661, 86_400] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(&human_duration(d)), Ok(d), "{secs}s");
        }
    }

    #[test]
    fn formats_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}
