//! The optional metrics and health listener (`MIKRO_SYNC_METRICS_LISTEN`, off by default).
//!
//! Why so small: it serves three read-only paths from in-memory state, so hyper's HTTP/1 server
//! on a loopback socket is all it takes. `/metrics` is the Prometheus exposition of
//! `crate::metrics`; `/healthz` says whether both pools answered their last check (liveness of
//! the dependencies), `/readyz` additionally requires the LISTEN connection to be up, i.e. the
//! daemon picks documents up the moment they are written. Both return 503 with a JSON body
//! naming what is down, so an orchestrator or a human sees why.

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};

use crate::metrics;

/// A running listener; dropping it (or [`HttpServer::shutdown`]) stops accepting.
pub struct HttpServer {
    /// The bound address (with the real port when 0 was asked for).
    pub addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl HttpServer {
    /// Stops accepting and waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The health of the daemon's parts as the health endpoints see it, read from the metric gauges
/// the daemon maintains (`mikro_sync_pool_up`, `mikro_sync_listener_up`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Health {
    /// The web pool answered its last check.
    pub web: bool,
    /// The ERP pool answered its last check.
    pub erp: bool,
    /// The LISTEN connection is established.
    pub listener: bool,
}

impl Health {
    /// Reads the current health from the global metrics.
    pub fn current() -> Health {
        let m = metrics::global();
        Health {
            web: m.is_pool_up("web"),
            erp: m.is_pool_up("erp"),
            listener: m.is_listener_up(),
        }
    }

    fn json(&self) -> String {
        format!(
            "{{\"web_pool\":{},\"erp_pool\":{},\"listener\":{}}}\n",
            self.web, self.erp, self.listener
        )
    }
}

fn respond(status: StatusCode, ctype: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(ctype),
    );
    r
}

/// Routes one request.
fn route(path: &str) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => respond(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            metrics::global().render(),
        ),
        "/healthz" => {
            let h = Health::current();
            let ok = h.web && h.erp;
            respond(
                if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                "application/json",
                h.json(),
            )
        }
        "/readyz" => {
            let h = Health::current();
            let ok = h.web && h.erp && h.listener;
            respond(
                if ok {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                "application/json",
                h.json(),
            )
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

/// Binds `addr` and serves until shut down. A non-loopback address is allowed (the operator
/// asked for it) but logged as a warning, since the endpoints have no authentication.
pub async fn start(addr: SocketAddr) -> std::io::Result<HttpServer> {
    if !addr.ip().is_loopback() {
        tracing::warn!(%addr, "metrics listener bound to a non-loopback address; it has no authentication");
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopped.changed() => break,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // E.g. out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "metrics listener accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        Ok::<_, Infallible>(route(req.uri().path()))
                    });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10))
                    .serve_connection(io, svc)
                    .await
                {
                    tracing::debug!(error = %e, "metrics connection ended with an error");
                }
            });
        }
    });
    tracing::info!(%addr, "metrics and health listener up (/metrics, /healthz, /readyz)");
    Ok(HttpServer { addr, stop, task })
}
