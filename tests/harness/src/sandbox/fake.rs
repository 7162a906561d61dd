//! Fake TiDB components: small HTTP servers (hyper) that serve the real metric names on
//! their status ports, and faults a test can inject: stop and start (listeners *and* open
//! keep-alive connections close, so probes fail and `up` drops to 0), restart (new process
//! start time, counters reset), values, rates, histogram latencies and per-view overrides.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::component_metrics;
use super::exposition::{Kind, Selector, Series, render};
use super::serve;
use super::supervisor::unix_now;
use super::topology::{Component, Endpoint, FakeSpec, Host, Server};
use crate::io_thread::run_on;

/// How long closing a fake's listeners and connections may take.
const STOP_LIMIT: Duration = Duration::from_secs(5);

/// Samples of one series in the past: labels including `__name__`, (Unix ms, value) points.
pub struct PastSeries {
    pub labels: Vec<(String, String)>,
    pub points: Vec<(i64, f64)>,
}

/// A handle on one fake component process (cheap to clone).
#[derive(Clone)]
pub struct FakeProcess {
    inner: Arc<FakeInner>,
    io: Handle,
}

struct FakeInner {
    spec: FakeSpec,
    block: u8,
    state: Mutex<FakeState>,
}

struct FakeState {
    /// Parallel to `spec.ports`; empty for plain ports.
    series: Vec<Vec<Series>>,
    start_time: f64,
    running: Option<Running>,
}

struct Running {
    cancel: CancellationToken,
    tracker: TaskTracker,
}

impl FakeInner {
    fn lock(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn name(&self) -> String {
        format!(
            "{} at {}",
            self.spec.component.name(),
            self.spec.host.addr(self.block, self.spec.status_port())
        )
    }
}

impl FakeProcess {
    pub(crate) fn new(spec: FakeSpec, block: u8, io: Handle) -> FakeProcess {
        let series = spec
            .ports
            .iter()
            .map(|(_, endpoint)| match endpoint {
                Endpoint::Metrics(exporter) => component_metrics::series(*exporter),
                Endpoint::Plain => Vec::new(),
            })
            .collect();
        FakeProcess {
            inner: Arc::new(FakeInner {
                spec,
                block,
                state: Mutex::new(FakeState {
                    series,
                    start_time: unix_now(),
                    running: None,
                }),
            }),
            io,
        }
    }

    pub fn component(&self) -> Component {
        self.inner.spec.component
    }

    pub fn host(&self) -> Host {
        self.inner.spec.host
    }

    /// The status port's address: what blackbox probes and what `instance` says.
    pub fn addr(&self) -> SocketAddr {
        self.inner
            .spec
            .host
            .addr(self.inner.block, self.inner.spec.status_port())
    }

    /// Every port of this process, status port first.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.inner
            .spec
            .ports
            .iter()
            .map(|(port, _)| self.inner.spec.host.addr(self.inner.block, *port))
            .collect()
    }

    /// The addresses Prometheus scrapes (ports serving `/metrics`).
    pub fn metrics_addrs(&self) -> Vec<SocketAddr> {
        self.inner
            .spec
            .ports
            .iter()
            .filter(|(_, e)| matches!(e, Endpoint::Metrics(_)))
            .map(|(port, _)| self.inner.spec.host.addr(self.inner.block, *port))
            .collect()
    }

    pub fn is_running(&self) -> bool {
        self.inner.lock().running.is_some()
    }

    /// Opens every port. Panics if one cannot be bound.
    pub async fn start(&self) {
        let inner = self.inner.clone();
        run_on(&self.io, async move { start(&inner) }).await;
    }

    /// Closes every port and every open connection, and waits until they are closed.
    pub async fn stop(&self) {
        let inner = self.inner.clone();
        run_on(&self.io, async move { stop(&inner).await }).await;
    }

    /// A crash and restart: ports close and reopen, the start time moves forward, counters
    /// start again from 0.
    pub async fn restart(&self) {
        let inner = self.inner.clone();
        run_on(&self.io, async move {
            stop(&inner).await;
            {
                let mut state = inner.lock();
                let now = Instant::now();
                state.start_time = unix_now().max(state.start_time + 0.001);
                for series in state.series.iter_mut().flatten() {
                    if series.kind != Kind::Gauge {
                        series.level.set_value(0.0, now);
                    }
                }
            }
            start(&inner);
        })
        .await;
    }

    /// Past samples of every non-histogram series this fake serves, one per `step` over
    /// the last `span`, labelled as its scrape job would label them: a history for servers
    /// that read the first sample of a series as a change (see `Sandbox::start_with`).
    pub(crate) fn history(&self, span: Duration, step: Duration) -> Vec<PastSeries> {
        let state = self.inner.lock();
        let now = Instant::now();
        let now_ms = (unix_now() * 1000.0) as i64;
        let steps = (span.as_millis() / step.as_millis().max(1)) as i64;
        let mut out = Vec::new();
        for ((port, endpoint), series) in self.inner.spec.ports.iter().zip(&state.series) {
            let Endpoint::Metrics(set) = endpoint else {
                continue;
            };
            let instance = self
                .inner
                .spec
                .host
                .addr(self.inner.block, *port)
                .to_string();
            for s in series.iter().filter(|s| s.kind != Kind::Histogram) {
                let mut labels = vec![
                    ("__name__".to_string(), s.name.clone()),
                    ("job".to_string(), set.job_name().to_string()),
                    ("instance".to_string(), instance.clone()),
                ];
                labels.extend(s.labels.iter().cloned());
                let step_ms = step.as_millis() as i64;
                let points = (1..=steps)
                    .rev()
                    .map(|i| {
                        let before = (i * step_ms) as f64 / 1000.0;
                        (
                            now_ms - i * step_ms,
                            s.value_before(now, before, state.start_time),
                        )
                    })
                    .collect();
                out.push(PastSeries { labels, points });
            }
        }
        out
    }

