//! Cursor pagination over sortable ids: the cursor is the last id of the previous page, so a
//! page is `WHERE id > cursor ORDER BY id LIMIT n` — stable under concurrent inserts.

use serde::Serialize;
use steward_core::{Error, Id};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

#[derive(Debug, Clone)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<String>,
}

impl PageRequest {
    /// Validates `?limit=&cursor=`; `kind` is the id kind the cursor must be.
    pub fn parse(limit: Option<i64>, cursor: Option<String>, kind: Id) -> Result<Self, Error> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(l) if (1..=MAX_LIMIT).contains(&l) => l,
            Some(_) => {
                return Err(Error::invalid(
                    "invalid_limit",
                    format!("limit must be between 1 and {MAX_LIMIT}"),
                ))
            }
        };
        let after = match cursor {
            None => None,
            Some(c) if c.is_empty() => None,
            Some(c) if kind.matches(&c) => Some(c),
            Some(_) => return Err(Error::invalid("invalid_cursor", "cursor is not valid")),
        };
        Ok(Self { limit, after })
    }

    /// Ask the database for one more than the limit to know whether a next page exists.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }
}

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows; `id_of` names each row's cursor.
    pub fn from_rows(mut rows: Vec<T>, req: &PageRequest, id_of: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(req.limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(&id_of)
        } else {
            None
        };
        Page {
            items: rows,
            next_cursor,
        }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}
