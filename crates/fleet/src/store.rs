//! The fleet store: every ingested report kept (history), each node's latest pointed
//! at, in a real database — embedded SQLite (a file, WAL mode) by default, PostgreSQL
//! for a fleet that outgrows one machine.
//!
//! One code path over both through sqlx's `Any` driver: the schema is portable SQL
//! (`TEXT`, `BIGINT`, `INSERT ... ON CONFLICT`), the migrations are sqlx's (versioned,
//! checksummed, applied on open, under PostgreSQL's advisory lock), queries bind `$N`
//! parameters, which both drivers take. A report is stored by its id (the SHA-256 of
//! its canonical JSON), so ingesting it twice stores it once; each ingest is one
//! transaction (the report row, then the node's latest pointer), so a crash leaves whole
//! reports or none.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row};

use crate::report::NodeReport;

/// The environment variable that names the database when `--db` is not given.
pub const DB_ENV: &str = "LINKWISE_DB";
/// The database used when neither `--db` nor [`DB_ENV`] names one: a file in the
/// current directory.
pub const DEFAULT_DB: &str = "sqlite:linkwise-fleet.db";

/// The schema, one migration per version; applied in order on open, never edited once
/// released (sqlx checks each applied migration's checksum).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "reports and nodes",
        "CREATE TABLE reports (
        id TEXT PRIMARY KEY,
        node TEXT NOT NULL,
        collected_at TEXT,
        at_us BIGINT NOT NULL,
        ingested_us BIGINT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX reports_by_node ON reports (node, at_us);
    CREATE TABLE nodes (
        node TEXT PRIMARY KEY,
        report_id TEXT NOT NULL REFERENCES reports (id),
        at_us BIGINT NOT NULL,
        ingested_us BIGINT NOT NULL
    );",
    ),
    (
        2,
        "quarantine",
        "CREATE TABLE quarantine (
        node TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        change_name TEXT,
        since_us BIGINT NOT NULL
    );",
    ),
    (
        3,
        "rollouts",
        "CREATE TABLE rollouts (
        change_name TEXT PRIMARY KEY,
        plan TEXT NOT NULL,
        state TEXT NOT NULL,
        message TEXT,
        lease_owner TEXT,
        lease_until_us BIGINT,
        created_us BIGINT NOT NULL,
        updated_us BIGINT NOT NULL
    );
    CREATE TABLE rollout_nodes (
        change_name TEXT NOT NULL,
        node TEXT NOT NULL,
        wave BIGINT NOT NULL,
        position BIGINT NOT NULL,
        state TEXT NOT NULL,
        pgid BIGINT,
        updated_us BIGINT NOT NULL,
        PRIMARY KEY (change_name, node)
    );
    CREATE TABLE rollout_log (
        change_name TEXT NOT NULL,
        seq BIGINT NOT NULL,
        at_us BIGINT NOT NULL,
        node TEXT,
        step TEXT NOT NULL,
        command TEXT,
        exit_code BIGINT,
        output TEXT,
        PRIMARY KEY (change_name, seq)
    );",
    ),
    (
        4,
        "baselines",
        "CREATE TABLE baselines (
        class TEXT NOT NULL,
        id TEXT NOT NULL,
        source TEXT NOT NULL,
        added_us BIGINT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (class, id)
    );",
    ),
];

/// What the store cannot do; the message says which database and what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A database URL that names no supported database.
    #[error("database {url:?}: {message}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        message: String,
    },
    /// The database failed (unreachable, refused, corrupt, ...).
    #[error("database {db}: {message}")]
    Database {
        /// The database, without any password.
        db: String,
        /// The driver's message.
        message: String,
    },
    /// A stored report that no longer reads (edited by hand, or a later schema).
    #[error("database {db}: stored report {id}: {message}")]
    Corrupt {
        /// The database.
        db: String,
        /// The report id.
        id: String,
        /// What is wrong.
        message: String,
    },
}

/// Which database a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// An open store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The URL without a password, for messages.
    shown: String,
}

/// What one ingest did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ingested {
    /// The report id.
    pub id: String,
    /// The node.
    pub node: String,
    /// The report was new (false: the same report was already stored).
    pub stored: bool,
    /// It is now the node's latest report.
    pub latest: bool,
}

