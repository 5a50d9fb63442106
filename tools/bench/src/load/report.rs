//! The figures of a bench run: one row per metric (median, min–max over runs, the target and
//! the ratio to it, the ratio to the raw limit when one was measured), printed as a table and
//! as one JSON line.

use super::stats::Summary;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    AtLeast(f64),
    AtMost(f64),
}

impl Goal {
    /// Figure / target, oriented so that ≥ 1 means the target is met.
    fn ratio(self, v: f64) -> f64 {
        match self {
            Goal::AtLeast(t) => v / t,
            Goal::AtMost(t) => t / v,
        }
    }

    fn describe(self) -> String {
        match self {
            Goal::AtLeast(t) => format!(">= {}", num(t)),
            Goal::AtMost(t) => format!("<= {}", num(t)),
        }
    }
}

/// One measured value of one run.
#[derive(Debug, Clone)]
pub struct Metric {
    pub key: String,
    pub label: String,
    pub unit: &'static str,
    pub value: f64,
    pub goal: Option<Goal>,
    /// Key of the raw-limit metric this one is compared with (e.g. the COPY rate).
    pub limit: Option<&'static str>,
}

impl Metric {
    pub fn new(
        key: impl Into<String>,
        label: impl Into<String>,
        unit: &'static str,
        value: f64,
    ) -> Metric {
        Metric {
            key: key.into(),
            label: label.into(),
            unit,
            value,
            goal: None,
            limit: None,
        }
    }

    pub fn goal(mut self, goal: Goal) -> Metric {
        self.goal = Some(goal);
        self
    }

    pub fn limit(mut self, key: &'static str) -> Metric {
        self.limit = Some(key);
        self
    }
}

/// Exactly-once accounting of the events the subscribers received.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub expected: u64,
    pub received: u64,
    pub duplicates: u64,
    pub gaps: u64,
}

impl Counts {
    pub fn add(&mut self, other: Counts) {
        self.expected += other.expected;
        self.received += other.received;
        self.duplicates += other.duplicates;
        self.gaps += other.gaps;
    }

    pub fn exact(&self) -> bool {
        self.expected == self.received && self.duplicates == 0 && self.gaps == 0
    }
}

struct Row {
    key: String,
    label: String,
    unit: &'static str,
    goal: Option<Goal>,
    limit: Option<&'static str>,
    values: Vec<f64>,
}

#[derive(Default)]
pub struct Report {
    rows: Vec<Row>,
    pub counts: Vec<(String, Counts)>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn push(&mut self, m: Metric) {
        match self.rows.iter_mut().find(|r| r.key == m.key) {
            Some(row) => row.values.push(m.value),
            None => self.rows.push(Row {
                key: m.key,
                label: m.label,
                unit: m.unit,
                goal: m.goal,
                limit: m.limit,
                values: vec![m.value],
            }),
        }
    }

    pub fn count(&mut self, scenario: &str, counts: Counts) {
        match self.counts.iter_mut().find(|(s, _)| s == scenario) {
            Some((_, c)) => c.add(counts),
            None => self.counts.push((scenario.to_owned(), counts)),
        }
    }

    pub fn summary(&self, key: &str) -> Option<Summary> {
        self.rows
            .iter()
            .find(|r| r.key == key)
            .map(|r| Summary::of(&r.values))
    }

    fn limit_ratio(&self, row: &Row, median: f64) -> Option<f64> {
        let limit = self.summary(row.limit?)?.median;
        Some(median / limit)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<44} {:>12} {:>25} {:<10} {:>12} {:>9} {:>9}\n",
            "metric", "median", "min-max", "unit", "target", "vs target", "vs limit"
        );
        for row in &self.rows {
            let s = Summary::of(&row.values);
            let target = row.goal.map(Goal::describe).unwrap_or_default();
            let vs_target = row
                .goal
                .map(|g| g.ratio(s.median))
                .filter(|r| r.is_finite())
                .map(|r| format!("{r:.2}x"))
                .unwrap_or_default();
            let vs_limit = self
                .limit_ratio(row, s.median)
                .map(|r| format!("{r:.2}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "{:<44} {:>12} {:>25} {:<10} {:>12} {:>9} {:>9}\n",
                row.label,
                num(s.median),
                format!("{}-{} (n={})", num(s.min), num(s.max), s.runs),
                row.unit,
                target,
                vs_target,
                vs_limit
            ));
        }
        for (scenario, c) in &self.counts {
            out.push_str(&format!(
                "{scenario}: {} of {} events received, {} duplicates, {} gaps{}\n",
                c.received,
                c.expected,
                c.duplicates,
                c.gaps,
                if c.exact() {
                    " (exactly once)"
                } else {
                    " (MISMATCH)"
                }
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        out
    }

    /// Everything, as one JSON value.
    pub fn json(&self, config: Value) -> Value {
        let mut metrics = Map::new();
        for row in &self.rows {
            let s = Summary::of(&row.values);
            let mut m = json!({
                "label": row.label, "unit": row.unit, "median": s.median, "min": s.min,
                "max": s.max, "runs": s.runs, "values": row.values,
            });
            if let Some(goal) = row.goal {
                let (kind, target) = match goal {
                    Goal::AtLeast(t) => ("at_least", t),
                    Goal::AtMost(t) => ("at_most", t),
                };
                m["target"] = json!({ kind: target });
                m["vs_target"] = json!(goal.ratio(s.median));
            }
            if let Some(r) = self.limit_ratio(row, s.median) {
                m["vs_limit"] = json!(r);
            }
            metrics.insert(row.key.clone(), m);
        }
        let counts: Map<String, Value> = self
            .counts
            .iter()
            .map(|(s, c)| {
                let v = json!({"expected": c.expected, "received": c.received,
                    "duplicates": c.duplicates, "gaps": c.gaps, "exact": c.exact()});
                (s.clone(), v)
            })
            .collect();
        json!({ "config": config, "metrics": metrics, "counts": counts, "notes": self.notes })
    }
}

/// Three significant digits, without exponent noise.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}
