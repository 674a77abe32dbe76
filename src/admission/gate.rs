//! The fair gate: the gateway-wide bound on letters and bytes in the acceptance pipeline, and the
//! order in which waiting letters get in when it is full.
//!
//! Urgent letters go first, by the same weighted round robin among the senders that have urgent
//! letters waiting (a sender's urgent share is bounded before the gate). The others are admitted by deficit round robin across senders,
//! weighted by each sender's share: a sender with many streams waiting gets no more turns than a
//! sender with one letter waiting, so a flood slows only the sender that floods. Below the bound
//! nobody waits and the gate costs one uncontended lock.
//!
//! Two resources, one order: a letter needs one letter slot and its size in bytes (at least
//! `min_cost`, so a stream of tiny letters cannot claim a huge number of slots through the byte
//! budget alone). Turns are counted in letters, so weights share letters per second. The
//! round robin itself is [`crate::drr::Drr`], shared with the RabbitMQ consumers.

use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::domain::Cvr;
use crate::drr::Drr;

pub use crate::telemetry::GateLoad;

/// A request to pass: what it costs, its sender's weight when it asked, and whom to wake.
struct Waiter {
    bytes: u64,
    weight: u32,
    grant: oneshot::Sender<()>,
}

struct State {
    letters_free: usize,
    bytes_free: u64,
    /// Waiting urgent letters, per sender, served before any other.
    urgent: Drr<Cvr, Waiter>,
    /// Waiting letters that are not urgent, per sender; each sender is in the turn once,
    /// however many of its letters wait.
    senders: Drr<Cvr, Waiter>,
    /// Letters waiting, urgent or not (abandoned ones until they are noticed).
    waiting: usize,
}

pub struct FairGate {
    state: Mutex<State>,
    max_letters: usize,
    max_bytes: u64,
}

/// A letter's place in the pipeline; given back when dropped.
pub struct GatePermit {
    gate: Arc<FairGate>,
    bytes: u64,
}

impl Drop for GatePermit {
    fn drop(&mut self) {
        self.gate.release(self.bytes);
    }
}

