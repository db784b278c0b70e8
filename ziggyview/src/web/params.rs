//! The query parameters of the JSON endpoints, checked: a parameter that is unknown, repeated
//! where it may not be, or malformed is a 400 naming it, never a guess.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ziggy_proto::MAX_ID_LEN;
use ziggy_proto::day::Day;

use crate::source::ChannelPattern;

/// Most days one request reads.
pub(crate) const MAX_RANGE_DAYS: i64 = 31;

/// Longest query string accepted, in bytes.
const MAX_QUERY_BYTES: usize = 16 << 10;

/// An answer other than 200: its status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// A 400 Bad Request.
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// Another status.
    pub fn status(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message });
        (self.status, Json(body)).into_response()
    }
}

/// Decoded `name=value` pairs of a query string.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses `raw`, refusing a parameter not in `known`.
    pub fn parse(raw: Option<&str>, known: &[&str]) -> Result<Params, ApiError> {
        let raw = raw.unwrap_or("");
        if raw.len() > MAX_QUERY_BYTES {
            return Err(ApiError::status(
                StatusCode::URI_TOO_LONG,
                format!("query string over {MAX_QUERY_BYTES} bytes"),
            ));
        }
        let mut pairs = Vec::new();
        for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
            if !known.contains(&name.as_ref()) {
                return Err(ApiError::bad(format!(
                    "unknown parameter {:?}; this endpoint takes {}",
                    name.as_ref(),
                    known.join(", ")
                )));
            }
            pairs.push((name.into_owned(), value.into_owned()));
        }
        Ok(Params { pairs })
    }

    /// The value of a parameter given at most once (an empty value counts as absent).
    pub fn one<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, ApiError> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::bad(format!("parameter {name:?} given twice")));
        }
        Ok(first.filter(|v| !v.is_empty()))
    }

    /// Every value of a parameter.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The channel pattern (`channel`, default every channel).
    pub fn pattern(&self) -> Result<ChannelPattern, ApiError> {
        ChannelPattern::parse(self.one("channel")?.unwrap_or("*"))
            .map_err(|e| ApiError::bad(e.to_string()))
    }

    /// The event id (`id`), if given.
    pub fn id(&self) -> Result<Option<String>, ApiError> {
        match self.one("id")? {
            Some(id) if id.len() > MAX_ID_LEN => Err(ApiError::bad(format!(
                "id is {} bytes long; ids are at most {MAX_ID_LEN}",
                id.len()
            ))),
            other => Ok(other.map(str::to_owned)),
        }
    }

    /// A whole number parameter within `1..=max`, `default` when absent.
    pub fn count(&self, name: &str, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.one(name)? {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(ApiError::bad(format!(
                    "{name} must be a whole number from 1 to {max}, not {text:?}"
                ))),
            },
        }
    }

    /// The day range (`from`, `to`, YYYYMMDD, inclusive). `to` defaults to `from`; both absent
    /// is the `latest` day (the newest day folder). At most [`MAX_RANGE_DAYS`] days.
    pub fn days(&self, latest: Day) -> Result<DayRange, ApiError> {
        let day = |name: &str| -> Result<Option<Day>, ApiError> {
            self.one(name)?
                .map(|text| {
                    Day::parse(text).ok_or_else(|| {
                        ApiError::bad(format!("{name}: bad date {text:?}: expected YYYYMMDD"))
                    })
                })
                .transpose()
        };
        let (first, last) = match (day("from")?, day("to")?) {
            (Some(first), Some(last)) => (first, last),
            (Some(day), None) | (None, Some(day)) => (day, day),
            (None, None) => (latest, latest),
        };
        if last < first {
            return Err(ApiError::bad(format!(
                "to ({last}) is before from ({first})"
            )));
        }
        let days = last.0 - first.0 + 1;
        if days > MAX_RANGE_DAYS {
            return Err(ApiError::bad(format!(
                "the range {first}..{last} is {days} days; at most {MAX_RANGE_DAYS} are read at once"
            )));
        }
        Ok(DayRange { first, last })
    }
}

/// Days from `first` to `last`, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DayRange {
    pub first: Day,
    pub last: Day,
}

impl DayRange {
    /// Every day of the range, in order.
    pub fn days(self) -> impl Iterator<Item = Day> {
        (self.first.0..=self.last.0).map(Day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_refused() {
        let known = ["from", "to", "id", "filter", "limit", "channel"];
        assert!(Params::parse(Some("nope=1"), &known).is_err());
        let p = Params::parse(Some("id=a&id=b"), &known).unwrap();
        assert!(p.id().is_err());
        let p = Params::parse(Some(&format!("id={}", "x".repeat(257))), &known).unwrap();
        assert!(p.id().is_err());
        let p = Params::parse(Some("limit=0"), &known).unwrap();
        assert!(p.count("limit", 50, 500).is_err());
        let p = Params::parse(Some("limit=500"), &known).unwrap();
        assert_eq!(p.count("limit", 50, 500).unwrap(), 500);
        let p = Params::parse(Some("channel=..%2F..%2Fetc"), &known).unwrap();
        assert!(p.pattern().is_err());
    }

    #[test]
    fn day_ranges_default_and_are_capped() {
        let known = ["from", "to"];
        let latest = Day::parse("20240229").unwrap();
        let p = Params::parse(None, &known).unwrap();
        assert_eq!(p.days(latest).unwrap().first, latest);
        let p = Params::parse(Some("from=20240101&to=20240131"), &known).unwrap();
        assert_eq!(p.days(latest).unwrap().days().count(), 31);
        for bad in [
            "from=20240101&to=20240201",
            "from=20240102&to=20240101",
            "from=2024-01-01",
            "from=00000101&to=99991231",
        ] {
            let p = Params::parse(Some(bad), &known).unwrap();
            assert!(p.days(latest).is_err(), "{bad}");
        }
    }
}
