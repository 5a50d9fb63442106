//! Bearer-token authentication as an extractor: a handler that takes a [`Principal`] is
//! authenticated, and knows who is calling.

use crate::app::AppState;
use crate::config::AuthMode;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, StatusCode};
use subtle::ConstantTimeEq;

/// Who is calling. Sessions belong to the principal that created them.
#[derive(Debug, Clone)]
pub struct Principal(pub String);

/// The principal of the static token.
pub const TOKEN_PRINCIPAL: &str = "token";
/// The principal when authentication is disabled.
pub const ANONYMOUS: &str = "anonymous";

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match &state.config.auth {
            AuthMode::Disabled => Ok(Principal(ANONYMOUS.into())),
            AuthMode::Token(expected) => {
                let presented = parts
                    .headers
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or("");
                // Constant time, so response timing does not reveal a prefix of the token.
                if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
                    Ok(Principal(TOKEN_PRINCIPAL.into()))
                } else {
                    Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "unauthorized",
                        "missing or invalid bearer token",
                    ))
                }
            }
        }
    }
}
