//! Input validation. Errors name the field and the rule, never the value.

use serde_json::{Map, Value};
use steward_core::{Error, ItemError};

use crate::countries;
use crate::model::{Address, Pii, VisitorInput};

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_EMAIL_BYTES: usize = 254;
pub const MAX_LINE_CHARS: usize = 200;
pub const MAX_ATTRIBUTES_BYTES: usize = 16 * 1024;
pub const MAX_ATTRIBUTE_KEYS: usize = 100;
pub const MAX_EXTERNAL_REF: usize = 128;
pub const MAX_BATCH: usize = 1000;

fn invalid(code: &'static str, detail: &str) -> Error {
    Error::invalid(code, detail)
}

fn text(value: &str, max: usize, code: &'static str, what: &str) -> Result<String, Error> {
    let v = value.trim();
    let n = v.chars().count();
    if n == 0 || n > max {
        return Err(invalid(
            code,
            &format!("{what} must be 1 to {max} characters"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(
            code,
            &format!("{what} must not contain control characters"),
        ));
    }
    Ok(v.to_string())
}

pub fn name(v: &str) -> Result<String, Error> {
    text(v, MAX_NAME_CHARS, "invalid_name", "name")
}

/// Keeps the address as given (trimmed); lookups normalize separately.
pub fn email(v: &str) -> Result<String, Error> {
    let bad = || invalid("invalid_email", "email is not a valid address");
    let v = v.trim();
    if v.is_empty() || v.len() > MAX_EMAIL_BYTES {
        return Err(bad());
    }
    let (local, domain) = v.rsplit_once('@').ok_or_else(bad)?;
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if local.is_empty()
        || local.len() > 64
        || local.contains('@')
        || local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
        || !domain.contains('.')
        || !domain.split('.').all(label_ok)
    {
        return Err(bad());
    }
    Ok(v.to_string())
}

/// Stored in E.164.
pub fn phone(v: &str) -> Result<String, Error> {
    steward_keys::normalize::phone_e164(v).map_err(|_| {
        invalid(
            "invalid_phone",
            "phone must be an international number (+ and country code, 8 to 15 digits)",
        )
    })
}

fn optional_line(
    v: &Option<String>,
    code: &'static str,
    what: &str,
) -> Result<Option<String>, Error> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => text(s, MAX_LINE_CHARS, code, what).map(Some),
    }
}

pub fn address(a: &Address) -> Result<Address, Error> {
    let country = a.country.trim().to_ascii_uppercase();
    if !countries::is_alpha2(&country) {
        return Err(invalid(
            "invalid_country",
            "address.country must be an ISO 3166-1 alpha-2 code",
        ));
    }
    Ok(Address {
        line1: text(&a.line1, MAX_LINE_CHARS, "invalid_address", "address.line1")?,
        line2: optional_line(&a.line2, "invalid_address", "address.line2")?,
        city: text(&a.city, MAX_LINE_CHARS, "invalid_address", "address.city")?,
        region: optional_line(&a.region, "invalid_address", "address.region")?,
        postal_code: optional_line(&a.postal_code, "invalid_address", "address.postal_code")?,
        country,
    })
}

pub fn attributes(m: &Map<String, Value>) -> Result<Map<String, Value>, Error> {
    if m.len() > MAX_ATTRIBUTE_KEYS {
        return Err(invalid(
            "invalid_attributes",
            &format!("attributes may hold at most {MAX_ATTRIBUTE_KEYS} keys"),
        ));
    }
    for k in m.keys() {
        let ok = !k.is_empty()
            && k.len() <= 64
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(invalid(
                "invalid_attributes",
                "attribute keys must be 1 to 64 characters of letters, digits, _ or -",
            ));
        }
    }
    let size = serde_json::to_vec(m).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_ATTRIBUTES_BYTES {
        return Err(invalid(
            "invalid_attributes",
            &format!("attributes may be at most {MAX_ATTRIBUTES_BYTES} bytes of JSON"),
        ));
    }
    Ok(m.clone())
}

pub fn external_ref(v: &str) -> Result<String, Error> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.len() <= MAX_EXTERNAL_REF
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
    if !ok {
        return Err(invalid(
            "invalid_external_ref",
            "external_ref must be 1 to 128 characters of letters, digits and - _ . : /",
        ));
    }
    Ok(v.to_string())
}

/// Validates a new visitor; at least one PII field must be given.
pub fn input(i: &VisitorInput) -> Result<(Pii, Option<String>), Error> {
    let pii = Pii {
        name: i.name.as_deref().map(name).transpose()?,
        email: i.email.as_deref().map(email).transpose()?,
        phone: i.phone.as_deref().map(phone).transpose()?,
        address: i.address.as_ref().map(address).transpose()?,
        attributes: i.attributes.as_ref().map(attributes).transpose()?,
    };
    if pii.present_fields().is_empty() {
        return Err(invalid(
            "empty_visitor",
            "give at least one of name, email, phone, address, attributes",
        ));
    }
    let external_ref = i.external_ref.as_deref().map(external_ref).transpose()?;
    Ok((pii, external_ref))
}

/// Validates every item of a batch; all errors at once, by index.
pub fn batch(items: &[VisitorInput]) -> Result<Vec<(Pii, Option<String>)>, Error> {
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(invalid(
            "invalid_batch",
            &format!("a batch holds 1 to {MAX_BATCH} visitors"),
        ));
    }
    let mut ok = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    let mut refs = std::collections::HashSet::new();
    for (index, item) in items.iter().enumerate() {
        match input(item) {
            Ok((pii, r)) => {
                if let Some(r) = &r {
                    if !refs.insert(r.clone()) {
                        errors.push(ItemError {
                            index,
                            code: "duplicate_external_ref",
                            detail: "external_ref repeats an earlier item of this batch".into(),
                        });
                    }
                }
                ok.push((pii, r));
            }
            Err(Error::Invalid { code, detail }) => errors.push(ItemError {
                index,
                code,
                detail,
            }),
            Err(other) => return Err(other),
        }
    }
    if !errors.is_empty() {
        return Err(Error::InvalidItems {
            code: "invalid_batch",
            detail: format!(
                "{} of {} items are invalid; nothing was imported",
                errors.len(),
                items.len()
            ),
            items: errors,
        });
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for good in ["a@b.co", "first.last+tag@example.com", "x@sub.example.org"] {
            assert!(email(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@b.co",
            "a@.co",
            "a b@c.co",
            "a..b@c.co",
            "a@-b.co",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn batch_names_the_bad_item() {
        let items = vec![
            VisitorInput {
                name: Some("A".into()),
                ..Default::default()
            },
            VisitorInput {
                email: Some("nope".into()),
                ..Default::default()
            },
        ];
        match batch(&items) {
            Err(Error::InvalidItems { items, .. }) => {
                assert_eq!(items.len(), 1);
                assert_eq!(items[0].index, 1);
                assert_eq!(items[0].code, "invalid_email");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn address_country() {
        let mut a = Address {
            line1: "1 Main St".into(),
            line2: None,
            city: "Springfield".into(),
            region: None,
            postal_code: Some("12345".into()),
            country: "us".into(),
        };
        assert_eq!(address(&a).map(|a| a.country).ok().as_deref(), Some("US"));
        a.country = "ZZ".into();
        assert!(address(&a).is_err());
    }
}
