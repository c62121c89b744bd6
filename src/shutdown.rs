//! Graceful shutdown: one broadcast to stop, and a drop guard to know when everyone stopped.
//!
//! Modelled on mini-redis: the owner holds a [`ShutdownController`]; every long-running task
//! holds a [`Shutdown`] obtained from it. [`ShutdownController::trigger`] tells all of them to
//! stop taking new work (the worker stops claiming and finishes its in-flight documents);
//! [`ShutdownController::wait`] returns once every [`Shutdown`] (and every clone) has been
//! dropped, i.e. every task finished its clean-up. "ship" wires SIGTERM/SIGINT to `trigger`.

use tokio::sync::{broadcast, mpsc};

/// Owner side: triggers the shutdown and waits for the tasks to finish.
#[derive(Debug)]
pub struct ShutdownController {
    notify: broadcast::Sender<()>,
    done_tx: Option<mpsc::Sender<()>>,
    done_rx: mpsc::Receiver<()>,
}

impl Default for ShutdownController {
    fn default() -> Self {
        Self::new()
    }
}

impl ShutdownController {
    /// A controller nobody listens to yet.
    pub fn new() -> Self {
        let (notify, _) = broadcast::channel(1);
        let (done_tx, done_rx) = mpsc::channel(1);
        ShutdownController {
            notify,
            done_tx: Some(done_tx),
            done_rx,
        }
    }

    /// A listener for one task. Dropping it tells [`ShutdownController::wait`] the task ended.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            is_shutdown: false,
            notify: self.notify.subscribe(),
            _done: self.done_tx.clone(),
        }
    }

    /// Asks every task to stop (idempotent; also reaches tasks subscribed later only if they
    /// check [`Shutdown::is_shutdown`] after a `recv`, so subscribe before triggering).
    pub fn trigger(&self) {
        let _ = self.notify.send(());
    }

    /// Triggers the shutdown and waits until every [`Shutdown`] handed out has been dropped.
    pub async fn shutdown(mut self) {
        self.trigger();
        self.wait().await;
    }

    /// Waits until every [`Shutdown`] handed out has been dropped (without triggering).
    pub async fn wait(&mut self) {
        self.done_tx.take();
        let _ = self.done_rx.recv().await;
    }
}

/// Task side: learns that shutdown was requested; keeps the controller waiting while alive.
#[derive(Debug)]
pub struct Shutdown {
    is_shutdown: bool,
    notify: broadcast::Receiver<()>,
    _done: Option<mpsc::Sender<()>>,
}

impl Shutdown {
    /// True once the shutdown signal was received through [`Shutdown::recv`].
    pub fn is_shutdown(&self) -> bool {
        self.is_shutdown
    }

    /// Waits for the shutdown signal (returns at once if it was already received). Cancel-safe,
    /// so it can sit in a `tokio::select!`.
    pub async fn recv(&mut self) {
        if self.is_shutdown {
            return;
        }
        // Lagged or closed both mean "stop": the controller is gone or has signalled.
        let _ = self.notify.recv().await;
        self.is_shutdown = true;
    }

    /// A shutdown that never fires, for callers that stop by other means (e.g. run-until-idle).
    pub fn never() -> Shutdown {
        let (tx, rx) = broadcast::channel(1);
        // Keep the sender alive forever so `recv` never returns.
        std::mem::forget(tx);
        Shutdown {
            is_shutdown: false,
            notify: rx,
            _done: None,
        }
    }
}

impl Clone for Shutdown {
    fn clone(&self) -> Self {
        Shutdown {
            is_shutdown: self.is_shutdown,
            notify: self.notify.resubscribe(),
            _done: self._done.clone(),
        }
    }
}
