//! Small conversions shared by the modules.

use chrono::{DateTime, NaiveDateTime, Utc};
use steward_core::clock::truncate_micros;

/// PostgreSQL keeps microseconds: store only what reads back equal on both backends.
pub(crate) fn micros(t: NaiveDateTime) -> NaiveDateTime {
    truncate_micros(t.and_utc()).naive_utc()
}

pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

/// A stored comma-separated list ('' is empty).
pub(crate) fn split(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(',').map(str::to_string).collect()
    }
}

pub(crate) fn join<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<&str>>()
        .join(",")
}

/// Free text of a registry entry: trimmed, 1 to `max` characters, no control characters.
pub(crate) fn text(value: &str, max: usize) -> Option<String> {
    let v = value.trim();
    let ok = !v.is_empty() && v.chars().count() <= max && !v.chars().any(char::is_control);
    ok.then(|| v.to_string())
}
