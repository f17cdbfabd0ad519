//! The one-shot copy of a host's SQLite file into the fleet's PostgreSQL database
//! (`twofoldctl store import FILE`): every table, in one transaction, into a database
//! that holds no factor yet, so nothing is merged and nothing half-copied. The file is
//! opened read-only and must be at this twofoldd's schema version (start twofoldd on it
//! once, which migrates it). Trust records become this host's (`[fleet]`).

use super::{Fail, MIGRATION_LOCK, Pg, PostgresStore, exec, one, rows};
use crate::store::schema::{POSTGRES_ONLY, SCHEMA_VERSION};
use crate::store::{Result, StoreError};
use rusqlite::types::ValueRef;
use std::path::Path;
use std::time::Duration;
use tokio_postgres::types::ToSql;

/// Every table but the schema's own bookkeeping, parents first.
const TABLES: &[&str] = &[
    "users",
    "trust",
    "deferrals",
    "backoff",
    "phantoms",
    "contacts",
    "mail_quota",
    "recovery_codes",
    "security_keys",
    "phones",
    "sms_sends",
    "push_devices",
    "push_sends",
];

/// A copy may take minutes (a million trust rows); each statement still has its timeout.
const IMPORT_LIMIT: Duration = Duration::from_secs(3600);

pub(super) fn copy(store: &mut PostgresStore, path: &Path) -> Result<Vec<(String, String)>> {
    let shown = path.display().to_string();
    let unreadable = |e: rusqlite::Error| StoreError::Unavailable(format!("{shown}: {e}"));
    let source = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX
            | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .map_err(unreadable)?;
    let version: i64 = source
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .map_err(unreadable)?;
    if version != SCHEMA_VERSION {
        return Err(StoreError::Unavailable(format!(
            "{shown} is at schema version {version}, this twofoldd at {SCHEMA_VERSION}: start this twofoldd on the file once (it migrates), then import"
        )));
    }
    let last_generation: i64 = source
        .query_row(
            "SELECT max((SELECT n FROM generation_counter), (SELECT COALESCE(max(generation), 0) FROM users))",
            [],
            |r| r.get(0),
        )
        .map_err(unreadable)?;
    let scope = store.link.scope.clone();
    store.link.limit = IMPORT_LIMIT;
    let PostgresStore { client, link } = store;
    link.block(async move {
        let tx = client.transaction().await?;
        // No daemon migrates while the copy runs, and no second copy starts.
        exec(&tx, "SELECT pg_advisory_xact_lock($1)::text", &[&MIGRATION_LOCK]).await?;
        let factors: i64 = one(&tx, "SELECT count(*) FROM users", &[])
            .await?
            .try_get(0)?;
        if factors > 0 {
            return Err(StoreError::Unavailable(format!(
                "the fleet database holds {factors} factors already; a SQLite file is imported into an empty one only"
            ))
            .into());
        }
        let mut copied = Vec::new();
        for table in TABLES {
            let n = copy_table(&tx, &source, table, &scope).await?;
            copied.push((table.to_string(), n.to_string()));
        }
        if last_generation > 0 {
            exec(
                &tx,
                "SELECT setval('generation_counter', $1)::text",
                &[&last_generation],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(copied)
    })
}

/// Copies one table, column by column as PostgreSQL has it.
async fn copy_table(
    tx: &deadpool_postgres::Transaction<'_>,
    source: &rusqlite::Connection,
    table: &str,
    scope: &str,
) -> Pg<u64> {
    let columns: Vec<(String, String)> = rows(
        tx,
        "SELECT column_name::text, data_type::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        &[&table],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .collect::<Pg<Vec<(String, String)>>>()?
    .into_iter()
    .filter(|(c, _)| !POSTGRES_ONLY.contains(&(table, c.as_str())))
    .collect();
    let names: Vec<String> = columns.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let scoped = table == "trust";
    let mut targets = names.clone();
    if scoped {
        targets.push("scope".into());
    }
    let placeholders: Vec<String> = (1..=targets.len()).map(|i| format!("${i}")).collect();
    let insert = tx
        .prepare(&format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            targets.join(", "),
            placeholders.join(", ")
        ))
        .await?;
    let failed = |e: rusqlite::Error| Fail::Store(StoreError::Unavailable(format!("{table}: {e}")));
    let mut select = source
        .prepare(&format!("SELECT {} FROM {table}", names.join(", ")))
        .map_err(failed)?;
    let mut found = select.query([]).map_err(failed)?;
    let mut n = 0;
    while let Some(row) = found.next().map_err(failed)? {
        let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(targets.len());
        for (i, (column, kind)) in columns.iter().enumerate() {
            let value = row.get_ref(i).map_err(failed)?;
            values.push(converted(value, kind).ok_or_else(|| {
                Fail::Store(StoreError::Unavailable(format!(
                    "{table}.{column}: a value PostgreSQL's {kind} cannot hold"
                )))
            })?);
        }
        if scoped {
            values.push(Box::new(scope.to_owned()));
        }
        let params: Vec<&(dyn ToSql + Sync)> = values
            .iter()
            .map(|v| v.as_ref() as &(dyn ToSql + Sync))
            .collect();
        tx.execute(&insert, &params).await?;
        n += 1;
    }
    Ok(n)
}

/// One SQLite value as the PostgreSQL column's type wants it.
fn converted(value: ValueRef<'_>, kind: &str) -> Option<Box<dyn ToSql + Sync + Send>> {
    Some(match (value, kind) {
        (ValueRef::Integer(i), "bigint") => Box::new(i),
        (ValueRef::Integer(i), "boolean") => Box::new(i != 0),
        (ValueRef::Text(t), "text") => Box::new(String::from_utf8(t.to_vec()).ok()?),
        (ValueRef::Null, "text") => Box::new(None::<String>),
        (ValueRef::Null, "bigint") => Box::new(None::<i64>),
        _ => return None,
    })
}
