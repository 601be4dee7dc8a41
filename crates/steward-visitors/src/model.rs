//! What clients send and receive. Input types reject unknown fields; output types carry only
//! what the caller may see.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// The PII fields, by the names the audit log and authorizations use.
pub const FIELD_NAME: &str = "name";
pub const FIELD_EMAIL: &str = "email";
pub const FIELD_PHONE: &str = "phone";
pub const FIELD_ADDRESS: &str = "address";
pub const FIELD_ATTRIBUTES: &str = "attributes";
pub const PII_FIELDS: [&str; 5] = [
    FIELD_NAME,
    FIELD_EMAIL,
    FIELD_PHONE,
    FIELD_ADDRESS,
    FIELD_ATTRIBUTES,
];

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub line1: String,
    #[serde(default)]
    pub line2: Option<String>,
    pub city: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

/// A new visitor.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitorInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub address: Option<Address>,
    #[serde(default)]
    pub attributes: Option<Map<String, Value>>,
    /// The merchant's own id for this visitor, unique per tenant. Not PII.
    #[serde(default)]
    pub external_ref: Option<String>,
}

/// `Some(None)` for an explicit `null`, `None` when the field is absent.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Rectification: absent fields stay, `null` clears, a value replaces.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisitorPatch {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    pub address: Option<Option<Address>>,
    #[serde(default, deserialize_with = "present")]
    pub attributes: Option<Option<Map<String, Value>>>,
    #[serde(default, deserialize_with = "present")]
    pub external_ref: Option<Option<String>>,
}

/// Validated PII of one visitor.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Pii {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub address: Option<Address>,
    pub attributes: Option<Map<String, Value>>,
}

impl Pii {
    /// Names of the fields that hold a value.
    pub fn present_fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        if self.name.is_some() {
            f.push(FIELD_NAME);
        }
        if self.email.is_some() {
            f.push(FIELD_EMAIL);
        }
        if self.phone.is_some() {
            f.push(FIELD_PHONE);
        }
        if self.address.is_some() {
            f.push(FIELD_ADDRESS);
        }
        if self.attributes.is_some() {
            f.push(FIELD_ATTRIBUTES);
        }
        f
    }
}

/// Non-PII facts about a visitor.
#[derive(Debug, Clone, Serialize)]
pub struct VisitorMeta {
    pub id: String,
    pub external_ref: Option<String>,
    /// `active` or `erased`.
    pub status: String,
    pub legal_hold: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_activity_at: DateTime<Utc>,
    /// The key version the record is sealed under.
    pub key_version: i64,
}

/// A visitor with its PII, as disclosed to an authorized reader.
#[derive(Debug, Clone, Serialize)]
pub struct Visitor {
    #[serde(flatten)]
    pub meta: VisitorMeta,
    #[serde(flatten)]
    pub pii: Pii,
}
