//! A real PostgreSQL for the store's tests: `.ci/run` starts one (Debian's server, a
//! temporary data directory, a free port) and names it in [`ENV`]; each test gets a
//! database of its own, created here, so tests never see each other's rows.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

use crate::{Prerequisite, require};

/// The environment variable naming the server: `postgres://USER@HOST:PORT/DB`, a user
/// that may create databases.
pub const ENV: &str = "LINKWISE_TEST_POSTGRES";

/// A URL of a new, empty database on the server [`ENV`] names, or `None` (after
/// [`require`]'s loud skip) when it names none.
///
/// # Panics
///
/// When the server is named but cannot be reached or refuses to create a database.
pub async fn fresh_database() -> Option<String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let admin = std::env::var(ENV).ok().filter(|v| !v.is_empty());
    if !require(Prerequisite::new(
        format!(
            "a PostgreSQL server named in {ENV} (postgres://USER@HOST:PORT/DB; .ci/run starts one)"
        ),
        admin.is_some(),
    )) {
        return None;
    }
    let admin = admin?;
    sqlx::any::install_default_drivers();
    let name = format!(
        "lw_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    let mut conn = sqlx::AnyConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("{ENV}={admin}: {e}"));
    sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("{ENV}={admin}: CREATE DATABASE {name}: {e}"));
    let _ = conn.close().await;
    // The same server and user, the new database.
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    Some(if query.is_empty() {
        format!("{base}/{name}")
    } else {
        format!("{base}/{name}?{query}")
    })
}
