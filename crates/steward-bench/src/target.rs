//! The two servers under load, behind one interface: Steward's public API (`/v1/tenants/{tid}/…`,
//! an API key as bearer) and the baseline (`/tenants/{tid}/…`, no auth). Both receive the same
//! visitor documents, so a workload is the same sequence of requests against either.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use reqwest::{Client, Method, Request, StatusCode};
use serde_json::{json, Value};

/// Visitors per `visitors:batch` call, in seeding and in the `import` workload.
pub const BATCH: usize = 1_000;
/// Visitors per page in the `pull` workload (Steward's maximum).
pub const PULL_PAGE: usize = 1_000;
/// The purpose the bench's subprocessor is authorized for.
const PULL_PURPOSE: &str = "fulfillment";

/// Which server a target is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Steward,
    Baseline,
}

impl Flavor {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Steward => "steward",
            Flavor::Baseline => "baseline",
        }
    }
}

/// One request kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `POST …/visitors`: one new visitor.
    Create,
    /// `GET …/visitors/{vid}` of a seeded visitor (audited by Steward).
    Read,
    /// `GET …/visitors?email=` of a seeded visitor.
    Lookup,
    /// `PATCH …/visitors/{vid}` of a seeded visitor.
    Patch,
    /// `POST …/visitors:batch` with [`BATCH`] new visitors.
    Import,
    /// A subprocessor's page of [`PULL_PAGE`] visitors (Steward:
    /// `GET /v1/subprocessor/tenants/{tid}/visitors`), starting after a random seeded visitor.
    Pull,
}

/// A small, fast PRNG (SplitMix64): enough to pick ids and operations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// What came back from one request.
#[derive(Debug)]
pub struct Outcome {
    pub ok: bool,
    /// For failures: the status and the start of the body (or the transport error).
    pub error: Option<String>,
    /// Successful `import`/`pull` responses, kept to count their visitors after the clock
    /// stopped.
    pub body: Option<Vec<u8>>,
}

impl Outcome {
    /// Visitors a successful response carried: its `count`, else the length of its `items`.
    pub fn visitors(&self) -> u64 {
        let Some(body) = &self.body else { return 0 };
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return 0;
        };
        v.get("count")
            .and_then(Value::as_u64)
            .or_else(|| {
                v.get("items")
                    .and_then(Value::as_array)
                    .map(|a| a.len() as u64)
            })
            .unwrap_or(0)
    }
}

/// The subprocessor the bench registers to pull with.
#[derive(Debug)]
struct PullClient {
    base: String,
    client_id: String,
    client_secret: String,
}

/// The bench tenant's first admin, for the operations an API key may not do (key rotation).
/// Kept as credentials, not a token: access tokens last 15 minutes, less than seeding a large
/// tenant may take.
pub struct TenantAdmin {
    /// Steward's base URL.
    pub base: String,
    pub tid: String,
    email: String,
    password: String,
}

impl std::fmt::Debug for TenantAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantAdmin")
            .field("tid", &self.tid)
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl TenantAdmin {
    /// A fresh access token.
    pub async fn login(&self, client: &Client) -> anyhow::Result<String> {
        login(client, &self.base, &self.email, &self.password)
            .await
            .context("logging in as the tenant admin")
    }
}

/// A server with a tenant, credentials and seeded visitors, ready to be loaded.
#[derive(Debug)]
pub struct Target {
    pub flavor: Flavor,
    client: Client,
    /// Steward only.
    tenant_admin: Option<TenantAdmin>,
    /// `…/tenants/{tid}/visitors`
    visitors_url: String,
    bearer: Option<String>,
    /// Seeded visitors: ids and their e-mails, same order.
    ids: Vec<String>,
    emails: Vec<String>,
    /// The seeded ids in the servers' page order (the cursors of `pull`).
    sorted_ids: Vec<String>,
    /// The pull route (Steward: the subprocessor one; baseline: the visitors list).
    pull_url: String,
    pull_client: Option<PullClient>,
    /// The subprocessor's access token (short-lived; refreshed before each pull run).
    pull_bearer: RwLock<Option<String>>,
    /// Makes every generated e-mail of this run unique.
    run: String,
    /// Each generated visitor gets its own phone number instead of the one shared number.
    pub distinct_phones: bool,
    next_visitor: AtomicU64,
    next_patch: AtomicU64,
}

