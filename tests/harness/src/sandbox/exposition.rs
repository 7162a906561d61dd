//! The fake exporters' metric model and its Prometheus text exposition (format 0.0.4).
//! Pure code: values are computed from an `Instant` handed in by the caller.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

/// Observations per second of every fake histogram.
pub const HISTOGRAM_RATE: f64 = 10.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A value that stays put or grows at a steady rate, like a counter that is being incremented.
#[derive(Clone, Copy, Debug)]
pub struct Level {
    base: f64,
    per_second: f64,
    since: Instant,
}

impl Level {
    pub fn new(base: f64, per_second: f64) -> Level {
        Level {
            base,
            per_second,
            since: Instant::now(),
        }
    }

    pub fn at(&self, now: Instant) -> f64 {
        self.base + self.per_second * now.saturating_duration_since(self.since).as_secs_f64()
    }

    /// Keeps the current value and continues at `per_second` from now on.
    pub fn set_rate(&mut self, per_second: f64, now: Instant) {
        self.base = self.at(now);
        self.since = now;
        self.per_second = per_second;
    }

    /// Jumps to `value` and keeps the current rate.
    pub fn set_value(&mut self, value: f64, now: Instant) {
        self.base = value;
        self.since = now;
    }
}

/// One time series a fake exporter serves.
#[derive(Clone, Debug)]
pub struct Series {
    /// The name in the `# TYPE` line (a histogram's base name).
    pub family: String,
    pub kind: Kind,
    /// The sample name (`…_bucket`, `…_sum`, `…_count` for histograms).
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub level: Level,
    /// The value is the fake process's start time, which `restart` moves.
    pub is_start_time: bool,
    /// Per-view overrides: a scrape with `?view=V` sees `views[V]` instead of the level.
    pub views: HashMap<String, f64>,
}

