//! Row security for the shared SQLite tables (isolation layer 3).
//!
//! SQLite has no row-level security, so it is built from three parts:
//!
//! - **The tenant travels with the connection.** Tenant data is read and written only
//!   through a [`TenantDb`], a handle on the tenant connection bound to one scope's tenant
//!   while it lives. The SQL function `current_tenant()` returns that tenant (NULL when
//!   unbound, and always NULL on the system connection).
//! - **Views filtered by it.** Each shared table `x` has a view `t_x` showing only rows
//!   with `tenant_id = current_tenant()`. Writes go through the views too: `INSTEAD OF`
//!   triggers reject a row naming another tenant (or another tenant's document) and
//!   write only rows of the current tenant.
//! - **An authorizer that denies the base tables.** On the tenant connection, top-level
//!   SQL may read and write the `t_*` views only; the base tables are reachable only from
//!   inside those views and triggers. `ATTACH`, `PRAGMA`, schema changes and every other
//!   action are denied. A raw `SELECT * FROM chunks` on a tenant connection fails.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};

use crate::auth::TenantScope;
use crate::isolation::{Layer, enabled};

/// How a tenant connection may write a shared table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Writes {
    /// Insert, update and delete its own rows (by this key column).
    Keyed(&'static str),
    /// Insert only (metering).
    InsertOnly,
    /// Not at all: the audit log is appended on the system connection, which chains it.
    ReadOnly,
}

/// The shared tables with a tenant column, how tenant connections may write them, and
/// whether their rows belong to a document (then the document must be the tenant's too).
const TABLES: &[(&str, Writes, bool)] = &[
    ("documents", Writes::Keyed("document_id"), false),
    ("document_texts", Writes::Keyed("document_id"), true),
    ("document_catalogues", Writes::Keyed("document_id"), true),
    ("chunks", Writes::Keyed("row_id"), true),
    ("jobs", Writes::Keyed("job_id"), true),
    ("usage_events", Writes::InsertOnly, false),
    ("audit_events", Writes::ReadOnly, false),
];

/// Registers `current_tenant()` on a connection, reading `bound`.
pub(super) fn register_current_tenant(
    connection: &Connection,
    bound: Arc<Mutex<Option<String>>>,
) -> rusqlite::Result<()> {
    connection.create_scalar_function("current_tenant", 0, FunctionFlags::SQLITE_UTF8, move |_| {
        Ok(lock(&bound).clone())
    })
}

/// The views and triggers (run on the system connection, which may change the schema).
/// Checked at every open against what this build creates, so a schema edited behind the
/// appliance's back is repaired; re-created only when they differ, and then in one
/// immediate transaction, so a process opening the store beside a running server (the
/// CLI) never leaves it a moment without its views. Returns whether anything changed.
pub(super) fn schema(connection: &Connection) -> rusqlite::Result<bool> {
    let (drops, creates) = schema_statements(connection)?;
    let mut statement = connection.prepare(
        "SELECT name, sql FROM sqlite_master
         WHERE type IN ('view', 'trigger') AND name LIKE 't\\_%' ESCAPE '\\'",
    )?;
    let current: std::collections::HashMap<String, String> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let unchanged = current.len() == creates.len()
        && creates
            .iter()
            .all(|(name, sql)| current.get(name).is_some_and(|stored| stored == sql));
    if unchanged {
        return Ok(false);
    }
    let mut batch = String::from("BEGIN IMMEDIATE;\n");
    batch.push_str(&drops);
    for (_, sql) in &creates {
        batch.push_str(sql);
        batch.push_str(";\n");
    }
    batch.push_str("COMMIT;");
    if let Err(error) = connection.execute_batch(&batch) {
        let _ = connection.execute_batch("ROLLBACK;");
        return Err(error);
    }
    Ok(true)
}

