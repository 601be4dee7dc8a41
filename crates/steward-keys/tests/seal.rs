//! Sealed values: context binding, tamper detection, key versions.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use steward_keys::{
    sealed, IndexKind, KeyError, RecordKind, SealContext, SecretKey, TenantKeyring,
};

fn keyring(tenant: &str, data: [u8; 32], index: [u8; 32]) -> TenantKeyring {
    TenantKeyring::new(
        tenant.to_owned(),
        vec![(1, SecretKey::from_bytes(data))],
        SecretKey::from_bytes(index),
    )
    .unwrap()
}

fn ctx<'a>(tenant: &'a str, record: &'a str, field: &'a str) -> SealContext<'a> {
    SealContext::new(tenant, RecordKind::Visitor, record, field)
}

#[test]
fn round_trip() {
    let ring = keyring("tenant_a", [1; 32], [2; 32]);
    let c = ctx("tenant_a", "rec_1", "email");
    let sealed = ring.seal(&c, b"alice@example.com").unwrap();
    assert_eq!(sealed.len(), b"alice@example.com".len() + sealed::OVERHEAD);
    assert_eq!(&ring.open(&c, &sealed).unwrap()[..], b"alice@example.com");
}

#[test]
fn empty_plaintext_round_trips() {
    let ring = keyring("tenant_a", [1; 32], [2; 32]);
    let c = ctx("tenant_a", "rec_1", "email");
    let sealed = ring.seal(&c, b"").unwrap();
    assert_eq!(sealed.len(), sealed::OVERHEAD);
    assert!(ring.open(&c, &sealed).unwrap().is_empty());
}

#[test]
fn two_seals_of_same_value_differ() {
    let ring = keyring("tenant_a", [1; 32], [2; 32]);
    let c = ctx("tenant_a", "rec_1", "email");
    let a = ring.seal(&c, b"same").unwrap();
    let b = ring.seal(&c, b"same").unwrap();
    assert_ne!(a, b);
    let (ha, _) = sealed::decode(&a).unwrap();
    let (hb, _) = sealed::decode(&b).unwrap();
    assert_ne!(ha.nonce, hb.nonce);
}

#[test]
fn wrong_context_fails() {
    let ring_a = keyring("tenant_a", [1; 32], [2; 32]);
    // Even a tenant B keyring holding the *same* key bytes must not open it:
    // the tenant id is in the AAD.
    let ring_b_same_key = keyring("tenant_b", [1; 32], [2; 32]);
    let ring_b = keyring("tenant_b", [3; 32], [4; 32]);
    let good = ctx("tenant_a", "rec_1", "email");
    let sealed = ring_a.seal(&good, b"alice@example.com").unwrap();

    let open_err = |ring: &TenantKeyring, c: SealContext<'_>| {
        assert!(
            matches!(ring.open(&c, &sealed), Err(KeyError::Open)),
            "{c:?} must not open"
        );
    };
    // Other tenant.
    open_err(&ring_a, ctx("tenant_b", "rec_1", "email"));
    open_err(&ring_b, ctx("tenant_b", "rec_1", "email"));
    open_err(&ring_b_same_key, ctx("tenant_b", "rec_1", "email"));
    // Other record, other field, other record kind.
    open_err(&ring_a, ctx("tenant_a", "rec_2", "email"));
    open_err(&ring_a, ctx("tenant_a", "rec_1", "phone"));
    for kind in [
        RecordKind::Consent,
        RecordKind::Export,
        RecordKind::Other("note"),
    ] {
        open_err(
            &ring_a,
            SealContext::new("tenant_a", kind, "rec_1", "email"),
        );
    }
    // Shifting bytes between record id and field must not help.
    open_err(&ring_a, ctx("tenant_a", "rec_1e", "mail"));
    // And the right context still works.
    assert!(ring_a.open(&good, &sealed).is_ok());
}

#[test]
fn seal_refuses_foreign_tenant_context() {
    let ring = keyring("tenant_a", [1; 32], [2; 32]);
    assert!(matches!(
        ring.seal(&ctx("tenant_b", "rec_1", "email"), b"x"),
        Err(KeyError::InvalidInput(_))
    ));
}

#[test]
fn every_single_bit_flip_fails() {
    let ring = keyring("tenant_a", [1; 32], [2; 32]);
    let c = ctx("tenant_a", "rec_1", "email");
    let sealed = ring.seal(&c, b"hi there").unwrap();
    for byte in 0..sealed.len() {
        for bit in 0..8 {
            let mut tampered = sealed.clone();
            tampered[byte] ^= 1 << bit;
            let result = ring.open(&c, &tampered);
            assert!(result.is_err(), "flip byte {byte} bit {bit} opened");
            // Only the key-version field may report something other than Open.
            if !(1..5).contains(&byte) {
                assert!(matches!(result, Err(KeyError::Open)), "byte {byte}");
            }
        }
    }
}

