//! Scenario 6: `for`. A condition shorter than `for` never shows 1, a longer one does, and a
//! restart while the rule is pending keeps the pending time (the state file).

use std::time::Duration;

use harness::catalog;
use harness::sandbox::{Host, Sandbox, WAIT_LIMIT};
use harness::wait::Wait;
use jiff::Timestamp;

use crate::agents::{AgentSpec, HostAgent, Snapshot, wait_until};
use crate::expect::{self, Expected, State};

/// `for` of the agent that sees short and long conditions.
const SHORT_FOR: Duration = Duration::from_secs(8);
/// `for` of the agent restarted while pending: long enough for a restart.
const RESTART_FOR: Duration = Duration::from_secs(20);
/// Pending this long before the restart, so that a pending time restarted from scratch
/// cannot round to the same second as the kept one.
const PENDING_BEFORE_RESTART: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(50);

fn parse_time(text: &str) -> Timestamp {
    text.parse()
        .unwrap_or_else(|e| panic!("not an RFC 3339 time {text:?}: {e}"))
}

fn since(snapshot: &Snapshot, key: &str) -> Timestamp {
    match snapshot.since.get(key) {
        Some(Some(text)) => parse_time(text),
        other => panic!("{key}: no `since` in {}: {other:?}", snapshot.timestamp),
    }
}

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

/// Every snapshot of `agent` until one has `key` in `state`; returns them all.
async fn watch_until(agent: &HostAgent, key: &str, state: State) -> Vec<Snapshot> {
    let mut seen: Vec<Snapshot> = Vec::new();
    let what = format!("{}: {key} to become {state:?}", agent.name);
    let log = || agent.log_tail();
    Wait::new(WAIT_LIMIT, &what)
        .every(POLL)
        .on_timeout(&log)
        .until(|| {
            let last = seen.last().map(|s| s.stamp);
            if let Some(snapshot) = agent.latest() {
                if Some(snapshot.stamp) != last {
                    let done = snapshot.reading(key).map(|r| r.state) == Some(state);
                    seen.push(snapshot);
                    if done {
                        return Ok(());
                    }
                }
            }
            Err(format!("{:?}", seen.last().map(|s| s.reading(key))))
        })
        .await;
    seen
}

fn assert_never_one(snapshots: &[Snapshot], key: &str, agent: &HostAgent, what: &str) {
    for s in snapshots {
        let reading = s.reading(key).unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(
            reading.value, 0,
            "{}: {what}: {key} showed 1 in snapshot {} ({:?})",
            agent.name, s.timestamp, reading
        );
    }
}

/// The other hosts healthy, and the two agents of .1 healthy but for `one`.
fn everyone<'a>(
    sb: &Sandbox,
    others: &'a [HostAgent],
    on_one: [&'a HostAgent; 2],
    one: impl Fn(Expected) -> Expected,
) -> Vec<(&'a HostAgent, Expected)> {
    let mut out: Vec<(&HostAgent, Expected)> = others
        .iter()
        .map(|a| (a, expect::healthy(sb, a.host)))
        .collect();
    out.extend(on_one.map(|a| (a, one(expect::healthy(sb, a.host)))));
    out
}

#[tokio::test]
async fn for_hides_short_conditions_fires_long_ones_and_survives_a_restart() {
    let sb = Sandbox::start().await;
    sb.wait_until_ready().await;
    let ddl = catalog::key("TiDB_ddl_waiting_jobs");
    let short = AgentSpec::new(&sb, Host::One)
        .named("for-8s")
        .rule_for(&ddl, "8s")
        .start();
    let mut restarted = AgentSpec::new(&sb, Host::One)
        .named("for-20s")
        .rule_for(&ddl, "20s")
        .start();
    let others: Vec<HostAgent> = [Host::Two, Host::Ten]
        .iter()
        .map(|h| AgentSpec::new(&sb, *h).start())
        .collect();
    wait_until(
        &everyone(&sb, &others, [&short, &restarted], |e| e),
        "every host healthy",
    )
    .await;
    let tidb = sb.fake(sb.addr(Host::One, 10080));

    // Shorter than `for`: pending, then ok again, never 1.
    tidb.set("tidb_ddl_waiting_jobs", 10.0);
    let rising = watch_until(&short, &ddl, State::Pending).await;
    tidb.set("tidb_ddl_waiting_jobs", 0.0);
    let falling = watch_until(&short, &ddl, State::Ok).await;
    assert_never_one(&rising, &ddl, &short, "a condition shorter than `for`");
    assert_never_one(&falling, &ddl, &short, "a condition shorter than `for`");
    wait_until(
        &everyone(&sb, &others, [&short, &restarted], |e| e),
        "every host healthy again",
    )
    .await;

    // Longer than `for`: pending, then firing once `for` has passed.
    tidb.set("tidb_ddl_waiting_jobs", 10.0);
    let pending = watch_until(&short, &ddl, State::Pending).await;
    let pending_since = since(pending.last().expect("a snapshot"), &ddl);
    let restart_pending = watch_until(&restarted, &ddl, State::Pending).await;
    let kept_since = since(restart_pending.last().expect("a snapshot"), &ddl);

    // Restart the 20 s agent while it is pending.
    let restart_after =
        kept_since + jiff::SignedDuration::try_from(PENDING_BEFORE_RESTART).unwrap();
    let what = format!("{}: a snapshot that moves on", restarted.name);
    Wait::new(WAIT_LIMIT, &what)
        .every(POLL)
        .until(|| {
            restarted
                .latest()
                .filter(|s| parse_time(&s.timestamp) >= restart_after)
        })
        .await;
    let before = restarted.stamp();
    restarted.restart();
    let first = restarted.next_after(before).await;
    assert_eq!(
        first.reading(&ddl).map(|r| r.state),
        Some(State::Pending),
        "{}: first snapshot after the restart",
        restarted.name
    );
    assert_eq!(
        since(&first, &ddl),
        kept_since,
        "{}: the pending time was not kept across the restart",
        restarted.name
    );

    let firing = watch_until(&short, &ddl, State::Firing).await;
    assert_never_one(
        &firing[..firing.len() - 1],
        &ddl,
        &short,
        "before `for` passed",
    );
    let fired = firing.last().expect("a snapshot");
    assert_eq!(fired.reading(&ddl).map(|r| r.value), Some(1));
    // `since` values are whole seconds, so allow one second of rounding.
    let waited = seconds(pending_since, since(fired, &ddl));
    assert!(
        waited >= SHORT_FOR.as_secs_f64() - 1.0,
        "{}: fired {waited} s after pending, `for` is {SHORT_FOR:?}",
        short.name
    );

    let firing = watch_until(&restarted, &ddl, State::Firing).await;
    let fired = firing.last().expect("a snapshot");
    let waited = seconds(kept_since, since(fired, &ddl));
    assert!(
        waited >= RESTART_FOR.as_secs_f64() - 1.0,
        "{}: fired {waited} s after pending, `for` is {RESTART_FOR:?}",
        restarted.name
    );
    wait_until(
        &everyone(&sb, &others, [&short, &restarted], |e| e.firing(&ddl)),
        "the long condition firing on .1",
    )
    .await;

    tidb.set("tidb_ddl_waiting_jobs", 0.0);
    wait_until(
        &everyone(&sb, &others, [&short, &restarted], |e| e),
        "every host healthy at the end",
    )
    .await;
}
