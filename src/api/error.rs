//! `ApiError`: the one JSON error shape of the API, `{"error": "...", "param": "..."}`. A client
//! mistake is a 4xx naming the parameter; an unreachable or too slow database is a 503, and a
//! fault of ours (a row we cannot decode, a query PostgreSQL refuses) a 500; both say little to
//! the client and everything to the log. Nothing a client does is a 500.

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
    /// Ours: PostgreSQL answered, but not in a way we can use.
    Internal(String),
}

impl ApiError {
    /// A failed statement on a connection of our own (an export): 503 when PostgreSQL could
    /// not be reached, did not answer in time or is shutting down; else a fault of ours.
    pub fn from_db_fault(fault: crate::db::ingest::Fault) -> ApiError {
        match fault.class() {
            "connection" | "timeout" | "08" | "53" | "57" => {
                ApiError::Unavailable(fault.to_string())
            }
            _ => ApiError::Internal(fault.to_string()),
        }
    }

    /// A failed query: 503 when PostgreSQL could not be reached or did not answer in time,
    /// 500 when it answered and the fault is ours.
    pub fn from_query(error: diesel::result::Error) -> ApiError {
        use diesel::result::{DatabaseErrorKind, Error};
        match &error {
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => ApiError::Unavailable(error.to_string()),
            // diesel does not give the SQLSTATE; PostgreSQL's message for 57014 (a statement
            // cut off by QUERY_TIMEOUT_MS) and 57P0x (the server shutting down) do.
            Error::DatabaseError(_, info)
                if info.message().contains("statement timeout")
                    || info.message().contains("terminating connection") =>
            {
                ApiError::Unavailable(error.to_string())
            }
            _ => ApiError::Internal(error.to_string()),
        }
    }
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
            ApiError::Internal(detail) => write!(f, "internal error: {detail}"),
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
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
            ApiError::Internal(detail) => {
                log::error!("query failed, a fault of ours: error={detail}");
                Body {
                    error: "internal error; the server log says more",
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
