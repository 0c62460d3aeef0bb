//! The SQL-over-HTTP driver (`feen-neon`) against the stand-in in front of the real PostgreSQL,
//! beyond the repository suite: transactions, and the failures a host must tell apart.

mod common;

use std::sync::Arc;

use feen_core::ports::{Db, DbError, Value};
use feen_native::outbound::ReqwestHttp;
use feen_neon::{NeonDb, Statement};

async fn driver(dsn: &str) -> NeonDb {
    let addr = feen_standins::neon::spawn("127.0.0.1:0")
        .await
        .expect("stand-in");
    let http = Arc::new(ReqwestHttp::new(true).expect("http client"));
    NeonDb::new(http, &format!("http://{addr}/sql"), dsn).expect("driver")
}

#[tokio::test]
async fn a_transaction_commits_all_or_nothing() {
    let db = driver(&common::database_url()).await;
    let table = common::unique("tx_");
    db.execute(
        &format!("CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT)"),
        &[],
    )
    .await
    .expect("create");
    let insert = format!("INSERT INTO {table} VALUES ($1, $2)");
    let count = format!("SELECT COUNT(*) FROM {table}");
    let one = [Value::from(1), Value::from("one")];
    let two = [Value::from(2), Value::from(None::<String>)];
    let outcomes = db
        .transaction(&[
            Statement {
                sql: &insert,
                params: &one,
            },
            Statement {
                sql: &insert,
                params: &two,
            },
            Statement {
                sql: &count,
                params: &[],
            },
        ])
        .await
        .expect("commits");
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0].count, 1);
    assert_eq!(outcomes[2].rows[0].int(0).expect("count"), 2);

    let three = [Value::from(3), Value::from("three")];
    let failed = db
        .transaction(&[
            Statement {
                sql: &insert,
                params: &three,
            },
            Statement {
                sql: &insert,
                params: &one,
            },
        ])
        .await;
    assert!(
        matches!(failed, Err(DbError::UniqueViolation)),
        "{failed:?}"
    );
    let rows = db.query(&count, &[]).await.expect("count");
    assert_eq!(
        rows[0].int(0).expect("count"),
        2,
        "the failed transaction wrote nothing"
    );
    let names = db
        .query(&format!("SELECT name FROM {table} ORDER BY id"), &[])
        .await
        .expect("names");
    assert_eq!(names[0].opt_text(0).expect("text"), Some("one".into()));
    assert_eq!(names[1].opt_text(0).expect("text"), None);
}

#[tokio::test]
async fn an_unreachable_or_refusing_database_is_unavailable_and_bad_sql_is_not() {
    // Nothing listens on port 9 of the loopback.
    let http = Arc::new(ReqwestHttp::new(true).expect("http client"));
    let nowhere =
        NeonDb::new(http, "http://127.0.0.1:9/sql", &common::database_url()).expect("driver");
    assert!(matches!(
        nowhere.query("SELECT 1", &[]).await,
        Err(DbError::Unavailable(_))
    ));

    let wrong = common::database_url().replacen("feen:feen@", "feen:wrong-password@", 1);
    let refused = driver(&wrong).await.query("SELECT 1", &[]).await;
    match refused {
        Err(DbError::Unavailable(message)) => {
            assert!(!message.contains("wrong-password"), "{message}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }

    let db = driver(&common::database_url()).await;
    assert!(matches!(
        db.query("SELECT * FROM no_such_table", &[]).await,
        Err(DbError::Other(_))
    ));
    assert!(
        !format!("{db:?}").contains("feen:feen"),
        "Debug hides the password"
    );
}
