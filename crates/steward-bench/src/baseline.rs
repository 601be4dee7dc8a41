//! The baseline: the least a server can do to offer the same visitor routes. actix-web +
//! diesel + r2d2 over the same database engine as Steward, the visitor JSON stored as plaintext
//! TEXT with an indexed plaintext e-mail column; no auth, no crypto, no audit, no batching: one
//! transaction — one durable commit — per write request. SQLite runs with `journal_mode=WAL`,
//! `synchronous=FULL`, `busy_timeout=5000` (Steward's default durability); PostgreSQL with its
//! defaults (`synchronous_commit=on`), as Steward does.
//!
//! Routes (`{tid}` is any string; nothing checks it beyond filtering on it):
//! `POST /tenants/{tid}/visitors`, `POST /tenants/{tid}/visitors:batch` (`{items:[…]}`, one
//! transaction), `GET /tenants/{tid}/visitors/{vid}`, `GET /tenants/{tid}/visitors?email=`,
//! `GET /tenants/{tid}/visitors?limit=&cursor=` (a page of whole documents by id — the `pull`
//! workload's counterpart), `PATCH /tenants/{tid}/visitors/{vid}` (top-level keys of the body replace the stored ones,
//! `null` removes one — Steward's rectification semantics — read and write in one
//! transaction).

use std::net::TcpListener;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpResponse, HttpServer};
use anyhow::{anyhow, Context};
use chrono::{NaiveDateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The baseline's tenant id in its URLs.
pub const TENANT: &str = "ten_baseline";
/// Same as Steward's default pool size.
const POOL_SIZE: u32 = 16;
/// Same as Steward's limit for bulk imports.
const BATCH_BODY_LIMIT: usize = 8 * 1024 * 1024;
const BATCH_MAX: usize = 1_000;

diesel::table! {
    bench_baseline_visitors (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        email -> Nullable<Text>,
        body -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

use bench_baseline_visitors as bv;

const CREATE_TABLE: &str = "\
    DROP TABLE IF EXISTS bench_baseline_visitors;\
    CREATE TABLE bench_baseline_visitors (\
        tenant_id TEXT NOT NULL,\
        id TEXT NOT NULL,\
        email TEXT,\
        body TEXT NOT NULL,\
        created_at TIMESTAMP NOT NULL,\
        updated_at TIMESTAMP NOT NULL,\
        PRIMARY KEY (tenant_id, id));\
    CREATE INDEX bench_baseline_visitors_email ON bench_baseline_visitors (tenant_id, email);";

#[derive(diesel::MultiConnection)]
pub enum Conn {
    Sqlite(SqliteConnection),
    Pg(PgConnection),
}

impl Conn {
    fn batch(&mut self, sql: &str) -> QueryResult<()> {
        match self {
            Conn::Sqlite(c) => c.batch_execute(sql),
            Conn::Pg(c) => c.batch_execute(sql),
        }
    }
}

/// Where the baseline keeps its table.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    pub fn describe(&self) -> String {
        match self {
            Db::Sqlite(p) => format!("sqlite {}", p.display()),
            Db::Postgres(_) => "postgres (table bench_baseline_visitors)".into(),
        }
    }
}

#[derive(Debug)]
pub enum ConnError {
    Connect(diesel::ConnectionError),
    Setup(diesel::result::Error),
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnError::Connect(e) => write!(f, "connect: {e}"),
            ConnError::Setup(e) => write!(f, "setup: {e}"),
        }
    }
}

impl std::error::Error for ConnError {}

#[derive(Debug)]
struct Manager(Db);

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = ConnError;

    fn connect(&self) -> Result<Conn, ConnError> {
        match &self.0 {
            Db::Sqlite(path) => {
                let mut c = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(ConnError::Connect)?;
                c.batch_execute(
                    "PRAGMA busy_timeout = 5000;\
                     PRAGMA journal_mode = WAL;\
                     PRAGMA synchronous = FULL;",
                )
                .map_err(ConnError::Setup)?;
                Ok(Conn::Sqlite(c))
            }
            Db::Postgres(url) => Ok(Conn::Pg(
                PgConnection::establish(url).map_err(ConnError::Connect)?,
            )),
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), ConnError> {
        conn.batch("SELECT 1").map_err(ConnError::Setup)
    }

    fn has_broken(&self, _conn: &mut Conn) -> bool {
        false
    }
}

