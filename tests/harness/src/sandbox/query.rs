//! Instant queries against a sandbox server's `/api/v1/query`, for tests to assert on.

use std::collections::BTreeMap;

use serde_json::Value;

/// One element of an instant-query result.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    /// The label's value, or "" when absent (as PromQL treats it).
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

fn parse_value(pair: &Value) -> Result<f64, String> {
    let text = pair
        .get(1)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("value without a string: {pair}"))?;
    text.parse()
        .map_err(|e| format!("value {text:?} is not a number: {e}"))
}

/// POSTs `promql` to `base_url`/api/v1/query and returns the vector (a scalar becomes one
/// sample without labels).
pub async fn instant_query(
    http: &reqwest::Client,
    base_url: &str,
    promql: &str,
) -> Result<Vec<Sample>, String> {
    let url = format!("{base_url}/api/v1/query");
    let response = http
        .post(&url)
        .form(&[("query", promql)])
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| format!("{url}: reading the answer: {e}"))?;
    let json: Value = serde_json::from_str(&body)
        .map_err(|e| format!("{url} answered {status} with non-JSON ({e}): {body}"))?;
    if json.get("status").and_then(Value::as_str) != Some("success") {
        return Err(format!("{url} rejected {promql:?}: {body}"));
    }
    let data = &json["data"];
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => data["result"]
            .as_array()
            .ok_or_else(|| format!("vector without a result array: {body}"))?
            .iter()
            .map(|element| {
                let labels = element["metric"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Sample {
                    labels,
                    value: parse_value(&element["value"])?,
                })
            })
            .collect(),
        Some("scalar") => Ok(vec![Sample {
            labels: BTreeMap::new(),
            value: parse_value(&data["result"])?,
        }]),
        other => Err(format!(
            "unexpected result type {other:?} for {promql:?}: {body}"
        )),
    }
}
