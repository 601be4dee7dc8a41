//! Canonical forms for values that get blind-indexed.
//!
//! A blind index only matches byte-identical input, so every writer and every
//! lookup must run the same normalizer; changing one invalidates existing
//! indexes.

use crate::error::{KeyError, Result};

/// Longest address SMTP allows (RFC 5321 path limit minus the brackets).
const MAX_EMAIL_LEN: usize = 254;

/// Trim and lowercase an e-mail address.
///
/// Rejects empty input, input without a non-empty local part and domain
/// around the last `@`, embedded whitespace or control characters, and
/// addresses longer than 254 bytes.
pub fn email(raw: &str) -> Result<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(KeyError::InvalidInput("e-mail is empty"));
    }
    let (local, domain) = trimmed
        .rsplit_once('@')
        .ok_or(KeyError::InvalidInput("e-mail has no '@'"))?;
    if local.is_empty() || domain.is_empty() {
        return Err(KeyError::InvalidInput(
            "e-mail needs text on both sides of '@'",
        ));
    }
    if trimmed.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(KeyError::InvalidInput("e-mail contains whitespace"));
    }
    let lowered = trimmed.to_lowercase();
    if lowered.len() > MAX_EMAIL_LEN {
        return Err(KeyError::InvalidInput("e-mail is too long"));
    }
    Ok(lowered)
}

/// Normalize a phone number to E.164: `"+"` followed by 8 to 15 digits, the
/// first not `0`.
///
/// Accepts a leading `+` or the international `00` prefix; spaces (any
/// Unicode whitespace), dashes, dots and parentheses are ignored. Anything
/// else — letters, a second `+`, a national number without country code — is
/// rejected rather than guessed at.
pub fn phone_e164(raw: &str) -> Result<String> {
    let mut compact = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '-' | '.' | '(' | ')' => {}
            c if c.is_whitespace() => {}
            '+' | '0'..='9' => compact.push(c),
            _ => return Err(KeyError::InvalidInput("phone has invalid characters")),
        }
    }
    let digits = if let Some(rest) = compact.strip_prefix('+') {
        rest
    } else if let Some(rest) = compact.strip_prefix("00") {
        rest
    } else {
        return Err(KeyError::InvalidInput(
            "phone must start with '+' or '00' and a country code",
        ));
    };
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(KeyError::InvalidInput("phone has a misplaced '+'"));
    }
    if !(8..=15).contains(&digits.len()) {
        return Err(KeyError::InvalidInput("phone must have 8 to 15 digits"));
    }
    if digits.starts_with('0') {
        return Err(KeyError::InvalidInput("country code cannot start with 0"));
    }
    Ok(format!("+{digits}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn email_accepts_and_normalizes() {
        let cases = [
            (" Alice@Example.COM ", "alice@example.com"),
            ("alice@example.com", "alice@example.com"),
            ("\tBOB+tag@Sub.Example.org\n", "bob+tag@sub.example.org"),
            ("a@b", "a@b"),
            ("\"odd@local\"@example.com", "\"odd@local\"@example.com"),
            ("ÄNNE@Example.de", "änne@example.de"),
        ];
        for (raw, want) in cases {
            assert_eq!(email(raw).unwrap(), want, "input {raw:?}");
        }
    }

    #[test]
    fn email_is_idempotent() {
        let once = email(" Alice@Example.COM ").unwrap();
        assert_eq!(email(&once).unwrap(), once);
    }

    #[test]
    fn email_rejects() {
        let long = format!("{}@example.com", "a".repeat(250));
        for raw in [
            "",
            "   ",
            "alice",
            "alice.example.com",
            "@example.com",
            "alice@",
            "@",
            "al ice@example.com",
            "alice@exa\u{0}mple.com",
            long.as_str(),
        ] {
            assert!(
                matches!(email(raw), Err(KeyError::InvalidInput(_))),
                "input {raw:?} should be rejected"
            );
        }
    }

    #[test]
    fn phone_accepts_and_normalizes() {
        let cases = [
            ("+44 (20) 7946-0958", "+442079460958"),
            ("0044 20 7946 0958", "+442079460958"),
            ("+442079460958", "+442079460958"),
            ("  +1 (415) 555.2671 ", "+14155552671"),
            ("001-415-555-2671", "+14155552671"),
            ("+49 30 12345678", "+493012345678"),
            ("+49301234", "+49301234"),
            ("+123456789012345", "+123456789012345"),
            ("(+44) 20 7946 0958", "+442079460958"),
            ("+44\u{a0}20\u{a0}7946\u{a0}0958", "+442079460958"),
        ];
        for (raw, want) in cases {
            assert_eq!(phone_e164(raw).unwrap(), want, "input {raw:?}");
        }
    }

    #[test]
    fn phone_is_idempotent() {
        let once = phone_e164("0044 20 7946 0958").unwrap();
        assert_eq!(phone_e164(&once).unwrap(), once);
    }

    #[test]
    fn phone_rejects() {
        for raw in [
            "",
            "   ",
            "+",
            "00",
            "12345",
            "+12345",
            "+1234567",
            "+1234567890123456",
            "020 7946 0958",
            "442079460958",
            "+0442079460958",
            "000442079460958",
            "+44 20 7946 095x",
            "+44 20 CALL-NOW",
            "tel:+442079460958",
            "+44+2079460958",
            "++442079460958",
            "+44 20 7946 0958 ext 12",
            "+44/20/7946/0958",
            "+４４２０７９４６０９５８",
            "0+442079460958",
        ] {
            assert!(
                matches!(phone_e164(raw), Err(KeyError::InvalidInput(_))),
                "input {raw:?} should be rejected"
            );
        }
    }
}
