//! [`Engine::serve_admin`]: the admin router on its own listener.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::options::AdminOptions;
use crate::Engine;
use crate::error::{Error, Result};
use crate::store::Store;

/// The admin API being served; see [`Engine::serve_admin`]. Dropping it stops the server.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    /// Where the address is advertised (the lock file).
    store: Arc<Store>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl AdminServer {
    /// The address it listens on (with the port the system chose, for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    pub async fn stop(mut self) -> Result<()> {
        self.withdraw();
        match self.task.take() {
            Some(task) => match task.await {
                Ok(served) => served.map_err(|source| Error::Listen {
                    addr: self.addr.to_string(),
                    source,
                }),
                Err(e) => Err(Error::Internal(format!("admin server task: {e}"))),
            },
            None => Ok(()),
        }
    }
}

impl AdminServer {
    /// Stops accepting and takes the address out of the lock file; once only.
    fn withdraw(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            self.store.advertise_admin(None);
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.withdraw();
    }
}

impl Engine {
    /// Serves the [admin API](crate::admin) on `addr` until the returned server is stopped or
    /// dropped.
    ///
    /// Errors: [`Error::InvalidArgument`] for an address that is not loopback unless the
    /// options [allow it](AdminOptions::allow_remote); [`Error::Listen`] if it cannot be bound.
    pub async fn serve_admin(
        &self,
        addr: SocketAddr,
        options: AdminOptions,
    ) -> Result<AdminServer> {
        if !addr.ip().is_loopback() && !options.allow_remote {
            return Err(Error::invalid(
                "admin address",
                format!(
                    "{addr} is not a loopback address; use 127.0.0.1, or AdminOptions::allow_remote(true) behind a firewall or TLS proxy"
                ),
            ));
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen {
                addr: addr.to_string(),
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen {
            addr: addr.to_string(),
            source,
        })?;
        let app = super::router(self.clone(), options);
        // A second process that finds the file held learns from the lock file where to ask.
        self.store().advertise_admin(Some(format!("http://{addr}")));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(AdminServer {
            addr,
            store: self.store().clone(),
            stop: Some(stop),
            task: Some(task),
        })
    }
}
