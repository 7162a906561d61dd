//! Durations in Prometheus' syntax (`15s`, `5m`, `1h30m`, `500ms`), used for every
//! duration in the config so that operators write them as they do in rule files.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A duration parsed from Prometheus' syntax; displays back in the same syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(std::time::Duration::from_secs(secs))
    }

    pub const fn from_millis(millis: u64) -> Self {
        Self(std::time::Duration::from_millis(millis))
    }

    pub const fn get(self) -> std::time::Duration {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.0
    }
}

impl std::str::FromStr for Duration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        let invalid = || {
            format!(
                "invalid duration `{s}`: expected a number and a unit (ms, s, m, h, d, w, y), e.g. 15s, 5m, 1h30m"
            )
        };
        // Prometheus accepts "0" and zero durations such as "0s" (a rule's `for: 0s`);
        // promql-parser refuses them, being made for range selectors.
        if text == "0" {
            return Ok(Duration(std::time::Duration::ZERO));
        }
        // Any other bare number is not a Prometheus duration. promql-parser would read it as
        // seconds, and panic on a negative, infinite or NaN one.
        if text.is_empty() || text.parse::<f64>().is_ok() {
            return Err(invalid());
        }
        match promql_parser::util::parse_duration(text) {
            Ok(d) => Ok(Duration(d)),
            // All its digits zeros, and valid with ones in their place: `0s`, `0m0s`.
            Err(_)
                if text.chars().all(|c| c == '0' || !c.is_ascii_digit())
                    && promql_parser::util::parse_duration(&text.replace('0', "1")).is_ok() =>
            {
                Ok(Duration(std::time::Duration::ZERO))
            }
            Err(_) => Err(invalid()),
        }
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_zero() {
            return f.write_str("0s");
        }
        f.write_str(&promql_parser::util::display_duration(&self.0))
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"15s\", \"5m\" or \"1h30m\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_syntax() {
        let d: Duration = "1h30m".parse().unwrap();
        assert_eq!(d.get(), std::time::Duration::from_secs(5400));
        assert_eq!("40ms".parse::<Duration>().unwrap().get().as_millis(), 40);
        assert_eq!(d.to_string(), "1h30m");
        assert_eq!(Duration::default().to_string(), "0s");
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        let err = "5 minutes".parse::<Duration>().unwrap_err();
        assert!(err.contains("e.g. 15s, 5m, 1h30m"), "{err}");
        assert!("".parse::<Duration>().is_err());
        assert!("-5s".parse::<Duration>().is_err());
    }

    #[test]
    fn zero_is_a_duration() {
        for zero in ["0", "0s", "0m", "0m0s", "0ms"] {
            assert_eq!(zero.parse::<Duration>(), Ok(Duration::default()), "{zero}");
        }
        assert!("0x".parse::<Duration>().is_err());
        assert!("00".parse::<Duration>().is_err());
    }

    #[test]
    fn bare_numbers_are_refused_without_panicking() {
        for text in ["-5", "1.5", "15", "1e30", "NaN", "inf", "-inf"] {
            assert!(text.parse::<Duration>().is_err(), "{text}");
        }
    }
}