/// The HTTP client's timeout per request.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The HTTP client every target uses: keep-alive, no proxy, a generous timeout.
pub fn http_client() -> anyhow::Result<Client> {
    Client::builder()
        .timeout(TIMEOUT)
        // Well below actix-web's 5 s keep-alive, whose clock starts once the server has written
        // a response — on a loaded machine long before the client has read a large one — so a
        // pooled connection the server is about to close is not reused.
        .pool_idle_timeout(Duration::from_secs(1))
        .pool_max_idle_per_host(4096)
        .no_proxy()
        .build()
        .context("building the HTTP client")
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl Target {
    fn new(flavor: Flavor, client: Client, visitors_url: String, bearer: Option<String>) -> Self {
        Target {
            flavor,
            client,
            tenant_admin: None,
            pull_url: visitors_url.clone(),
            visitors_url,
            bearer,
            ids: Vec::new(),
            emails: Vec::new(),
            sorted_ids: Vec::new(),
            pull_client: None,
            pull_bearer: RwLock::new(None),
            run: ulid::Ulid::new().to_string().to_lowercase()[16..].to_string(),
            distinct_phones: false,
            next_visitor: AtomicU64::new(0),
            next_patch: AtomicU64::new(0),
        }
    }

    /// The baseline server at `base` (no auth), tenant `tid`.
    pub fn baseline(client: Client, base: &str, tid: &str) -> Self {
        Target::new(
            Flavor::Baseline,
            client,
            format!("{}/tenants/{tid}/visitors", base.trim_end_matches('/')),
            None,
        )
    }

    /// Steward at `base`: logs in as the platform admin, creates a tenant with its first
    /// admin, logs in as that admin and creates an API key — all through the public API.
    pub async fn steward_setup(
        client: Client,
        base: &str,
        admin_email: &str,
        admin_password: &str,
    ) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/');
        let admin = login(&client, base, admin_email, admin_password)
            .await
            .context("logging in as the platform admin")?;
        let suffix = ulid::Ulid::new().to_string().to_lowercase();
        let owner_email = format!("owner-{suffix}@bench.example");
        let owner_password = format!("bench passphrase {suffix}");
        let tenant = post_json(
            &client,
            &format!("{base}/v1/tenants"),
            Some(&admin),
            &json!({
                "name": format!("Bench shop {suffix}"),
                "admin": { "email": owner_email, "password": owner_password },
            }),
        )
        .await
        .context("creating the tenant")?;
        let tid = str_field(&tenant, "id")?;
        let owner = login(&client, base, &owner_email, &owner_password)
            .await
            .context("logging in as the tenant admin")?;
        let key = post_json(
            &client,
            &format!("{base}/v1/tenants/{tid}/api-keys"),
            Some(&owner),
            &json!({
                "name": "steward-bench",
                "scopes": ["visitors:read", "visitors:write", "visitors:erase", "consents:write"],
            }),
        )
        .await
        .context("creating the API key")?;
        let secret = str_field(&key, "secret")?;
        let mut target = Target::new(
            Flavor::Steward,
            client.clone(),
            format!("{base}/v1/tenants/{tid}/visitors"),
            Some(secret),
        );
        target.pull_url = format!("{base}/v1/subprocessor/tenants/{tid}/visitors");
        target.tenant_admin = Some(TenantAdmin {
            base: base.to_string(),
            tid: tid.clone(),
            email: owner_email,
            password: owner_password,
        });
        match setup_subprocessor(&client, base, &admin, &owner, &tid, &suffix).await {
            Ok(c) => target.pull_client = Some(c),
            Err(e) => eprintln!("note: no subprocessor for the pull workload: {e:#}"),
        }
        Ok(target)
    }

    /// Whether the `pull` workload can run (Steward: a subprocessor was set up).
    pub fn can_pull(&self) -> bool {
        self.flavor == Flavor::Baseline || self.pull_client.is_some()
    }

    /// Exchanges the subprocessor's credentials for a fresh access token (Steward; the
    /// baseline has no auth).
    pub async fn refresh_pull_token(&self) -> anyhow::Result<()> {
        if self.flavor == Flavor::Baseline {
            return Ok(());
        }
        let c = self.pull_client.as_ref().ok_or_else(|| {
            anyhow!("the pull workload needs a subprocessor, and setting one up failed")
        })?;
        let body = post_json(
            &self.client,
            &format!("{}/v1/auth/token", c.base),
            None,
            &json!({ "client_id": c.client_id, "client_secret": c.client_secret }),
        )
        .await
        .context("exchanging the subprocessor's credentials")?;
        let token = str_field(&body, "access_token")?;
        *self
            .pull_bearer
            .write()
            .map_err(|_| anyhow!("token lock poisoned"))? = Some(token);
        Ok(())
    }

    pub fn seeded(&self) -> usize {
        self.ids.len()
    }

    /// Steward's tenant admin (`None` for the baseline).
    pub fn tenant_admin(&self) -> Option<&TenantAdmin> {
        self.tenant_admin.as_ref()
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn email(&self, n: u64) -> String {
        format!("v{n}.{}@bench.example", self.run)
    }

    /// The `n`-th visitor's phone number. By default every visitor shares one, so the phone
    /// blind index grows in insertion order; real numbers are distinct, and then its entries
    /// land on random leaves like the e-mail index's (`--distinct-phones`).
    fn phone(&self, n: u64) -> String {
        if self.distinct_phones {
            format!("+44 7{:09}", n % 1_000_000_000)
        } else {
            "+44 20 7946 0958".to_string()
        }
    }

    /// The document of the `n`-th new visitor of this run (the same shape for both servers).
    fn visitor_doc(&self, n: u64) -> Value {
        json!({
            "name": format!("Visitor {n}"),
            "email": self.email(n),
            "phone": self.phone(n),
            "address": {
                "line1": format!("{} St James Sq", n % 500 + 1),
                "city": "London",
                "postal_code": "SW1Y 4LG",
                "country": "GB",
            },
            "attributes": { "tier": "gold", "orders": n % 50 },
        })
    }

    fn take_visitor(&self) -> u64 {
        self.next_visitor.fetch_add(1, Ordering::Relaxed)
    }

    fn batch_body(&self, count: usize) -> (Value, Vec<String>) {
        let mut emails = Vec::with_capacity(count);
        let items: Vec<Value> = (0..count)
            .map(|_| {
                let n = self.take_visitor();
                emails.push(self.email(n));
                self.visitor_doc(n)
            })
            .collect();
        (json!({ "items": items }), emails)
    }

    fn request(&self, method: Method, url: &str) -> reqwest::RequestBuilder {
        let b = self.client.request(method, url);
        match &self.bearer {
            Some(token) => b.bearer_auth(token),
            None => b,
        }
    }

    /// Creates `count` visitors through `visitors:batch`, keeping `parallel` calls in flight,
    /// and remembers their ids and e-mails for the read, lookup and patch operations.
    pub async fn seed(&mut self, count: usize, parallel: usize) -> anyhow::Result<()> {
        let url = format!("{}:batch", self.visitors_url);
        let mut remaining = count;
        // Spawned, not just created: a reqwest future does nothing until polled, so awaiting
        // unspawned calls one after another would send them one after another.
        let mut in_flight = tokio::task::JoinSet::new();
        loop {
            while remaining > 0 && in_flight.len() < parallel.max(1) {
                let n = remaining.min(BATCH);
                remaining -= n;
                let (body, emails) = self.batch_body(n);
                let req = self.request(Method::POST, &url).json(&body).build()?;
                let client = self.client.clone();
                in_flight.spawn(async move {
                    let ids = seed_batch(&client, req, emails.len()).await?;
                    anyhow::Ok((ids, emails))
                });
            }
            let Some(done) = in_flight.join_next().await else {
                break;
            };
            let (ids, emails) = done.context("seeding: a batch task panicked")??;
            // Batch by batch, so ids[i] stays the visitor with emails[i].
            self.ids.extend(ids);
            self.emails.extend(emails);
        }
        self.sorted_ids = self.ids.clone();
        self.sorted_ids.sort_unstable();
        Ok(())
    }

    /// Builds the request for `op` (outside the timed section).
    pub fn prepare(&self, op: Op, rng: &mut Rng) -> anyhow::Result<Request> {
        let seeded = |rng: &mut Rng| -> anyhow::Result<usize> {
            if self.ids.is_empty() {
                bail!("this workload needs seeded visitors (--seed-visitors > 0)");
            }
            Ok(rng.below(self.ids.len()))
        };
        let req = match op {
            Op::Create => {
                let n = self.take_visitor();
                self.request(Method::POST, &self.visitors_url)
                    .json(&self.visitor_doc(n))
            }
            Op::Read => {
                let i = seeded(rng)?;
                self.request(
                    Method::GET,
                    &format!("{}/{}", self.visitors_url, self.ids[i]),
                )
            }
            Op::Lookup => {
                let i = seeded(rng)?;
                self.request(Method::GET, &self.visitors_url)
                    .query(&[("email", self.emails[i].as_str())])
            }
            Op::Patch => {
                let i = seeded(rng)?;
                let k = self.next_patch.fetch_add(1, Ordering::Relaxed);
                self.request(
                    Method::PATCH,
                    &format!("{}/{}", self.visitors_url, self.ids[i]),
                )
                .json(&json!({
                    "name": format!("Renamed {k}"),
                    "attributes": { "tier": "silver", "orders": k % 50 },
                }))
            }
            Op::Import => {
                let (body, _) = self.batch_body(BATCH);
                self.request(Method::POST, &format!("{}:batch", self.visitors_url))
                    .json(&body)
            }
            Op::Pull => {
                // After a random seeded visitor, leaving a full page of seeded ones behind it.
                let starts = self.sorted_ids.len().saturating_sub(PULL_PAGE);
                let cursor = (starts > 0).then(|| self.sorted_ids[rng.below(starts)].as_str());
                let limit = PULL_PAGE.to_string();
                let mut query = vec![("purpose", PULL_PURPOSE), ("limit", limit.as_str())];
                if let Some(c) = cursor {
                    query.push(("cursor", c));
                }
                let b = self.client.get(&self.pull_url).query(&query);
                match self.flavor {
                    Flavor::Baseline => b,
                    Flavor::Steward => {
                        let token = self
                            .pull_bearer
                            .read()
                            .map_err(|_| anyhow!("token lock poisoned"))?
                            .clone()
                            .ok_or_else(|| anyhow!("no subprocessor token"))?;
                        b.bearer_auth(token)
                    }
                }
            }
        };
        req.build().context("building a request")
    }

    /// Sends `req` and reads the whole response; keeps a successful body when `keep_body`.
    pub async fn execute(&self, req: Request, keep_body: bool) -> Outcome {
        match self.client.execute(req).await {
            Ok(resp) => {
                let status = resp.status();
                let body = resp.bytes().await;
                match body {
                    Ok(bytes) if status.is_success() => Outcome {
                        ok: true,
                        error: None,
                        body: keep_body.then(|| bytes.to_vec()),
                    },
                    Ok(bytes) => Outcome {
                        ok: false,
                        error: Some(format!(
                            "{status}: {}",
                            truncate(&String::from_utf8_lossy(&bytes), 300)
                        )),
                        body: None,
                    },
                    Err(e) => Outcome {
                        ok: false,
                        error: Some(format!("{status}, reading the body failed: {}", chain(&e))),
                        body: None,
                    },
                }
            }
            Err(e) => Outcome {
                ok: false,
                error: Some(format!("transport error: {}", chain(&e))),
                body: None,
            },
        }
    }
}

/// Sends one seeding batch of `sent` visitors; returns their ids in the order sent.
async fn seed_batch(client: &Client, req: Request, sent: usize) -> anyhow::Result<Vec<String>> {
    let resp = client
        .execute(req)
        .await
        .context("seeding: batch request")?;
    let status = resp.status();
    let text = resp.text().await.context("seeding: batch response")?;
    if !status.is_success() {
        bail!(
            "seeding: batch create answered {status}: {}",
            truncate(&text, 500)
        );
    }
    let body: Value = serde_json::from_str(&text).context("seeding: batch JSON")?;
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("seeding: batch response has no items"))?;
    if items.len() != sent {
        bail!("seeding: sent {sent} visitors, {} came back", items.len());
    }
    items.iter().map(|item| str_field(item, "id")).collect()
}

