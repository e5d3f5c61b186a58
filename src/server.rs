//! `bulkhead serve`: binds the listener (plain HTTP, or TLS 1.3 only when given a
//! certificate), runs the API and the background indexer, and shuts down gracefully on
//! SIGTERM or Ctrl-C: in-flight requests finish, the indexer finishes its document.
//!
//! TLS uses rustls built without TLS 1.2 support at all (the `tls12` feature is off), so
//! "TLS 1.3 only" does not depend on configuration.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, AppState};

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
        let indexer = tokio::spawn(run_indexer(self.state.clone(), indexer_stopped));
        let router = api::router(self.state.clone());
        let result = match self.tls {
            None => axum::serve(self.listener, router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(ServeError::Io),
            Some(acceptor) => serve_tls(self.listener, acceptor, router, shutdown).await,
        };
        let _ = stop_indexer.send(true);
        let _ = indexer.await;
        tracing::info!("server stopped");
        result
    }
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

async fn serve_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let service = TowerToHyperService::new(router.clone());
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    // A failed handshake (a TLS 1.2-only client, a port scan) ends here.
                    let Ok(tls) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await else { return };
                    let Ok(tls) = tls else { return };
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service).into_owned();
                    let _ = watcher.watch(connection).await;
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    // In-flight requests get a bounded time to finish.
    let _ = tokio::time::timeout(Duration::from_secs(60), graceful.shutdown()).await;
    Ok(())
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
