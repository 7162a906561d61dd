//! What a round found: every echo of every target, and the statistics the keys, the
//! record and the `ping` command are built from. No I/O here.

use std::time::Duration;

use jiff::Timestamp;

use super::target::Target;

/// What became of one echo request.
#[derive(Debug, Clone, PartialEq)]
pub enum EchoResult {
    /// The echo reply came back after this long.
    Reply(Duration),
    /// No answer within the timeout.
    Lost,
    /// It could not be sent, or an ICMP error came back instead (unreachable, …).
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Echo {
    /// 0 for the first echo of the round, as fping and ping count.
    pub seq: u16,
    pub sent_at: Timestamp,
    pub result: EchoResult,
}

impl Echo {
    pub fn rtt(&self) -> Option<Duration> {
        match self.result {
            EchoResult::Reply(rtt) => Some(rtt),
            EchoResult::Lost | EchoResult::Failed(_) => None,
        }
    }

    /// Strictly longer than the threshold; a lost echo is not slow, it is lost.
    pub fn is_over(&self, threshold: Duration) -> bool {
        self.rtt().is_some_and(|rtt| rtt > threshold)
    }
}

/// min/avg/max of the answered echoes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RttSummary {
    pub min: Duration,
    pub avg: Duration,
    pub max: Duration,
}

/// One target's echoes in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetOutcome {
    pub target: Target,
    pub echoes: Vec<Echo>,
}

impl TargetOutcome {
    /// Echoes attempted, including those that failed to send (as fping counts `xmt`).
    pub fn sent(&self) -> usize {
        self.echoes.len()
    }

    pub fn received(&self) -> usize {
        self.echoes.iter().filter(|e| e.rtt().is_some()).count()
    }

    /// 0 when nothing was sent.
    pub fn loss_percent(&self) -> f64 {
        let sent = self.sent();
        if sent == 0 {
            return 0.0;
        }
        (sent - self.received()) as f64 * 100.0 / sent as f64
    }

    pub fn rtt_summary(&self) -> Option<RttSummary> {
        let rtts: Vec<Duration> = self.echoes.iter().filter_map(Echo::rtt).collect();
        let min = *rtts.iter().min()?;
        let max = *rtts.iter().max()?;
        let total: Duration = rtts.iter().sum();
        let avg = total / u32::try_from(rtts.len()).unwrap_or(u32::MAX);
        Some(RttSummary { min, avg, max })
    }

    pub fn over_threshold(&self, threshold: Duration) -> usize {
        self.echoes.iter().filter(|e| e.is_over(threshold)).count()
    }

    /// Reachable means at least one reply, as fping decides its exit code.
    pub fn is_reachable(&self) -> bool {
        self.received() > 0
    }
}

/// Every target of one round, in the order they were given.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundOutcome {
    pub started: Timestamp,
    pub targets: Vec<TargetOutcome>,
}

/// Milliseconds with microsecond precision, for output and the record.
pub fn millis(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(seq: u16, result: EchoResult) -> Echo {
        Echo {
            seq,
            sent_at: Timestamp::UNIX_EPOCH,
            result,
        }
    }

    fn outcome(results: Vec<EchoResult>) -> TargetOutcome {
        TargetOutcome {
            target: Target::from_address("127.0.0.1".parse().unwrap()),
            echoes: results
                .into_iter()
                .enumerate()
                .map(|(i, r)| echo(i as u16, r))
                .collect(),
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn stats_of_a_mixed_target() {
        let t = outcome(vec![
            EchoResult::Reply(MS),
            EchoResult::Lost,
            EchoResult::Reply(5 * MS),
            EchoResult::Failed("network unreachable".into()),
        ]);
        assert_eq!(t.sent(), 4);
        assert_eq!(t.received(), 2);
        assert_eq!(t.loss_percent(), 50.0);
        let s = t.rtt_summary().unwrap();
        assert_eq!((s.min, s.avg, s.max), (MS, 3 * MS, 5 * MS));
        assert_eq!(
            t.over_threshold(MS),
            1,
            "strictly over: 1ms is not over 1ms"
        );
        assert_eq!(t.over_threshold(Duration::ZERO), 2);
        assert!(t.is_reachable());
    }

    #[test]
    fn a_silent_target_has_no_summary_and_full_loss() {
        let t = outcome(vec![EchoResult::Lost, EchoResult::Lost]);
        assert_eq!(t.loss_percent(), 100.0);
        assert_eq!(t.rtt_summary(), None);
        assert_eq!(
            t.over_threshold(Duration::ZERO),
            0,
            "lost echoes are not slow"
        );
        assert!(!t.is_reachable());
    }

    #[test]
    fn nothing_sent_is_no_loss() {
        assert_eq!(outcome(vec![]).loss_percent(), 0.0);
    }

    #[test]
    fn millis_keep_microseconds() {
        assert_eq!(millis(Duration::from_micros(1234)), 1.234);
        assert_eq!(millis(Duration::from_nanos(1_500)), 0.002);
    }
}
