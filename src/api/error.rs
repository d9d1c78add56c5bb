//! `ApiError`: the one JSON error shape of the API, `{"error": "...", "param": "..."}`. A client
//! mistake is a 4xx naming the parameter; an unreachable or too slow database is a 503 that
//! says little to the client and everything to the log. Nothing a client does is a 500.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

#[derive(Debug)]
pub enum ApiError {
    /// A parameter the client got wrong.
    BadParam { param: &'static str, error: String },
    /// No such id.
    NotFound(&'static str),
    /// A request body above the limit.
    TooLarge(usize),
    /// The database could not answer (down, pool exhausted, statement timeout).
    Unavailable(String),
    /// A write without the `API_TOKEN` bearer token.
    Unauthorized,
}

impl ApiError {
    pub fn bad(param: &'static str, error: &str) -> ApiError {
        ApiError::BadParam {
            param,
            error: format!("{param} {error}"),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    param: Option<&'a str>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Unavailable(detail) => write!(f, "database unavailable: {detail}"),
            ApiError::BadParam { error, .. } => f.write_str(error),
            ApiError::NotFound(what) => write!(f, "no such {what}"),
            ApiError::TooLarge(limit) => write!(f, "the request body is larger than {limit} bytes"),
            ApiError::Unauthorized => {
                f.write_str("this needs the header Authorization: Bearer <API_TOKEN>")
            }
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BadParam { .. } => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let text = self.to_string();
        let body = match self {
            ApiError::Unavailable(detail) => {
                log::warn!("query failed: error={detail}");
                Body {
                    error: "the database is unavailable, try again later",
                    param: None,
                }
            }
            ApiError::BadParam { param, error } => Body {
                error,
                param: Some(param),
            },
            ApiError::NotFound(_) | ApiError::TooLarge(_) | ApiError::Unauthorized => Body {
                error: &text,
                param: None,
            },
        };
        let mut response = HttpResponse::build(self.status_code());
        if let ApiError::Unauthorized = self {
            response.insert_header((
                actix_web::http::header::WWW_AUTHENTICATE,
                "Bearer realm=\"tetcore-analytics\"",
            ));
        }
        response.json(body)
    }
}
