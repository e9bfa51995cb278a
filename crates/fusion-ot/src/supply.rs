//! Background ROT generation: [`RotSupply`].
//!
//! **What it computes.** Random OTs (ROTs) in both directions, exactly as the
//! OT flavour ([`crate::flavour`]) produces them, but in a task of their own,
//! *ahead of use*: the engine queues generation runs of public sizes, the task
//! runs them one after the other on the flavour's own sub-connections, and the
//! engine collects the finished batches, in order, when a protocol needs them.
//! While a run is generated the engine is free to do anything else: compute
//! and exchange protocol messages, or let the caller run an HE layer. That
//! overlaps silent-OT expansion (CPU) and its flights (latency) with the rest
//! of the session, the "precompute input-independent OT expansion while HE
//! runs" of the performance issue.
//!
//! **How the two parties stay paired.** Each party is the sender of one OT
//! instance (`A`: `P0` sends) and the receiver of the other (`B`: `P1` sends).
//! A run of `(s, r)` ROTs (our send and receive counts; the peer's run is
//! `(r, s)`) generates instance `A` first, then instance `B`, on both sides
//! (both at once with [`crate::OtConfig::parallel_ot`]). Both parties queue the same
//! runs in the same order, because what they queue is computed from public
//! sizes and from pools that mirror each other, so run `k` of one party meets
//! run `k` of the other on each instance's connection. No barrier on the
//! protocol channel is needed: each instance has its own connection, and
//! fusion-net's flow-control sizing keeps one stream from starving another.
//!
//! **Both sides start a run together.** Before each run the two generator
//! tasks exchange the run's sizes (16 bytes each way, checked against the
//! mirror of their own) on a channel of their own (a background flight, off
//! the protocols' critical path) and only then enter CryProt. CryProt
//! blocks a rayon worker while it waits for the peer; without this
//! handshake a party could enter run `k` long before its peer has even
//! queued it, and hold a worker all that time. When both parties share a
//! rayon pool (one process, as in tests), or several sessions share a
//! server's, such held workers can starve the very computation (HE layers)
//! the peer must finish before it queues run `k`: a deadlock. With the
//! handshake every worker CryProt holds belongs to a run both sides are in.
//!
//! **What each party learns.** Nothing beyond what the flavour's generation
//! reveals (nothing, in the semi-honest model): the same messages are sent, only
//! earlier. The run sizes are public.
//!
//! **Memory.** The task generates a run only when the queue of finished
//! batches has room ([`AHEAD`] batches), so at most `AHEAD` finished batches
//! wait outside the engine's pool. Batches are wiped when dropped.
//!
//! **Threads.** CryProt blocks a rayon worker while one of its instances
//! waits for the network. The task runs at most one instance at a time (two
//! with `parallel_ot`), so a party needs one rayon worker for generation and,
//! for protocol computation to overlap with it, a second one. Generation never
//! waits for protocol computation, so fewer workers slow a session down but
//! cannot deadlock it, as long as each party has one (two per party with
//! `parallel_ot`; both parties' counts when they share a process).

use rand::rngs::ChaCha20Rng;
use tokio::{sync::mpsc, task::JoinHandle};

use crate::{
    channel::Channel,
    ctx::Role,
    error::{Error, Result},
    flavour::OtFlavour,
    pool::{Batch, RotCount},
};

/// Finished batches that may wait for the engine (beyond its pool).
pub(crate) const AHEAD: usize = 2;

/// One party's background ROT generator.
pub(crate) struct RotSupply {
    runs: mpsc::UnboundedSender<RotCount>,
    batches: mpsc::Receiver<Result<Batch>>,
    /// ROTs queued and not yet collected, per direction.
    pending: RotCount,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for RotSupply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotSupply")
            .field("pending", &self.pending)
            .finish_non_exhaustive()
    }
}

impl Drop for RotSupply {
    fn drop(&mut self) {
        // Stops a run in progress too; its buffers are dropped with the task.
        self.task.abort();
    }
}

impl RotSupply {
    /// Starts the generator task for `role`, owning the two OT instances.
    /// `rng` supplies the receiver's choices where the flavour lets us choose.
    /// Must be called inside a tokio runtime.
    pub(crate) fn start<F: OtFlavour>(
        sender: F::Sender,
        receiver: F::Receiver,
        ready: Channel,
        role: Role,
        parallel: bool,
        rng: ChaCha20Rng,
    ) -> Self {
        let (runs_tx, runs_rx) = mpsc::unbounded_channel();
        let (out_tx, out_rx) = mpsc::channel(AHEAD);
        let task = tokio::spawn(generate::<F>(
            sender, receiver, ready, role, parallel, rng, runs_rx, out_tx,
        ));
        RotSupply {
            runs: runs_tx,
            batches: out_rx,
            pending: RotCount::default(),
            task,
        }
    }

