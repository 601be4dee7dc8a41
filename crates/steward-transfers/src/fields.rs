//! The visitor field names an authorization may list, and projecting a visitor's opened PII
//! onto them. A name is a top-level PII field (`name`, `email`, `phone`, `address`,
//! `attributes`), a part of the address (`address.country`) or one attribute
//! (`attributes.tier`). Only names are ever stored or logged, never values.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use steward_core::{Error, Result};
use steward_visitors::model::{
    FIELD_ADDRESS, FIELD_ATTRIBUTES, FIELD_EMAIL, FIELD_NAME, FIELD_PHONE, PII_FIELDS,
};
use steward_visitors::{Address, Pii};

/// Most field names one authorization may list (an audit event lists at most 64).
pub const MAX_FIELDS: usize = 64;

/// The parts of an address, by the names authorizations use.
pub const ADDRESS_FIELDS: [&str; 6] = [
    "address.line1",
    "address.line2",
    "address.city",
    "address.region",
    "address.postal_code",
    "address.country",
];

/// Distinct `attributes.<key>` names kept as `&'static str` for audit events; past this many,
/// further keys are recorded under the coarser `attributes` (never under-reporting).
const MAX_INTERNED: usize = 4096;

fn is_attribute_key(k: &str) -> bool {
    (1..=64).contains(&k.len())
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `f` is a field name an authorization may list.
pub fn is_valid(f: &str) -> bool {
    PII_FIELDS.contains(&f)
        || ADDRESS_FIELDS.contains(&f)
        || f.strip_prefix("attributes.").is_some_and(is_attribute_key)
}

/// The top-level field a name belongs to (`address.country` → `address`).
pub fn top_level(f: &str) -> &str {
    f.split_once('.').map_or(f, |(top, _)| top)
}

/// Validates field names and puts them in canonical form: sorted, deduplicated, and without
/// parts already covered by their whole (`address` makes `address.city` redundant).
pub fn normalize(fields: &[String]) -> Result<Vec<String>> {
    if fields.is_empty() || fields.len() > MAX_FIELDS {
        return Err(Error::invalid(
            "invalid_fields",
            format!("fields must list 1 to {MAX_FIELDS} visitor field names"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(fields.len());
    for f in fields {
        let f = f.trim();
        if !is_valid(f) {
            // The name is not echoed: a client may have put a value where a name belongs.
            return Err(Error::invalid(
                "invalid_fields",
                "fields may be name, email, phone, address, address.line1, address.line2, \
                 address.city, address.region, address.postal_code, address.country, \
                 attributes or attributes.<key> (key: 1 to 64 letters, digits, _ or -)",
            ));
        }
        out.push(f.to_string());
    }
    let wholes: HashSet<String> = out.iter().filter(|f| !f.contains('.')).cloned().collect();
    out.retain(|f| !f.contains('.') || !wholes.contains(top_level(f)));
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The top-level fields to open to serve `fields`, for `records::open_fields`.
pub fn to_open(fields: &[String]) -> Vec<&'static str> {
    PII_FIELDS
        .iter()
        .copied()
        .filter(|top| fields.iter().any(|f| top_level(f) == *top))
        .collect()
}

/// A field name with a `'static` lifetime (what `Disclosure::fields` holds).
pub fn static_name(f: &str) -> &'static str {
    if let Some(n) = PII_FIELDS
        .iter()
        .chain(ADDRESS_FIELDS.iter())
        .find(|n| **n == f)
    {
        return n;
    }
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    if let Some(n) = names.get(f) {
        return n;
    }
    if names.len() >= MAX_INTERNED || !is_valid(f) {
        return FIELD_ATTRIBUTES;
    }
    // Bounded above: at most MAX_INTERNED short names are ever kept.
    let leaked: &'static str = Box::leak(f.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

fn address_part<'a>(a: &'a Address, part: &str) -> Option<&'a str> {
    match part {
        "line1" => Some(a.line1.as_str()),
        "line2" => a.line2.as_deref(),
        "city" => Some(a.city.as_str()),
        "region" => a.region.as_deref(),
        "postal_code" => a.postal_code.as_deref(),
        "country" => Some(a.country.as_str()),
        _ => None,
    }
}

/// An address or the attributes as authorized: the whole of it, or only some of its parts.
enum Cut<'a, W: ?Sized, V: ?Sized> {
    Whole(&'a W),
    Parts(Vec<(&'a str, &'a V)>),
}

impl<W: Serialize + ?Sized, V: Serialize + ?Sized> Serialize for Cut<'_, W, V> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Cut::Whole(w) => w.serialize(s),
            Cut::Parts(parts) => s.collect_map(parts.iter().map(|(k, v)| (k, v))),
        }
    }
}

/// One visitor's PII cut down to `fields`, borrowed from the opened [`Pii`] and serialized
/// straight from it (no intermediate JSON tree: a pull page projects 1,000 of these), and the
/// names of the fields that held a value (what was actually sent).
pub struct Projection<'a> {
    name: Option<&'a str>,
    email: Option<&'a str>,
    phone: Option<&'a str>,
    address: Option<Cut<'a, Address, str>>,
    attributes: Option<Cut<'a, Map<String, Value>, Value>>,
    pub sent: Vec<&'static str>,
}

