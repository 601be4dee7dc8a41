//! Everything a handler may use, built once at start-up.

use std::sync::Arc;

use steward_audit::CheckpointSigner;
use steward_core::{Clock, SystemClock};
use steward_identity::{
    signing, LoginRateLimiter, LoginService, PasswordHasher, RateLimitConfig, TokenIssuer,
};
use steward_keys::KekProvider;
use steward_store::jobs::{JobHandler, JobRunner};
use steward_store::keys::KeyService;
use steward_store::pool::PoolOptions;
use steward_store::reencrypt::{ReencryptJob, ReencryptTarget};
use steward_store::{platform_keys, Store};
use steward_transfers::erasure::TransferHooks;
use steward_visitors::reencrypt::VisitorReencryption;
use steward_visitors::retention::RetentionJob;
use steward_visitors::{VisitorHooks, VisitorService};

use crate::bulk::BulkLimit;
use crate::config::Config;
use crate::master_key::{self, KekOrigin};
use crate::metrics::Metrics;

/// Unwrapped tenant keyrings kept in memory at most.
const KEY_CACHE_CAPACITY: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid database URL: {0}")]
    Url(#[from] steward_store::url::UrlError),
    #[error("could not create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] steward_store::store::OpenError),
    #[error(transparent)]
    MasterKey(#[from] master_key::MasterKeyError),
    #[error(
        "the configured master key does not match this database: tenant keys are wrapped by \
         {unknown:?}, which is not loaded. Refusing to start (no data was changed)."
    )]
    WrongMasterKey { unknown: Vec<String> },
    #[error("start-up check failed: {}", .0.log_cause())]
    Check(#[from] steward_core::Error),
    #[error("could not start a worker thread: {0}")]
    Thread(std::io::Error),
}

#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub keys: KeyService,
    pub jobs: JobRunner,
    pub kek_origin: KekOrigin,
    pub tokens: Arc<TokenIssuer>,
    pub login: Arc<LoginService>,
    pub visitors: VisitorService,
    pub checkpoints: Arc<CheckpointSigner>,
    pub bulk: BulkLimit,
}

impl AppState {
    /// Opens (and migrates) the database, loads the master key and checks it fits, and starts
    /// the background job worker.
    pub fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let state = Self::build_without_worker(config, clock)?;
        state.jobs.spawn().map_err(StartupError::Thread)?;
        Ok(state)
    }

    /// The same, without the job worker (CLI commands run jobs in the foreground).
    pub fn build_without_worker(
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartupError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let url = config.database_url()?;
        let options = PoolOptions {
            max_size: config.pool_size,
            sqlite_sync: config.sqlite_sync,
            ..PoolOptions::default()
        };
        let store = Store::open(&url, options)?;
        let loaded = master_key::load(config)?;
        if let KekOrigin::Generated(path) = &loaded.origin {
            tracing::warn!(
                path = %path.display(),
                "generated a new master key. Back it up now and keep it apart from database \
                 backups: losing it loses every tenant's data"
            );
        }
        let known = loaded.kek.known_kek_ids();
        let in_use = store.read_blocking(|c| {
            let mut ids = steward_store::tenants::kek_ids_in_use(c)?;
            ids.extend(steward_store::platform_keys::kek_ids_in_use(c)?);
            Ok(ids)
        })?;
        let unknown: Vec<String> = in_use
            .into_iter()
            .filter(|id| !known.contains(id))
            .collect();
        if !unknown.is_empty() {
            return Err(StartupError::WrongMasterKey { unknown });
        }
        let kek: Arc<dyn KekProvider> = Arc::new(loaded.kek);
        let keys = KeyService::new(kek, KEY_CACHE_CAPACITY);
        let hooks: Arc<dyn VisitorHooks> = Arc::new(TransferHooks);
        let visitors = VisitorService::new(store.clone(), keys.clone(), clock.clone())
            .with_hooks(hooks.clone());
        let checkpoints = Arc::new(load_checkpoint_signer(
            &store,
            keys.kek_arc(),
            clock.as_ref(),
        )?);
        let jobs = JobRunner::new(
            store.clone(),
            clock.clone(),
            job_handlers(&keys, &clock, hooks),
        );
        let tokens = Arc::new(signing::load_or_create_issuer(
            &store,
            keys.kek_arc(),
            clock.clone(),
        )?);
        let hasher = if config.fast_password_hashing {
            PasswordHasher::for_tests()
        } else {
            PasswordHasher::new()
        };
        // Computes the dummy hash now, so the first failed login is not faster than the rest.
        hasher.verify_dummy("warm-up");
        let login = Arc::new(LoginService::new(
            hasher,
            LoginRateLimiter::new(RateLimitConfig::default(), clock.clone()),
        ));
        Ok(Self {
            store,
            clock,
            metrics: Arc::new(Metrics::new()),
            keys,
            jobs,
            kek_origin: loaded.origin,
            tokens,
            login,
            visitors,
            checkpoints,
            bulk: BulkLimit::new(config.max_bulk_requests),
        })
    }

    pub fn build_default_clock(config: &Config) -> Result<Self, StartupError> {
        Self::build(config, Arc::new(SystemClock))
    }
}

const CHECKPOINT_KEY_PURPOSE: &str = "audit_checkpoint";

/// The key that signs audit checkpoints: made once, sealed under the KEK like every platform
/// secret, shared by every server process.
fn load_checkpoint_signer(
    store: &Store,
    kek: Arc<dyn KekProvider>,
    clock: &dyn Clock,
) -> Result<CheckpointSigner, steward_core::Error> {
    let mut rows = store.read_blocking(|c| platform_keys::list(c, CHECKPOINT_KEY_PURPOSE))?;
    if rows.is_empty() {
        let pkcs8 = CheckpointSigner::generate_pkcs8()?;
        let id = steward_core::Id::SigningKey.generate();
        let public = CheckpointSigner::from_pkcs8(id.clone(), &pkcs8)?
            .public_key()
            .to_vec();
        let now = clock.now().naive_utc();
        let k = kek.clone();
        store.write_blocking(move |c| {
            platform_keys::insert(
                c,
                k.as_ref(),
                &id,
                CHECKPOINT_KEY_PURPOSE,
                &pkcs8,
                &public,
                now,
            )
        })?;
        rows = store.read_blocking(|c| platform_keys::list(c, CHECKPOINT_KEY_PURPOSE))?;
    }
    let newest = rows
        .into_iter()
        .next()
        .ok_or_else(|| steward_core::Error::internal_msg("no checkpoint key"))?;
    let pkcs8 = platform_keys::open(kek.as_ref(), &newest)?;
    CheckpointSigner::from_pkcs8(newest.id, &pkcs8)
}

/// Tables holding sealed values, re-encrypted after a data-key rotation.
fn reencrypt_targets() -> Vec<Arc<dyn ReencryptTarget>> {
    vec![Arc::new(VisitorReencryption)]
}

fn job_handlers(
    keys: &KeyService,
    clock: &Arc<dyn Clock>,
    hooks: Arc<dyn VisitorHooks>,
) -> Vec<Arc<dyn JobHandler>> {
    vec![
        Arc::new(ReencryptJob::new(keys.clone(), reencrypt_targets())),
        // Retention erasures notify subprocessors like any other erasure.
        Arc::new(RetentionJob::new(clock.clone(), vec![hooks])),
    ]
}
