//! JWT bearer tokens: HS256 with a shared secret, or RS256 / ES256 with a public key.
//!
//! `sub` is the principal; `exp` is required and checked (with the library's default 60 s
//! leeway for clock skew), `nbf` when present, and `iss` and `aud` when configured. The
//! algorithm is fixed by the configured key — never taken from the token's header alone — so
//! an HS256 token signed with a public key as its secret is refused. An optional
//! `claim=value` marks admins. Subjects that name a built-in credential (`token`, `admin`,
//! `anonymous`) are refused, so a JWT cannot borrow their sessions.

use super::{Caller, RESERVED};
pub use crate::config::JwtSettings;
use crate::config::Secret;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

struct Key {
    key: DecodingKey,
    validation: Validation,
}

pub struct JwtVerifier {
    keys: Vec<Key>,
    admin_claim: Option<(String, String)>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("admin_claim", &self.admin_claim)
            .finish()
    }
}

/// Why a token was refused (the message of the `401`).
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("token expired")]
    Expired,
    #[error("token has the wrong audience")]
    Audience,
    #[error("token has the wrong issuer")]
    Issuer,
    #[error("token signature is invalid")]
    Signature,
    #[error("token subject {0:?} is reserved")]
    ReservedSubject(String),
    #[error("invalid token: {0}")]
    Invalid(String),
}

impl JwtVerifier {
    /// `None` when neither a secret nor a public key is configured (JWTs are then refused).
    pub fn new(settings: &JwtSettings) -> Result<Option<JwtVerifier>, String> {
        let mut keys = Vec::new();
        if let Some(Secret(secret)) = &settings.hs256_secret {
            keys.push(Key {
                key: DecodingKey::from_secret(secret.as_bytes()),
                validation: Validation::new(Algorithm::HS256),
            });
        }
        if let Some(pem) = &settings.public_key_pem {
            let (key, alg) = match DecodingKey::from_rsa_pem(pem) {
                Ok(key) => (key, Algorithm::RS256),
                Err(_) => DecodingKey::from_ec_pem(pem)
                    .map(|key| (key, Algorithm::ES256))
                    .map_err(|e| format!("the JWT public key is neither RSA nor EC PEM: {e}"))?,
            };
            keys.push(Key {
                key,
                validation: Validation::new(alg),
            });
        }
        if keys.is_empty() {
            if settings.issuer.is_some()
                || settings.audience.is_some()
                || settings.admin_claim.is_some()
            {
                return Err(
                    "JWT options need AGENT_WEBKIT_JWT_SECRET or --jwt-public-key-file".into(),
                );
            }
            return Ok(None);
        }
        for k in &mut keys {
            k.validation.set_required_spec_claims(&["exp", "sub"]);
            // A token that is not valid yet (`nbf` in the future) is refused too.
            k.validation.validate_nbf = true;
            if let Some(iss) = &settings.issuer {
                k.validation.set_issuer(&[iss]);
                k.validation.required_spec_claims.insert("iss".into());
            }
            match &settings.audience {
                Some(aud) => k.validation.set_audience(&[aud]),
                // Without a configured audience a token's `aud` cannot be checked against
                // anything; the library would refuse every token that carries one.
                None => k.validation.validate_aud = false,
            }
        }
        let admin_claim = match &settings.admin_claim {
            Some(spec) => match spec.split_once('=') {
                Some((claim, value)) if !claim.is_empty() && !value.is_empty() => {
                    Some((claim.to_owned(), value.to_owned()))
                }
                _ => {
                    return Err(format!(
                        "--jwt-admin-claim must be claim=value, got {spec:?}"
                    ))
                }
            },
            None => None,
        };
        Ok(Some(JwtVerifier { keys, admin_claim }))
    }

    /// Verifies a token and names its caller.
    pub fn verify(&self, token: &str) -> Result<Caller, JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(classify)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.validation.algorithms.contains(&header.alg))
            .ok_or_else(|| {
                JwtError::Invalid(format!("algorithm {:?} is not accepted", header.alg))
            })?;
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
            token,
            &key.key,
            &key.validation,
        )
        .map_err(classify)?;
        let claims = data.claims;
        let sub = match claims.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(JwtError::Invalid("`sub` must be a non-empty string".into())),
        };
        if RESERVED.contains(&sub.as_str()) {
            return Err(JwtError::ReservedSubject(sub));
        }
        // The principal is an indexed text column of sessions and inputs (`text`).
        if let Some(problem) = crate::text::indexed_text_problem(&sub) {
            return Err(JwtError::Invalid(format!("`sub` {problem}")));
        }
        let admin =
            self.admin_claim
                .as_ref()
                .is_some_and(|(claim, value)| match claims.get(claim) {
                    Some(Value::String(s)) => s == value,
                    Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(value)),
                    _ => false,
                });
        Ok(Caller {
            principal: sub,
            admin,
        })
    }
}

