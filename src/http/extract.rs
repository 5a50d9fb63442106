//! The extractors handlers share, so no handler parses a path, a query or a body by hand: each
//! refuses what it cannot take with its own code from the catalogue (`crate::codes`).

use super::error::{echo, ApiError};
use crate::codes::ErrorCode;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Path, Query, Request};
use axum::http::{request::Parts, StatusCode};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

/// A session id from the path. A path that does not decode (`%FF`) is `400 invalid_path`;
/// anything that is not a UUID cannot name a session: `404`.
pub struct SessionId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for SessionId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(path_error)?;
        Uuid::parse_str(&raw)
            .map(SessionId)
            .map_err(|_| ApiError::not_found())
    }
}

pub fn path_error(rejection: PathRejection) -> ApiError {
    ApiError::new(ErrorCode::InvalidPath, rejection.body_text())
}

/// The query string as `name=value` pairs, in order and with repeats (`audit::params` refuses
/// unknown and repeated names with their own codes); one that does not decode is
/// `400 invalid_query`.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map(|q| QueryPairs(q.0))
            .map_err(|e| ApiError::new(ErrorCode::InvalidQuery, e.body_text()))
    }
}

/// A JSON object body deserialized into `T`. Read within `--max-body-bytes` (`413
/// body_too_large`; `400 bad_body` when it cannot be read), parsed (`400 invalid_json`), an
/// object (`400 invalid_input`), then `T` (`400 invalid_input`). As `Option<JsonBody<T>>`, an
/// empty (or blank) body is `None`.
///
/// It goes through `serde_json::Value` first so each failure gets its own code, and so `T` may
/// be `Value` itself for a handler that checks more (as inputs do).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(body_error)?;
        parse(&body).map(JsonBody)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> OptionalFromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let body = Bytes::from_request(request, state)
            .await
            .map_err(body_error)?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        parse(&body).map(|t| Some(JsonBody(t)))
    }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidJson,
            format!("body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorCode::InvalidInput,
            "body must be a JSON object",
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidInput,
            format!("invalid body: {}", echo(&e.to_string())),
        )
    })
}

/// Maps body read failures: over the limit is `413`, anything else `400`.
fn body_error(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        body_too_large()
    } else {
        ApiError::new(ErrorCode::BadBody, rejection.body_text())
    }
}

pub fn body_too_large() -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        "request body is over the size limit",
    )
}
