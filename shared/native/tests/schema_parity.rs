//! The SQLite migrations must describe the same tables and columns as the PostgreSQL ones.

mod common;

use std::collections::BTreeMap;

use feen_core::ports::Db;

async fn columns(
    db: &dyn Db,
    tables_sql: &str,
    columns_sql: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for row in db.query(tables_sql, &[]).await.expect("tables") {
        let table = row.text(0).expect("name");
        let sql = columns_sql.replace("{table}", &table);
        let mut cols: Vec<String> = db
            .query(&sql, &[])
            .await
            .expect("columns")
            .iter()
            .map(|r| r.text(0).expect("column"))
            .collect();
        cols.sort();
        out.insert(table, cols);
    }
    out
}

#[tokio::test]
async fn sqlite_and_postgres_schemas_have_the_same_tables_and_columns() {
    let pg = common::postgres().await;
    let lite = common::sqlite().await;
    let pg_cols = columns(
        pg.as_ref(),
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema() \
         AND table_name NOT LIKE '\\_sqlx%'",
        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = '{table}'",
    )
    .await;
    let lite_cols = columns(
        lite.as_ref(),
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_sqlx%' ESCAPE '\\' AND name NOT LIKE 'sqlite_%'",
        "SELECT name FROM pragma_table_info('{table}')",
    )
    .await;
    assert!(pg_cols.contains_key("usage_events"), "{pg_cols:?}");
    assert_eq!(pg_cols, lite_cols);
}

#[test]
fn both_dialects_have_the_same_migration_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations");
    let names = |dir: &str| {
        let mut names: Vec<String> = std::fs::read_dir(root.join(dir))
            .expect("migrations dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let pg = names("postgres");
    assert!(!pg.is_empty());
    assert_eq!(pg, names("sqlite"));
}