/// One node of the inventory: its latest report's essentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    /// The node.
    pub node: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Architecture.
    pub arch: String,
    /// Kernel release.
    pub kernel: String,
    /// Driver version (`none`).
    pub driver: String,
    /// GPU models with counts (`8x NVIDIA H100 80GB HBM3`).
    pub gpus: String,
    /// When the latest report was made (its `collectedAt`), where it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
    /// When it was ingested (RFC 3339, UTC).
    pub ingested_at: String,
    /// Reports kept for the node.
    pub reports: i64,
    /// The latest report's id.
    pub report_id: String,
}

/// A node kept out of service and out of rollouts until released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Quarantine {
    /// The node.
    pub node: String,
    /// Why.
    pub reason: String,
    /// The change that put it there, where one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// Since when (RFC 3339, UTC).
    pub since: String,
}

/// One stored benchmark run of a hardware class's baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Baseline {
    /// The hardware class.
    pub class: String,
    /// SHA-256 of the body: the same run stored twice is stored once.
    pub id: String,
    /// Where it came from (the file name given).
    pub source: String,
    /// When it was added (RFC 3339, UTC).
    pub added_at: String,
    /// The run, as given (JSON of the results model).
    #[serde(skip)]
    pub body: String,
}

/// One stored report with when it came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredReport {
    /// The report id.
    pub id: String,
    /// When it was ingested (RFC 3339, UTC).
    pub ingested_at: String,
    /// The report.
    pub report: NodeReport,
}

/// One entry of a node's history: a report and what changed since the one before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// The report id.
    pub id: String,
    /// Its `collectedAt`, where it says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collected_at: Option<String>,
    /// When it was ingested.
    pub ingested_at: String,
    /// The tracked fields (kernel, driver, VBIOS, artefacts, firmware) that differ from
    /// the previous report; every field for the first.
    pub changes: Vec<Change>,
}

/// A tracked field that changed between two reports of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The field (as drift names it).
    pub field: String,
    /// The value before (absent for the first report, or a new field).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The value after (absent when the field went away).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

/// The embedded migrations as sqlx's migration source.
#[derive(Debug)]
struct Embedded;

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> futures_core::future::BoxFuture<'s, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        Box::pin(async {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(*description),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Microseconds since the epoch, now.
pub fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// Microseconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339_us(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| us.to_string())
}

