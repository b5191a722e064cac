//! Local delivery into the mailbox store (Postfix's local(8)).
//!
//! Jobs from many queue-manager tasks are gathered into batches so that one
//! store commit (one fsync) covers many messages: group commit. Each job's
//! body is stored once however many local recipients it has.

use crate::store::{Delivery, MailStore, RecipientOutcome};
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_util::task::TaskTracker;

struct Job {
    delivery: Delivery,
    reply: oneshot::Sender<Result<Vec<RecipientOutcome>, String>>,
}

#[derive(Clone)]
pub struct LocalAgent {
    jobs: mpsc::Sender<Job>,
}

impl LocalAgent {
    /// Starts `workers` batchers, each committing up to `batch` messages.
    pub fn start(
        store: Arc<dyn MailStore>,
        workers: usize,
        batch: usize,
        tracker: &TaskTracker,
    ) -> Self {
        let (tx, rx) = mpsc::channel(workers * batch * 2);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers {
            tracker.spawn(work(store.clone(), rx.clone(), batch));
        }
        LocalAgent { jobs: tx }
    }

    /// Delivers one message; the outcomes follow its recipients' order.
    pub async fn deliver(&self, delivery: Delivery) -> Result<Vec<RecipientOutcome>, String> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { delivery, reply })
            .await
            .map_err(|_| "4.3.0 local delivery agent stopped".to_string())?;
        answer
            .await
            .map_err(|_| "4.3.0 local delivery agent stopped".to_string())?
    }
}

async fn work(store: Arc<dyn MailStore>, jobs: Arc<Mutex<mpsc::Receiver<Job>>>, batch: usize) {
    loop {
        let mut taken = Vec::with_capacity(batch);
        {
            let mut rx = jobs.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            taken.push(first);
            while taken.len() < batch {
                match rx.try_recv() {
                    Ok(job) => taken.push(job),
                    Err(_) => break,
                }
            }
        }
        let (deliveries, replies): (Vec<_>, Vec<_>) =
            taken.into_iter().map(|j| (j.delivery, j.reply)).unzip();
        let store = store.clone();
        let result = tokio::task::spawn_blocking(move || store.deliver(&deliveries)).await;
        match result {
            Ok(Ok(outcomes)) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Ok(Err(e)) => {
                tracing::warn!("store commit failed: {e}");
                for reply in replies {
                    let _ = reply.send(Err(format!("4.3.0 mail store error: {e}")));
                }
            }
            Err(_) => {
                for reply in replies {
                    let _ = reply.send(Err("4.3.0 mail store task failed".into()));
                }
            }
        }
    }
}
