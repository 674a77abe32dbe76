//! The order mailbox rounds hand their letters over in, with several mailbox workers.
//!
//! Workers overlap their rounds: while one waits for its commits and fsyncs another loads,
//! opens and seals its letters. But a round leased later must not be recorded delivered
//! first: its letters would be in the mailboxes before an URGENT letter leased earlier, and
//! `delivered_at` (from which legal deadlines run) would no longer follow the queue's order.
//! So leases are taken one at a time, each non-empty round gets a place in line, and a round
//! records its deliveries only once the round before it has finished. Everything before that
//! (loading, opening, producing MeMo, writing and syncing the outbox batch) runs in parallel.
//!
//! A place is a link in a chain of one-shot channels: a round waits on the previous round's
//! receiver and signals the next by dropping its own sender, which happens however the round
//! ends (an error, an early return, a panic), so a failed round never holds up the next.

use std::future::Future;

use tokio::sync::{Mutex, oneshot};

/// Where the next round's place in line comes from.
#[derive(Debug, Default)]
pub struct HandOverOrder {
    /// The newest round's signal: the next round waits on it.
    last: Mutex<Option<oneshot::Receiver<()>>>,
}

/// A round's place in line: it may record its deliveries once the round before it has
/// finished, and the next round may once this one is dropped.
#[derive(Debug)]
pub struct Place {
    before: Option<oneshot::Receiver<()>>,
    _done: oneshot::Sender<()>,
}

impl HandOverOrder {
    /// Runs `lease` with the line held, so rounds are leased and placed in the same order; a
    /// lease that brought letters gets the next place.
    pub async fn lease<T, E>(
        &self,
        lease: impl Future<Output = Result<Vec<T>, E>>,
    ) -> (Result<Vec<T>, E>, Option<Place>) {
        let mut last = self.last.lock().await;
        let leased = lease.await;
        let place = match &leased {
            Ok(letters) if !letters.is_empty() => {
                let (done, next) = oneshot::channel();
                Some(Place {
                    before: last.replace(next),
                    _done: done,
                })
            }
            _ => None,
        };
        (leased, place)
    }
}

impl Place {
    /// Waits until the round before this one has finished (at once after the first call).
    pub async fn wait(&mut self) {
        if let Some(before) = self.before.take() {
            // An error only says the earlier round is gone, which is what is waited for.
            let _ = before.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    async fn leased(order: &HandOverOrder, n: usize) -> Option<Place> {
        let (letters, place) = order.lease(async { Ok::<_, ()>(vec![0u8; n]) }).await;
        assert_eq!(letters, Ok(vec![0; n]));
        place
    }

    #[tokio::test]
    async fn a_round_records_only_after_the_round_leased_before_it() {
        let order = HandOverOrder::default();
        let mut first = leased(&order, 3).await.unwrap();
        let second = leased(&order, 3).await.unwrap();
        let finished = Arc::new(Mutex::new(Vec::new()));
        let log = finished.clone();
        let later = tokio::spawn(async move {
            let mut second = second;
            second.wait().await;
            log.lock().await.push(2);
        });
        // The second round is ready first, but waits as long as the first is not done.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            finished.lock().await.is_empty(),
            "the second round went first"
        );
        first.wait().await;
        finished.lock().await.push(1);
        drop(first);
        later.await.unwrap();
        assert_eq!(*finished.lock().await, vec![1, 2]);
    }

    #[tokio::test]
    async fn empty_and_failed_leases_take_no_place() {
        let order = HandOverOrder::default();
        assert!(leased(&order, 0).await.is_none());
        let (failed, place) = order.lease(async { Err::<Vec<u8>, _>("down") }).await;
        assert_eq!(failed, Err("down"));
        assert!(place.is_none());
        // The first real round has nobody before it.
        let mut first = leased(&order, 1).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), first.wait())
            .await
            .expect("the first round waited for a round that never was");
    }

    #[tokio::test]
    async fn a_round_that_ends_early_lets_the_next_one_go() {
        let order = HandOverOrder::default();
        let first = leased(&order, 1).await.unwrap();
        let mut second = leased(&order, 1).await.unwrap();
        // The first round failed before it recorded anything: dropped without waiting.
        drop(first);
        tokio::time::timeout(Duration::from_secs(5), second.wait())
            .await
            .expect("the second round was held up by one that had ended");
    }
}
