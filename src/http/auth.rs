//! Bearer authentication as extractors: a handler that takes a [`Principal`] (or a [`Caller`])
//! is authenticated and knows who is calling; one that takes an [`Admin`] only runs for admins.
//!
//! A bearer is, in order: the static token (principal `token`), the admin token (principal
//! `admin`, an admin), or a JWT (`sub` is the principal; see [`jwt`]). Sessions belong to the
//! principal that created them; admins read every session and the audit log, but live
//! interaction (stream, input, delete) stays with the owner, so no input is ever recorded
//! under someone else's session.

pub mod jwt;

use super::error::{echo, ApiError};
use crate::codes::ErrorCode;
use crate::config::{AuthMode, AuthSettings, Secret};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::{header, request::Parts};
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

/// The credentials a request may present, built once at start from [`AuthSettings`]; the
/// extractors read it from the state through `FromRef`.
#[derive(Debug)]
pub struct Auth {
    mode: AuthMode,
    admin_token: Option<Secret>,
    jwt: Option<jwt::JwtVerifier>,
}

impl Auth {
    /// Fails on a bad key or admin claim, or JWT options without a key.
    pub fn new(settings: &AuthSettings) -> Result<Auth, String> {
        let jwt = match &settings.jwt {
            Some(jwt) => jwt::JwtVerifier::new(jwt)?,
            None => None,
        };
        Ok(Auth {
            mode: settings.mode.clone(),
            admin_token: settings.admin_token.clone(),
            jwt,
        })
    }

    /// Who presents `authorization` (the header's value, if any).
    fn caller(&self, authorization: Option<&str>) -> Result<Caller, ApiError> {
        let AuthMode::Token(expected) = &self.mode else {
            return Ok(Caller {
                principal: ANONYMOUS.into(),
                admin: true,
            });
        };
        let presented = authorization
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
        if let Some(Secret(admin)) = &self.admin_token {
            if same(presented, admin) {
                return Ok(Caller {
                    principal: ADMIN_PRINCIPAL.into(),
                    admin: true,
                });
            }
        }
        match &self.jwt {
            Some(verifier) => verifier
                .verify(presented)
                .map_err(|e| unauthorized(e.to_string())),
            None => Err(unauthorized("missing or invalid bearer token")),
        }
    }
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, message)
}

/// Constant time, so response timing does not reveal a prefix of a token.
fn same(presented: &str, expected: &str) -> bool {
    bool::from(presented.as_bytes().ct_eq(expected.as_bytes()))
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Arc::<Auth>::from_ref(state).caller(authorization)
    }
}

impl<S> FromRequestParts<S> for Principal
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        Ok(Principal(caller.principal))
    }
}

impl<S> FromRequestParts<S> for Admin
where
    Arc<Auth>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if !caller.admin {
            return Err(ApiError::new(
                ErrorCode::AdminRequired,
                format!("{} is for admin principals only", echo(parts.uri.path())),
            ));
        }
        Ok(Admin(caller))
    }
}