type Pool = r2d2::Pool<Manager>;

/// One write transaction. SQLite: `BEGIN IMMEDIATE`, so a read-then-write (PATCH) waits for
/// the write lock up front (busy_timeout) instead of failing with SQLITE_BUSY on upgrade.
fn write_tx<T>(conn: &mut Conn, f: impl FnOnce(&mut Conn) -> QueryResult<T>) -> QueryResult<T> {
    let begin = match conn {
        Conn::Sqlite(_) => "BEGIN IMMEDIATE",
        Conn::Pg(_) => "BEGIN",
    };
    conn.batch(begin)?;
    match f(conn) {
        Ok(v) => match conn.batch("COMMIT") {
            Ok(()) => Ok(v),
            Err(e) => {
                let _ = conn.batch("ROLLBACK");
                Err(e)
            }
        },
        Err(e) => {
            let _ = conn.batch("ROLLBACK");
            Err(e)
        }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = bench_baseline_visitors)]
struct Row {
    tenant_id: String,
    id: String,
    email: Option<String>,
    body: String,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

fn normalize_email(e: &str) -> String {
    e.trim().to_lowercase()
}

fn email_of(doc: &Map<String, Value>) -> Option<String> {
    doc.get("email")
        .and_then(Value::as_str)
        .map(normalize_email)
}

fn new_row(tid: &str, doc: &Map<String, Value>, now: NaiveDateTime) -> Row {
    Row {
        tenant_id: tid.to_string(),
        id: format!("vis_{}", ulid::Ulid::new().to_string().to_lowercase()),
        email: email_of(doc),
        body: Value::Object(doc.clone()).to_string(),
        created_at: now,
        updated_at: now,
    }
}

fn render(row: &Row) -> Value {
    let mut doc = match serde_json::from_str::<Value>(&row.body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    doc.insert("id".into(), json!(row.id));
    doc.insert(
        "created_at".into(),
        json!(row.created_at.and_utc().to_rfc3339()),
    );
    doc.insert(
        "updated_at".into(),
        json!(row.updated_at.and_utc().to_rfc3339()),
    );
    Value::Object(doc)
}

enum Failure {
    NotFound,
    BadRequest(String),
    Internal(String),
}

impl From<diesel::result::Error> for Failure {
    fn from(e: diesel::result::Error) -> Self {
        match e {
            diesel::result::Error::NotFound => Failure::NotFound,
            e => Failure::Internal(e.to_string()),
        }
    }
}

impl From<r2d2::Error> for Failure {
    fn from(e: r2d2::Error) -> Self {
        Failure::Internal(format!("pool: {e}"))
    }
}

fn respond(
    result: Result<Result<(StatusCode, Value), Failure>, actix_web::error::BlockingError>,
) -> HttpResponse {
    match result {
        Ok(Ok((status, body))) => HttpResponse::build(status).json(body),
        Ok(Err(Failure::NotFound)) => HttpResponse::NotFound().json(json!({"error": "not found"})),
        Ok(Err(Failure::BadRequest(m))) => HttpResponse::BadRequest().json(json!({"error": m})),
        Ok(Err(Failure::Internal(m))) => {
            HttpResponse::InternalServerError().json(json!({"error": m}))
        }
        Err(_) => HttpResponse::InternalServerError().json(json!({"error": "blocking pool"})),
    }
}

async fn create(
    pool: web::Data<Pool>,
    path: web::Path<String>,
    body: web::Json<Map<String, Value>>,
) -> HttpResponse {
    let tid = path.into_inner();
    let doc = body.into_inner();
    respond(
        web::block(move || {
            let mut conn = pool.get()?;
            let row = new_row(&tid, &doc, Utc::now().naive_utc());
            write_tx(&mut conn, |c| {
                diesel::insert_into(bv::table).values(&row).execute(c)
            })?;
            Ok((StatusCode::CREATED, render(&row)))
        })
        .await,
    )
}

#[derive(Deserialize)]
struct Batch {
    items: Vec<Map<String, Value>>,
}

async fn import(
    pool: web::Data<Pool>,
    path: web::Path<String>,
    body: web::Json<Batch>,
) -> HttpResponse {
    let tid = path.into_inner();
    let items = body.into_inner().items;
    respond(
        web::block(move || {
            if items.len() > BATCH_MAX {
                return Err(Failure::BadRequest(format!("at most {BATCH_MAX} items")));
            }
            let now = Utc::now().naive_utc();
            let rows: Vec<Row> = items.iter().map(|d| new_row(&tid, d, now)).collect();
            let mut conn = pool.get()?;
            write_tx(&mut conn, |c| {
                for row in &rows {
                    diesel::insert_into(bv::table).values(row).execute(c)?;
                }
                Ok(())
            })?;
            let ids: Vec<Value> = rows.iter().map(|r| json!({ "id": r.id })).collect();
            Ok((
                StatusCode::CREATED,
                json!({ "count": ids.len(), "items": ids }),
            ))
        })
        .await,
    )
}

async fn get(pool: web::Data<Pool>, path: web::Path<(String, String)>) -> HttpResponse {
    let (tid, vid) = path.into_inner();
    respond(
        web::block(move || {
            let mut conn = pool.get()?;
            let row: Row = bv::table
                .filter(bv::tenant_id.eq(&tid))
                .filter(bv::id.eq(&vid))
                .select(Row::as_select())
                .first(&mut *conn)?;
            Ok((StatusCode::OK, render(&row)))
        })
        .await,
    )
}

#[derive(Deserialize)]
struct ListQuery {
    email: Option<String>,
    // `purpose` (sent by the bench's pulls) is ignored: there are no authorizations here.
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `?email=`: find by e-mail; otherwise a page of whole documents by id after `cursor`.
async fn list(
    pool: web::Data<Pool>,
    path: web::Path<String>,
    query: web::Query<ListQuery>,
) -> HttpResponse {
    let tid = path.into_inner();
    let q = query.into_inner();
    let Some(email) = q.email else {
        let limit = q
            .limit
            .unwrap_or(BATCH_MAX as i64)
            .clamp(1, BATCH_MAX as i64);
        return respond(
            web::block(move || {
                let mut conn = pool.get()?;
                let mut query = bv::table
                    .filter(bv::tenant_id.eq(&tid))
                    .select(Row::as_select())
                    .order(bv::id.asc())
                    .limit(limit)
                    .into_boxed();
                if let Some(c) = q.cursor {
                    query = query.filter(bv::id.gt(c));
                }
                let rows: Vec<Row> = query.load(&mut *conn)?;
                let next = (rows.len() as i64 == limit)
                    .then(|| rows.last().map(|r| r.id.clone()))
                    .flatten();
                let items: Vec<Value> = rows.iter().map(render).collect();
                Ok((
                    StatusCode::OK,
                    json!({ "items": items, "next_cursor": next }),
                ))
            })
            .await,
        );
    };
    respond(
        web::block(move || {
            let mut conn = pool.get()?;
            let rows: Vec<Row> = bv::table
                .filter(bv::tenant_id.eq(&tid))
                .filter(bv::email.eq(normalize_email(&email)))
                .select(Row::as_select())
                .limit(100)
                .load(&mut *conn)?;
            let items: Vec<Value> = rows.iter().map(render).collect();
            Ok((
                StatusCode::OK,
                json!({ "items": items, "next_cursor": null }),
            ))
        })
        .await,
    )
}

async fn patch(
    pool: web::Data<Pool>,
    path: web::Path<(String, String)>,
    body: web::Json<Map<String, Value>>,
) -> HttpResponse {
    let (tid, vid) = path.into_inner();
    let changes = body.into_inner();
    respond(
        web::block(move || {
            let mut conn = pool.get()?;
            let row = write_tx(&mut conn, |c| {
                let mut row: Row = bv::table
                    .filter(bv::tenant_id.eq(&tid))
                    .filter(bv::id.eq(&vid))
                    .select(Row::as_select())
                    .first(c)?;
                let mut doc = match serde_json::from_str::<Value>(&row.body) {
                    Ok(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                for (k, v) in changes {
                    if v.is_null() {
                        doc.remove(&k);
                    } else {
                        doc.insert(k, v);
                    }
                }
                row.email = email_of(&doc);
                row.body = Value::Object(doc).to_string();
                row.updated_at = Utc::now().naive_utc();
                diesel::update(bv::table)
                    .filter(bv::tenant_id.eq(&tid))
                    .filter(bv::id.eq(&vid))
                    .set((
                        bv::email.eq(&row.email),
                        bv::body.eq(&row.body),
                        bv::updated_at.eq(row.updated_at),
                    ))
                    .execute(c)?;
                Ok(row)
            })?;
            let updated_at = row.updated_at.and_utc().to_rfc3339();
            Ok((
                StatusCode::OK,
                json!({ "id": row.id, "updated_at": updated_at }),
            ))
        })
        .await,
    )
}

/// The running baseline server (stopped on drop).
pub struct Baseline {
    pub base: String,
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
    db: Db,
}

impl Baseline {
    /// (Re)creates the table, then serves on a free port with `workers` HTTP workers.
    pub fn start(db: Db, workers: usize) -> anyhow::Result<Self> {
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .connection_timeout(Duration::from_secs(30))
            .build(Manager(db.clone()))
            .with_context(|| format!("baseline: opening {}", db.describe()))?;
        pool.get()
            .context("baseline: a connection")?
            .batch(CREATE_TABLE)
            .context("baseline: creating its table")?;
        let listener = TcpListener::bind("127.0.0.1:0").context("baseline: binding a port")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("baseline-server".into())
            .spawn(move || {
                let result = actix_web::rt::System::new().block_on(async move {
                    let pool = web::Data::new(pool);
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(pool.clone())
                            .app_data(web::JsonConfig::default().limit(64 * 1024))
                            .service(
                                web::resource("/tenants/{tid}/visitors:batch")
                                    .app_data(web::JsonConfig::default().limit(BATCH_BODY_LIMIT))
                                    .route(web::post().to(import)),
                            )
                            .service(
                                web::resource("/tenants/{tid}/visitors")
                                    .route(web::post().to(create))
                                    .route(web::get().to(list)),
                            )
                            .service(
                                web::resource("/tenants/{tid}/visitors/{vid}")
                                    .route(web::get().to(get))
                                    .route(web::patch().to(patch)),
                            )
                    })
                    .workers(workers.max(1))
                    .disable_signals()
                    .shutdown_timeout(5)
                    .listen(listener)?
                    .run();
                    let _ = tx.send(server.handle());
                    server.await
                });
                if let Err(e) = result {
                    eprintln!("baseline server stopped with an error: {e}");
                }
            })
            .context("baseline: starting its thread")?;
        let handle = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow!("baseline server did not start"))?;
        Ok(Baseline {
            base: format!("http://{addr}"),
            handle,
            thread: Some(thread),
            db,
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Stops the server and drops its table (PostgreSQL: the table lives in Steward's database).
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        if let Some(t) = self.thread.take() {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        let db = self.db.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Db::Postgres(url) = db {
                if let Ok(mut c) = PgConnection::establish(&url) {
                    let _ = c.batch_execute("DROP TABLE IF EXISTS bench_baseline_visitors");
                }
            }
        })
        .await;
    }
}