/// The statements that drop the views and triggers, and each view's and trigger's name
/// with the statement that creates it (as `sqlite_master` keeps it: no final `;`).
fn schema_statements(connection: &Connection) -> rusqlite::Result<(String, Vec<(String, String)>)> {
    // (name, default): a view passes NULL for an omitted column, so the trigger applies
    // the table's default itself.
    let columns_of = |table: &str| -> rusqlite::Result<Vec<(String, Option<String>)>> {
        let mut statement = connection.prepare(&format!("PRAGMA table_info({table})"))?;
        let columns = statement
            .query_map([], |row| Ok((row.get(1)?, row.get(4)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(columns)
    };
    let mut sql = String::new();
    let mut creates: Vec<(String, String)> = Vec::new();
    for &(table, writes, owned_by_document) in TABLES {
        let described = columns_of(table)?;
        let columns: Vec<String> = described.iter().map(|(name, _)| name.clone()).collect();
        let list = columns.join(", ");
        let new_values = described
            .iter()
            .map(|(column, default)| match default {
                Some(default) => format!("COALESCE(NEW.{column}, {default})"),
                None => format!("NEW.{column}"),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let foreign_document = if owned_by_document {
            " OR NOT EXISTS (SELECT 1 FROM documents WHERE document_id = NEW.document_id AND tenant_id = current_tenant())"
        } else {
            ""
        };
        // Which rows the views show, and when the triggers refuse a write. With the layer
        // off (ablation test builds only): every row, never.
        let on = enabled(Layer::RowSecurity);
        let visible = if on {
            "tenant_id = current_tenant()"
        } else {
            "1"
        };
        let refuse_insert = if on {
            format!(
                "current_tenant() IS NULL OR NEW.tenant_id IS NOT current_tenant(){foreign_document}"
            )
        } else {
            "0".to_owned()
        };
        for object in ["view", "trigger"] {
            for suffix in ["", "_insert", "_update", "_delete"] {
                if (object == "view") == suffix.is_empty() {
                    sql.push_str(&format!("DROP {object} IF EXISTS t_{table}{suffix};\n"));
                }
            }
        }
        creates.push((
            format!("t_{table}"),
            format!("CREATE VIEW t_{table} AS SELECT * FROM {table} WHERE {visible}"),
        ));
        if writes == Writes::ReadOnly {
            continue;
        }
        creates.push((
            format!("t_{table}_insert"),
            format!(
                "CREATE TRIGGER t_{table}_insert INSTEAD OF INSERT ON t_{table} BEGIN
               SELECT RAISE(ABORT, 'row security: a row of another tenant') WHERE {refuse_insert};
               INSERT INTO {table} ({list}) VALUES ({new_values});
             END"
            ),
        ));
        if let Writes::Keyed(key) = writes {
            let refuse_update = if on {
                format!("NEW.tenant_id IS NOT current_tenant() OR NEW.{key} IS NOT OLD.{key}")
            } else {
                "0".to_owned()
            };
            let assignments = columns
                .iter()
                .filter(|column| column.as_str() != key)
                .map(|column| format!("{column} = NEW.{column}"))
                .collect::<Vec<_>>()
                .join(", ");
            creates.push((
                format!("t_{table}_update"),
                format!(
                    "CREATE TRIGGER t_{table}_update INSTEAD OF UPDATE ON t_{table} BEGIN
                   SELECT RAISE(ABORT, 'row security: a row of another tenant') WHERE {refuse_update};
                   UPDATE {table} SET {assignments} WHERE {key} = OLD.{key} AND {visible};
                 END"
                ),
            ));
            creates.push((
                format!("t_{table}_delete"),
                format!(
                    "CREATE TRIGGER t_{table}_delete INSTEAD OF DELETE ON t_{table} BEGIN
                   DELETE FROM {table} WHERE {key} = OLD.{key} AND {visible};
                 END"
                ),
            ));
        }
    }
    Ok((sql, creates))
}

/// What top-level SQL on a tenant connection may do: read and write the tenant views.
/// Inside a view or trigger (`accessor`), the base tables are reachable: that is how the
/// views work. Everything else — the base tables, `sqlite_master`, `ATTACH`, `PRAGMA`,
/// schema changes — is denied.
fn authorize(context: AuthContext<'_>) -> Authorization {
    if !enabled(Layer::RowSecurity) {
        // Ablation test builds only.
        return Authorization::Allow;
    }
    let ours = |name: &str| name.starts_with("t_");
    let inside_ours = context.accessor.is_some_and(ours);
    match context.action {
        AuthAction::Select
        | AuthAction::Function { .. }
        | AuthAction::Transaction { .. }
        | AuthAction::Savepoint { .. }
        | AuthAction::Recursive => Authorization::Allow,
        AuthAction::Read { table_name, .. }
        | AuthAction::Insert { table_name }
        | AuthAction::Update { table_name, .. }
        | AuthAction::Delete { table_name } => {
            if context.database_name.is_none_or(|name| name == "main")
                && (inside_ours || ours(table_name))
            {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        _ => Authorization::Deny,
    }
}

/// The connection tenant data is read and written through.
pub(super) struct TenantConnection {
    connection: Mutex<Connection>,
    bound: Arc<Mutex<Option<String>>>,
}

impl TenantConnection {
    /// Wraps a fresh connection (pragmas already set): binds `current_tenant()` to this
    /// handle and installs the authorizer.
    pub(super) fn new(mut connection: Connection) -> rusqlite::Result<TenantConnection> {
        let bound = Arc::new(Mutex::new(None));
        register_current_tenant(&connection, bound.clone())?;
        connection.authorizer(Some(authorize))?;
        Ok(TenantConnection {
            connection: Mutex::new(connection),
            bound,
        })
    }

    /// The connection, bound to the scope's tenant until the handle is dropped.
    pub(super) fn bind(&self, scope: &TenantScope) -> TenantDb<'_> {
        let connection = lock(&self.connection);
        *lock(&self.bound) = Some(scope.tenant_id().to_string());
        TenantDb {
            connection,
            bound: &self.bound,
        }
    }
}

/// A tenant connection bound to one tenant. Every statement on it is written with
/// [`sql`] against the `t_*` views.
pub(super) struct TenantDb<'a> {
    connection: MutexGuard<'a, Connection>,
    bound: &'a Mutex<Option<String>>,
}

impl std::ops::Deref for TenantDb<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.connection
    }
}

impl std::ops::DerefMut for TenantDb<'_> {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.connection
    }
}

impl Drop for TenantDb<'_> {
    fn drop(&mut self) {
        *lock(self.bound) = None;
    }
}

