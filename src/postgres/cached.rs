//! Statements prepared once per connection: a statement given as text would otherwise be
//! parsed, planned and described by the server on every call (a round trip of its own before
//! the one that runs it). The pool keeps each connection's statements by their text.

use std::future::Future;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Error, Row};

/// Runs statements through the connection's statement cache.
pub(crate) trait Cached: Sync {
    fn query_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;

    fn query_one_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, Error>> + Send;

    fn query_opt_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, Error>> + Send;

    fn execute_cached(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, Error>> + Send;
}

macro_rules! cached_for {
    ($t:ty) => {
        impl Cached for $t {
            async fn query_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Vec<Row>, Error> {
                let statement = self.prepare_cached(sql).await?;
                self.query(&statement, params).await
            }

            async fn query_one_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Row, Error> {
                let statement = self.prepare_cached(sql).await?;
                self.query_one(&statement, params).await
            }

            async fn query_opt_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<Option<Row>, Error> {
                let statement = self.prepare_cached(sql).await?;
                self.query_opt(&statement, params).await
            }

            async fn execute_cached(
                &self,
                sql: &str,
                params: &[&(dyn ToSql + Sync)],
            ) -> Result<u64, Error> {
                let statement = self.prepare_cached(sql).await?;
                self.execute(&statement, params).await
            }
        }
    };
}

cached_for!(deadpool_postgres::Transaction<'_>);
cached_for!(deadpool_postgres::Object);
