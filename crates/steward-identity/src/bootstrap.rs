//! The first platform admin. On the first start of an empty database a one-time admin is made
//! and its generated password written to `bootstrap-admin.txt` (mode 0600) in the data dir —
//! never to the log.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use steward_core::{Error, Result, Role};
use steward_store::Store;

use crate::password::{generate_password, PasswordHasher};
use crate::users;

pub const FILE_NAME: &str = "bootstrap-admin.txt";
pub const EMAIL: &str = "admin@steward.local";

/// Creates the bootstrap admin when no active platform admin exists. Returns the file holding
/// its credentials when one was made.
pub fn ensure_bootstrap_admin(
    store: &Store,
    hasher: &PasswordHasher,
    data_dir: &Path,
    now: NaiveDateTime,
) -> Result<Option<PathBuf>> {
    let admins = store.read_blocking(|c| users::count_active_with_role(c, Role::PlatformAdmin))?;
    if admins > 0 {
        return Ok(None);
    }
    let password = generate_password()?;
    let hash = hasher.hash(&password)?;
    let path = data_dir.join(FILE_NAME);
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(Error::internal)?;
    writeln!(
        file,
        "# Steward bootstrap platform admin. Log in, create your own staff accounts,\n\
         # then disable this one and delete this file.\nemail={EMAIL}\npassword={password}"
    )
    .and_then(|()| file.sync_all())
    .map_err(Error::internal)?;
    let row = users::new_row(None, EMAIL.to_string(), hash, Role::PlatformAdmin, now)?;
    // If the bootstrap account exists (disabled, or demoted), it is revived with the new
    // password rather than duplicated: the e-mail is unique among staff.
    let created = store.write_blocking(move |c| {
        let existing = users::find_any_by_email(c, EMAIL, users::PLATFORM_SCOPE)?;
        match existing {
            Some(u) => users::reactivate_as(c, &u.id, Role::PlatformAdmin, &row.password_hash, now),
            None => users::insert(c, &row),
        }
    });
    if let Err(e) = created {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(Some(path))
}
