//! The schema lives in `migrations/`, once per database: SQLite's and PostgreSQL's must declare
//! the same tables, columns (with their nullability) and indexes, or one of them drifts.

mod support;

use std::collections::BTreeSet;

use sqlx::any::AnyPoolOptions;
use sqlx::Row;

/// What a schema is made of, as comparable lines: `table t`, `column t.c null|not null`,
/// `index t.i`.
type Shape = BTreeSet<String>;

async fn sqlite_shape(url: &str) -> Shape {
    let pool = AnyPoolOptions::new().connect(url).await.unwrap();
    let mut shape = Shape::new();
    let tables = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
         AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for t in tables {
        let table: String = t.get("name");
        shape.insert(format!("table {table}"));
        let columns = sqlx::query(
            "SELECT name, \"notnull\" AS nn, pk FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(&table)
        .fetch_all(&pool)
        .await
        .unwrap();
        for c in columns {
            let (name, not_null, pk): (String, i64, i64) =
                (c.get("name"), c.get("nn"), c.get("pk"));
            // A primary key is never null, whatever SQLite's flag says.
            let null = if not_null == 1 || pk > 0 {
                "not null"
            } else {
                "null"
            };
            shape.insert(format!("column {table}.{name} {null}"));
        }
    }
    // Indexes SQLite makes for UNIQUE and PRIMARY KEY constraints are the constraints', as
    // PostgreSQL's are: left out on both sides.
    let indexes = sqlx::query(
        "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' \
         AND name NOT LIKE 'sqlite_autoindex_%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for i in indexes {
        let (table, name): (String, String) = (i.get("tbl_name"), i.get("name"));
        shape.insert(format!("index {table}.{name}"));
    }
    pool.close().await;
    shape
}

async fn postgres_shape(url: &str) -> Shape {
    let pool = AnyPoolOptions::new().connect(url).await.unwrap();
    let mut shape = Shape::new();
    let columns = sqlx::query(
        "SELECT table_name::text AS t, column_name::text AS c, is_nullable::text AS n \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for c in columns {
        let (table, name, nullable): (String, String, String) =
            (c.get("t"), c.get("c"), c.get("n"));
        shape.insert(format!("table {table}"));
        let null = if nullable == "YES" {
            "null"
        } else {
            "not null"
        };
        shape.insert(format!("column {table}.{name} {null}"));
    }
    let indexes = sqlx::query(
        "SELECT i.tablename::text AS t, i.indexname::text AS n FROM pg_indexes i \
         WHERE i.schemaname = current_schema() AND i.tablename <> '_sqlx_migrations' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for i in indexes {
        let (table, name): (String, String) = (i.get("t"), i.get("n"));
        shape.insert(format!("index {table}.{name}"));
    }
    pool.close().await;
    shape
}

#[tokio::test]
async fn sqlite_and_postgresql_migrations_declare_the_same_schema() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}?mode=rwc", dir.path().join("gate.db").display());
    let postgres = support::Postgres::new();
    // Through the store, so that everything it does to a new database is done.
    pushgate::store::Store::open(&sqlite)
        .await
        .unwrap()
        .close()
        .await;
    pushgate::store::Store::open(&postgres.url)
        .await
        .unwrap()
        .close()
        .await;
    let (lite, pg) = (
        sqlite_shape(&sqlite).await,
        postgres_shape(&postgres.url).await,
    );
    assert!(
        lite.iter().any(|l| l == "column runs.flight_id null"),
        "a job's run has no flight: {lite:#?}"
    );
    let only_sqlite: Vec<_> = lite.difference(&pg).collect();
    let only_postgres: Vec<_> = pg.difference(&lite).collect();
    assert!(
        only_sqlite.is_empty() && only_postgres.is_empty(),
        "the schemas differ\nonly in SQLite: {only_sqlite:#?}\nonly in PostgreSQL: {only_postgres:#?}"
    );
    assert!(
        lite.len() > 100,
        "introspection found too little: {lite:#?}"
    );
}
