//! Attacker-controlled bytes from the database must never panic the header
//! decoder or the open path, and must never open under a fixed keyring.

#![no_main]

use libfuzzer_sys::fuzz_target;
use steward_keys::{sealed, RecordKind, SealContext, SecretKey, TenantKeyring};

fuzz_target!(|data: &[u8]| {
    if let Ok((header, body)) = sealed::decode(data) {
        assert_eq!(header.format_version, sealed::FORMAT_VERSION);
        assert_eq!(body.len() + sealed::HEADER_LEN, data.len());
    }
    let _ = sealed::key_version_of(data);

    let Ok(ring) = TenantKeyring::new(
        "fuzz_tenant".to_owned(),
        vec![
            (1, SecretKey::from_bytes([0x11; 32])),
            (2, SecretKey::from_bytes([0x22; 32])),
        ],
        SecretKey::from_bytes([0x33; 32]),
    ) else {
        return;
    };
    let ctx = SealContext::new("fuzz_tenant", RecordKind::Visitor, "record", "email");
    // Forging a valid AES-GCM tag by chance is not something a fuzzer does.
    assert!(ring.open(&ctx, data).is_err());
});