/// An error and its sources, `: `-separated (reqwest's own message hides the cause).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn str_field(v: &Value, name: &str) -> anyhow::Result<String> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            anyhow!(
                "response has no string `{name}`: {}",
                truncate(&v.to_string(), 300)
            )
        })
}

pub async fn post_json(
    client: &Client,
    url: &str,
    bearer: Option<&str>,
    body: &Value,
) -> anyhow::Result<Value> {
    let mut b = client.post(url).json(body);
    if let Some(t) = bearer {
        b = b.bearer_auth(t);
    }
    let resp = b.send().await.with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("POST {url} answered {status}: {}", truncate(&text, 500));
    }
    serde_json::from_str(&text).with_context(|| format!("POST {url}: response is not JSON"))
}

/// `GET url` with `timeout` instead of the client's [`TIMEOUT`].
pub async fn get_json(
    client: &Client,
    url: &str,
    bearer: &str,
    timeout: Duration,
) -> anyhow::Result<Value> {
    let resp = client
        .get(url)
        .bearer_auth(bearer)
        .timeout(timeout)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        bail!("GET {url} answered {status}: {}", truncate(&text, 500));
    }
    serde_json::from_str(&text).with_context(|| format!("GET {url}: response is not JSON"))
}

/// Registers a subprocessor (platform admin), issues its credentials, and authorizes it in
/// the tenant (tenant admin) to pull name, e-mail and address for `fulfillment`.
async fn setup_subprocessor(
    client: &Client,
    base: &str,
    admin: &str,
    owner: &str,
    tid: &str,
    suffix: &str,
) -> anyhow::Result<PullClient> {
    let sub = post_json(
        client,
        &format!("{base}/v1/subprocessors"),
        Some(admin),
        &json!({
            "name": format!("Bench Carrier {suffix}"),
            "legal_name": "Bench Carrier GmbH",
            "country": "DE",
            "contact": "privacy@carrier.example",
            "transfer_mechanism": "adequacy",
            "dpa_reference": "DPA-BENCH-1",
        }),
    )
    .await
    .context("registering the subprocessor")?;
    let sid = str_field(&sub, "id")?;
    let creds = post_json(
        client,
        &format!("{base}/v1/subprocessors/{sid}/credentials"),
        Some(admin),
        &json!({}),
    )
    .await
    .context("issuing the subprocessor's credentials")?;
    post_json(
        client,
        &format!("{base}/v1/tenants/{tid}/subprocessor-authorizations"),
        Some(owner),
        &json!({
            "subprocessor_id": sid,
            "purposes": [PULL_PURPOSE],
            "fields": ["name", "email", "address"],
        }),
    )
    .await
    .context("authorizing the subprocessor")?;
    Ok(PullClient {
        base: base.to_string(),
        client_id: str_field(&creds, "client_id")?,
        client_secret: str_field(&creds, "client_secret")?,
    })
}

