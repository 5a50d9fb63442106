//! The HTTP error type: a stable code from the catalogue ([`crate::codes`], which also gives its
//! status) and a message, as JSON `{code, message}`.
//!
//! Every layer's error becomes an [`ApiError`] in one `match` ([`From<SessionError>`]). 5xx
//! bodies are opaque; their cause goes to the log.

use crate::codes::ErrorCode;
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
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    /// Answered with the code's status (and `Retry-After: 1` for a `503`).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn not_found() -> ApiError {
        ApiError::new(ErrorCode::SessionNotFound, "no such session")
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<SessionError> for ApiError {
    fn from(e: SessionError) -> ApiError {
        use ErrorCode as C;
        use SessionError as E;
        let message = e.to_string();
        let code = match e {
            E::NotFound => return ApiError::not_found(),
            E::Closed => C::SessionClosed,
            E::NoPendingDecision => C::NoPendingDecision,
            E::WrongResponseType { .. } => C::WrongResponseType,
            E::QueueFull => C::QueueFull,
            E::AtCapacity => C::AtCapacity,
            E::Overloaded => C::Overloaded,
            E::TooManySubscribers => C::TooManySubscribers,
            E::OwnedElsewhere => C::SessionBusy,
            E::Stopping => C::SessionStopping,
            E::Draining => C::Draining,
            E::LeaseExpired => C::LeaseExpired,
            E::ResumeAhead { .. } => C::LastEventIdAhead,
            E::EventsExpired { .. } => C::EventsExpired,
            E::EventsLost { .. } => C::EventsLost,
            E::Agent(a) => return ApiError::new(C::InvalidConfig, a.to_string()),
            E::Store(s) => return s.into(),
        };
        ApiError::new(code, message)
    }
}

impl From<crate::audit::params::ParamError> for ApiError {
    fn from(e: crate::audit::params::ParamError) -> ApiError {
        ApiError::new(e.code, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError::new(
                    ErrorCode::DatabaseUnavailable,
                    "the database is unavailable; retry",
                )
            }
            StoreError::Fenced => ApiError::new(
                ErrorCode::SessionMoved,
                "the session moved to another host; retry",
            ),
            StoreError::Conflict(_) | StoreError::Other(_) => {
                tracing::error!(error = %e, "internal error");
                ApiError::new(ErrorCode::Internal, "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let message = clip(&self.message, MAX_MESSAGE_CHARS);
        let body = serde_json::json!({"code": self.code.as_str(), "message": message});
        let mut response = (self.status(), Json(body)).into_response();
        if self.code.retry() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(1));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_session_error_answers_with_its_own_code_and_retry_after_for_503() {
        let cases = [
            (SessionError::LeaseExpired, "lease_expired", 503),
            (SessionError::Draining, "draining", 503),
            (SessionError::NotFound, "session_not_found", 404),
            (SessionError::Closed, "session_closed", 410),
            (
                SessionError::Store(StoreError::Unavailable("down".into())),
                "database_unavailable",
                503,
            ),
        ];
        for (error, code, status) in cases {
            let response = ApiError::from(error).into_response();
            assert_eq!(response.status().as_u16(), status, "{code}");
            assert_eq!(
                response.headers().contains_key(header::RETRY_AFTER),
                status == 503,
                "{code}"
            );
        }
        assert_eq!(
            ApiError::from(SessionError::LeaseExpired).code.as_str(),
            "lease_expired"
        );
    }
}