/// A tenant statement. Identity in a normal build. In an ablation test build, with row
/// security off it reads the base tables instead of the views, and with the application
/// scope off it drops the statement's own `tenant_id = ?N` filters.
pub(super) fn sql(text: &str) -> Cow<'_, str> {
    let mut text = Cow::Borrowed(text);
    if !enabled(Layer::RowSecurity) {
        for &(table, _, _) in TABLES {
            text = Cow::Owned(text.replace(&format!("t_{table}"), table));
        }
    }
    if !enabled(Layer::Scope) {
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_ref();
        while let Some(at) = rest.find("tenant_id = ?") {
            let digits = rest[at + 13..]
                .chars()
                .take_while(char::is_ascii_digit)
                .count();
            let parameter = &rest[at + 12..at + 13 + digits];
            out.push_str(&rest[..at]);
            out.push_str(&format!(
                "tenant_id IS NOT NULL AND {parameter} IS NOT NULL"
            ));
            rest = &rest[at + 13 + digits..];
        }
        out.push_str(rest);
        text = Cow::Owned(out);
    }
    text
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::super::{Store, Tier};
    use crate::auth::{OperatorReason, operator_scope};

    #[test]
    fn the_views_are_recreated_only_when_they_differ_and_then_repaired() {
        let dir = tempfile::tempdir().unwrap();
        Store::init(dir.path()).unwrap();
        let connection = super::super::open_connection(&dir.path().join("system.db")).unwrap();
        // Opening beside a running server: nothing to change, nothing dropped.
        assert!(!super::schema(&connection).unwrap());
        // Edited behind the appliance's back: repaired, then stable again.
        connection.execute_batch("DROP VIEW t_documents").unwrap();
        assert!(super::schema(&connection).unwrap());
        assert!(!super::schema(&connection).unwrap());
        connection
            .execute_batch(
                "DROP TRIGGER t_chunks_insert;
                 CREATE TRIGGER t_chunks_insert INSTEAD OF INSERT ON t_chunks BEGIN SELECT 1; END;",
            )
            .unwrap();
        assert!(super::schema(&connection).unwrap());
        assert!(!super::schema(&connection).unwrap());
    }

    #[test]
    fn a_tenant_connection_sees_and_writes_only_its_own_rows() {
        let dir = tempfile::tempdir().unwrap();
        Store::init(dir.path()).unwrap();
        let store = Store::open(dir.path()).unwrap();
        let scope = |name| {
            let tenant = store.create_tenant(name, Tier::Standard).unwrap();
            operator_scope(tenant.tenant_id, OperatorReason::CommandLine)
        };
        let (alpha, beta) = (scope("Alpha"), scope("Beta"));
        let beta_document = store.put_document(&beta, "b.txt", None, b"beta").unwrap();
        store.put_document(&alpha, "a.txt", None, b"alpha").unwrap();

        let db = store.tenant(&alpha);
        let count = |statement: &str| db.query_row(statement, [], |row| row.get::<_, i64>(0));
        // The views show the bound tenant's rows only.
        assert_eq!(count("SELECT COUNT(*) FROM t_documents").unwrap(), 1);
        assert_eq!(count("SELECT COUNT(*) FROM t_jobs").unwrap(), 1);
        assert_eq!(
            count("SELECT current_tenant() = (SELECT tenant_id FROM t_documents)").unwrap(),
            1
        );
        // The base tables, the schema, other databases and pragmas are denied outright.
        for denied in [
            "SELECT COUNT(*) FROM documents",
            "SELECT COUNT(*) FROM main.chunks",
            "SELECT COUNT(*) FROM tenants",
            "SELECT COUNT(*) FROM (SELECT * FROM jobs)",
            "SELECT COUNT(*) FROM t_documents WHERE document_id IN (SELECT document_id FROM documents)",
            "SELECT COUNT(*) FROM sqlite_master",
            "SELECT COUNT(*) FROM pragma_table_info('documents')",
        ] {
            assert!(count(denied).is_err(), "{denied}");
        }
        for denied in [
            "ATTACH DATABASE ':memory:' AS other",
            "PRAGMA foreign_keys = OFF",
            "DROP VIEW t_documents",
            "CREATE TEMP VIEW everything AS SELECT * FROM documents",
            "DELETE FROM documents",
            "UPDATE chunks SET tenant_id = 'x'",
        ] {
            assert!(db.execute_batch(denied).is_err(), "{denied}");
        }
        // Writes through the views cannot touch or create another tenant's rows.
        let beta_id = beta.tenant_id().as_str();
        let rejected = db.execute(
            "INSERT INTO t_documents (document_id, tenant_id, filename_sealed, bytes, status, created_at)
             VALUES ('d_00000000000000000000', ?1, x'00', 1, 'queued', 0)",
            [beta_id],
        );
        assert!(rejected.unwrap_err().to_string().contains("row security"));
        let rejected = db.execute(
            "INSERT INTO t_jobs (tenant_id, document_id, enqueued_at) VALUES (?1, ?2, 0)",
            [alpha.tenant_id().as_str(), beta_document.as_str()],
        );
        assert!(rejected.is_err(), "a job for another tenant's document");
        assert_eq!(
            db.execute("UPDATE t_documents SET tenant_id = ?1", [beta_id])
                .map_err(|error| error.to_string().contains("row security")),
            Err(true)
        );
        assert_eq!(
            db.execute("DELETE FROM t_jobs WHERE tenant_id = ?1", [beta_id])
                .unwrap(),
            0
        );
        drop(db);
        assert_eq!(store.list_documents(&beta).unwrap().len(), 1);
        let lock = store.indexer_lock(true).unwrap().unwrap();
        assert!(store.claim_job(&beta, &lock).unwrap().is_some());
        // Unbound (the system connection's view of the views): nothing.
        let system = store.connection();
        let unbound: i64 = system
            .query_row("SELECT COUNT(*) FROM t_documents", [], |row| row.get(0))
            .unwrap();
        assert_eq!(unbound, 0);
        drop(system);
        // The audit log is readable (own entries) but not writable through the views.
        let db = store.tenant(&alpha);
        assert!(db.execute_batch("DELETE FROM t_audit_events").is_err());
        assert!(
            db.execute_batch("INSERT INTO t_audit_events (at, actor, action, resource, outcome, prev_hash, hash) VALUES (0, 'x', 'x', 'x', 'x', x'00', x'00')")
                .is_err()
        );
    }
}