    /// Cancels listeners without waiting: for the sandbox's Drop.
    pub(crate) fn abort(&self) {
        if let Some(running) = self.inner.lock().running.take() {
            running.cancel.cancel();
        }
    }

    /// Applies `change` to every series the selector matches; how many matched, or why the
    /// selector is wrong.
    fn update(
        &self,
        selector: &str,
        histogram: bool,
        mut change: impl FnMut(&mut Series, Instant),
    ) -> Result<usize, String> {
        let selector = Selector::parse(selector)?;
        let now = Instant::now();
        let mut state = self.inner.lock();
        let mut matched = 0;
        for series in state.series.iter_mut().flatten() {
            let hit = if histogram {
                selector.matches_histogram(series)
            } else {
                selector.matches(series)
            };
            if hit {
                change(series, now);
                matched += 1;
            }
        }
        if matched == 0 {
            return Err(format!(
                "no series of {} matches `{selector}`",
                self.inner.name()
            ));
        }
        Ok(matched)
    }

    fn apply(&self, selector: &str, histogram: bool, change: impl FnMut(&mut Series, Instant)) {
        if let Err(why) = self.update(selector, histogram, change) {
            panic!("{why}");
        }
    }

    /// Whether `selector` is well-formed and matches a series of this fake (for the demo's
    /// command line, which must not panic on a typo).
    pub fn check_selector(&self, selector: &str, histogram: bool) -> Result<usize, String> {
        self.update(selector, histogram, |_, _| {})
    }

    /// Sets the matching series to a constant `value` (a counter stops growing).
    pub fn set(&self, selector: &str, value: f64) {
        self.apply(selector, false, |s, now| {
            s.level.set_value(value, now);
            s.level.set_rate(0.0, now);
        });
    }

    /// Adds `delta` to the matching series (e.g. one more panic).
    pub fn add(&self, selector: &str, delta: f64) {
        self.apply(selector, false, |s, now| {
            let value = s.level.at(now) + delta;
            s.level.set_value(value, now);
        });
    }

    /// The matching series grow by `per_second` from now on (0 stops them).
    pub fn set_rate(&self, selector: &str, per_second: f64) {
        self.apply(selector, false, |s, now| s.level.set_rate(per_second, now));
    }

    /// From now on every observation of the matching histograms (selected by base name
    /// and labels other than `le`) equals `value`.
    pub fn set_histogram(&self, selector: &str, value: f64) {
        self.apply(selector, true, |s, now| s.observe(value, now));
    }

    /// Scrapes by `server` see `value` for the matching series; the other server still
    /// sees the real value. This is how the two servers are made to disagree.
    pub fn set_for_view(&self, server: Server, selector: &str, value: f64) {
        self.apply(selector, false, |s, _| {
            s.views.insert(server.view().to_string(), value);
        });
    }

    /// Removes every per-view override of this fake.
    pub fn clear_views(&self) {
        for series in self.inner.lock().series.iter_mut().flatten() {
            series.views.clear();
        }
    }
}

fn start(inner: &Arc<FakeInner>) {
    let mut state = inner.lock();
    if state.running.is_some() {
        return;
    }
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    for (index, (port, _)) in inner.spec.ports.iter().enumerate() {
        let addr = inner.spec.host.addr(inner.block, *port);
        let listener = serve::listen(addr)
            .unwrap_or_else(|e| panic!("fake {} cannot listen on {addr}: {e}", inner.name()));
        let fake = inner.clone();
        tracker.spawn(serve::accept_loop(
            listener,
            Arc::new(move |request| respond(&fake, index, request)),
            cancel.clone(),
            tracker.clone(),
        ));
    }
    state.running = Some(Running { cancel, tracker });
}

async fn stop(inner: &Arc<FakeInner>) {
    let running = inner.lock().running.take();
    if let Some(running) = running {
        running.cancel.cancel();
        running.tracker.close();
        if tokio::time::timeout(STOP_LIMIT, running.tracker.wait())
            .await
            .is_err()
        {
            panic!("fake {} did not close within {STOP_LIMIT:?}", inner.name());
        }
    }
}

fn respond(inner: &FakeInner, index: usize, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let view = request.uri().query().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("view="))
            .map(str::to_string)
    });
    let state = inner.lock();
    let series = &state.series[index];
    if request.uri().path() == "/metrics" && !series.is_empty() {
        let body = render(series, view.as_deref(), state.start_time, Instant::now());
        let mut response = Response::new(Full::new(Bytes::from(body)));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return response;
    }
    Response::new(Full::new(Bytes::from(format!("fake {}\n", inner.name()))))
}