/// The URL with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user_pass, host)) => match user_pass.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The driver URL for a `--db` value: `sqlite:PATH` (created when missing), a bare
/// path (SQLite), or `postgres://` / `postgresql://`.
fn driver_url(url: &str) -> Result<(Backend, String), StoreError> {
    let bad = |message: &str| StoreError::Url {
        url: redact(url),
        message: message.to_string(),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok((Backend::Postgres, url.to_string()));
    }
    let path = if let Some(rest) = url.strip_prefix("sqlite://") {
        rest
    } else if let Some(rest) = url.strip_prefix("sqlite:") {
        rest
    } else if url.contains("://") {
        return Err(bad(
            "not a database this linkwise stores in: give sqlite:PATH or postgres://USER@HOST/DB",
        ));
    } else {
        url
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path.is_empty() {
        return Err(bad("no file: give sqlite:PATH"));
    }
    if path == ":memory:" {
        return Err(bad(
            "an in-memory database keeps nothing: give a file, sqlite:PATH",
        ));
    }
    // Create the file when missing unless the URL says otherwise.
    let query = if query.contains("mode=") {
        query.to_string()
    } else if query.is_empty() {
        "mode=rwc".to_string()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok((Backend::Sqlite, format!("sqlite://{path}?{query}")))
}

impl Store {
    /// Opens (creating when missing) the database at `url` and brings its schema up to
    /// date.
    ///
    /// # Errors
    ///
    /// [`StoreError::Url`] for a URL that names no supported database,
    /// [`StoreError::Database`] when it cannot be opened or migrated.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (backend, driver) = driver_url(url)?;
        let shown = redact(url);
        let db = |e: &dyn std::fmt::Display| StoreError::Database {
            db: shown.clone(),
            message: e.to_string(),
        };
        let options = AnyConnectOptions::from_str(&driver).map_err(|e| db(&e))?;
        // One connection first: a database that refuses is an error now, not after the
        // pool's acquire timeout of retries.
        sqlx::Connection::close(
            <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options)
                .await
                .map_err(|e| db(&e))?,
        )
        .await
        .map_err(|e| db(&e))?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never block the writer; NORMAL is durable across
                        // a process crash (a committed transaction survives SIGKILL).
                        // Writers wait for each other instead of failing.
                        for pragma in [
                            "PRAGMA journal_mode = WAL",
                            "PRAGMA synchronous = NORMAL",
                            "PRAGMA busy_timeout = 30000",
                            "PRAGMA foreign_keys = ON",
                        ] {
                            sqlx::Executor::execute(&mut *conn, pragma).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| db(&e))?;
        let migrator = Migrator::new(Embedded).await.map_err(|e| db(&e))?;
        migrator.run(&pool).await.map_err(|e| db(&e))?;
        Ok(Store {
            pool,
            backend,
            shown,
        })
    }

    /// The connection pool, for the other tables of the fleet database (the rollouts'
    /// state); the schema is this module's migrations.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The database's URL without a password.
    pub fn name(&self) -> &str {
        &self.shown
    }

    fn fail(&self, e: sqlx::Error) -> StoreError {
        StoreError::Database {
            db: self.shown.clone(),
            message: e.to_string(),
        }
    }

    /// Stores `report` (once: a report already stored is left as it is) and makes it the
    /// node's latest unless the node has a later one (by `collectedAt`, else by when it
    /// was ingested). One transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`]; nothing of the report is stored then.
    pub async fn ingest(&self, report: &NodeReport) -> Result<Ingested, StoreError> {
        let body = report.canonical_json();
        let id = crate::report::sha256_hex(body.as_bytes());
        let ingested = now_us();
        let at = report.collected_us().unwrap_or(ingested);
        let mut tx = self.pool.begin().await.map_err(|e| self.fail(e))?;
        // The write comes first, so a SQLite transaction takes the write lock (waiting
        // for it) before it reads anything.
        let inserted = sqlx::query(
            "INSERT INTO reports (id, node, collected_at, at_us, ingested_us, body) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&id)
        .bind(&report.node)
        .bind(report.collected_at.clone())
        .bind(at)
        .bind(ingested)
        .bind(&body)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.fail(e))?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await.map_err(|e| self.fail(e))?;
            return Ok(Ingested {
                id,
                node: report.node.clone(),
                stored: false,
                latest: false,
            });
        }
        let latest = sqlx::query(
            "INSERT INTO nodes (node, report_id, at_us, ingested_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (node) DO UPDATE SET report_id = excluded.report_id, \
             at_us = excluded.at_us, ingested_us = excluded.ingested_us \
             WHERE excluded.at_us >= nodes.at_us",
        )
        .bind(&report.node)
        .bind(&id)
        .bind(at)
        .bind(ingested)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.fail(e))?
        .rows_affected();
        tx.commit().await.map_err(|e| self.fail(e))?;
        Ok(Ingested {
            id,
            node: report.node.clone(),
            stored: true,
            latest: latest > 0,
        })
    }

    fn parse_stored(&self, id: &str, body: &str) -> Result<NodeReport, StoreError> {
        NodeReport::parse(body, id).map_err(|e| StoreError::Corrupt {
            db: self.shown.clone(),
            id: id.to_string(),
            message: e.to_string(),
        })
    }

    /// Every node's latest report, by node name.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn latest(&self) -> Result<Vec<NodeReport>, StoreError> {
        Ok(self
            .latest_stored()
            .await?
            .into_iter()
            .map(|(s, _)| s.report)
            .collect())
    }

    /// Every node's latest report with its id, ingest time and report count.
    async fn latest_stored(&self) -> Result<Vec<(StoredReport, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.ingested_us, r.body, \
             (SELECT COUNT(*) FROM reports h WHERE h.node = n.node) \
             FROM nodes n JOIN reports r ON r.id = n.report_id ORDER BY n.node",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get(0).map_err(|e| self.fail(e))?;
                let ingested: i64 = row.try_get(1).map_err(|e| self.fail(e))?;
                let body: String = row.try_get(2).map_err(|e| self.fail(e))?;
                let count: i64 = row.try_get(3).map_err(|e| self.fail(e))?;
                let report = self.parse_stored(&id, &body)?;
                Ok((
                    StoredReport {
                        id,
                        ingested_at: rfc3339_us(ingested),
                        report,
                    },
                    count,
                ))
            })
            .collect()
    }

    /// The inventory: one row per node from its latest report.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        Ok(self
            .latest_stored()
            .await?
            .into_iter()
            .map(|(s, reports)| {
                let r = &s.report;
                let mut models: BTreeMap<&str, usize> = BTreeMap::new();
                for g in &r.gpus {
                    *models.entry(g.model.as_str()).or_default() += 1;
                }
                NodeRow {
                    node: r.node.clone(),
                    labels: r.labels.clone(),
                    arch: r.host.arch.clone(),
                    kernel: r.host.kernel.clone(),
                    driver: r.driver.version.clone().unwrap_or_else(|| "none".into()),
                    gpus: models
                        .iter()
                        .map(|(m, n)| format!("{n}x {m}"))
                        .collect::<Vec<_>>()
                        .join(" + "),
                    collected_at: r.collected_at.clone(),
                    ingested_at: s.ingested_at.clone(),
                    reports,
                    report_id: s.id.clone(),
                }
            })
            .collect())
    }

    /// A node's latest report, or `None` for a node never reported.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn show(&self, node: &str) -> Result<Option<StoredReport>, StoreError> {
        let row = sqlx::query(
            "SELECT r.id, r.ingested_us, r.body FROM nodes n JOIN reports r \
             ON r.id = n.report_id WHERE n.node = $1",
        )
        .bind(node)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.fail(e))?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get(0).map_err(|e| self.fail(e))?;
        let ingested: i64 = row.try_get(1).map_err(|e| self.fail(e))?;
        let body: String = row.try_get(2).map_err(|e| self.fail(e))?;
        let report = self.parse_stored(&id, &body)?;
        Ok(Some(StoredReport {
            id,
            ingested_at: rfc3339_us(ingested),
            report,
        }))
    }

    /// A node's reports, oldest first, each with what changed since the one before
    /// (empty for a node never reported).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn history(&self, node: &str) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, collected_at, ingested_us, body FROM reports WHERE node = $1 \
             ORDER BY at_us, ingested_us, id",
        )
        .bind(node)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.fail(e))?;
        let mut before: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get(0).map_err(|e| self.fail(e))?;
            let collected_at: Option<String> = row.try_get(1).map_err(|e| self.fail(e))?;
            let ingested: i64 = row.try_get(2).map_err(|e| self.fail(e))?;
            let body: String = row.try_get(3).map_err(|e| self.fail(e))?;
            let now = crate::drift::fields(&self.parse_stored(&id, &body)?);
            let mut changes = Vec::new();
            for (field, value) in &now {
                if before.get(field) != Some(value) {
                    changes.push(Change {
                        field: field.clone(),
                        from: before.get(field).cloned(),
                        to: Some(value.clone()),
                    });
                }
            }
            for (field, value) in &before {
                if !now.contains_key(field) {
                    changes.push(Change {
                        field: field.clone(),
                        from: Some(value.clone()),
                        to: None,
                    });
                }
            }
            out.push(HistoryEntry {
                id,
                collected_at,
                ingested_at: rfc3339_us(ingested),
                changes,
            });
            before = now;
        }
        Ok(out)
    }

    /// Puts `node` in quarantine (or updates why it is there).
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn quarantine(
        &self,
        node: &str,
        reason: &str,
        change: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO quarantine (node, reason, change_name, since_us) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (node) DO UPDATE SET reason = excluded.reason, change_name = excluded.change_name",
        )
        .bind(node)
        .bind(reason)
        .bind(change.map(str::to_string))
        .bind(now_us())
        .execute(&self.pool)
        .await
        .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Takes `node` out of quarantine; false when it was not in it.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn release(&self, node: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM quarantine WHERE node = $1")
            .bind(node)
            .execute(&self.pool)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(done.rows_affected() > 0)
    }

    /// The nodes in quarantine, by name.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn quarantined(&self) -> Result<Vec<Quarantine>, StoreError> {
        let rows =
            sqlx::query("SELECT node, reason, change_name, since_us FROM quarantine ORDER BY node")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|r| {
                Ok(Quarantine {
                    node: r.try_get(0).map_err(|e| self.fail(e))?,
                    reason: r.try_get(1).map_err(|e| self.fail(e))?,
                    change: r.try_get(2).map_err(|e| self.fail(e))?,
                    since: rfc3339_us(r.try_get(3).map_err(|e| self.fail(e))?),
                })
            })
            .collect()
    }

    /// Adds a benchmark run to `class`'s baseline; false when that run was already there.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn add_baseline(
        &self,
        class: &str,
        source: &str,
        body: &str,
    ) -> Result<bool, StoreError> {
        let id = crate::report::sha256_hex(body.as_bytes());
        let done = sqlx::query(
            "INSERT INTO baselines (class, id, source, added_us, body) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (class, id) DO NOTHING",
        )
        .bind(class)
        .bind(&id)
        .bind(source)
        .bind(now_us())
        .bind(body)
        .execute(&self.pool)
        .await
        .map_err(|e| self.fail(e))?;
        Ok(done.rows_affected() > 0)
    }

    /// The runs of `class`'s baseline, oldest first; every class's when `class` is `None`.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn baselines(&self, class: Option<&str>) -> Result<Vec<Baseline>, StoreError> {
        let rows = match class {
            Some(c) => sqlx::query(
                "SELECT class, id, source, added_us, body FROM baselines WHERE class = $1 ORDER BY added_us, id",
            )
            .bind(c.to_string()),
            None => sqlx::query(
                "SELECT class, id, source, added_us, body FROM baselines ORDER BY class, added_us, id",
            ),
        }
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|r| {
                Ok(Baseline {
                    class: r.try_get(0).map_err(|e| self.fail(e))?,
                    id: r.try_get(1).map_err(|e| self.fail(e))?,
                    source: r.try_get(2).map_err(|e| self.fail(e))?,
                    added_at: rfc3339_us(r.try_get(3).map_err(|e| self.fail(e))?),
                    body: r.try_get(4).map_err(|e| self.fail(e))?,
                })
            })
            .collect()
    }

    /// Removes `class`'s baseline; how many runs it had.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn clear_baseline(&self, class: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM baselines WHERE class = $1")
            .bind(class)
            .execute(&self.pool)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(done.rows_affected())
    }

    /// How many reports are stored, and for how many nodes.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn counts(&self) -> Result<(i64, i64), StoreError> {
        let row =
            sqlx::query("SELECT (SELECT COUNT(*) FROM reports), (SELECT COUNT(*) FROM nodes)")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| self.fail(e))?;
        Ok((
            row.try_get(0).map_err(|e| self.fail(e))?,
            row.try_get(1).map_err(|e| self.fail(e))?,
        ))
    }

    /// Every stored report's id and body as stored, for checks of the store itself.
    ///
    /// # Errors
    ///
    /// [`StoreError`].
    pub async fn raw_reports(&self) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, body FROM reports ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.fail(e))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(|e| self.fail(e))?,
                    r.try_get(1).map_err(|e| self.fail(e))?,
                ))
            })
            .collect()
    }

    /// Closes the pool, waiting for connections to finish (SQLite checkpoints its WAL).
    pub async fn close(self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_map_to_drivers_and_refuse_what_is_not_a_store() {
        assert_eq!(
            driver_url("sqlite:fleet.db").unwrap(),
            (Backend::Sqlite, "sqlite://fleet.db?mode=rwc".into())
        );
        assert_eq!(
            driver_url("/var/lib/linkwise/fleet.db").unwrap(),
            (
                Backend::Sqlite,
                "sqlite:///var/lib/linkwise/fleet.db?mode=rwc".into()
            )
        );
        assert_eq!(
            driver_url("sqlite:f.db?mode=ro").unwrap().1,
            "sqlite://f.db?mode=ro"
        );
        assert_eq!(
            driver_url("postgres://u@h/db").unwrap().0,
            Backend::Postgres
        );
        for bad in ["mysql://h/db", "sqlite:", "sqlite::memory:"] {
            assert!(
                matches!(driver_url(bad), Err(StoreError::Url { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("postgres://fleet:s3cret@db:5432/fleet?sslmode=require"),
            "postgres://fleet:***@db:5432/fleet?sslmode=require"
        );
        assert_eq!(
            redact("postgres://fleet@db/fleet"),
            "postgres://fleet@db/fleet"
        );
        assert_eq!(redact("sqlite:x.db"), "sqlite:x.db");
        let e = driver_url("mysql://u:pw@h/db").unwrap_err().to_string();
        assert!(!e.contains("pw@"), "{e}");
    }
}
