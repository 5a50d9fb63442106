use super::{body_error, session_id};
use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::session::registry::Lookup;
use crate::session::{inbound, SessionError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// `POST /sessions/{id}/input`: `204` once the message is recorded in Postgres.
pub async fn input(
    State(app): State<AppState>,
    Principal(principal): Principal,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let id = session_id(&id)?;
    let body = body.map_err(body_error)?;
    let (message, value) =
        inbound::parse(&body).map_err(|e| ApiError::bad_request(e.code, e.message))?;
    match app.registry.lookup(id, &principal).await? {
        Lookup::Live(session) => session.input(message, &value, &principal).await?,
        Lookup::Closed { .. } => return Err(SessionError::Closed.into()),
    }
    Ok(StatusCode::NO_CONTENT)
}
