//! History for a fresh VictoriaMetrics. MetricsQL's `changes()` compares a window's first
//! sample with the sample before the window, and counts it as a change when a series has no
//! earlier sample (unlike Prometheus). On a server that started seconds ago every series is
//! new, so every `changes(…[5m]) > 0` restart rule of the catalog would be true for its first
//! window, which a long-running server never shows. The sandbox gives its VictoriaMetrics the
//! history a long-running one has: the series those rules read, constant at their current
//! value, for the longest window before the server started.

use std::time::Duration;

use serde_json::json;

use super::query::instant_query;

/// The series that the catalog's `changes()` rules read.
const CHANGES_SERIES: &str = r#"{__name__=~"process_start_time_seconds|tiflash_proxy_process_start_time_seconds|pd_tso_events"}"#;

/// The catalog's longest `changes()` window is 10m; one more minute covers the sample that
/// comes before it.
const HISTORY: Duration = Duration::from_secs(11 * 60);
/// The sandbox scrapes every second; the history has the same spacing, so that the server
/// sees one series with a steady interval.
const STEP: Duration = Duration::from_secs(1);

/// Imports the history into the VictoriaMetrics at `base_url`, ending just before
/// `started_at` (unix seconds), and makes it searchable at once. Returns the series count.
pub async fn backfill(
    http: &reqwest::Client,
    base_url: &str,
    started_at: f64,
) -> Result<usize, String> {
    let series = instant_query(http, base_url, CHANGES_SERIES).await?;
    if series.is_empty() {
        return Err(format!("{base_url} has no series for {CHANGES_SERIES} yet"));
    }
    let end_ms = (started_at * 1000.0) as i64 - STEP.as_millis() as i64;
    let points = (HISTORY.as_millis() / STEP.as_millis()) as i64;
    let timestamps: Vec<i64> = (0..points)
        .rev()
        .map(|i| end_ms - i * STEP.as_millis() as i64)
        .collect();
    let mut body = String::new();
    for sample in &series {
        let line = json!({
            "metric": sample.labels,
            "values": vec![sample.value; timestamps.len()],
            "timestamps": timestamps,
        });
        body.push_str(&line.to_string());
        body.push('\n');
    }
    let url = format!("{base_url}/api/v1/import");
    let response = http
        .post(&url)
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    // Imported samples become searchable within a second or so; a flush makes it now.
    let flush = format!("{base_url}/internal/force_flush");
    let response = http
        .get(&flush)
        .send()
        .await
        .map_err(|e| format!("{flush}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{flush} answered {}", response.status()));
    }
    Ok(series.len())
}
