//! `tidb-host-agent ping`: one round against the given targets, printed fping-style or
//! as JSON (SPEC §7). Exit 0 when every target answered at least once, 1 when some did
//! not, 2 for bad arguments, unresolvable names or no ICMP permission.

use std::fmt::Write as _;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

use super::outcome::{RoundOutcome, TargetOutcome, millis};
use super::prober::{Family, Prober, ProberError};
use super::record::{self, Record, RecordError};
use super::round::{self, RoundSettings};
use super::target::{self, ResolveError};
use crate::config::PingConfig;

#[derive(Debug, Clone, clap::Args)]
#[command(
    about = "Ping targets concurrently, fping-style, and report loss, latency and slow echoes",
    after_help = "Durations: 40ms, 1s, 1m; also 250us for -i, -t and -T.\n\
        Exit status: 0 when every target answered, 1 when some did not, \
        2 for bad arguments, unresolvable names or no ICMP permission."
)]
pub struct PingArgs {
    /// Echoes per target.
    #[arg(short = 'c', long = "count", default_value_t = 10,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub count: u16,
    /// Time between two echoes to the same target.
    #[arg(short = 'i', long = "interval", default_value = "40ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// Payload bytes per echo.
    #[arg(short = 's', long = "size", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(0..=65000))]
    pub payload_bytes: u16,
    /// Per-echo timeout: an echo not answered within this is lost.
    #[arg(short = 't', long = "timeout", default_value = "1s", value_parser = parse_positive_duration)]
    pub timeout: Duration,
    /// Latency threshold: echoes slower than this are counted as "over" (and recorded).
    #[arg(short = 'T', long = "threshold", default_value = "1s", value_parser = parse_duration)]
    pub threshold: Duration,
    /// Targets pinged at once.
    #[arg(short = 'j', long = "concurrency", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Read targets from FILE, one per line (`#` starts a comment); `-` reads stdin.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print one JSON document instead of one line per target.
    #[arg(long)]
    pub json: bool,
    /// Append slow and lost echoes to this JSON-lines record, as the daemon does.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Addresses or host names; names are resolved once, before the round.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("no targets: give addresses or names, or -f FILE")]
    NoTargets,
    #[error("cannot read targets from {path}: {source}")]
    ReadTargets {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Resolve(Vec<ResolveError>),
    #[error(transparent)]
    Prober(#[from] ProberError),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// Runs the command; the caller exits with the returned code.
pub async fn main(args: PingArgs) -> ExitCode {
    match ping(&args).await {
        Ok(all_reachable) => ExitCode::from(if all_reachable { 0 } else { 1 }),
        Err(error) => {
            eprintln!("tidb-host-agent ping: {error}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether every target answered.
async fn ping(args: &PingArgs) -> Result<bool, CliError> {
    let mut names = args.targets.clone();
    if let Some(path) = &args.file {
        names.extend(target::parse_target_list(&read_target_file(path)?));
    }
    if names.iter().all(|n| n.trim().is_empty()) {
        return Err(CliError::NoTargets);
    }
    let (targets, errors) = target::resolve_all(&names).await;
    if !errors.is_empty() {
        return Err(CliError::Resolve(errors));
    }

    let defaults = PingConfig::default();
    let mut prober = Prober::new(defaults.receive_buffer_bytes);
    for family in [Family::V4, Family::V6] {
        if targets.iter().any(|t| Family::of(t.address) == family) {
            prober.open(family)?;
        }
    }
    let record = match &args.record {
        Some(path) => {
            // Fail before the round, not after it, when the record cannot be written.
            let record = Record::new(
                path.clone(),
                defaults.record_max_bytes,
                defaults.record_keep,
            );
            record.append(&[])?;
            Some(record)
        }
        None => None,
    };

    let settings = RoundSettings {
        count: args.count,
        interval: args.interval,
        payload_bytes: usize::from(args.payload_bytes),
        timeout: args.timeout,
        concurrency: args.concurrency as usize,
    };
    let clock = std::time::Instant::now();
    let count = targets.len();
    let round = round::run(&prober, targets, &settings).await;
    tracing::debug!("pinged {count} targets in {:?}", clock.elapsed());

    if let Some(record) = record {
        record.append(&record::lines(&round, args.threshold))?;
    }
    let text = if args.json {
        json_report(&round, args.threshold)
    } else {
        text_report(&round, args.threshold)
    };
    // A closed stdout (`| head`) is not worth a panic or a different exit code.
    let mut out = BufWriter::new(io::stdout().lock());
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    Ok(round.targets.iter().all(TargetOutcome::is_reachable))
}

fn read_target_file(path: &PathBuf) -> Result<String, CliError> {
    let read = if path.as_os_str() == "-" {
        let mut text = String::new();
        io::stdin().read_to_string(&mut text).map(|_| text)
    } else {
        std::fs::read_to_string(path)
    };
    read.map_err(|source| CliError::ReadTargets {
        path: path.clone(),
        source,
    })
}

/// Prometheus-style durations, plus microseconds (`250us`), which a latency threshold
/// on a LAN may need.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    // Zero in any unit (`-i 0` sends a target's echoes back to back); the config's
    // parser wants a non-zero amount.
    let digits = text.trim_end_matches(|c: char| !c.is_ascii_digit());
    let unit = &text[digits.len()..];
    if digits.bytes().all(|b| b == b'0')
        && !digits.is_empty()
        && ["", "us", "µs", "ms", "s", "m", "h"].contains(&unit)
    {
        return Ok(Duration::ZERO);
    }
    if let Some(number) = text.strip_suffix("us").or_else(|| text.strip_suffix("µs")) {
        return number
            .parse::<u64>()
            .map(Duration::from_micros)
            .map_err(|_| format!("invalid duration `{text}`: expected e.g. 250us, 40ms, 1s"));
    }
    text.parse::<crate::config::Duration>().map(|d| d.get())
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be longer than 0s".into()),
        d => Ok(d),
    }
}

/// `40ms`, `1s`, `250us`: how a duration was most likely typed.
fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() % 1_000_000 == 0 {
        crate::config::Duration(d).to_string()
    } else {
        format!("{}us", d.as_micros())
    }
}

fn show_percent(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// One fping-like line per target, names padded to one width:
/// `127.0.0.1 : xmt/rcv/%loss = 10/10/0%, min/avg/max = 0.021/0.034/0.060 ms, over 1s = 0`
pub fn text_report(round: &RoundOutcome, threshold: Duration) -> String {
    let names: Vec<String> = round.targets.iter().map(|t| t.target.to_string()).collect();
    let width = names.iter().map(|n| n.chars().count()).max().unwrap_or(0);
    let mut text = String::new();
    for (name, target) in names.iter().zip(&round.targets) {
        let _ = write!(
            text,
            "{name:<width$} : xmt/rcv/%loss = {}/{}/{}%",
            target.sent(),
            target.received(),
            show_percent(target.loss_percent())
        );
        if let Some(s) = target.rtt_summary() {
            let _ = write!(
                text,
                ", min/avg/max = {:.3}/{:.3}/{:.3} ms",
                millis(s.min),
                millis(s.avg),
                millis(s.max)
            );
        }
        let _ = writeln!(
            text,
            ", over {} = {}",
            show_duration(threshold),
            target.over_threshold(threshold)
        );
    }
    text
}

#[derive(Serialize)]
struct JsonReport<'a> {
    threshold_ms: f64,
    targets: Vec<JsonTarget<'a>>,
}

#[derive(Serialize)]
struct JsonTarget<'a> {
    target: &'a str,
    address: String,
    sent: usize,
    received: usize,
    loss_percent: f64,
    min_ms: Option<f64>,
    avg_ms: Option<f64>,
    max_ms: Option<f64>,
    over_threshold: usize,
    echoes: Vec<JsonEcho<'a>>,
}

#[derive(Serialize)]
struct JsonEcho<'a> {
    seq: u16,
    rtt_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

/// One JSON document: the threshold, and per target its statistics and every echo.
pub fn json_report(round: &RoundOutcome, threshold: Duration) -> String {
    let report = JsonReport {
        threshold_ms: millis(threshold),
        targets: round
            .targets
            .iter()
            .map(|t| {
                let summary = t.rtt_summary();
                JsonTarget {
                    target: &t.target.name,
                    address: t.target.address.to_string(),
                    sent: t.sent(),
                    received: t.received(),
                    loss_percent: t.loss_percent(),
                    min_ms: summary.map(|s| millis(s.min)),
                    avg_ms: summary.map(|s| millis(s.avg)),
                    max_ms: summary.map(|s| millis(s.max)),
                    over_threshold: t.over_threshold(threshold),
                    echoes: t
                        .echoes
                        .iter()
                        .map(|e| JsonEcho {
                            seq: e.seq,
                            rtt_ms: e.rtt().map(millis),
                            error: match &e.result {
                                super::outcome::EchoResult::Failed(why) => Some(why),
                                _ => None,
                            },
                        })
                        .collect(),
                }
            })
            .collect(),
    };
    // Strings, numbers and options only: serialization cannot fail.
    let mut text = serde_json::to_string(&report).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ping::outcome::{Echo, EchoResult};
    use crate::ping::target::Target;
    use clap::Parser;
    use jiff::Timestamp;

    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        args: PingArgs,
    }

    fn parse(argv: &[&str]) -> Result<PingArgs, clap::Error> {
        Command::try_parse_from(std::iter::once("ping").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn defaults_follow_the_spec() {
        let args = parse(&["127.0.0.1"]).unwrap();
        assert_eq!(args.count, 10);
        assert_eq!(args.interval, Duration::from_millis(40));
        assert_eq!(args.payload_bytes, 16);
        assert_eq!(args.timeout, Duration::from_secs(1));
        assert_eq!(args.threshold, Duration::from_secs(1));
        assert_eq!(args.concurrency, 256);
    }

    #[test]
    fn short_options_and_microseconds() {
        let args = parse(&[
            "-c", "3", "-i", "10ms", "-s", "56", "-t", "500ms", "-T", "250us", "-j", "8", "-f",
            "hosts", "--json", "a", "b",
        ])
        .unwrap();
        assert_eq!(args.count, 3);
        assert_eq!(args.interval, Duration::from_millis(10));
        assert_eq!(args.payload_bytes, 56);
        assert_eq!(args.timeout, Duration::from_millis(500));
        assert_eq!(args.threshold, Duration::from_micros(250));
        assert_eq!(args.concurrency, 8);
        assert_eq!(args.file, Some(PathBuf::from("hosts")));
        assert!(args.json);
        assert_eq!(args.targets, ["a", "b"]);
    }

    #[test]
    fn zero_is_a_duration_in_any_unit() {
        for zero in ["0", "0s", "0ms", "0us"] {
            assert_eq!(parse_duration(zero), Ok(Duration::ZERO), "{zero}");
        }
        assert!(parse_duration("0x").is_err());
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for argv in [
            &["-c", "0", "x"][..],
            &["-j", "0", "x"],
            &["-s", "70000", "x"],
            &["-t", "0", "x"],
            &["-i", "5 minutes", "x"],
        ] {
            let error = parse(argv)
                .err()
                .unwrap_or_else(|| panic!("{argv:?} parsed"));
            assert_eq!(error.exit_code(), 2, "{argv:?}");
        }
    }

    fn round() -> RoundOutcome {
        let echo = |seq, result| Echo {
            seq,
            sent_at: Timestamp::UNIX_EPOCH,
            result,
        };
        RoundOutcome {
            started: Timestamp::UNIX_EPOCH,
            targets: vec![
                TargetOutcome {
                    target: Target::from_address("127.0.0.1".parse().unwrap()),
                    echoes: vec![
                        echo(0, EchoResult::Reply(Duration::from_micros(100))),
                        echo(1, EchoResult::Reply(Duration::from_micros(300))),
                        echo(2, EchoResult::Lost),
                    ],
                },
                TargetOutcome {
                    target: Target {
                        name: "gone".into(),
                        address: "127.0.0.2".parse().unwrap(),
                    },
                    echoes: vec![echo(0, EchoResult::Failed("unreachable".into()))],
                },
            ],
        }
    }

    #[test]
    fn text_lines_look_like_fping() {
        assert_eq!(
            text_report(&round(), Duration::from_micros(200)),
            "127.0.0.1        : xmt/rcv/%loss = 3/2/33.3%, min/avg/max = 0.100/0.200/0.300 ms, over 200us = 1\n\
             gone (127.0.0.2) : xmt/rcv/%loss = 1/0/100%, over 200us = 0\n"
        );
    }

    #[test]
    fn json_carries_stats_and_echoes() {
        let json: serde_json::Value =
            serde_json::from_str(&json_report(&round(), Duration::from_secs(1))).unwrap();
        assert_eq!(json["threshold_ms"], 1000.0);
        let first = &json["targets"][0];
        assert_eq!(first["sent"], 3);
        assert_eq!(first["received"], 2);
        assert_eq!(first["min_ms"], 0.1);
        assert_eq!(first["max_ms"], 0.3);
        assert_eq!(first["over_threshold"], 0);
        assert_eq!(first["echoes"][2]["rtt_ms"], serde_json::Value::Null);
        let second = &json["targets"][1];
        assert_eq!(second["target"], "gone");
        assert_eq!(second["loss_percent"], 100.0);
        assert_eq!(second["min_ms"], serde_json::Value::Null);
        assert_eq!(second["echoes"][0]["error"], "unreachable");
    }
}
