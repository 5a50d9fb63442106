//! `GET /hosts`, for admins: every host's liveness, lease age and sessions owned, so an
//! operator (and the console's Hosts page) sees the fleet without `psql`. Admin-only like the
//! audit log: host names and counts describe every principal's sessions.

use super::openapi::bodies::HostList;
use super::openapi::errors::{self, ErrorBody};
use super::openapi::params::HostsQuery;
use super::query_pairs;
use crate::app::AppState;
use crate::audit::params;
use crate::auth::Admin;
use crate::error::ApiError;
use crate::store::hosts_view;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde_json::{json, Value};

/// `GET /hosts?limit=`: live hosts first, then the newest.
#[utoipa::path(
    get,
    path = "/hosts",
    operation_id = "list_hosts",
    tag = "audit",
    security(("bearerToken" = []), ("jwt" = [])),
    params(HostsQuery),
    responses(
        (status = 200, description = "Every host, live ones first.", body = HostList),
        (status = 400, description = errors::BAD_FILTER, body = ErrorBody),
        (status = 401, description = errors::UNAUTHORIZED, body = ErrorBody),
        (status = 403, description = errors::ADMIN_REQUIRED, body = ErrorBody),
        (status = 503, description = errors::UNAVAILABLE, body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds."))),
    )
)]
pub async fn list(
    State(app): State<AppState>,
    _: Admin,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let limit = params::hosts(&query_pairs(query)?)?;
    let store = &app.registry.deps.store;
    let hosts = hosts_view::list(store, app.config.lease, limit).await?;
    Ok(Json(
        json!({ "hosts": hosts, "lease_secs": app.config.lease.as_secs_f64() }),
    ))
}
