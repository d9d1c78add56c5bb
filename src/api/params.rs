//! Query-string parameters: parsed strictly, and every mistake is a 400 naming the parameter.
//! Unknown parameters are ignored. Times are accepted as `2019-01-01T00:00:00` (UTC) or RFC 3339
//! with an offset.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};

use super::error::ApiError;

pub struct Params(HashMap<String, String>);

/// A time as `2019-01-01T00:00:00` (UTC) or RFC 3339 with an offset.
pub fn time(name: &'static str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc())
        .map_err(|_| {
            ApiError::bad(
                name,
                "must be a time like 2019-01-01T00:00:00 (UTC) or RFC 3339 with an offset",
            )
        })
}

/// A path id: a positive whole number.
pub fn id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad("id", "must be a positive whole number"))
}

impl Params {
    pub fn parse(query: &str) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|_| ApiError::bad("query", "the query string is not valid"))?;
        Ok(Params(pairs.into_iter().collect()))
    }

    /// A non-empty text parameter, if given.
    pub fn text(&self, name: &'static str) -> Result<Option<&str>, ApiError> {
        match self.0.get(name).map(String::as_str) {
            Some("") => Err(ApiError::bad(name, "must not be empty")),
            other => Ok(other),
        }
    }

    pub fn required(&self, name: &'static str) -> Result<&str, ApiError> {
        self.text(name)?
            .ok_or_else(|| ApiError::bad(name, "is required"))
    }

    pub fn time(&self, name: &'static str) -> Result<Option<DateTime<Utc>>, ApiError> {
        self.text(name)?.map(|t| time(name, t)).transpose()
    }

    /// A whole number from 1 to `max`, `default` when absent.
    pub fn limit(&self, name: &'static str, default: i64, max: i64) -> Result<i64, ApiError> {
        let Some(text) = self.text(name)? else {
            return Ok(default);
        };
        match text.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::bad(
                name,
                &format!("must be a whole number from 1 to {max}"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad_param(e: ApiError) -> &'static str {
        match e {
            ApiError::BadParam { param, .. } => param,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn times_in_both_forms_and_mistakes_named() {
        let p =
            Params::parse("a=2019-01-01T00:00:00&b=2019-01-01T02:00:00%2B02:00&c=yesterday&x=1")
                .unwrap();
        assert_eq!(p.time("a").unwrap(), p.time("b").unwrap());
        assert_eq!(bad_param(p.time("c").unwrap_err()), "c");
        assert_eq!(p.time("missing").unwrap(), None);
    }

    #[test]
    fn limits_are_bounded() {
        let p = Params::parse("limit=10001&zero=0&word=ten&ok=5").unwrap();
        assert_eq!(
            bad_param(p.limit("limit", 100, 10_000).unwrap_err()),
            "limit"
        );
        assert_eq!(bad_param(p.limit("zero", 100, 10_000).unwrap_err()), "zero");
        assert_eq!(bad_param(p.limit("word", 100, 10_000).unwrap_err()), "word");
        assert_eq!(p.limit("ok", 100, 10_000).unwrap(), 5);
        assert_eq!(p.limit("absent", 100, 10_000).unwrap(), 100);
    }

    #[test]
    fn required_and_empty_are_told() {
        let p = Params::parse("peer_id=&other=1").unwrap();
        assert_eq!(bad_param(p.required("peer_id").unwrap_err()), "peer_id");
        assert_eq!(bad_param(p.required("missing").unwrap_err()), "missing");
    }
}