impl Projection<'_> {
    /// Writes the fields that hold a value as entries of `map`, so a caller can put its own
    /// entries (a pulled record's `id`, `updated_at`) in the same JSON object.
    pub fn serialize_entries<M: SerializeMap>(
        &self,
        map: &mut M,
    ) -> std::result::Result<(), M::Error> {
        if let Some(v) = self.name {
            map.serialize_entry(FIELD_NAME, v)?;
        }
        if let Some(v) = self.email {
            map.serialize_entry(FIELD_EMAIL, v)?;
        }
        if let Some(v) = self.phone {
            map.serialize_entry(FIELD_PHONE, v)?;
        }
        if let Some(v) = &self.address {
            map.serialize_entry(FIELD_ADDRESS, v)?;
        }
        if let Some(v) = &self.attributes {
            map.serialize_entry(FIELD_ATTRIBUTES, v)?;
        }
        Ok(())
    }
}

impl Serialize for Projection<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        self.serialize_entries(&mut map)?;
        map.end()
    }
}

/// Projects `pii` onto `fields` (canonical, from [`normalize`]): `address.country` becomes
/// `{"address":{"country":"GB"}}`, `attributes.tier` becomes `{"attributes":{"tier":…}}`.
/// Fields without a value are left out.
pub fn project<'a>(pii: &'a Pii, fields: &'a [String]) -> Projection<'a> {
    let mut p = Projection {
        name: None,
        email: None,
        phone: None,
        address: None,
        attributes: None,
        sent: Vec::with_capacity(fields.len()),
    };
    let mut address_parts: Vec<(&str, &str)> = Vec::new();
    let mut attribute_parts: Vec<(&str, &Value)> = Vec::new();
    for f in fields {
        let present = match f.as_str() {
            FIELD_NAME => {
                p.name = pii.name.as_deref();
                p.name.is_some()
            }
            FIELD_EMAIL => {
                p.email = pii.email.as_deref();
                p.email.is_some()
            }
            FIELD_PHONE => {
                p.phone = pii.phone.as_deref();
                p.phone.is_some()
            }
            FIELD_ADDRESS => {
                p.address = pii.address.as_ref().map(Cut::Whole);
                p.address.is_some()
            }
            FIELD_ATTRIBUTES => {
                p.attributes = pii.attributes.as_ref().map(Cut::Whole);
                p.attributes.is_some()
            }
            other => {
                if let Some(part) = other.strip_prefix("address.") {
                    let v = pii.address.as_ref().and_then(|a| address_part(a, part));
                    v.map(|v| address_parts.push((part, v))).is_some()
                } else if let Some(key) = other.strip_prefix("attributes.") {
                    let v = pii.attributes.as_ref().and_then(|a| a.get(key));
                    v.map(|v| attribute_parts.push((key, v))).is_some()
                } else {
                    false
                }
            }
        };
        if present {
            p.sent.push(static_name(f));
        }
    }
    // Canonical fields never hold both a whole and its parts (`normalize` drops the parts).
    if !address_parts.is_empty() {
        p.address = Some(Cut::Parts(address_parts));
    }
    if !attribute_parts.is_empty() {
        p.attributes = Some(Cut::Parts(attribute_parts));
    }
    p.sent.sort_unstable();
    p.sent.dedup();
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use serde_json::json;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn pii() -> Pii {
        Pii {
            name: Some("Ada".into()),
            email: Some("ada@example.com".into()),
            phone: None,
            address: Some(Address {
                line1: "1 Road".into(),
                line2: None,
                city: "London".into(),
                region: None,
                postal_code: Some("N1".into()),
                country: "GB".into(),
            }),
            attributes: Some(
                json!({"tier": "gold", "size": 3})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        }
    }

    #[test]
    fn normalizes() {
        assert_eq!(
            normalize(&s(&["address.city", "name", "address", "name"])).unwrap(),
            s(&["address", "name"])
        );
        assert_eq!(
            normalize(&s(&["attributes.tier", "address.country"])).unwrap(),
            s(&["address.country", "attributes.tier"])
        );
        for bad in [
            vec![],
            s(&["ssn"]),
            s(&["address.street"]),
            s(&["attributes."]),
            s(&["attributes.a b"]),
            s(&["attributes.x,y"]),
            s(&["ada@example.com"]),
        ] {
            let e = normalize(&bad).unwrap_err();
            assert!(!e.to_string().contains("ada@"));
        }
    }

    #[test]
    fn projects_only_the_listed_fields() {
        let (pii, fields) = (pii(), s(&["address.country", "attributes.tier"]));
        let p = project(&pii, &fields);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"address": {"country": "GB"}, "attributes": {"tier": "gold"}})
        );
        assert_eq!(p.sent, vec!["address.country", "attributes.tier"]);

        let fields = s(&["address", "name", "phone"]);
        let p = project(&pii, &fields);
        assert_eq!(p.sent, vec!["address", "name"]);
        let v = serde_json::to_value(&p).unwrap();
        assert!(v.get("name").is_some());
        assert!(v.get("phone").is_none());
        assert!(v.get("email").is_none());
        assert_eq!(v["address"]["city"], "London");
        assert_eq!(
            v["address"]["line2"],
            Value::Null,
            "a whole address keeps its shape"
        );
        assert_eq!(serde_json::to_value(&pii.address).unwrap(), v["address"]);

        let fields = s(&["attributes", "email"]);
        let p = project(&pii, &fields);
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"email": "ada@example.com", "attributes": {"tier": "gold", "size": 3}})
        );
        assert_eq!(p.sent, vec!["attributes", "email"]);
        assert_eq!(
            to_open(&s(&["address.country", "attributes.tier"])),
            vec!["address", "attributes"]
        );
    }

    #[test]
    fn static_names_are_shared() {
        let a = static_name("attributes.tier");
        let b = static_name(&String::from("attributes.tier"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(static_name("address.city"), "address.city");
        assert_eq!(static_name("not a field"), "attributes");
    }
}
