//! Query-string parameters: parsed strictly, and every mistake is a 400 naming the parameter.
//! Unknown parameters are ignored. Times are accepted as `2019-01-01T00:00:00` (UTC) or RFC 3339
//! with an offset.

use std::collections::HashMap;

use chrono::{DateTime, Datelike, NaiveDateTime, Utc};

use super::error::ApiError;

pub struct Params(HashMap<String, String>);

/// A time as `2019-01-01T00:00:00` (UTC) or RFC 3339 with an offset, in the years 1 to 9999
/// (PostgreSQL refuses some times chrono takes).
pub fn time(name: &'static str, text: &str) -> Result<DateTime<Utc>, ApiError> {
    let parsed = match DateTime::parse_from_rfc3339(text) {
        Ok(t) => Some(t.with_timezone(&Utc)),
        Err(_) => NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|t| t.and_utc()),
    };
    parsed
        .filter(|t| (1..=9999).contains(&t.year()))
        .ok_or_else(|| {
            ApiError::bad(
                name,
                "must be a time like 2019-01-01T00:00:00 (UTC) or RFC 3339 with an offset, in the years 1 to 9999",
            )
        })
}

/// A text path segment: PostgreSQL refuses NUL characters in text, so they are a 400 here.
pub fn segment(name: &'static str, text: String) -> Result<String, ApiError> {
    if text.contains('\0') {
        return Err(ApiError::bad(name, "must not contain NUL characters"));
    }
    Ok(text)
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
        if pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::bad("query", "must not contain NUL characters"));
        }
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

    /// `start_time` and `end_time`: `end_time` defaults to now and `start_time` to `default`
    /// before it, so no request reads all of history unless it asks to.
    pub fn window(
        &self,
        default: chrono::TimeDelta,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
        let end = self.time("end_time")?.unwrap_or_else(Utc::now);
        let start = self.time("start_time")?.unwrap_or(end - default);
        if start >= end {
            return Err(ApiError::bad("start_time", "must be before end_time"));
        }
        Ok((start, end))
    }

    /// A whole number from 1 to `max`, `default` when absent.
    pub fn limit(&self, name: &'static str, default: i64, max: i64) -> Result<i64, ApiError> {
        Ok(self.whole(name, 1, max)?.unwrap_or(default))
    }

    /// A whole number from `min` to `max`, if given.
    pub fn whole(&self, name: &'static str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        match text.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad(
                name,
                &format!("must be a whole number from {min} to {max}"),
            )),
        }
    }

    /// `true` or `false`, if given.
    pub fn flag(&self, name: &'static str) -> Result<Option<bool>, ApiError> {
        match self.text(name)? {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::bad(name, "must be true or false")),
        }
    }

    /// A comma-separated list, each item one of `allowed`; `None` when absent.
    pub fn list(
        &self,
        name: &'static str,
        allowed: &[&'static str],
    ) -> Result<Option<Vec<&'static str>>, ApiError> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        text.split(',')
            .map(|item| {
                allowed
                    .iter()
                    .find(|a| **a == item)
                    .copied()
                    .ok_or_else(|| {
                        ApiError::bad(name, &format!("must list some of: {}", allowed.join(", ")))
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
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
        let p = Params::parse("far=%2B262000-01-01T00:00:00Z&early=-0100-01-01T00:00:00").unwrap();
        assert_eq!(bad_param(p.time("far").unwrap_err()), "far");
        assert_eq!(bad_param(p.time("early").unwrap_err()), "early");
        assert_eq!(
            bad_param(Params::parse("peer_id=a%00b").err().unwrap()),
            "query"
        );
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
    fn flags_and_lists_are_strict() {
        let p =
            Params::parse("a=true&b=false&c=yes&f=name,peers&g=name,nope&h=name,,peers").unwrap();
        assert_eq!(p.flag("a").unwrap(), Some(true));
        assert_eq!(p.flag("b").unwrap(), Some(false));
        assert_eq!(p.flag("none").unwrap(), None);
        assert_eq!(bad_param(p.flag("c").unwrap_err()), "c");
        let allowed = ["name", "peers"];
        assert_eq!(p.list("f", &allowed).unwrap(), Some(vec!["name", "peers"]));
        assert_eq!(bad_param(p.list("g", &allowed).unwrap_err()), "g");
        assert_eq!(bad_param(p.list("h", &allowed).unwrap_err()), "h");
        assert_eq!(p.list("none", &allowed).unwrap(), None);
        assert_eq!(
            bad_param(Params::parse("o=-1").unwrap().whole("o", 0, 9).unwrap_err()),
            "o"
        );
    }

    #[test]
    fn required_and_empty_are_told() {
        let p = Params::parse("peer_id=&other=1").unwrap();
        assert_eq!(bad_param(p.required("peer_id").unwrap_err()), "peer_id");
        assert_eq!(bad_param(p.required("missing").unwrap_err()), "missing");
    }
}
