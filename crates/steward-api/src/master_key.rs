//! Where the key-encryption key (KEK) comes from: `STEWARD_MASTER_KEY` (base64), a key file,
//! or — the embedded default — `master.key` in the data dir, generated on first start.
//!
//! A master-key rotation writes the new key to `<key file>.next` before re-wrapping anything,
//! and only then replaces the key file. A start that finds a `.next` file (a rotation cut
//! short) loads both keys, so every tenant key stays readable whichever KEK wraps it.

use std::path::{Path, PathBuf};

use steward_keys::{LocalKek, MasterKeySource};
use zeroize::Zeroizing;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("the master key could not be loaded from {source_name}: {error}")]
    Load {
        source_name: String,
        error: steward_keys::KeyError,
    },
}

/// Where the KEK was found, for the start-up message.
#[derive(Debug, Clone)]
pub enum KekOrigin {
    Environment,
    File(PathBuf),
    Generated(PathBuf),
}

#[derive(Debug)]
pub struct LoadedKek {
    pub kek: LocalKek,
    pub origin: KekOrigin,
}

/// The key file used when no key is given in the environment.
pub fn key_file_path(config: &Config) -> PathBuf {
    config
        .master_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join(steward_keys::MASTER_KEY_FILE))
}

pub fn next_key_path(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".next");
    PathBuf::from(name)
}

fn err(source_name: impl Into<String>) -> impl FnOnce(steward_keys::KeyError) -> MasterKeyError {
    let source_name = source_name.into();
    move |error| MasterKeyError::Load { source_name, error }
}

pub fn load(config: &Config) -> Result<LoadedKek, MasterKeyError> {
    if let Some(b64) = &config.master_key {
        let kek = LocalKek::from_base64(b64).map_err(err("STEWARD_MASTER_KEY"))?;
        let kek = match &config.previous_master_key {
            Some(prev) => kek.with_previous(
                LocalKek::from_base64(prev).map_err(err("STEWARD_PREVIOUS_MASTER_KEY"))?,
            ),
            None => kek,
        };
        return Ok(LoadedKek {
            kek,
            origin: KekOrigin::Environment,
        });
    }
    let path = key_file_path(config);
    let (kek, origin) = if config.master_key_file.is_some() {
        let kek = LocalKek::from_file(&path).map_err(err(path.display().to_string()))?;
        (kek, KekOrigin::File(path.clone()))
    } else {
        let (kek, source) = LocalKek::load_or_generate(&config.data_dir)
            .map_err(err(path.display().to_string()))?;
        match source {
            MasterKeySource::Loaded(p) => (kek, KekOrigin::File(p)),
            MasterKeySource::Generated(p) => (kek, KekOrigin::Generated(p)),
        }
    };
    let next = next_key_path(&path);
    let kek = if next.exists() {
        tracing::warn!(
            path = %next.display(),
            "an unfinished master-key rotation was found; both keys are loaded. \
             Run `steward keys rotate-master` again to finish it"
        );
        kek.with_previous(LocalKek::from_file(&next).map_err(err(next.display().to_string()))?)
    } else {
        kek
    };
    Ok(LoadedKek { kek, origin })
}

/// Base64 text held only as long as needed.
pub type SecretText = Zeroizing<String>;
