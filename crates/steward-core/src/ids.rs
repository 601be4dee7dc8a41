//! Prefixed, sortable, readable ids: `ten_01j…`. The ULID body sorts by creation time, so a
//! cursor over ids is a cursor over creation order.

use std::fmt;

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());

/// Every kind of id Steward hands out, with its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Id {
    Tenant,
    Visitor,
    User,
    Subprocessor,
    Transfer,
    AccessRequest,
    ApiKey,
    Client,
    Job,
    Event,
    Notice,
    Authorization,
    Offboarding,
    SigningKey,
    Request,
}

impl Id {
    pub const fn prefix(self) -> &'static str {
        match self {
            Id::Tenant => "ten",
            Id::Visitor => "vis",
            Id::User => "usr",
            Id::Subprocessor => "sub",
            Id::Transfer => "trf",
            Id::AccessRequest => "acr",
            Id::ApiKey => "key",
            Id::Client => "cli",
            Id::Job => "job",
            Id::Event => "evt",
            Id::Notice => "ntc",
            Id::Authorization => "aut",
            Id::Offboarding => "off",
            Id::SigningKey => "sig",
            Id::Request => "req",
        }
    }

    /// A fresh id of this kind. Ids made by one process sort in the order they were made,
    /// even within one millisecond (a monotonic generator), so id order is creation order for
    /// cursors and listings.
    pub fn generate(self) -> String {
        let ulid = {
            let mut g = GENERATOR.lock().unwrap_or_else(|p| p.into_inner());
            g.generate().unwrap_or_else(|_| ulid::Ulid::new())
        };
        format!("{}_{}", self.prefix(), ulid.to_string().to_lowercase())
    }

    /// Whether `s` looks like an id of this kind. Used to turn malformed path ids into a
    /// plain 404 rather than a database round trip.
    pub fn matches(self, s: &str) -> bool {
        let Some(rest) = s
            .strip_prefix(self.prefix())
            .and_then(|r| r.strip_prefix('_'))
        else {
            return false;
        };
        rest.len() == 26 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    }
}

/// A typed wrapper used in API payloads where a plain `String` would lose meaning.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(transparent)]
pub struct TenantId(pub String);

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_made_in_one_millisecond_still_sort_in_order() {
        let ids: Vec<String> = (0..1000).map(|_| Id::Notice.generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }

    #[test]
    fn ids_have_prefix_and_sort_by_time() {
        let a = Id::Tenant.generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = Id::Tenant.generate();
        assert!(a.starts_with("ten_"));
        assert!(a < b);
        assert!(Id::Tenant.matches(&a));
        assert!(!Id::Visitor.matches(&a));
        assert!(!Id::Tenant.matches("ten_x"));
        assert!(!Id::Tenant.matches("ten_../../etc/passwd.........."));
    }
}
