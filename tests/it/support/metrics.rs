//! Scraping `/metrics` and reading it as Prometheus text (parsed by `prometheus-parse`, so a
//! malformed exposition fails the test).

use super::{Api, ADMIN_TOKEN};
use prometheus_parse::{Scrape, Value};

pub struct Scraped(pub Scrape);

/// `GET /metrics` with the admin token; panics unless it is `200` Prometheus text.
pub async fn scrape(api: &Api) -> Scraped {
    let r = api
        .http
        .get(format!("{}/metrics", api.base))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "/metrics");
    let content_type = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    parse(&r.text().await.unwrap())
}

pub fn parse(text: &str) -> Scraped {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Scraped(Scrape::parse(lines).expect("valid Prometheus text"))
}

impl Scraped {
    /// A counter's or gauge's value with exactly these labels; 0 when the series is absent.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
                _ => panic!("{name} is not a counter or gauge"),
            })
            .next()
            .unwrap_or(0.0)
    }

    /// How many observations a histogram holds (its `_count`).
    pub fn histogram_count(&self, name: &str) -> f64 {
        self.value(&format!("{name}_count"), &[])
    }

    /// Whether the exposition documents `name` (`# HELP`).
    pub fn documents(&self, name: &str) -> bool {
        self.0.docs.contains_key(name)
    }
}