#[test]
fn truncations_and_extensions_fail() {
    let ring = keyring("tenant_a", [1; 32], [2; 32]);
    let c = ctx("tenant_a", "rec_1", "email");
    let sealed = ring.seal(&c, b"hello world").unwrap();
    for len in 0..sealed.len() {
        assert!(
            matches!(ring.open(&c, &sealed[..len]), Err(KeyError::Open)),
            "prefix of {len} bytes"
        );
    }
    for start in 1..sealed.len() {
        assert!(
            ring.open(&c, &sealed[start..]).is_err(),
            "suffix from {start}"
        );
    }
    let mut longer = sealed.clone();
    longer.push(0);
    assert!(matches!(ring.open(&c, &longer), Err(KeyError::Open)));
}

#[test]
fn unknown_key_version_is_reported() {
    let old = TenantKeyring::new(
        "tenant_a".to_owned(),
        vec![(7, SecretKey::from_bytes([1; 32]))],
        SecretKey::from_bytes([2; 32]),
    )
    .unwrap();
    let c = ctx("tenant_a", "rec_1", "email");
    let sealed = old.seal(&c, b"x").unwrap();
    let other = keyring("tenant_a", [1; 32], [2; 32]); // only version 1
    assert!(matches!(
        other.open(&c, &sealed),
        Err(KeyError::UnknownKeyVersion(7))
    ));
}

#[test]
fn rotation_keeps_old_values_and_seals_with_new_version() {
    let c = ctx("tenant_a", "rec_1", "email");
    let v1 = keyring("tenant_a", [1; 32], [2; 32]);
    let old_sealed = v1.seal(&c, b"before rotation").unwrap();
    assert_eq!(sealed::key_version_of(&old_sealed).unwrap(), 1);

    let v2 = v1.with_data_key(2, SecretKey::generate().unwrap()).unwrap();
    assert_eq!(v2.current_version(), 2);
    assert_eq!(v2.versions(), vec![1, 2]);
    assert_eq!(&v2.open(&c, &old_sealed).unwrap()[..], b"before rotation");

    let new_sealed = v2.seal(&c, b"after rotation").unwrap();
    assert_eq!(sealed::key_version_of(&new_sealed).unwrap(), 2);
    assert_eq!(&v2.open(&c, &new_sealed).unwrap()[..], b"after rotation");

    let resealed = v2.reseal(&c, &old_sealed).unwrap();
    assert_eq!(sealed::key_version_of(&resealed).unwrap(), 2);
    assert_eq!(&v2.open(&c, &resealed).unwrap()[..], b"before rotation");

    // Building the keyring from scratch with both versions behaves the same,
    // and the highest version wins regardless of order.
    let rebuilt = TenantKeyring::new(
        "tenant_a".to_owned(),
        vec![
            (2, SecretKey::generate().unwrap()),
            (1, SecretKey::from_bytes([1; 32])),
        ],
        SecretKey::from_bytes([2; 32]),
    )
    .unwrap();
    assert_eq!(rebuilt.current_version(), 2);
    assert_eq!(
        &rebuilt.open(&c, &old_sealed).unwrap()[..],
        b"before rotation"
    );
}

#[test]
fn keyring_construction_errors() {
    assert!(matches!(
        TenantKeyring::new("t".to_owned(), vec![], SecretKey::from_bytes([0; 32])),
        Err(KeyError::InvalidInput(_))
    ));
    assert!(matches!(
        TenantKeyring::new(
            "t".to_owned(),
            vec![
                (1, SecretKey::from_bytes([0; 32])),
                (1, SecretKey::from_bytes([1; 32]))
            ],
            SecretKey::from_bytes([0; 32])
        ),
        Err(KeyError::InvalidInput(_))
    ));
    let ring = keyring("t", [1; 32], [2; 32]);
    assert!(ring
        .with_data_key(1, SecretKey::from_bytes([9; 32]))
        .is_err());
}

#[test]
fn blind_index_is_per_tenant_and_stable() {
    let a1 = keyring("tenant_a", [1; 32], [10; 32]);
    let a2 = keyring("tenant_a", [5; 32], [10; 32]); // same index key, other instance
    let b = keyring("tenant_b", [1; 32], [11; 32]);
    let email = steward_keys::normalize::email(" Alice@Example.COM ").unwrap();

    let ia1 = a1.blind_index(IndexKind::Email, &email);
    assert_eq!(ia1, a1.blind_index(IndexKind::Email, &email));
    assert_eq!(ia1, a2.blind_index(IndexKind::Email, "alice@example.com"));
    assert_ne!(ia1, b.blind_index(IndexKind::Email, &email));
    assert_ne!(ia1, a1.blind_index(IndexKind::Email, "bob@example.com"));
    assert_ne!(ia1, a1.blind_index(IndexKind::ExternalRef, &email));
}

#[test]
fn debug_output_has_no_key_material() {
    let ring = keyring("tenant_a", [0xAB; 32], [0xCD; 32]);
    let shown = format!("{ring:?}");
    assert!(shown.contains("tenant_a"));
    assert!(!shown.contains("171")); // 0xAB as decimal
    assert!(!shown.to_lowercase().contains("abab"));
}
