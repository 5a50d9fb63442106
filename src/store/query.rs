//! Statements assembled from optional predicates, with every value a bind parameter, ready
//! to run or to `EXPLAIN` (the audit queries, `store::audit`).

use super::{Store, StoreError};
use serde_json::Value;
use tokio_postgres::types::ToSql;

type Param = Box<dyn ToSql + Sync + Send>;

/// A query assembled from optional predicates; every value is a bind parameter.
#[derive(Default)]
pub struct Query {
    pub conditions: Vec<String>,
    params: Vec<Param>,
}

impl Query {
    /// Adds `value` as the next parameter and returns its placeholder.
    pub fn bind(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// `template` with `{}` replaced by the placeholder of `value`.
    pub fn filter(&mut self, template: &str, value: impl ToSql + Sync + Send + 'static) {
        let p = self.bind(value);
        self.conditions.push(template.replace("{}", &p));
    }

    pub fn where_clause(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.conditions.join(" AND "))
        }
    }

    fn param_refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

/// A statement and its parameters, ready to run or to `EXPLAIN`.
pub struct Statement {
    pub sql: String,
    pub query: Query,
}

impl Statement {
    pub async fn rows(&self, store: &Store) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let client = store.client().await?;
        Ok(client.query(&self.sql, &self.query.param_refs()).await?)
    }

    /// `EXPLAIN (FORMAT JSON)` of the statement with its parameters: the names of the indexes
    /// its plan reads, and the plan's text for messages.
    pub async fn indexes_used(&self, store: &Store) -> Result<(Vec<String>, String), StoreError> {
        let client = store.client().await?;
        let row = client
            .query_one(
                &format!("EXPLAIN (FORMAT JSON) {}", self.sql),
                &self.query.param_refs(),
            )
            .await?;
        let plan: Value = row.get(0);
        let mut names = Vec::new();
        collect_indexes(&plan, &mut names);
        Ok((names, plan.to_string()))
    }
}

fn collect_indexes(plan: &Value, out: &mut Vec<String>) {
    match plan {
        Value::Object(map) => {
            if let Some(Value::String(name)) = map.get("Index Name") {
                out.push(name.clone());
            }
            map.values().for_each(|v| collect_indexes(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_indexes(v, out)),
        _ => {}
    }
}
