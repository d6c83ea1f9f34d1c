//! The ingest pool: a few threads that handle what agents send. A thread takes the
//! messages waiting (a round, up to [`ROUND_JOBS`]), handles each, then makes the
//! round durable with one sync before any of its replies leaves.
//!
//! This is group commit without a thread parked per message: a message costs no
//! thread of its own and no wait on a condition variable, and only these few threads
//! contend for the store's locks (sled takes one lock for the whole process around
//! every atomic batch, which a hundred blocking threads spun and slept on).
//!
//! A handler asks for durability as everywhere else, through `App::sync_store`; on a
//! pool thread that call only notes that the round must sync ([`defer_sync`]).

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

/// Messages handled in one round at most: a round's replies wait for its last
/// message and its sync, so the bound keeps an acknowledgement's wait short.
pub const ROUND_JOBS: usize = 32;

/// Messages queued for the pool at most; a stream with one more waits its turn.
const QUEUED: usize = 4096;

/// Ends a round: with `true`, makes every write so far durable (the store's group
/// commit); with `false` (no handler asked for durability), only applies what the
/// store held back during the round ([`in_round`]).
pub type Syncer = Arc<dyn Fn(bool) -> Result<(), String> + Send + Sync>;

/// A message's handling; what it returns delivers the reply once the round's sync
/// has an outcome.
type Job = Box<dyn FnOnce() -> Deliver + Send>;
type Deliver = Box<dyn FnOnce(&Result<(), String>) + Send>;

thread_local! {
    /// On a pool thread inside a round: whether a handler asked for a sync.
    static ROUND: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Called where a handler would sync: inside a round, notes that the round syncs
/// before it replies and returns `true` (the caller does not sync itself);
/// elsewhere `false`.
pub fn defer_sync() -> bool {
    ROUND.with(|r| match r.get() {
        Some(_) => {
            r.set(Some(true));
            true
        }
        None => false,
    })
}

/// Whether this thread is inside a round (the pool's, or [`deferring`]'s): a store
/// may then hold writes back until the round syncs or settles
/// ([`crate::store::Store::settle`]).
pub fn in_round() -> bool {
    ROUND.with(|r| r.get().is_some())
}

/// Runs `f` with its syncs deferred: returns what it returned and whether it asked
/// for a sync, which the caller then owes before acknowledging anything `f` wrote.
/// (The ingest threads run each round so; a request that writes many records, such
/// as scans for a whole project, can too.)
pub fn deferring<T>(f: impl FnOnce() -> T) -> (T, bool) {
    let outer = ROUND.with(|r| r.replace(Some(false)));
    // Restored even if `f` panics: a thread's later work syncs as it should.
    struct Restore(Option<bool>);
    impl Drop for Restore {
        fn drop(&mut self) {
            ROUND.with(|r| r.set(self.0));
        }
    }
    let restore = Restore(outer);
    let t = f();
    let due = ROUND.with(|r| r.get()) == Some(true);
    drop(restore);
    (t, due)
}

/// Why a message got no reply.
#[derive(Debug, PartialEq, Eq)]
pub enum Failed {
    /// The round's sync failed: nothing of the round may be acknowledged.
    Sync(String),
    /// The handler panicked, or the pool is gone.
    Lost,
}

pub struct Pool {
    jobs: mpsc::Sender<Job>,
}

impl Pool {
    /// Starts `threads` threads (named `ingest-N`) that sync with `sync`.
    pub fn start(threads: usize, sync: Syncer) -> std::io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<Job>(QUEUED);
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..threads.max(1) {
            let (rx, sync) = (rx.clone(), sync.clone());
            std::thread::Builder::new()
                .name(format!("ingest-{n}"))
                .spawn(move || work(&rx, &*sync))?;
        }
        Ok(Pool { jobs: tx })
    }

    /// Threads for a machine: two per core (one handles a round while the other
    /// waits for its sync), between 2 and 16.
    pub fn threads_for_machine() -> usize {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        (cores * 2).clamp(2, 16)
    }

    /// Runs `handle` on a pool thread; its result comes back once what it wrote is
    /// durable.
    pub async fn run<T: Send + 'static>(
        &self,
        handle: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Failed> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let t = handle();
            Box::new(move |synced: &Result<(), String>| {
                let _ = tx.send(synced.clone().map(|()| t));
            })
        });
        self.jobs.send(job).await.map_err(|_| Failed::Lost)?;
        rx.await.map_err(|_| Failed::Lost)?.map_err(Failed::Sync)
    }
}

