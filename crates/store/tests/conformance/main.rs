//! Conformance suite for `custos-store`: every test body is written once
//! against `Arc<dyn Store>` and runs on SQLite (a fresh temporary file per
//! test) and on PostgreSQL (a fresh schema per test) when
//! `CUSTOS_TEST_POSTGRES_URL` is set. With `CUSTOS_REQUIRE_POSTGRES=1` a
//! missing PostgreSQL URL fails the PostgreSQL tests instead of skipping them.
//!
//! ```text
//! URL=$(bash scripts/start-postgres.sh)
//! CUSTOS_TEST_POSTGRES_URL=$URL cargo test -p custos-store
//! ```

/// Declares, for each named `async fn(TestDb)` in the current module, a
/// module of the same name holding a `sqlite` and a `postgres` test.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn sqlite() {
                    $crate::harness::on_sqlite(module_path!(), super::$name).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn postgres() {
                    $crate::harness::on_postgres(module_path!(), super::$name).await;
                }
            }
        )*
    };
}

mod harness;

mod audit;
mod clients;
mod codes;
mod connect;
mod grants;
mod keys;
mod policies;
mod records;
mod rotation;
mod tokens;
