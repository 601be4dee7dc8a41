//! Signed checkpoints: an Ed25519 signature over a chain's head, so a tenant who keeps a copy
//! can later prove the chain up to that point was neither truncated nor rewritten — even by
//! someone able to rewrite the database and re-hash every event, as long as they lack the key.
//!
//! A checkpoint is only signed after the part of the chain since the previous checkpoint (or
//! the whole chain, the first time) verifies, so a checkpoint never vouches for a chain that
//! was already broken. The signed message is the canonical encoding of
//! (`"steward.checkpoint.v1"`, chain_id, seq, head_hash).

use chrono::NaiveDateTime;
use diesel::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{self, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use steward_core::clock::truncate_micros;
use steward_core::{Error, Result};
use steward_store::DbConnection;

use crate::canonical::{checkpoint_message, HASH_LEN};
use crate::encoding;
use crate::query;
use crate::schema::audit_checkpoints;
use crate::verify::{walk, Start};

/// A signed statement "chain `chain_id` had `head_hash` at `seq`". Serialized with the hash in
/// hex, the signature in base64 and the time in RFC 3339; deserializes from the same, so a
/// tenant can hand one back to `verify`.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Queryable, Selectable, Insertable,
)]
#[diesel(table_name = audit_checkpoints)]
pub struct Checkpoint {
    pub chain_id: String,
    pub seq: i64,
    #[serde(
        serialize_with = "encoding::ser_hex",
        deserialize_with = "encoding::de_hex"
    )]
    pub head_hash: Vec<u8>,
    #[serde(
        serialize_with = "encoding::ser_base64",
        deserialize_with = "encoding::de_base64"
    )]
    pub signature: Vec<u8>,
    /// Names the signing key, so checkpoints survive a key rotation.
    pub key_id: String,
    #[serde(
        serialize_with = "encoding::ser_timestamp",
        deserialize_with = "encoding::de_timestamp"
    )]
    pub created_at: NaiveDateTime,
}

/// The Ed25519 key checkpoints are signed with. Its private half never leaves this value.
pub struct CheckpointSigner {
    key_id: String,
    key: Ed25519KeyPair,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// Loads a key from a PKCS#8 document (as made by [`CheckpointSigner::generate_pkcs8`]).
    pub fn from_pkcs8(key_id: String, pkcs8: &[u8]) -> Result<Self> {
        let key = Ed25519KeyPair::from_pkcs8(pkcs8)
            .or_else(|_| Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8))
            .map_err(|_| {
                Error::invalid(
                    "invalid_signing_key",
                    "the checkpoint key is not an Ed25519 PKCS#8 document",
                )
            })?;
        Ok(Self { key_id, key })
    }

    /// A fresh key as a PKCS#8 v2 document. It is the secret: store it like the master key.
    pub fn generate_pkcs8() -> Result<Vec<u8>> {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| Error::internal_msg("could not generate a checkpoint key"))?;
        Ok(doc.as_ref().to_vec())
    }

    /// The raw 32-byte Ed25519 public key to give tenants.
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    fn sign(&self, chain_id: &str, seq: i64, head_hash: &[u8]) -> Vec<u8> {
        self.key
            .sign(&checkpoint_message(chain_id, seq, head_hash))
            .as_ref()
            .to_vec()
    }
}

/// Whether `cp` was signed by the holder of `public_key` (raw 32-byte Ed25519) and is unaltered.
pub fn verify_checkpoint_signature(cp: &Checkpoint, public_key: &[u8]) -> bool {
    UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(
            &checkpoint_message(&cp.chain_id, cp.seq, &cp.head_hash),
            &cp.signature,
        )
        .is_ok()
}

/// Signs the chain's current head and stores the checkpoint; `None` for an empty chain. If
/// the head already has a checkpoint, that one is returned. Fails with `audit_chain_broken`
/// rather than sign a chain that does not verify.
///
/// Verifying costs time proportional to the events since the last checkpoint. Inside the
/// group committer that time holds up every write, so a server should instead run
/// [`prepare_checkpoint`] on a read connection and hand [`store_checkpoint`] to the committer.
pub fn checkpoint(
    conn: &mut DbConnection,
    chain_id: &str,
    signer: &CheckpointSigner,
    now: NaiveDateTime,
) -> Result<Option<Checkpoint>> {
    let Some(cp) = prepare_checkpoint(conn, chain_id, signer, now)? else {
        return Ok(None);
    };
    store_checkpoint(conn, &cp)?;
    Ok(Some(cp))
}

/// Verifies the chain since the last checkpoint this signer made and signs the head, without
/// writing anything. Returns the stored checkpoint if the head already has one.
pub fn prepare_checkpoint(
    conn: &mut DbConnection,
    chain_id: &str,
    signer: &CheckpointSigner,
    now: NaiveDateTime,
) -> Result<Option<Checkpoint>> {
    let Some((head_seq, head_hash)) = query::head(conn, chain_id)? else {
        return Ok(None);
    };
    if head_seq < 1 {
        return Ok(None);
    }
    if let Some(existing) = get_checkpoint(conn, chain_id, head_seq)? {
        if existing.head_hash == head_hash {
            return Ok(Some(existing));
        }
        return Err(broken());
    }
    // Trust the previous checkpoint only if this key really signed it: a row anyone could have
    // written must not shorten the verification.
    let start = latest_checkpoint(conn, chain_id)?
        .filter(|cp| cp.seq <= head_seq && verify_checkpoint_signature(cp, signer.public_key()))
        .and_then(|cp| {
            let hash: [u8; HASH_LEN] = cp.head_hash.as_slice().try_into().ok()?;
            Some(Start { seq: cp.seq, hash })
        })
        .unwrap_or_else(Start::genesis);
    let walked = walk(vec![conn], chain_id, start, head_seq, None, &mut |_| {})?;
    if walked.failure.is_some()
        || walked.last_seq != head_seq
        || walked.last_hash[..] != head_hash[..]
    {
        tracing::error!(
            chain_id,
            head_seq,
            "refusing to sign a checkpoint: audit chain does not verify"
        );
        return Err(broken());
    }
    let signature = signer.sign(chain_id, head_seq, &head_hash);
    Ok(Some(Checkpoint {
        chain_id: chain_id.to_string(),
        seq: head_seq,
        head_hash,
        signature,
        key_id: signer.key_id().to_string(),
        created_at: truncate_micros(now.and_utc()).naive_utc(),
    }))
}

