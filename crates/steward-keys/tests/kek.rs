//! Key wrapping, KEK rotation and the master key file.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::os::unix::fs::PermissionsExt;

use steward_keys::{
    key_wrap_aad, write_key_file, KekProvider, KeyError, KeyPurpose, LocalKek, MasterKeySource,
    SecretKey, TenantKeyring, WrappedKey,
};

#[test]
fn wrap_unwrap_round_trip() {
    let kek = LocalKek::generate().unwrap();
    let key = SecretKey::generate().unwrap();
    let aad = key_wrap_aad("tenant_a", KeyPurpose::Data, 1);
    let wrapped = kek.wrap(&key, &aad).unwrap();
    assert_eq!(wrapped.kek_id, kek.current_kek_id());
    assert!(!wrapped
        .bytes
        .windows(32)
        .any(|w| w == key.expose().as_slice()));
    assert_eq!(kek.unwrap(&wrapped, &aad).unwrap().expose(), key.expose());
}

#[test]
fn wrong_aad_fails() {
    let kek = LocalKek::generate().unwrap();
    let key = SecretKey::generate().unwrap();
    let wrapped = kek
        .wrap(&key, &key_wrap_aad("tenant_a", KeyPurpose::Data, 1))
        .unwrap();
    for aad in [
        key_wrap_aad("tenant_b", KeyPurpose::Data, 1),
        key_wrap_aad("tenant_a", KeyPurpose::BlindIndex, 1),
        key_wrap_aad("tenant_a", KeyPurpose::Data, 2),
        Vec::new(),
    ] {
        assert!(matches!(kek.unwrap(&wrapped, &aad), Err(KeyError::Unwrap)));
    }
}

#[test]
fn tampered_wrapped_key_fails() {
    let kek = LocalKek::generate().unwrap();
    let aad = key_wrap_aad("tenant_a", KeyPurpose::Data, 1);
    let wrapped = kek.wrap(&SecretKey::generate().unwrap(), &aad).unwrap();
    for i in 0..wrapped.bytes.len() {
        let mut bad = wrapped.clone();
        bad.bytes[i] ^= 0x01;
        assert!(matches!(kek.unwrap(&bad, &aad), Err(KeyError::Unwrap)));
    }
    let mut short = wrapped.clone();
    short.bytes.pop();
    assert!(matches!(kek.unwrap(&short, &aad), Err(KeyError::Unwrap)));
    let mut long = wrapped.clone();
    long.bytes.push(0);
    assert!(matches!(kek.unwrap(&long, &aad), Err(KeyError::Unwrap)));
}

#[test]
fn another_kek_fails() {
    let kek1 = LocalKek::generate().unwrap();
    let kek2 = LocalKek::generate().unwrap();
    let aad = key_wrap_aad("tenant_a", KeyPurpose::Data, 1);
    let wrapped = kek1.wrap(&SecretKey::generate().unwrap(), &aad).unwrap();
    // Named by id: kek2 does not know kek1.
    assert!(matches!(
        kek2.unwrap(&wrapped, &aad),
        Err(KeyError::UnknownKek(id)) if id == kek1.kek_id()
    ));
    // Forged id claiming kek2: authentication fails.
    let forged = WrappedKey {
        kek_id: kek2.kek_id(),
        bytes: wrapped.bytes.clone(),
    };
    assert!(matches!(kek2.unwrap(&forged, &aad), Err(KeyError::Unwrap)));
}

#[test]
fn unknown_kek_id() {
    let kek = LocalKek::generate().unwrap();
    let aad = key_wrap_aad("tenant_a", KeyPurpose::Data, 1);
    let mut wrapped = kek.wrap(&SecretKey::generate().unwrap(), &aad).unwrap();
    wrapped.kek_id = "kek_0000000000000000".to_owned();
    assert!(matches!(
        kek.unwrap(&wrapped, &aad),
        Err(KeyError::UnknownKek(id)) if id == "kek_0000000000000000"
    ));
}

#[test]
fn rotation_with_previous() {
    let old = LocalKek::generate().unwrap();
    let old_id = old.kek_id();
    let aad = key_wrap_aad("tenant_a", KeyPurpose::Data, 1);
    let key = SecretKey::generate().unwrap();
    let wrapped_old = old.wrap(&key, &aad).unwrap();

    let new = LocalKek::generate().unwrap();
    let new_id = new.kek_id();
    let rotating = new.with_previous(old);
    assert_eq!(rotating.kek_id(), new_id);
    assert_eq!(rotating.current_kek_id(), new_id);
    assert_eq!(rotating.known_kek_ids(), vec![new_id.clone(), old_id]);

    let unwrapped = rotating.unwrap(&wrapped_old, &aad).unwrap();
    assert_eq!(unwrapped.expose(), key.expose());
    let rewrapped = rotating.wrap(&unwrapped, &aad).unwrap();
    assert_eq!(rewrapped.kek_id, new_id);

    // The new KEK alone (as loaded after rotation completes) opens the re-wrap.
    let new_only = LocalKek::from_base64(&rotating.to_base64()).unwrap();
    assert_eq!(
        new_only.unwrap(&rewrapped, &aad).unwrap().expose(),
        key.expose()
    );
    assert!(matches!(
        new_only.unwrap(&wrapped_old, &aad),
        Err(KeyError::UnknownKek(_))
    ));
}

