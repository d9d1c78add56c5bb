//! Access rules of the JSON API: the write token (`API_TOKEN`) that `POST /host_systems`,
//! `POST /benchmarks` and `/stats/db` require, and CORS for browsers on other origins
//! (`CORS_ALLOWED_ORIGINS`). Reads stay open.

use std::future::{ready, Ready};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};

use crate::api::error::ApiError;

/// The token writes need; `None` leaves them open.
#[derive(Clone)]
pub struct WriteToken(pub Option<String>);

impl std::fmt::Debug for WriteToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "WriteToken(set)"
        } else {
            "WriteToken(unset)"
        })
    }
}

/// Proof that a request may write: a handler that takes it answers 401 without the token.
pub struct Authorized;

impl FromRequest for Authorized {
    type Error = ApiError;
    type Future = Ready<Result<Authorized, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let expected = match req.app_data::<web::Data<WriteToken>>() {
            Some(token) => token.0.clone(),
            None => None,
        };
        let Some(expected) = expected else {
            return ready(Ok(Authorized));
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        ready(match given {
            Some(given) if same(given.as_bytes(), expected.as_bytes()) => Ok(Authorized),
            _ => Err(ApiError::Unauthorized),
        })
    }
}

/// The token of `Bearer <token>` (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Compares in time that depends only on the expected token's length, so response times do not
/// tell an attacker how much of a guess was right.
fn same(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(!e) ^ e;
    }
    std::hint::black_box(diff) == 0
}

/// Origins whose pages may call the API from a browser: none, some, or `*` (any).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorsOrigins {
    any: bool,
    origins: Vec<String>,
}

impl std::str::FromStr for CorsOrigins {
    type Err = String;

    fn from_str(text: &str) -> Result<CorsOrigins, String> {
        let mut out = CorsOrigins::default();
        for origin in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
        {
            if origin == "*" {
                out.any = true;
                continue;
            }
            let rest = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"))
                .ok_or_else(|| format!("{origin:?} is not an origin like https://example.com"))?;
            if rest.is_empty() || rest.contains('/') {
                return Err(format!(
                    "{origin:?} is not an origin like https://example.com (no path)"
                ));
            }
            out.origins.push(origin.to_ascii_lowercase());
        }
        Ok(out)
    }
}

impl CorsOrigins {
    fn allows(&self, origin: &str) -> bool {
        self.any || self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// Answers preflights from allowed origins and marks responses to them as readable; requests
/// from other origins get no CORS headers, so browsers keep their pages from reading them.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let allowed = match (&origin, req.app_data::<web::Data<CorsOrigins>>()) {
        (Some(origin), Some(cors)) => cors.allows(origin),
        _ => false,
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = if allowed {
            HttpResponse::NoContent()
                .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, OPTIONS"))
                .insert_header((
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    "Authorization, Content-Type",
                ))
                .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
                .finish()
        } else {
            HttpResponse::Forbidden().json(serde_json::json!({
                "error": "this origin may not call the API (CORS_ALLOWED_ORIGINS)"
            }))
        };
        if allowed {
            allow(response.headers_mut(), origin.as_deref());
        }
        return Ok(req.into_response(response).map_into_right_body());
    }
    let mut response = next.call(req).await?;
    if allowed {
        allow(response.headers_mut(), origin.as_deref());
    }
    Ok(response.map_into_left_body())
}

fn allow(headers: &mut header::HeaderMap, origin: Option<&str>) {
    if let Some(value) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secre", b"secret"));
        assert!(!same(b"secret!", b"secret"));
        assert!(!same(b"Secret", b"secret"));
        assert!(!same(b"", b"secret"));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }

    #[test]
    fn origins_parse_strictly() {
        let o: CorsOrigins = "https://a.example, http://b.example:3000".parse().unwrap();
        assert!(o.allows("https://a.example"));
        assert!(o.allows("http://B.example:3000"));
        assert!(!o.allows("https://c.example"));
        assert!("*".parse::<CorsOrigins>().unwrap().allows("https://x"));
        assert!(!"".parse::<CorsOrigins>().unwrap().allows("https://x"));
        for bad in ["a.example", "https://a.example/path", "ftp://a"] {
            assert!(bad.parse::<CorsOrigins>().is_err(), "{bad}");
        }
    }
}
