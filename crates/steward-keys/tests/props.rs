//! Property tests: seal/open round trips and a total header decoder.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use proptest::prelude::*;
use steward_keys::{sealed, KeyError, RecordKind, SealContext, SecretKey, TenantKeyring};

fn keyring(tenant: &str) -> TenantKeyring {
    TenantKeyring::new(
        tenant.to_owned(),
        vec![(3, SecretKey::from_bytes([0x11; 32]))],
        SecretKey::from_bytes([0x22; 32]),
    )
    .unwrap()
}

proptest! {
    #[test]
    fn seal_open_round_trip(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2048),
        tenant in ".*",
        record in ".*",
        field in ".*",
    ) {
        let ring = keyring(&tenant);
        let ctx = SealContext::new(&tenant, RecordKind::Consent, &record, &field);
        let sealed_value = ring.seal(&ctx, &plaintext).unwrap();
        prop_assert_eq!(sealed::key_version_of(&sealed_value).unwrap(), 3);
        prop_assert_eq!(&ring.open(&ctx, &sealed_value).unwrap()[..], &plaintext[..]);
        // Any other field name fails.
        let other_field = format!("{field}x");
        let other = SealContext::new(&tenant, RecordKind::Consent, &record, &other_field);
        prop_assert!(matches!(ring.open(&other, &sealed_value), Err(KeyError::Open)));
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        match sealed::decode(&bytes) {
            Ok((header, body)) => {
                prop_assert_eq!(header.format_version, sealed::FORMAT_VERSION);
                prop_assert!(body.len() >= sealed::TAG_LEN);
                prop_assert_eq!(body.len() + sealed::HEADER_LEN, bytes.len());
            }
            Err(e) => prop_assert!(matches!(e, KeyError::Malformed(_))),
        }
        let _ = sealed::key_version_of(&bytes);
    }

    #[test]
    fn open_arbitrary_bytes_never_panics_or_succeeds(
        bytes in proptest::collection::vec(any::<u8>(), 0..96),
    ) {
        let ring = keyring("t");
        let ctx = SealContext::new("t", RecordKind::Visitor, "r", "f");
        prop_assert!(ring.open(&ctx, &bytes).is_err());
    }

    #[test]
    fn decode_with_valid_prefix_never_panics(
        version in any::<u32>(),
        rest in proptest::collection::vec(any::<u8>(), 0..48),
    ) {
        let mut bytes = vec![sealed::FORMAT_VERSION];
        bytes.extend_from_slice(&version.to_be_bytes());
        bytes.extend_from_slice(&rest);
        if let Ok((header, _)) = sealed::decode(&bytes) {
            prop_assert_eq!(header.key_version, version);
        }
    }
}
