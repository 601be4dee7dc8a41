//! `steward keys …`: master-key rotation and tenant key destruction, run by an operator with
//! the servers stopped.

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use steward_api::master_key::{self, key_file_path, next_key_path};
use steward_core::{Clock, SystemClock};
use steward_keys::{KekProvider, LocalKek};
use steward_store::{keys, platform_keys, tenants, Store};

use super::{config_from, CliError};
use crate::cli::{DestroyKeysArgs, KeysCommand, StorageArgs};

pub fn run(cmd: KeysCommand) -> Result<(), CliError> {
    match cmd {
        KeysCommand::RotateMaster(args) => rotate_master(args),
        KeysCommand::Destroy(args) => destroy(args),
    }
}

fn open_store(config: &steward_api::Config) -> Result<Store, CliError> {
    let url = config
        .database_url()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(Store::open(
        &url,
        steward_store::PoolOptions {
            sqlite_sync: config.sqlite_sync,
            ..Default::default()
        },
    )?)
}

fn progress_bar(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_string());
    bar
}

/// Re-wraps every tenant key under a new KEK; data is untouched. In file mode the new key is
/// written to `<key file>.next` first and replaces the key file only once nothing is wrapped
/// by the old key, so a crash at any point loses nothing (the next start loads both).
fn rotate_master(args: StorageArgs) -> Result<(), CliError> {
    let config = config_from(&args)?;
    let env_mode = config.master_key.is_some();
    let old = master_key::load(&config).map_err(|e| CliError::Usage(e.to_string()))?;
    let old_id = old.kek.kek_id();
    let key_file = key_file_path(&config);
    let next_file = next_key_path(&key_file);

    let new = if env_mode {
        let b64 = std::env::var("STEWARD_NEW_MASTER_KEY").map_err(|_| {
            CliError::Usage(
                "STEWARD_MASTER_KEY is set: give the new key in STEWARD_NEW_MASTER_KEY".into(),
            )
        })?;
        LocalKek::from_base64(&b64).map_err(|e| CliError::Usage(format!("new master key: {e}")))?
    } else if next_file.exists() {
        eprintln!(
            "resuming the unfinished rotation in {}",
            next_file.display()
        );
        LocalKek::from_file(&next_file).map_err(|e| CliError::Usage(e.to_string()))?
    } else {
        let new = LocalKek::generate().map_err(|e| CliError::Usage(e.to_string()))?;
        steward_keys::write_key_file(&next_file, &new)
            .map_err(|e| CliError::Usage(format!("cannot write {}: {e}", next_file.display())))?;
        new
    };
    let new_id = new.kek_id();
    if new_id == old_id {
        return Err(CliError::Usage(
            "the new master key equals the old one".into(),
        ));
    }
    let provider: Arc<dyn KekProvider> = Arc::new(new.with_previous(old.kek));
    let store = open_store(&config)?;

    let pending = {
        let id = new_id.clone();
        store.read_blocking(move |c| keys::count_not_under(c, &id))?
    };
    let bar = progress_bar(
        u64::try_from(pending).unwrap_or(0),
        "re-wrapping tenant keys",
    );
    loop {
        let id = new_id.clone();
        let batch = store.read_blocking(move |c| keys::rows_not_under(c, &id, 200))?;
        if batch.is_empty() {
            break;
        }
        let n = batch.len() as u64;
        let p = provider.clone();
        store.write_blocking(move |c| {
            for row in &batch {
                keys::rewrap_row(c, p.as_ref(), row)?;
            }
            Ok(())
        })?;
        bar.inc(n);
    }
    bar.finish();
    let p = provider.clone();
    let id = new_id.clone();
    let platform = store.write_blocking(move |c| {
        let rows = platform_keys::rows_not_under(c, &id)?;
        for row in &rows {
            platform_keys::rewrap(c, p.as_ref(), row)?;
        }
        Ok(rows.len())
    })?;
    if platform > 0 {
        println!("re-wrapped {platform} platform key(s)");
    }

    if env_mode {
        println!(
            "Re-wrapped {pending} tenant key(s) under {new_id}. Set STEWARD_MASTER_KEY to the new \
             key (and unset STEWARD_NEW_MASTER_KEY) before the next start; the old key {old_id} \
             no longer wraps anything."
        );
    } else {
        std::fs::rename(&next_file, &key_file)?;
        if let Some(dir) = key_file.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        println!(
            "Re-wrapped {pending} tenant key(s) under {new_id}; {} now holds the new key and the \
             old key {old_id} is gone. Back up the new key file.",
            key_file.display()
        );
    }
    Ok(())
}

/// Crypto-shredding of one tenant: its wrapped keys are deleted; nothing of its data can be
/// opened again, with or without the master key.
fn destroy(args: DestroyKeysArgs) -> Result<(), CliError> {
    if args.confirm != args.tenant {
        return Err(CliError::Usage(
            "destroying keys cannot be undone: repeat the tenant id in --confirm".into(),
        ));
    }
    let config = config_from(&args.storage)?;
    let store = open_store(&config)?;
    let tenant = args.tenant.clone();
    let now = SystemClock.now().naive_utc();
    let n = store.write_blocking(move |c| {
        tenants::get(c, &tenant)?;
        keys::destroy(c, &tenant, now)
    })?;
    println!("destroyed {n} wrapped key(s) of {}", args.tenant);
    Ok(())
}
