//! `bulkhead serve`: binds the listener (plain HTTP, or TLS 1.3 only when given a
//! certificate), runs the API and the background indexer, and shuts down gracefully on
//! SIGTERM or Ctrl-C: in-flight requests finish, the indexer finishes its document.
//!
//! TLS uses rustls built without TLS 1.2 support at all (the `tls12` feature is off), so
//! "TLS 1.3 only" does not depend on configuration. One accept loop serves both; each
//! connection runs under the header-read and idle timeouts of `connection`.

mod connection;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, AppState};
pub use connection::ConnectionTimeouts;

#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS certificate or key unusable: {0}")]
    Tls(String),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: AppState,
}

impl Server {
    pub async fn bind(
        address: &str,
        tls: Option<&TlsFiles>,
        state: AppState,
    ) -> Result<Server, ServeError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| ServeError::Bind {
                address: address.to_owned(),
                source,
            })?;
        if crate::isolation::ABLATION_BUILD
            && !listener
                .local_addr()
                .is_ok_and(|local| local.ip().is_loopback())
        {
            // A build whose isolation layers can be switched off never faces a network.
            return Err(ServeError::Bind {
                address: address.to_owned(),
                source: std::io::Error::other(
                    "this is an ablation test build: it serves on loopback only",
                ),
            });
        }
        let tls = tls.map(tls_acceptor).transpose()?;
        Ok(Server {
            listener,
            tls,
            state,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let (stop_indexer, indexer_stopped) = tokio::sync::watch::channel(false);
        let indexer = tokio::spawn(run_indexer(self.state.clone(), indexer_stopped.clone()));
        let summaries = tokio::spawn(write_failure_summaries(self.state.clone(), indexer_stopped));
        let router = api::router(self.state.clone());
        let timeouts = ConnectionTimeouts {
            header_read: self.state.limits.header_read_timeout,
            idle: self.state.limits.idle_timeout,
        };
        let result = serve(self.listener, self.tls, router, timeouts, shutdown).await;
        let _ = stop_indexer.send(true);
        let _ = indexer.await;
        let _ = summaries.await;
        tracing::info!("server stopped");
        result
    }
}

/// Serves an enterprise tenant's own process (issue 12) on its Unix socket, with the
/// background indexer (which indexes that tenant only: its `ProcessRole`), until
/// `shutdown` resolves. The client's address comes from the main server's header.
pub async fn serve_unix(
    listener: tokio::net::UnixListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop_indexer, indexer_stopped) = tokio::sync::watch::channel(false);
    let indexer = tokio::spawn(run_indexer(state.clone(), indexer_stopped.clone()));
    let summaries = tokio::spawn(write_failure_summaries(state.clone(), indexer_stopped));
    let router = api::router(state.clone());
    let timeouts = ConnectionTimeouts {
        header_read: state.limits.header_read_timeout,
        idle: state.limits.idle_timeout,
    };
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (open_connections, _) = tokio::sync::watch::channel(());
    let local = SocketAddr::from(([127, 0, 0, 1], 0));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                let (router, stopping) = (router.clone(), stopping.clone());
                let open = open_connections.subscribe();
                tokio::spawn(async move {
                    let _open = open;
                    connection::serve(stream, local, router, timeouts, stopping).await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), open_connections.closed()).await;
    let _ = stop_indexer.send(true);
    let _ = indexer.await;
    let _ = summaries.await;
    Ok(())
}

fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServeError> {
    let tls_error = |error: &dyn std::fmt::Display| ServeError::Tls(error.to_string());
    let read = |path: &Path| {
        std::fs::read(path).map_err(|error| ServeError::Tls(format!("{}: {error}", path.display())))
    };
    let certificate_pem = read(&files.certificate)?;
    let key_pem = read(&files.private_key)?;
    let certificates = rustls_pemfile::certs(&mut certificate_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| tls_error(&error))?;
    if certificates.is_empty() {
        return Err(ServeError::Tls(format!(
            "no certificate in {}",
            files.certificate.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|error| tls_error(&error))?
        .ok_or_else(|| {
            ServeError::Tls(format!("no private key in {}", files.private_key.display()))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|error| tls_error(&error))?
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .map_err(|error| tls_error(&error))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Accepts connections until `shutdown` resolves, then lets in-flight requests finish
/// (for a bounded time).
async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: axum::Router,
    timeouts: ConnectionTimeouts,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop, stopping) = tokio::sync::watch::channel(false);
    // Every connection task holds a receiver; `closed` resolves when the last one ends.
    let (open_connections, _) = tokio::sync::watch::channel(());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, most likely: let some close first.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (router, tls, stopping) = (router.clone(), tls.clone(), stopping.clone());
                let open = open_connections.subscribe();
                tokio::spawn(async move {
                    let _open = open;
                    match tls {
                        None => connection::serve(stream, peer, router, timeouts, stopping).await,
                        Some(acceptor) => {
                            // A failed or stalled handshake (a TLS 1.2-only client, a port
                            // scan) ends here.
                            let handshake = tokio::time::timeout(timeouts.header_read, acceptor.accept(stream));
                            let Ok(Ok(stream)) = handshake.await else { return };
                            connection::serve(stream, peer, router, timeouts, stopping).await
                        }
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    let _ = stop.send(true);
    // In-flight requests get a bounded time to finish.
    let _ = tokio::time::timeout(Duration::from_secs(60), open_connections.closed()).await;
    Ok(())
}

/// Writes the summary audit entries of failure windows as they close, and every one left
/// when the server stops (see `api::failures`).
async fn write_failure_summaries(state: AppState, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let interval = state.failure_flush_interval();
    loop {
        let last = tokio::select! {
            () = tokio::time::sleep(interval) => false,
            _ = stopped.changed() => true,
        };
        let flushing = state.clone();
        let _ = tokio::task::spawn_blocking(move || flushing.flush_failure_summaries(last)).await;
        if last {
            return;
        }
    }
}

/// Indexes queued documents in the background: woken by uploads, and every few seconds
/// to pick up work left by a crash or another process.
async fn run_indexer(state: AppState, mut stopped: tokio::sync::watch::Receiver<bool>) {
    loop {
        let appliance = state.appliance.clone();
        // A tenant another process deleted loses its open index and cached key now.
        let forget = tokio::task::spawn_blocking(move || appliance.forget_deleted_tenants());
        if let Ok(Err(error)) = forget.await {
            tracing::error!(%error, "could not check for deleted tenants");
        }
        // Tenants unused for longer than the idle time leave memory (issue 12).
        let appliance = state.appliance.clone();
        let _ = tokio::task::spawn_blocking(move || appliance.evict_idle_tenants()).await;
        let appliance = state.appliance.clone();
        match tokio::task::spawn_blocking(move || appliance.process_all_pending()).await {
            Ok(Ok(count)) if count > 0 => tracing::info!(documents = count, "indexed"),
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::error!(%error, "background indexing failed"),
            Err(error) => tracing::error!(%error, "background indexer panicked"),
        }
        tokio::select! {
            () = state.indexer.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutdown requested: finishing in-flight requests");
}
