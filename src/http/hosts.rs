//! `GET /hosts`, for admins: every host's liveness, lease age and sessions owned, so an
//! operator (and the console's Hosts page) sees the fleet without `psql`. Admin-only like the
//! audit log: host names and counts describe every principal's sessions.

use super::auth::Admin;
use super::error::ApiError;
use super::extract::QueryPairs;
use super::openapi::bodies::HostList;
use super::openapi::errors::{self, ErrorBody};
use super::openapi::params::HostsQuery;
use super::AppState;
use crate::audit::params;
use crate::store::hosts_view;
use axum::extract::State;
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
    QueryPairs(query): QueryPairs,
) -> Result<Json<Value>, ApiError> {
    let limit = params::hosts(&query)?;
    let store = &app.store;
    let hosts = hosts_view::list(store, app.lease, limit).await?;
    Ok(Json(
        json!({ "hosts": hosts, "lease_secs": app.lease.as_secs_f64() }),
    ))
}