async fn login(client: &Client, base: &str, email: &str, password: &str) -> anyhow::Result<String> {
    let body = post_json(
        client,
        &format!("{base}/v1/auth/login"),
        None,
        &json!({ "email": email, "password": password }),
    )
    .await?;
    str_field(&body, "access_token")
}

/// Waits until `GET {base}/healthz` answers 200, or `give_up` says to stop.
pub async fn wait_healthy(
    client: &Client,
    base: &str,
    timeout: Duration,
    mut give_up: impl FnMut() -> Option<String>,
) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(why) = give_up() {
            bail!("{why}");
        }
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await {
            if r.status() == StatusCode::OK {
                return Ok(());
            }
        }
        if std::time::Instant::now() > deadline {
            bail!("{base}/healthz did not answer 200 within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn phone_of(t: &Target, n: u64) -> String {
        t.visitor_doc(n)["phone"].as_str().unwrap().to_string()
    }

    #[test]
    fn visitors_share_one_phone_unless_distinct_phones_are_asked_for() {
        let mut t = Target::baseline(http_client().unwrap(), "http://127.0.0.1:1", "ten_x");
        assert_eq!(phone_of(&t, 1), phone_of(&t, 2));
        t.distinct_phones = true;
        let (a, b) = (phone_of(&t, 1), phone_of(&t, 123_456_789));
        assert_ne!(a, b);
        // International numbers Steward accepts: "+", then 8 to 15 digits.
        for p in [a, b] {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            assert!(p.starts_with('+') && (8..=15).contains(&digits), "{p}");
        }
    }
}
