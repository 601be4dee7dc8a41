//! Flags and environment variables. Every flag has an environment twin so a container can be
//! configured without a command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "steward",
    version,
    about = "Steward: a multi-tenant data-processor platform"
)]
pub struct Cli {
    /// Log output format.
    #[arg(long, env = "STEWARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the API server.
    Serve(ServeArgs),
    /// Run pending database migrations and exit.
    Migrate(StorageArgs),
    /// Staff accounts.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Audit log tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Retention: erase visitors inactive beyond their tenant's retention period.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Key management: master-key rotation, tenant key destruction.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute hash chains and name the first bad event; exits non-zero on any break.
    Verify(AuditVerifyArgs),
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// One tenant's chain (default: every chain, the platform's included).
    #[arg(long)]
    pub tenant: Option<String>,
    /// A checkpoint kept earlier (JSON from GET …/audit/checkpoints): detects truncation and
    /// rewrites before it.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Run the retention purge of every tenant that set `retention_days`, once.
    Run(StorageArgs),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a platform staff account. The password is read from the terminal (or from
    /// standard input when it is not a terminal) — never from a flag.
    CreateStaff(CreateStaffArgs),
}

#[derive(Debug, Args)]
pub struct CreateStaffArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    #[arg(long)]
    pub email: String,
    /// platform_admin, support_engineer or security_officer.
    #[arg(long)]
    pub role: String,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-wrap every tenant key under a new master key (KEK); data is untouched. Stop the
    /// servers first. File mode writes the new key beside the old and replaces it at the end;
    /// with STEWARD_MASTER_KEY set, give the new key in STEWARD_NEW_MASTER_KEY.
    RotateMaster(StorageArgs),
    /// Destroy a tenant's keys (crypto-shredding). Irreversible.
    Destroy(DestroyKeysArgs),
}

#[derive(Debug, Args)]
pub struct DestroyKeysArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The tenant whose keys to destroy.
    #[arg(long)]
    pub tenant: String,
    /// The same tenant id again, to confirm.
    #[arg(long)]
    pub confirm: String,
}

#[derive(Debug, Args, Clone)]
pub struct StorageArgs {
    /// Data directory: the SQLite database and master key live here.
    #[arg(long, env = "STEWARD_DATA_DIR", default_value = "./steward-data")]
    pub data_dir: PathBuf,

    /// Database URL: `postgres://…`, `sqlite://PATH` or a path. Default: SQLite in the data dir.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// SQLite commit durability: `full` (fsync every commit; survives power loss) or `normal`
    /// (survives a process crash, may lose the last commits on power loss).
    #[arg(long, env = "STEWARD_SQLITE_SYNC", default_value = "full")]
    pub sqlite_sync: String,

    /// Key file holding the base64 master key (KEK). Default: `master.key` in the data dir,
    /// generated on first start. `STEWARD_MASTER_KEY` (base64, environment only) wins over it.
    #[arg(long, env = "STEWARD_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub storage: StorageArgs,

    /// Address to listen on.
    #[arg(long, env = "STEWARD_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "STEWARD_WORKERS")]
    pub workers: Option<usize>,

    /// Bulk requests (imports, pull pages, exports, PII listings) served at once; more wait
    /// their turn. Bounds the server's memory (default: one per core, at least 2).
    #[arg(long, env = "STEWARD_MAX_BULK_REQUESTS")]
    pub max_bulk_requests: Option<usize>,
}
