//! `steward admin create-staff`: a staff account from the command line, for the first admin
//! of a production deployment or to recover from a lost one.

use std::io::{BufRead, IsTerminal};

use steward_core::{Clock, Role, SystemClock};
use steward_identity::{check_policy, users, PasswordHasher};
use steward_store::Store;
use zeroize::Zeroizing;

use super::{config_from, CliError};
use crate::cli::{AdminCommand, CreateStaffArgs};

pub fn run(cmd: AdminCommand) -> Result<(), CliError> {
    match cmd {
        AdminCommand::CreateStaff(args) => create_staff(args),
    }
}

fn read_password() -> Result<Zeroizing<String>, CliError> {
    if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(rpassword::prompt_password("Password: ")?);
        let again = Zeroizing::new(rpassword::prompt_password("Password again: ")?);
        if first != again {
            return Err(CliError::Usage("the passwords differ".into()));
        }
        Ok(first)
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(Zeroizing::new(
            line.trim_end_matches(['\r', '\n']).to_string(),
        ))
    }
}

fn create_staff(args: CreateStaffArgs) -> Result<(), CliError> {
    let role: Role = args
        .role
        .parse()
        .map_err(|_| CliError::Usage(format!("unknown role `{}`", args.role)))?;
    if !role.is_staff() {
        return Err(CliError::Usage(
            "staff roles are platform_admin, support_engineer and security_officer".into(),
        ));
    }
    let email = users::normalize_email(&args.email)?;
    let password = read_password()?;
    check_policy(&password)?;
    let config = config_from(&args.storage)?;
    std::fs::create_dir_all(&config.data_dir)?;
    let url = config
        .database_url()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let store = Store::open(&url, Default::default())?;
    let hash = PasswordHasher::new().hash(&password)?;
    let row = users::new_row(None, email, hash, role, SystemClock.now().naive_utc())?;
    let id = row.id.clone();
    store.write_blocking(move |c| users::insert(c, &row))?;
    println!("created {role} {id}");
    Ok(())
}