#[test]
fn with_previous_chains() {
    let k1 = LocalKek::generate().unwrap();
    let aad = key_wrap_aad("t", KeyPurpose::Data, 1);
    let w1 = k1.wrap(&SecretKey::generate().unwrap(), &aad).unwrap();
    let k2 = LocalKek::generate().unwrap().with_previous(k1);
    let k3 = LocalKek::generate().unwrap().with_previous(k2);
    assert!(k3.unwrap(&w1, &aad).is_ok());
}

#[test]
fn keyring_wrap_and_unwrap_all() {
    let kek = LocalKek::generate().unwrap();
    let ring = TenantKeyring::generate("tenant_a".to_owned(), 1)
        .unwrap()
        .with_data_key(2, SecretKey::generate().unwrap())
        .unwrap();
    let stored = ring.wrap_keys(&kek).unwrap();
    let ctx = steward_keys::SealContext::new(
        "tenant_a",
        steward_keys::RecordKind::Visitor,
        "r1",
        "email",
    );
    let sealed = ring.seal(&ctx, b"payload").unwrap();

    let again = TenantKeyring::unwrap_keys(&kek, "tenant_a".to_owned(), &stored).unwrap();
    assert_eq!(again.versions(), vec![1, 2]);
    assert_eq!(&again.open(&ctx, &sealed).unwrap()[..], b"payload");
    assert_eq!(
        again.blind_index(steward_keys::IndexKind::Email, "a@b.c"),
        ring.blind_index(steward_keys::IndexKind::Email, "a@b.c")
    );
    // Wrapped keys are bound to their tenant.
    assert!(matches!(
        TenantKeyring::unwrap_keys(&kek, "tenant_b".to_owned(), &stored),
        Err(KeyError::Unwrap)
    ));
    // Swapping the data key into the index slot fails.
    let mut swapped = stored.clone();
    swapped.index_key = stored.data_keys[0].1.clone();
    assert!(TenantKeyring::unwrap_keys(&kek, "tenant_a".to_owned(), &swapped).is_err());
    // Works through a trait object too (the KMS seam).
    let dyn_kek: &dyn KekProvider = &kek;
    assert!(TenantKeyring::unwrap_keys(dyn_kek, "tenant_a".to_owned(), &stored).is_ok());
}

#[test]
fn load_or_generate_creates_0600_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (kek1, src1) = LocalKek::load_or_generate(&data_dir).unwrap();
    let path = data_dir.join("master.key");
    assert_eq!(src1, MasterKeySource::Generated(path.clone()));
    assert_eq!(src1.path(), path.as_path());
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    let (kek2, src2) = LocalKek::load_or_generate(&data_dir).unwrap();
    assert_eq!(src2, MasterKeySource::Loaded(path.clone()));
    assert_eq!(kek1.kek_id(), kek2.kek_id());
    assert_eq!(*kek1.to_base64(), *kek2.to_base64());

    let from_file = LocalKek::from_file(&path).unwrap();
    assert_eq!(from_file.kek_id(), kek1.kek_id());
}

#[test]
fn load_or_generate_rejects_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("master.key"), "not a key").unwrap();
    assert!(matches!(
        LocalKek::load_or_generate(dir.path()),
        Err(KeyError::InvalidMasterKey(_))
    ));
    // The corrupt file is never replaced.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("master.key")).unwrap(),
        "not a key"
    );
}

#[test]
fn write_key_file_refuses_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.key");
    let kek = LocalKek::generate().unwrap();
    write_key_file(&path, &kek).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(LocalKek::from_file(&path).unwrap().kek_id(), kek.kek_id());
    let other = LocalKek::generate().unwrap();
    assert!(matches!(
        write_key_file(&path, &other),
        Err(KeyError::Io(e)) if e.kind() == std::io::ErrorKind::AlreadyExists
    ));
    assert_eq!(LocalKek::from_file(&path).unwrap().kek_id(), kek.kek_id());
}

#[test]
fn from_base64_validates() {
    use base64::Engine as _;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);

    let ok = LocalKek::from_base64(&format!("  {}\n", b64(&[7; 32]))).unwrap();
    assert_eq!(
        ok.kek_id(),
        LocalKek::new(SecretKey::from_bytes([7; 32])).kek_id()
    );
    for bad in [
        String::new(),
        "   ".to_owned(),
        b64(&[7; 31]),
        b64(&[7; 33]),
        b64(&[7; 16]),
        b64(&[7; 64]),
        "not base64 at all!".to_owned(),
        "@@@@".to_owned(),
        // URL-safe alphabet is not standard base64.
        base64::engine::general_purpose::URL_SAFE.encode([0xFB; 32]),
        // Embedded whitespace inside the text is not trimmed away.
        format!("{} {}", &b64(&[7; 32])[..20], &b64(&[7; 32])[20..]),
    ] {
        assert!(
            matches!(
                LocalKek::from_base64(&bad),
                Err(KeyError::InvalidMasterKey(_))
            ),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn from_file_missing_is_io() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        LocalKek::from_file(&dir.path().join("nope")),
        Err(KeyError::Io(_))
    ));
}