fn classify(e: jsonwebtoken::errors::Error) -> JwtError {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => JwtError::Expired,
        K::InvalidAudience => JwtError::Audience,
        K::InvalidIssuer => JwtError::Issuer,
        K::InvalidSignature => JwtError::Signature,
        _ => JwtError::Invalid(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(&JwtSettings {
            hs256_secret: Some(Secret("s3cret".into())),
            issuer: Some("iss".into()),
            audience: Some("aud".into()),
            admin_claim: Some("role=admin".into()),
            ..JwtSettings::default()
        })
        .unwrap()
        .unwrap()
    }

    fn token(claims: Value, secret: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    #[test]
    fn accepts_a_valid_token_and_reads_the_admin_claim() {
        let v = verifier();
        let c = json!({"sub":"alice","exp":now()+60,"iss":"iss","aud":"aud"});
        assert_eq!(
            v.verify(&token(c, "s3cret")).unwrap(),
            Caller {
                principal: "alice".into(),
                admin: false
            }
        );
        let c = json!({"sub":"root","exp":now()+60,"iss":"iss","aud":"aud","role":["x","admin"]});
        assert!(v.verify(&token(c, "s3cret")).unwrap().admin);
    }

    #[test]
    fn refuses_expired_forged_misaddressed_and_reserved_tokens() {
        let v = verifier();
        let ok = json!({"sub":"alice","exp":now()+60,"iss":"iss","aud":"aud"});
        let mut expired = ok.clone();
        expired["exp"] = json!(now() - 3600);
        assert!(matches!(
            v.verify(&token(expired, "s3cret")),
            Err(JwtError::Expired)
        ));
        assert!(matches!(
            v.verify(&token(ok.clone(), "other")),
            Err(JwtError::Signature)
        ));
        let mut aud = ok.clone();
        aud["aud"] = json!("elsewhere");
        assert!(matches!(
            v.verify(&token(aud, "s3cret")),
            Err(JwtError::Audience)
        ));
        let mut iss = ok.clone();
        iss["iss"] = json!("mallory");
        assert!(matches!(
            v.verify(&token(iss, "s3cret")),
            Err(JwtError::Issuer)
        ));
        let mut reserved = ok.clone();
        reserved["sub"] = json!("token");
        assert!(matches!(
            v.verify(&token(reserved, "s3cret")),
            Err(JwtError::ReservedSubject(_))
        ));
        let mut early = ok.clone();
        early["nbf"] = json!(now() + 3600);
        assert!(v.verify(&token(early, "s3cret")).is_err());
        let mut no_exp = ok;
        no_exp.as_object_mut().unwrap().remove("exp");
        assert!(v.verify(&token(no_exp, "s3cret")).is_err());
        assert!(v.verify("not.a.jwt").is_err());
    }

    fn key_file(name: &str) -> Vec<u8> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwt/");
        std::fs::read(format!("{dir}{name}")).unwrap()
    }

    #[test]
    fn rs256_and_es256_public_keys_verify_their_tokens_only() {
        for (alg, public, private) in [
            (Algorithm::RS256, "rs256.pub.pem", "rs256.key.pem"),
            (Algorithm::ES256, "es256.pub.pem", "es256.key.pem"),
        ] {
            let v = JwtVerifier::new(&JwtSettings {
                public_key_pem: Some(key_file(public)),
                ..JwtSettings::default()
            })
            .unwrap()
            .unwrap();
            let pem = key_file(private);
            let key = match alg {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
                _ => EncodingKey::from_ec_pem(&pem),
            }
            .unwrap();
            let claims = json!({"sub":"svc","exp":now()+60,"aud":"anything"});
            let t = encode(&Header::new(alg), &claims, &key).unwrap();
            assert_eq!(v.verify(&t).unwrap().principal, "svc", "{alg:?}");
            // An HS256 token is refused outright: the key fixes the algorithm.
            let hs = token(claims.clone(), "s3cret");
            assert!(
                matches!(v.verify(&hs), Err(JwtError::Invalid(_))),
                "{alg:?}"
            );
            let mut expired = claims;
            expired["exp"] = json!(now() - 3600);
            let t = encode(&Header::new(alg), &expired, &key).unwrap();
            assert!(matches!(v.verify(&t), Err(JwtError::Expired)), "{alg:?}");
        }
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad_claim = JwtSettings {
            hs256_secret: Some(Secret("x".into())),
            admin_claim: Some("role".into()),
            ..JwtSettings::default()
        };
        assert!(JwtVerifier::new(&bad_claim).is_err());
        let orphan = JwtSettings {
            issuer: Some("iss".into()),
            ..JwtSettings::default()
        };
        assert!(JwtVerifier::new(&orphan).is_err());
        let bad_pem = JwtSettings {
            public_key_pem: Some(b"nope".to_vec()),
            ..JwtSettings::default()
        };
        assert!(JwtVerifier::new(&bad_pem).is_err());
    }
}