/// Stores a checkpoint made by [`prepare_checkpoint`]; storing one that exists is a no-op.
pub fn store_checkpoint(conn: &mut DbConnection, cp: &Checkpoint) -> Result<()> {
    if get_checkpoint(conn, &cp.chain_id, cp.seq)?.is_some() {
        return Ok(());
    }
    diesel::insert_into(audit_checkpoints::table)
        .values(cp)
        .execute(conn)?;
    Ok(())
}

fn broken() -> Error {
    Error::conflict(
        "audit_chain_broken",
        "the audit chain does not verify; run `steward audit verify`",
    )
}

fn get_checkpoint(conn: &mut DbConnection, chain_id: &str, seq: i64) -> Result<Option<Checkpoint>> {
    Ok(audit_checkpoints::table
        .find((chain_id, seq))
        .select(Checkpoint::as_select())
        .first(conn)
        .optional()?)
}

/// The chain's checkpoints, newest first.
pub fn list_checkpoints(
    conn: &mut DbConnection,
    chain_id: &str,
    limit: i64,
) -> Result<Vec<Checkpoint>> {
    if limit < 1 {
        return Err(Error::invalid("invalid_limit", "limit must be at least 1"));
    }
    Ok(audit_checkpoints::table
        .filter(audit_checkpoints::chain_id.eq(chain_id))
        .order(audit_checkpoints::seq.desc())
        .limit(limit)
        .select(Checkpoint::as_select())
        .load(conn)?)
}

pub fn latest_checkpoint(conn: &mut DbConnection, chain_id: &str) -> Result<Option<Checkpoint>> {
    Ok(list_checkpoints(conn, chain_id, 1)?.into_iter().next())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn sample(signer: &CheckpointSigner) -> Checkpoint {
        let head_hash = vec![7u8; 32];
        Checkpoint {
            chain_id: "ten_01".into(),
            seq: 95,
            signature: signer.sign("ten_01", 95, &head_hash),
            head_hash,
            key_id: signer.key_id().into(),
            created_at: chrono::DateTime::from_timestamp(1_800_000_000, 5_000)
                .unwrap()
                .naive_utc(),
        }
    }

    #[test]
    fn signatures_bind_every_signed_attribute() {
        let doc = CheckpointSigner::generate_pkcs8().unwrap();
        let signer = CheckpointSigner::from_pkcs8("sig_1".into(), &doc).unwrap();
        let cp = sample(&signer);
        assert!(verify_checkpoint_signature(&cp, signer.public_key()));

        let mut flipped = cp.clone();
        flipped.signature[10] ^= 0x01;
        assert!(!verify_checkpoint_signature(&flipped, signer.public_key()));
        let mut moved = cp.clone();
        moved.seq = 96;
        assert!(!verify_checkpoint_signature(&moved, signer.public_key()));
        let mut other_chain = cp.clone();
        other_chain.chain_id = "ten_02".into();
        assert!(!verify_checkpoint_signature(
            &other_chain,
            signer.public_key()
        ));
        let mut other_hash = cp.clone();
        other_hash.head_hash[0] ^= 1;
        assert!(!verify_checkpoint_signature(
            &other_hash,
            signer.public_key()
        ));

        let other = CheckpointSigner::from_pkcs8(
            "sig_2".into(),
            &CheckpointSigner::generate_pkcs8().unwrap(),
        )
        .unwrap();
        assert!(!verify_checkpoint_signature(&cp, other.public_key()));
    }

    #[test]
    fn json_round_trips() {
        let doc = CheckpointSigner::generate_pkcs8().unwrap();
        let signer = CheckpointSigner::from_pkcs8("sig_1".into(), &doc).unwrap();
        let cp = sample(&signer);
        let json = serde_json::to_value(&cp).unwrap();
        assert_eq!(json["head_hash"], "07".repeat(32));
        assert_eq!(json["created_at"], "2027-01-15T08:00:00.000005Z");
        let back: Checkpoint = serde_json::from_value(json).unwrap();
        assert_eq!(back, cp);
        assert!(verify_checkpoint_signature(&back, signer.public_key()));
    }

    #[test]
    fn bad_key_documents_are_rejected_without_detail() {
        let err = CheckpointSigner::from_pkcs8("sig_1".into(), b"not a key").unwrap_err();
        assert!(matches!(
            err,
            Error::Invalid {
                code: "invalid_signing_key",
                ..
            }
        ));
        let signer = CheckpointSigner::from_pkcs8(
            "sig_1".into(),
            &CheckpointSigner::generate_pkcs8().unwrap(),
        )
        .unwrap();
        assert!(!format!("{signer:?}").contains("key:"));
    }
}
