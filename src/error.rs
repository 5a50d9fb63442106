//! The HTTP error type: a status, a stable snake_case `code`, a message, as JSON `{code, message}`.
//!
//! Every layer's error becomes an [`ApiError`] in one `match` ([`From<SessionError>`]). 5xx
//! bodies are opaque; their cause goes to the log.

use crate::session::SessionError;
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

/// Most characters of any error message (messages that embed input they did not [`echo`],
/// such as a deserializer's, are cut here).
const MAX_MESSAGE_CHARS: usize = 1000;

use crate::echo::clip;
pub use crate::echo::echo;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, sent as `Retry-After` (with `503`).
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "no such session",
        )
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> ApiError {
        use SessionError as E;
        let message = e.to_string();
        match e {
            E::NotFound => ApiError::not_found(),
            E::Closed => ApiError::new(StatusCode::GONE, "session_closed", message),
            E::NoPendingDecision => {
                ApiError::new(StatusCode::CONFLICT, "no_pending_decision", message)
            }
            E::WrongResponseType { .. } => ApiError::bad_request("wrong_response_type", message),
            E::QueueFull => ApiError::unavailable("queue_full", message),
            E::AtCapacity => ApiError::unavailable("at_capacity", message),
            E::Overloaded => ApiError::unavailable("overloaded", message),
            E::TooManySubscribers => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_subscribers",
                message,
            ),
            E::OwnedElsewhere => ApiError::unavailable("session_busy", message),
            E::Stopping => ApiError::unavailable("session_stopping", message),
            E::Draining => ApiError::unavailable("draining", message),
            E::ResumeAhead { .. } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "last_event_id_ahead",
                message,
            ),
            E::EventsExpired { .. } => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "events_expired", message)
            }
            E::EventsLost { .. } => {
                ApiError::new(StatusCode::PRECONDITION_FAILED, "events_lost", message)
            }
            E::Agent(a) => ApiError::new(StatusCode::BAD_REQUEST, "invalid_config", a.to_string()),
            E::Store(s) => s.into(),
        }
    }
}

impl From<crate::audit::params::ParamError> for ApiError {
    fn from(e: crate::audit::params::ParamError) -> ApiError {
        ApiError::bad_request(e.code, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::unavailable("database_unavailable", "the database is unavailable; retry")
            }
            StoreError::Fenced => {
                ApiError::unavailable("session_moved", "the session moved to another host; retry")
            }
            StoreError::Conflict(_) | StoreError::Other(_) => {
                tracing::error!(error = %e, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = clip(&self.message, MAX_MESSAGE_CHARS);
        let body = serde_json::json!({"code": self.code, "message": message});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