fn work(
    jobs: &Mutex<mpsc::Receiver<Job>>,
    sync: &(dyn Fn(bool) -> Result<(), String> + Send + Sync),
) {
    let mut round: Vec<Job> = Vec::with_capacity(ROUND_JOBS);
    loop {
        {
            let mut rx = jobs.lock().unwrap_or_else(|p| p.into_inner());
            match rx.blocking_recv() {
                Some(job) => round.push(job),
                None => return, // the pool is gone
            }
            while round.len() < ROUND_JOBS {
                match rx.try_recv() {
                    Ok(job) => round.push(job),
                    Err(_) => break,
                }
            }
        }
        // A handler that panics loses its own reply (its caller hears `Lost`), not
        // the round's.
        let (delivers, due) = deferring(|| {
            round
                .drain(..)
                .filter_map(|job| std::panic::catch_unwind(AssertUnwindSafe(job)).ok())
                .collect::<Vec<Deliver>>()
        });
        let synced = sync(due);
        for deliver in delivers {
            deliver(&synced);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counting() -> (Syncer, Arc<AtomicUsize>) {
        let n = Arc::new(AtomicUsize::new(0));
        let c = n.clone();
        (
            Arc::new(move |due| {
                if due {
                    c.fetch_add(1, Ordering::SeqCst);
                }
                Ok(())
            }),
            n,
        )
    }

    #[tokio::test]
    async fn a_round_syncs_once_before_any_reply_and_only_when_asked() {
        let (sync, syncs) = counting();
        let pool = Pool::start(1, sync).unwrap();
        // Asked: the reply comes after the sync.
        let seen = syncs.clone();
        let before = pool
            .run(move || {
                assert!(defer_sync());
                seen.load(Ordering::SeqCst)
            })
            .await
            .unwrap();
        assert_eq!((before, syncs.load(Ordering::SeqCst)), (0, 1));
        // Not asked: no sync.
        assert_eq!(pool.run(|| 7).await, Ok(7));
        assert_eq!(syncs.load(Ordering::SeqCst), 1);
        // Many at once share syncs: fewer syncs than messages. The worker is held by a
        // first message until the others wait behind it, so the test does not depend
        // on how the machine schedules threads.
        let pool = Arc::new(pool);
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let held = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || gate.recv().is_ok()).await }
        });
        tokio::task::yield_now().await;
        let all: Vec<_> = (0..200)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move { pool.run(move || (defer_sync(), i)).await })
            })
            .collect();
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
        open.send(()).unwrap();
        assert_eq!(held.await.unwrap(), Ok(true));
        for (i, h) in all.into_iter().enumerate() {
            assert_eq!(h.await.unwrap(), Ok((true, i)));
        }
        let n = syncs.load(Ordering::SeqCst) - 1;
        assert!((1..200).contains(&n), "{n} syncs for 200 messages");
    }

    #[tokio::test]
    async fn a_failed_sync_acknowledges_nothing_of_its_round() {
        let failing: Syncer = Arc::new(|due| match due {
            true => Err("disk full".to_string()),
            false => Ok(()),
        });
        let pool = Pool::start(1, failing).unwrap();
        assert_eq!(
            pool.run(defer_sync).await,
            Err(Failed::Sync("disk full".into()))
        );
        // A round that asked for no sync still replies.
        assert_eq!(pool.run(|| 1).await, Ok(1));
    }

    #[tokio::test]
    async fn a_panicking_handler_loses_its_reply_not_the_pool() {
        let (sync, _) = counting();
        let pool = Pool::start(1, sync).unwrap();
        let lost = pool.run(|| -> u8 { panic!("handler bug") }).await;
        assert_eq!(lost, Err(Failed::Lost));
        assert_eq!(pool.run(|| 2).await, Ok(2));
    }

    #[test]
    fn outside_a_round_nothing_is_deferred() {
        assert!(!defer_sync());
        assert!(!in_round());
        assert!(deferring(in_round).0);
        assert_eq!(deferring(|| 1), (1, false));
        assert_eq!(deferring(defer_sync), (true, true));
        // Nested: the inner round owes its own sync; the outer one owes none.
        let ((inner, inner_due), outer_due) = deferring(|| deferring(defer_sync));
        assert_eq!((inner, inner_due, outer_due), (true, true, false));
        assert!(!defer_sync(), "the thread syncs for itself again");
    }
}
