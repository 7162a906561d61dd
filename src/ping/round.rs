//! One round: every target gets `count` echoes spaced `interval` apart, each waiting
//! up to `timeout`, with at most `concurrency` targets in flight.
//!
//! A target's echoes overlap (the interval is shorter than the timeout), so each echo
//! is its own future with its own pinger; all of one target's pingers share an
//! identifier, and every target gets a different one.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use jiff::Timestamp;
use surge_ping::{IcmpPacket, PingIdentifier, PingSequence, SurgeError};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use super::outcome::{Echo, EchoResult, RoundOutcome, TargetOutcome};
use super::prober::{Family, Prober, Socket};
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
/// get every echo marked failed. Safe to cancel at any await point: the per-target
/// tasks are aborted with it.
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
                let socket = prober.socket_for(target.address, identifier.0).cloned();
                let payload = Arc::clone(&payload);
                async move {
                    let outcome = match socket {
                        Some(socket) => {
                            spawn_target(socket, target, identifier, settings, payload).await
                        }
                        None => {
                            let reason =
                                format!("no {} ICMP socket is open", Family::of(target.address));
                            failed(target, settings.count, &reason)
                        }
                    };
                    (index, outcome)
                }
            })
            // Starts a target only when there is room, which bounds concurrency.
            .buffer_unordered(settings.concurrency.max(1))
            .collect()
            .await;

    outcomes.sort_by_key(|(index, _)| *index);
    RoundOutcome {
        started,
        targets: outcomes.into_iter().map(|(_, outcome)| outcome).collect(),
    }
}

/// Runs one target as its own task, so that sending (where the kernel does most of the
/// work, on loopback the whole round trip) spreads over every worker thread. Dropping
/// this future aborts the task.
async fn spawn_target(
    socket: Socket,
    target: Target,
    identifier: PingIdentifier,
    settings: RoundSettings,
    payload: Arc<[u8]>,
) -> TargetOutcome {
    let task = AbortOnDropHandle::new(tokio::spawn(ping_target(
        socket,
        target.clone(),
        identifier,
        settings,
        payload,
    )));
    match task.await {
        Ok(outcome) => outcome,
        Err(error) => failed(target, settings.count, &error.to_string()),
    }
}

/// Sends echo `seq` at `start + seq × interval`. An echo exists only from its send
/// until its answer or timeout, so a large round holds few of them at once.
async fn ping_target(
    socket: Socket,
    target: Target,
    identifier: PingIdentifier,
    settings: RoundSettings,
    payload: Arc<[u8]>,
) -> TargetOutcome {
    let start = Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut echoes = Vec::with_capacity(usize::from(settings.count));
    for seq in 0..settings.count {
        // Collect answers while waiting for the next send time.
        let send_time = tokio::time::sleep_until(start + settings.interval * u32::from(seq));
        tokio::pin!(send_time);
        loop {
            tokio::select! {
                biased;
                () = &mut send_time => break,
                Some(echo) = in_flight.next(), if !in_flight.is_empty() => echoes.push(echo),
            }
        }
        in_flight.push(echo(
            socket.clone(),
            target.address,
            identifier,
            seq,
            settings.timeout,
            Arc::clone(&payload),
        ));
    }
    while let Some(echo) = in_flight.next().await {
        echoes.push(echo);
    }
    echoes.sort_by_key(|echo: &Echo| echo.seq);
    TargetOutcome { echoes, target }
}

async fn echo(
    socket: Socket,
    address: IpAddr,
    identifier: PingIdentifier,
    seq: u16,
    timeout: Duration,
    payload: Arc<[u8]>,
) -> Echo {
    // Held until the answer or the timeout. The window is never closed.
    let _permit = socket.window.acquire().await;
    let mut pinger = socket.client.pinger(address, identifier).await;
    pinger.timeout(timeout);
    let sent_at = Timestamp::now();
    // The round trip is the send (timed here) plus what surge-ping measures: from the
    // send's return to the moment its receive thread took the reply. Neither part
    // waits for this task to be scheduled again, so a busy round does not inflate it.
    // A reply that beats the send's return completes the ping at its first poll;
    // then the whole call is the round trip (on loopback surge-ping would say 0).
    let clock = Instant::now();
    let mut sent: Option<Instant> = None;
    let mut ping = std::pin::pin!(pinger.ping(PingSequence(seq), &payload));
    let answer = std::future::poll_fn(|cx| {
        let poll = ping.as_mut().poll(cx);
        if poll.is_pending() && sent.is_none() {
            sent = Some(Instant::now());
        }
        poll
    })
    .await;
    let result = match answer {
        Ok((packet, after_send)) => match icmp_error(&packet) {
            None => EchoResult::Reply(match sent {
                Some(sent) => sent.duration_since(clock) + after_send,
                None => clock.elapsed(),
            }),
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

/// Every echo of the target failed for one reason (no socket, a crashed task).
fn failed(target: Target, count: u16, reason: &str) -> TargetOutcome {
    let now = Timestamp::now();
    TargetOutcome {
        echoes: (0..count)
            .map(|seq| Echo {
                seq,
                sent_at: now,
                result: EchoResult::Failed(reason.to_owned()),
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