impl FairGate {
    pub fn new(max_letters: usize, max_bytes: u64) -> Arc<Self> {
        let max_letters = max_letters.max(1);
        let max_bytes = max_bytes.max(1);
        Arc::new(FairGate {
            state: Mutex::new(State {
                letters_free: max_letters,
                bytes_free: max_bytes,
                urgent: Drr::new(),
                senders: Drr::new(),
                waiting: 0,
            }),
            max_letters,
            max_bytes,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn load(&self) -> GateLoad {
        let s = self.lock();
        GateLoad {
            waiting: s.waiting,
            letters_inside: self.max_letters - s.letters_free,
            bytes_inside: self.max_bytes - s.bytes_free,
        }
    }

    /// Passes at once when there is room and nobody waits; otherwise `None` and the caller
    /// waits with [`FairGate::wait`].
    pub fn try_pass(self: &Arc<Self>, bytes: u64) -> Option<GatePermit> {
        let bytes = bytes.min(self.max_bytes);
        let mut s = self.lock();
        if s.waiting == 0 && s.letters_free > 0 && s.bytes_free >= bytes {
            s.letters_free -= 1;
            s.bytes_free -= bytes;
            Some(GatePermit {
                gate: self.clone(),
                bytes,
            })
        } else {
            None
        }
    }

    /// Waits for a turn. Dropping the future gives the place up (a grant that raced with the
    /// drop is handed back).
    pub async fn pass(
        self: &Arc<Self>,
        sender: Cvr,
        weight: u32,
        urgent: bool,
        bytes: u64,
    ) -> GatePermit {
        if let Some(p) = self.try_pass(bytes) {
            return p;
        }
        let bytes = bytes.min(self.max_bytes);
        loop {
            let (grant, granted) = oneshot::channel();
            {
                let mut s = self.lock();
                s.waiting += 1;
                let waiter = Waiter {
                    bytes,
                    weight: weight.max(1),
                    grant,
                };
                if urgent {
                    s.urgent.push(sender, waiter);
                } else {
                    s.senders.push(sender, waiter);
                }
                self.dispatch(&mut s);
            }
            let mut guard = Waiting {
                gate: self,
                granted: Some(granted),
                bytes,
            };
            let outcome = match guard.granted.as_mut() {
                Some(rx) => rx.await,
                None => continue,
            };
            guard.granted = None;
            // The gate drops a waiter's sender half only after granting it, or when the waiter
            // was abandoned; an error here would mean neither, so wait again rather than pass
            // without having been counted.
            if outcome.is_ok() {
                return GatePermit {
                    gate: self.clone(),
                    bytes,
                };
            }
        }
    }

    fn release(&self, bytes: u64) {
        let mut s = self.lock();
        s.letters_free += 1;
        s.bytes_free += bytes;
        self.dispatch(&mut s);
    }

    /// Hands free room to waiters: urgent first, then senders by deficit round robin.
    fn dispatch(&self, s: &mut State) {
        loop {
            if s.letters_free == 0 {
                return;
            }
            let abandoned = s.urgent.discard_while(|w| w.grant.is_closed());
            s.waiting -= abandoned;
            if let Some(head) = s.urgent.peek() {
                if s.bytes_free < head.bytes {
                    return;
                }
                if let Some(w) = s.urgent.take_next(|_, w| w.weight) {
                    grant(s, w);
                }
                continue;
            }
            let abandoned = s.senders.discard_while(|w| w.grant.is_closed());
            s.waiting -= abandoned;
            let Some(head) = s.senders.peek() else {
                return;
            };
            // The sender whose turn it is waits for room rather than letting smaller letters
            // behind it overtake: otherwise a sender of large letters would never get in.
            if s.bytes_free < head.bytes {
                return;
            }
            if let Some(w) = s.senders.take_next(|_, w| w.weight) {
                grant(s, w);
            }
        }
    }
}

fn grant(s: &mut State, w: Waiter) {
    s.waiting -= 1;
    if w.grant.send(()).is_ok() {
        s.letters_free -= 1;
        s.bytes_free -= w.bytes;
    }
}

/// Gives the place back if the waiting future is dropped before it got its permit.
struct Waiting<'a> {
    gate: &'a Arc<FairGate>,
    granted: Option<oneshot::Receiver<()>>,
    bytes: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.granted.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.gate.release(self.bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    fn cvr(n: u32) -> Cvr {
        crate::domain::complete_cvr(n).unwrap()
    }

    /// Queues `who` (sender, weight, urgent) in order behind a full one-letter gate, then frees
    /// it and returns the order they got in.
    async fn order_of(who: Vec<(Cvr, u32, bool)>) -> Vec<usize> {
        let gate = FairGate::new(1, 1 << 30);
        let first = gate.try_pass(10).unwrap();
        let order = Arc::new(StdMutex::new(Vec::new()));
        let n = who.len();
        for (i, (sender, weight, urgent)) in who.into_iter().enumerate() {
            let (g, order) = (gate.clone(), order.clone());
            tokio::spawn(async move {
                let p = g.pass(sender, weight, urgent, 10).await;
                order.lock().unwrap().push(i);
                drop(p);
            });
            while gate.load().waiting < i + 1 {
                tokio::task::yield_now().await;
            }
        }
        drop(first);
        while order.lock().unwrap().len() < n {
            tokio::task::yield_now().await;
        }
        order.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn a_flood_does_not_keep_a_second_sender_waiting() {
        let (a, b) = (cvr(1_000_000), cvr(2_000_000));
        let mut who: Vec<_> = (0..200).map(|_| (a, 1, false)).collect();
        who.push((b, 1, false));
        let order = order_of(who).await;
        let at = order.iter().position(|i| *i == 200).unwrap();
        assert!(at <= 1, "B's letter got in as number {at} of 201");
    }

    #[tokio::test]
    async fn urgent_letters_go_first() {
        let (a, b) = (cvr(1_000_000), cvr(2_000_000));
        let mut who: Vec<_> = (0..50).map(|_| (a, 1, false)).collect();
        who.push((b, 1, true));
        let order = order_of(who).await;
        assert_eq!(order[0], 50);
    }

    #[tokio::test]
    async fn urgent_letters_are_shared_fairly_between_senders() {
        let (a, b, c) = (cvr(1_000_000), cvr(2_000_000), cvr(3_000_000));
        let mut who: Vec<_> = (0..100).map(|_| (a, 1, true)).collect();
        who.push((b, 1, true));
        who.extend((0..10).map(|_| (c, 1, false)));
        let order = order_of(who).await;
        let at = order.iter().position(|i| *i == 100).unwrap();
        assert!(
            at <= 1,
            "B's urgent letter got in as number {at} behind A's"
        );
        assert!(
            order[..101].iter().all(|i| *i <= 100),
            "urgent before the rest"
        );
    }

    #[tokio::test]
    async fn weights_share_turns() {
        let (a, b) = (cvr(1_000_000), cvr(2_000_000));
        let mut who: Vec<_> = (0..120).map(|_| (a, 3, false)).collect();
        who.extend((0..120).map(|_| (b, 1, false)));
        let order = order_of(who).await;
        let a_in_first_80 = order[..80].iter().filter(|i| **i < 120).count();
        assert_eq!(a_in_first_80, 60, "3:1 while both wait");
    }

    #[tokio::test]
    async fn the_byte_budget_bounds_what_is_inside() {
        let gate = FairGate::new(100, 1000);
        let big = gate.try_pass(800).unwrap();
        assert!(gate.try_pass(300).is_none(), "800 + 300 is over 1000");
        let small = gate.try_pass(200).unwrap();
        assert_eq!(gate.load().bytes_inside, 1000);
        drop((big, small));
        assert_eq!(gate.load().bytes_inside, 0);
        // A letter larger than the whole budget goes alone rather than never.
        let huge = gate.try_pass(5000).unwrap();
        assert_eq!(gate.load().bytes_inside, 1000);
        drop(huge);
    }

    #[tokio::test]
    async fn an_abandoned_wait_gives_its_place_back() {
        let gate = FairGate::new(1, 1000);
        let first = gate.try_pass(10).unwrap();
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            gate.pass(cvr(1_000_000), 1, false, 10),
        )
        .await;
        assert!(waiting.is_err());
        drop(first);
        assert_eq!(
            gate.load(),
            GateLoad {
                waiting: 0,
                letters_inside: 0,
                bytes_inside: 0
            }
        );
        assert!(gate.try_pass(10).is_some());
    }
}

#[cfg(test)]
mod busy_tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_newcomer_gets_in_while_streams_keep_the_gate_full() {
        let a = crate::domain::complete_cvr(1_000_000).unwrap();
        let b = crate::domain::complete_cvr(2_000_000).unwrap();
        let gate = FairGate::new(32, 1 << 30);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        for _ in 0..4 {
            let (gate, stop) = (gate.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let held = gate.pass(a, 1, false, 10).await;
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(3)).await;
                        drop(held);
                    });
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..20 {
            let got =
                tokio::time::timeout(Duration::from_secs(5), gate.pass(b, 1, false, 10)).await;
            assert!(got.is_ok(), "B waited 5 s: {:?}", gate.load());
            tokio::time::sleep(Duration::from_millis(2)).await;
            drop(got);
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
