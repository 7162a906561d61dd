//! One round: every target gets `count` echoes spaced `interval` apart, each waiting
//! up to `timeout`, with at most `concurrency` targets in flight.
//!
//! A target's echoes overlap (the interval is shorter than the timeout), so each echo
//! is its own future with its own pinger; all of one target's pingers share an
//! identifier, and every target gets a different one.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use jiff::Timestamp;
use surge_ping::{Client, IcmpPacket, PingIdentifier, PingSequence, SurgeError};
use tokio::time::Instant;

use super::outcome::{Echo, EchoResult, RoundOutcome, TargetOutcome};
use super::prober::{Family, Prober};
use super::target::Target;
use crate::config::PingConfig;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundSettings {
    pub count: u16,
    pub interval: Duration,
    pub payload_bytes: usize,
    pub timeout: Duration,
    pub concurrency: usize,
}

impl From<&PingConfig> for RoundSettings {
    fn from(config: &PingConfig) -> Self {
        Self {
            count: config.count,
            interval: config.interval.get(),
            payload_bytes: config.payload_bytes,
            timeout: config.timeout.get(),
            concurrency: config.concurrency,
        }
    }
}

/// Pings every target once per the settings. Targets whose family has no open socket
/// get every echo marked failed. Safe to cancel at any await point.
pub async fn run(prober: &Prober, targets: Vec<Target>, settings: &RoundSettings) -> RoundOutcome {
    let started = Timestamp::now();
    let payload: Arc<[u8]> = vec![0u8; settings.payload_bytes].into();
    // A fresh identifier range per round, so that raw sockets (which see every echo
    // reply on the host) do not take another pinger's replies, or a late reply from
    // the previous round, for ours. Datagram sockets ignore it: the kernel sets it.
    let first_identifier = RandomState::new().build_hasher().finish() as u16;
    // Owned copies in every future, so that the round stays `Send` for tokio::spawn.
    let settings = *settings;

    let mut outcomes: Vec<(usize, TargetOutcome)> =
        futures::stream::iter(targets.into_iter().enumerate())
            .map(move |(index, target)| {
                let identifier = PingIdentifier(first_identifier.wrapping_add(index as u16));
                let client = prober
                    .socket_for(target.address)
                    .map(|socket| socket.client.clone());
                let payload = Arc::clone(&payload);
                async move {
                    let outcome = match client {
                        Some(client) => {
                            ping_target(client, target, identifier, settings, payload).await
                        }
                        None => unreachable_family(target, settings.count),
                    };
                    (index, outcome)
                }
            })
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;

    outcomes.sort_by_key(|(index, _)| *index);
    RoundOutcome {
        started,
        targets: outcomes.into_iter().map(|(_, outcome)| outcome).collect(),
    }
}

async fn ping_target(
    client: Client,
    target: Target,
    identifier: PingIdentifier,
    settings: RoundSettings,
    payload: Arc<[u8]>,
) -> TargetOutcome {
    // Each echo starts at its send time, and only the echoes waiting for a reply exist:
    // made all at once, a round held `count` echo futures per target for its whole
    // length, about 0.9 MB for 100 targets, which the allocator then kept (bench/REPORT.md).
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut echoes = Vec::with_capacity(usize::from(settings.count));
    let mut next_seq = 0;
    loop {
        let next_send = start + settings.interval * u32::from(next_seq);
        tokio::select! {
            _ = tokio::time::sleep_until(next_send), if next_seq < settings.count => {
                in_flight.push(echo(&client, &target, identifier, next_seq, &settings, &payload));
                next_seq += 1;
            }
            Some(done) = in_flight.next() => echoes.push(done),
            else => break,
        }
    }
    echoes.sort_by_key(|e: &Echo| e.seq);
    TargetOutcome { echoes, target }
}

/// One echo, sent now.
fn echo(
    client: &Client,
    target: &Target,
    identifier: PingIdentifier,
    seq: u16,
    settings: &RoundSettings,
    payload: &Arc<[u8]>,
) -> impl Future<Output = Echo> + use<> {
    let (client, address, timeout) = (client.clone(), target.address, settings.timeout);
    let payload = Arc::clone(payload);
    async move {
        let mut pinger = client.pinger(address, identifier).await;
        pinger.timeout(timeout);
        let sent_at = Timestamp::now();
        // Timed around the whole call, as ping(8) and fping do. surge-ping starts
        // its clock after the send returns, and on loopback the reply is often
        // already in by then, which would make the round trip 0.
        let clock = Instant::now();
        let result = match pinger.ping(PingSequence(seq), &payload).await {
            Ok((packet, _)) => match icmp_error(&packet) {
                None => EchoResult::Reply(clock.elapsed()),
                Some(error) => EchoResult::Failed(error),
            },
            Err(SurgeError::Timeout { .. }) => EchoResult::Lost,
            Err(error) => EchoResult::Failed(error.to_string()),
        };
        Echo {
            seq,
            sent_at,
            result,
        }
    }
}

fn unreachable_family(target: Target, count: u16) -> TargetOutcome {
    let reason = format!("no {} ICMP socket is open", Family::of(target.address));
    let now = Timestamp::now();
    TargetOutcome {
        echoes: (0..count)
            .map(|seq| Echo {
                seq,
                sent_at: now,
                result: EchoResult::Failed(reason.clone()),
            })
            .collect(),
        target,
    }
}

/// `None` for an echo reply; otherwise what the ICMP error says, for the record.
fn icmp_error(packet: &IcmpPacket) -> Option<String> {
    let (kind, code, from) = match packet {
        IcmpPacket::V4(p) => {
            if p.get_icmp_type().0 == 0 {
                return None;
            }
            let kind = match p.get_icmp_type().0 {
                3 => "destination unreachable",
                11 => "time exceeded",
                _ => "unexpected ICMP message",
            };
            (
                kind,
                (p.get_icmp_type().0, p.get_icmp_code().0),
                p.get_source().to_string(),
            )
        }
        IcmpPacket::V6(p) => {
            if p.get_icmpv6_type().0 == 129 {
                return None;
            }
            let kind = match p.get_icmpv6_type().0 {
                1 => "destination unreachable",
                3 => "time exceeded",
                _ => "unexpected ICMPv6 message",
            };
            (
                kind,
                (p.get_icmpv6_type().0, p.get_icmpv6_code().0),
                p.get_source().to_string(),
            )
        }
    };
    Some(format!(
        "{kind} (type {}, code {}) from {from}",
        code.0, code.1
    ))
}