    /// ROTs queued and not yet collected (as sender, as receiver).
    pub(crate) fn pending(&self) -> RotCount {
        self.pending
    }

    /// Queues a run of `count` ROTs (our send and receive counts). Both
    /// parties must queue the same runs in the same order (mirrored counts).
    pub(crate) fn request(&mut self, count: RotCount) -> Result<()> {
        if count == RotCount::default() {
            return Ok(());
        }
        self.runs.send(count).map_err(|_| stopped())?;
        self.pending = self.pending + count;
        Ok(())
    }

    /// The next finished batch, in queue order; waits for it. Errors if
    /// nothing is queued, or with the generation's error.
    pub(crate) async fn next(&mut self) -> Result<Batch> {
        if self.pending == RotCount::default() {
            return Err(Error::Internal("collecting ROTs that were never queued"));
        }
        let batch = self.batches.recv().await.ok_or_else(stopped)??;
        let got = batch.count();
        if got.send > self.pending.send || got.recv > self.pending.recv {
            return Err(Error::Internal(
                "a generation run returned more ROTs than queued",
            ));
        }
        self.pending = RotCount::new(self.pending.send - got.send, self.pending.recv - got.recv);
        Ok(batch)
    }
}

fn stopped() -> Error {
    Error::Internal("the ROT generator stopped")
}

/// The generator task: runs the queued runs in order while the output queue has
/// room; stops at the first error (after reporting it) or when the engine is
/// gone.
#[allow(clippy::too_many_arguments)]
async fn generate<F: OtFlavour>(
    mut sender: F::Sender,
    mut receiver: F::Receiver,
    mut ready: Channel,
    role: Role,
    parallel: bool,
    mut rng: ChaCha20Rng,
    mut runs: mpsc::UnboundedReceiver<RotCount>,
    out: mpsc::Sender<Result<Batch>>,
) {
    while let Some(count) = runs.recv().await {
        // Wait for room first, so that at most `AHEAD` batches are finished
        // and waiting.
        let Ok(slot) = out.reserve().await else {
            return;
        };
        let result = match handshake(&mut ready, count).await {
            Ok(()) => run::<F>(&mut sender, &mut receiver, role, parallel, count, &mut rng).await,
            Err(e) => Err(e),
        };
        let failed = result.is_err();
        slot.send(result);
        if failed {
            return;
        }
    }
}

/// The flight before a run: both sides are about to generate it (each sends
/// the run's sizes, our send count first, and checks the peer's mirror).
async fn handshake(ch: &mut Channel, count: RotCount) -> Result<()> {
    let word = |a: usize, b: usize| {
        let mut w = [0u8; 16];
        w[..8].copy_from_slice(&(a as u64).to_le_bytes());
        w[8..].copy_from_slice(&(b as u64).to_le_bytes());
        w
    };
    let theirs = ch.exchange(&word(count.send, count.recv), 16).await?;
    if theirs[..] != word(count.recv, count.send)[..] {
        return Err(Error::Malformed {
            what: "ROT generation run",
            detail: "the peer is about to generate a run of other sizes",
        });
    }
    Ok(())
}

/// One run: instance `A` (`P0` sends) then instance `B`, or both at once.
async fn run<F: OtFlavour>(
    sender: &mut F::Sender,
    receiver: &mut F::Receiver,
    role: Role,
    parallel: bool,
    count: RotCount,
    rng: &mut ChaCha20Rng,
) -> Result<Batch> {
    let (ns, nr) = (count.send, count.recv);
    let send = async move {
        if ns > 0 {
            F::send(sender, ns).await
        } else {
            Ok(Vec::new())
        }
    };
    let recv = async move {
        if nr > 0 {
            F::receive(receiver, nr, rng).await
        } else {
            Ok((Vec::new(), Vec::new()))
        }
    };
    let (send, (recv, choices)) = if parallel {
        tokio::try_join!(send, recv)?
    } else if role.is_p0() {
        let s = send.await?;
        (s, recv.await?)
    } else {
        let r = recv.await?;
        (send.await?, r)
    };
    Ok(Batch {
        send,
        recv,
        choices,
    })
}