fn owned_labels(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Series {
    fn plain(kind: Kind, name: &str, labels: &[(&str, &str)], level: Level) -> Series {
        Series {
            family: name.to_string(),
            kind,
            name: name.to_string(),
            labels: owned_labels(labels),
            level,
            is_start_time: false,
            views: HashMap::new(),
        }
    }

    pub fn gauge(name: &str, labels: &[(&str, &str)], value: f64) -> Series {
        Series::plain(Kind::Gauge, name, labels, Level::new(value, 0.0))
    }

    pub fn counter(name: &str, labels: &[(&str, &str)], value: f64, per_second: f64) -> Series {
        Series::plain(Kind::Counter, name, labels, Level::new(value, per_second))
    }

    /// A gauge holding the process start time in Unix seconds.
    pub fn start_time(name: &str) -> Series {
        let mut series = Series::gauge(name, &[], 0.0);
        series.is_start_time = true;
        series
    }

    /// A histogram receiving [`HISTOGRAM_RATE`] observations per second, all equal to `observed`.
    pub fn histogram(
        family: &str,
        labels: &[(&str, &str)],
        buckets: &[f64],
        observed: f64,
    ) -> Vec<Series> {
        let part = |suffix: &str, extra: Option<(String, String)>| {
            let mut labels = owned_labels(labels);
            labels.extend(extra);
            Series {
                family: family.to_string(),
                kind: Kind::Histogram,
                name: format!("{family}{suffix}"),
                labels,
                level: Level::new(0.0, 0.0),
                is_start_time: false,
                views: HashMap::new(),
            }
        };
        let mut parts: Vec<Series> = buckets
            .iter()
            .map(|le| part("_bucket", Some(("le".to_string(), format_value(*le)))))
            .collect();
        parts.push(part(
            "_bucket",
            Some(("le".to_string(), "+Inf".to_string())),
        ));
        parts.push(part("_sum", None));
        parts.push(part("_count", None));
        let now = Instant::now();
        for series in &mut parts {
            series.observe(observed, now);
        }
        parts
    }

    /// For a histogram part: from now on, every observation equals `value`.
    pub fn observe(&mut self, value: f64, now: Instant) {
        let rate = match self.name.strip_prefix(self.family.as_str()) {
            Some("_sum") => HISTOGRAM_RATE * value,
            Some("_count") => HISTOGRAM_RATE,
            _ => match self.label("le").map(parse_le) {
                Some(le) if value <= le => HISTOGRAM_RATE,
                _ => 0.0,
            },
        };
        self.level.set_rate(rate, now);
    }

    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value `seconds_before` now, had the process been running all along (counters
    /// do not go below 0; views are ignored).
    pub fn value_before(&self, now: Instant, seconds_before: f64, start_time: f64) -> f64 {
        if self.is_start_time {
            return start_time;
        }
        let value = self.level.at(now) - self.level.per_second * seconds_before;
        if self.kind == Kind::Gauge {
            value
        } else {
            value.max(0.0)
        }
    }

    fn value(&self, view: Option<&str>, start_time: f64, now: Instant) -> f64 {
        if let Some(value) = view.and_then(|v| self.views.get(v)) {
            return *value;
        }
        if self.is_start_time {
            return start_time;
        }
        self.level.at(now)
    }
}

fn parse_le(text: &str) -> f64 {
    if text == "+Inf" {
        f64::INFINITY
    } else {
        text.parse().unwrap_or(f64::INFINITY)
    }
}

pub fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        value.to_string()
    }
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// The text exposition of `series` as seen by a scrape with the given `view`.
pub fn render(series: &[Series], view: Option<&str>, start_time: f64, now: Instant) -> String {
    let mut out = String::new();
    let mut family: Option<&str> = None;
    for s in series {
        if family != Some(s.family.as_str()) {
            let _ = writeln!(out, "# TYPE {} {}", s.family, s.kind.as_str());
            family = Some(s.family.as_str());
        }
        out.push_str(&s.name);
        if !s.labels.is_empty() {
            let labels: Vec<String> = s
                .labels
                .iter()
                .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
                .collect();
            let _ = write!(out, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(out, " {}", format_value(s.value(view, start_time, now)));
    }
    out
}

/// `name{label="value",…}`: equality matchers only, name optional.
#[derive(Clone, Debug, PartialEq)]
pub struct Selector {
    text: String,
    name: Option<String>,
    labels: Vec<(String, String)>,
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, String> {
        let text = text.trim();
        let (name, rest) = match text.find('{') {
            Some(i) => (&text[..i], &text[i..]),
            None => (text, ""),
        };
        let name_ok = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
        if !name_ok {
            return Err(format!("bad metric name {name:?} in selector {text:?}"));
        }
        let mut labels = Vec::new();
        if !rest.is_empty() {
            let inner = rest
                .strip_prefix('{')
                .and_then(|r| r.strip_suffix('}'))
                .ok_or_else(|| format!("selector {text:?} must end with '}}'"))?;
            let mut chars = inner.chars().peekable();
            loop {
                while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    break;
                }
                let key: String = chars
                    .by_ref()
                    .take_while(|c| *c != '=')
                    .collect::<String>()
                    .trim()
                    .to_string();
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if chars.next() != Some('"') || key.is_empty() {
                    return Err(format!("selector {text:?}: expected label=\"value\" pairs"));
                }
                let mut value = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                if !closed {
                    return Err(format!("selector {text:?}: unterminated label value"));
                }
                labels.push((key, value));
            }
        }
        if name.is_empty() && labels.is_empty() {
            return Err("empty selector".to_string());
        }
        Ok(Selector {
            text: text.to_string(),
            name: (!name.is_empty()).then(|| name.to_string()),
            labels,
        })
    }

    fn labels_match(&self, series: &Series) -> bool {
        self.labels
            .iter()
            .all(|(k, v)| series.label(k) == Some(v.as_str()))
    }

    /// Matches a sample by its full name (`foo_bucket`, `foo_total`, …).
    pub fn matches(&self, series: &Series) -> bool {
        self.name.as_ref().is_none_or(|n| *n == series.name) && self.labels_match(series)
    }

    /// Matches every part of a histogram by its base name.
    pub fn matches_histogram(&self, series: &Series) -> bool {
        series.kind == Kind::Histogram
            && self.name.as_ref().is_none_or(|n| *n == series.family)
            && self.labels_match(series)
    }
}
