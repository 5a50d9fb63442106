//! Bearer authentication as extractors: a handler that takes a [`Principal`] (or a [`Caller`])
//! is authenticated and knows who is calling; one that takes an [`Admin`] only runs for admins.
//!
//! A bearer is, in order: the static token (principal `token`), the admin token (principal
//! `admin`, an admin), or a JWT (`sub` is the principal; see [`jwt`]). Sessions belong to the
//! principal that created them; admins read every session and the audit log, but live
//! interaction (stream, input, delete) stays with the owner, so no input is ever recorded
//! under someone else's session.

pub mod jwt;

use crate::app::AppState;
use crate::config::{AuthArgs, AuthMode, Secret};
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, StatusCode};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Who is calling. Sessions belong to the principal that created them.
#[derive(Debug, Clone)]
pub struct Principal(pub String);

/// Who is calling, and whether they are an admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub principal: String,
    pub admin: bool,
}

/// A caller that is an admin; anyone else gets `403`.
#[derive(Debug, Clone)]
pub struct Admin(pub Caller);

/// The principal of the static token.
pub const TOKEN_PRINCIPAL: &str = "token";
/// The principal when authentication is disabled (an admin: everything is open anyway).
pub const ANONYMOUS: &str = "anonymous";
/// The principal of the admin token.
pub const ADMIN_PRINCIPAL: &str = "admin";
/// Principals of the built-in credentials: a JWT may not claim them as its subject.
pub const RESERVED: &[&str] = &[TOKEN_PRINCIPAL, ANONYMOUS, ADMIN_PRINCIPAL];

/// The optional verifiers besides the static token, built once at start.
#[derive(Debug, Default)]
pub struct Verifiers {
    pub jwt: Option<Arc<jwt::JwtVerifier>>,
    pub admin_token: Option<Secret>,
}

impl Verifiers {
    /// From the flags and the secrets' environment variables (`AGENT_WEBKIT_JWT_SECRET`,
    /// `AGENT_WEBKIT_ADMIN_TOKEN`). Fails on a bad key file or admin claim.
    pub fn from_env(args: &AuthArgs) -> Result<Verifiers, String> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let settings = jwt::JwtSettings {
            hs256_secret: env("AGENT_WEBKIT_JWT_SECRET").map(Secret),
            public_key_pem: match &args.jwt_public_key_file {
                Some(path) => Some(
                    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?,
                ),
                None => None,
            },
            issuer: args.jwt_issuer.clone(),
            audience: args.jwt_audience.clone(),
            admin_claim: args.jwt_admin_claim.clone(),
        };
        Ok(Verifiers {
            jwt: jwt::JwtVerifier::new(settings)?.map(Arc::new),
            admin_token: env("AGENT_WEBKIT_ADMIN_TOKEN").map(Secret),
        })
    }
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

/// Constant time, so response timing does not reveal a prefix of a token.
fn same(presented: &str, expected: &str) -> bool {
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let config = &state.config;
        let AuthMode::Token(expected) = &config.auth else {
            return Ok(Caller {
                principal: ANONYMOUS.into(),
                admin: true,
            });
        };
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if presented.is_empty() {
            return Err(unauthorized("missing bearer token"));
        }
        if same(presented, expected) {
            return Ok(Caller {
                principal: TOKEN_PRINCIPAL.into(),
                admin: false,
            });
        }
        if let Some(Secret(admin)) = &config.admin_token {
            if same(presented, admin) {
                return Ok(Caller {
                    principal: ADMIN_PRINCIPAL.into(),
                    admin: true,
                });
            }
        }
        match &config.jwt {
            Some(verifier) => verifier
                .verify(presented)
                .map_err(|e| unauthorized(e.to_string())),
            None => Err(unauthorized("missing or invalid bearer token")),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Principal(caller.principal))
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_required",
                format!(
                    "{} is for admin principals only",
                    crate::error::echo(parts.uri.path())
                ),
            ));
        }
        Ok(Admin(caller))
    }
}
