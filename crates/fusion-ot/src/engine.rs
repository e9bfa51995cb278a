//! The per-party session object: [`OtEngine`].

use cryprot_net::Connection;
use fusion_core::ring::Ring;
use rand::{CryptoRng, Rng, SeedableRng, rngs::ChaCha20Rng};

use crate::{
    acot, and, avgpool, b2a,
    bits::Bits,
    block_ot,
    channel::{CallHeader, Channel, Op},
    ctx::{Ctx, Role, fork, mask},
    drelu::{self, Window},
    error::{Error, Result, param},
    flavour::{OtFlavour, Silent},
    gilboa, maxpool, millionaires, mul, mux,
    one_of_n::{self, Layout},
    pool::{Batch, RotCount, Rots},
    relu, relu_truncate, square,
    supply::RotSupply,
    truncate, truncate_exact,
};

/// Most a size parameter of [`OtConfig`] (`chunk`, `max_rots`, `min_refill`)
/// may be: `2^26`.
pub const MAX_CONFIG_SIZE: usize = 1 << 26;

/// Session parameters; both parties must use the same (checked at setup).
/// Serialisable so that a server can announce them; [`OtConfig::validate`]
/// is the one place that says which values are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OtConfig {
    /// Millionaires' block size `m` in bits, `1..=6` (default 4, as in
    /// CrypTFlow2 and Cheetah). Leaf tables cost `2^{m+1}` bits per `m` input
    /// bits, the AND tree `6` bits per block: with free (silent) OTs, `m = 2..3`
    /// minimises bytes, `m = 4` trades a few bytes for one fewer flight.
    pub block_bits: u32,
    /// The largest batch one protocol run handles; larger inputs are processed
    /// in chunks, each costing the protocol's flights again (default `2^20`).
    pub chunk: usize,
    /// The most ROTs (per direction) one protocol run may consume; bounds the
    /// memory of a run (about 50 bytes per ROT and party, plus CryProt's
    /// buffers while generating). Batches are chunked to respect it (default
    /// `2^22`: about 150 000 ReLUs at `l = 37`, 65 000 products at `l = 64`).
    /// It also sets the size of the background generation's runs: on
    /// ResNet50 over the WAN emulator `2^22` was faster than both `2^21`
    /// (more chunks, so more flights) and `2^24` (fewer flights, but protocol
    /// calls wait for longer runs, and 2.7 GB more memory per party);
    /// BENCHMARKS.md, "Run size of the background ROT generation".
    pub max_rots: usize,
    /// Minimum number of ROTs generated per refill and direction (default
    /// `2^16`): silent OT has a fixed cost per run.
    pub min_refill: usize,
    /// Generate the two OT directions concurrently (default `false`: one after
    /// the other). CryProt's OT receivers (and IKNP senders) block a rayon
    /// worker while waiting for the network, so running both directions at
    /// once needs at least 2 rayon threads per party *in each process* (4 when
    /// both parties share a process, as in tests), or the two parties can
    /// deadlock. Turn on when each party runs in its own process with `>= 2`
    /// worker threads. Local to each party (not serialised).
    #[serde(skip)]
    pub parallel_ot: bool,
}

impl Default for OtConfig {
    fn default() -> Self {
        OtConfig {
            block_bits: 4,
            chunk: 1 << 20,
            max_rots: 1 << 22,
            min_refill: 1 << 16,
            parallel_ot: false,
        }
    }
}

impl OtConfig {
    /// Checks the parameters: `block_bits` in `1..=6`; `chunk`, `max_rots`
    /// and `min_refill` in `1..=`[`MAX_CONFIG_SIZE`].
    pub fn validate(&self) -> Result<()> {
        if !(1..=6).contains(&self.block_bits) {
            return Err(param(format!(
                "block size m = {} outside 1..=6",
                self.block_bits
            )));
        }
        for (what, v) in [
            ("chunk", self.chunk),
            ("max_rots", self.max_rots),
            ("min_refill", self.min_refill),
        ] {
            if !(1..=MAX_CONFIG_SIZE).contains(&v) {
                return Err(param(format!("{what} = {v} outside 1..=2^26")));
            }
        }
        Ok(())
    }

    fn validate_for(&self, ring: Ring) -> Result<()> {
        self.validate()?;
        if ring.bits() < 2 {
            return Err(param("the OT protocols need a ring of at least 2 bits"));
        }
        Ok(())
    }
}

/// Counters of one session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Protocol message bytes we sent (excluding OT generation, which CryProt
    /// performs on its own streams; measure it with `cryprot_net::metrics`).
    pub bytes_sent: u64,
    /// Protocol message bytes we received (same scope).
    pub bytes_received: u64,
    /// Protocol flights (simultaneous exchanges) performed, concurrent ones
    /// counted separately. OT generation runs on its own connections in the
    /// background and adds none here.
    pub flights: u64,
    /// ROTs generated with us as sender (collected into the pool).
    pub rots_as_sender: u64,
    /// ROTs generated with us as receiver (collected into the pool).
    pub rots_as_receiver: u64,
    /// Number of OT generation runs collected.
    pub refills: u64,
}

/// One party's session of the OT-based non-linear layers.
///
/// Created once per session with [`OtEngine::setup`] over a dedicated
/// connection (e.g. a `sub_connection()` of the session's connection), with a
/// [`Role`] and the ring `Z_{2^l}`. Every method is **called identically by
/// both parties** (same method, same sizes, same public parameters, in the same
/// order), each with its own shares; asymmetric building blocks (`ot_send` /
/// `ot_receive`, `acot_send` / `acot_receive`) are called as a matching pair.
/// A mismatch is detected at the call's first flight and reported as
/// [`Error::PeerMismatch`]. After any error or cancellation inside a protocol
/// run the parties' states may have diverged, and every further call returns
/// [`Error::Poisoned`]. Input validation errors ([`Error::Param`]) are raised
/// before any communication and leave the session usable; but the peer,
/// whose call did not fail, then waits until the connection fails — so
/// validate inputs consistently on both sides.
///
/// The type parameter picks the OT flavour: [`Silent`] (default) or
/// [`crate::Iknp`]; the protocol code is the same.
///
/// All values are `u64` ring elements with the bits above `l` clear (checked);
/// boolean shares are [`Bits`]. Costs below are per element, both directions
/// together, for the default `m = 4`; "flights" are simultaneous exchanges,
/// each costing one one-way network latency. Each method processes at most
/// [`OtConfig::chunk`] elements per run and repeats its flights for larger inputs.
/// Bytes for generating the ROTs (silent: well under one bit per ROT; IKNP:
/// 128 bits per ROT) come on top.
pub struct OtEngine<F: OtFlavour = Silent> {
    role: Role,
    ring: Ring,
    config: OtConfig,
    /// The protocol stream pair.
    main: Channel,
    /// A second stream pair for sub-protocols that run concurrently.
    side: Channel,
    /// The background ROT generator (owns the two OT instances).
    supply: RotSupply,
    pool: Rots,
    rng: ChaCha20Rng,
    stats: Stats,
    /// Set while a protocol run is in progress; still set if it failed.
    in_call: bool,
    _flavour: std::marker::PhantomData<F>,
}

impl<F: OtFlavour> std::fmt::Debug for OtEngine<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtEngine")
            .field("flavour", &F::NAME)
            .field("role", &self.role)
            .field("ring", &self.ring)
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl<F: OtFlavour> OtEngine<F> {
    /// Sets up a session with the default [`OtConfig`]: derives the OT
    /// sub-connections (we are OT sender in one instance and receiver in the
    /// other), checks that the peer uses the same flavour, ring and config,
    /// runs the base OTs and generates a first batch of ROTs in both
    /// directions. `rng` seeds all of the session's protocol randomness.
    pub async fn setup<R: Rng + CryptoRng + ?Sized>(
        conn: Connection,
        role: Role,
        ring: Ring,
        rng: &mut R,
    ) -> Result<Self> {
        Self::setup_with(conn, role, ring, OtConfig::default(), rng).await
    }

    /// [`OtEngine::setup`] with an explicit configuration.
    pub async fn setup_with<R: Rng + CryptoRng + ?Sized>(
        conn: Connection,
        role: Role,
        ring: Ring,
        config: OtConfig,
        rng: &mut R,
    ) -> Result<Self> {
        Self::setup_on(conn, None, role, ring, config, rng).await
    }

    /// [`OtEngine::setup_with`], metering the protocol channels' frames
    /// (messages and rounds) on `meter` (the session's; CryProt's OT
    /// generation shows up in its wire bytes either way).
    pub async fn setup_on<R: Rng + CryptoRng + ?Sized>(
        mut conn: Connection,
        meter: Option<&fusion_net::Meter>,
        role: Role,
        ring: Ring,
        config: OtConfig,
        rng: &mut R,
    ) -> Result<Self> {
        config.validate_for(ring)?;
        let mut rng = ChaCha20Rng::from_rng(rng);
        let c0 = conn.sub_connection();
        let c1 = conn.sub_connection();
        let mut proto = conn.sub_connection();
        let main = Channel::open(&mut proto, meter).await?;
        let side = Channel::open(&mut proto, meter).await?;
        let ready = Channel::open(&mut proto, meter).await?;
        let (sender, receiver) = if role.is_p0() {
            (F::sender(c0, &mut rng), F::receiver(c1, &mut rng))
        } else {
            (F::sender(c1, &mut rng), F::receiver(c0, &mut rng))
        };
        let supply = RotSupply::start::<F>(
            sender,
            receiver,
            ready,
            role,
            config.parallel_ot,
            fork(&mut rng),
        );
        let mut eng = OtEngine {
            role,
            ring,
            config,
            main,
            side,
            supply,
            pool: Rots::default(),
            rng,
            stats: Stats::default(),
            in_call: false,
            _flavour: std::marker::PhantomData,
        };
        eng.handshake().await?;
        eng.ensure(RotCount::both(config.min_refill)).await?;
        // One flight after the first batch: when it completes, the peer has
        // finished its side of the batch too (it has read all our generation
        // traffic), so both parties leave setup together and the first
        // batch's traffic is metered in the caller's setup phase.
        eng.barrier().await?;
        Ok(eng)
    }

    /// A one-byte flight on the main channel (see `setup_on`).
    async fn barrier(&mut self) -> Result<()> {
        const BARRIER: u8 = 0xb7;
        self.main
            .set_header(self.header(Op::Setup, 1, self.config.block_bits));
        let b = self.main.exchange(&[BARRIER], 1).await?;
        if b[0] != BARRIER {
            return Err(Error::Malformed {
                what: "setup barrier",
                detail: "the peer is not at the end of its OT setup",
            });
        }
        Ok(())
    }

    async fn handshake(&mut self) -> Result<()> {
        let encode = |name: &str, c: &OtConfig| {
            let mut blob = [0u8; 32];
            let n = name.len().min(8);
            blob[..n].copy_from_slice(&name.as_bytes()[..n]);
            blob[8..16].copy_from_slice(&(c.chunk as u64).to_le_bytes());
            blob[16..24].copy_from_slice(&(c.max_rots as u64).to_le_bytes());
            blob[24..32].copy_from_slice(&(c.min_refill as u64).to_le_bytes());
            blob
        };
        let blob = encode(F::NAME, &self.config);
        self.main
            .set_header(self.header(Op::Setup, 0, self.config.block_bits));
        let theirs = self.main.exchange(&blob, blob.len()).await?;
        if theirs[..] != blob[..] {
            let render = |b: &[u8]| {
                let name = String::from_utf8_lossy(&b[..8])
                    .trim_end_matches('\0')
                    .to_string();
                let word = |k: usize| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&b[k..k + 8]);
                    u64::from_le_bytes(w)
                };
                format!(
                    "flavour {name}, chunk {}, max_rots {}, min_refill {}",
                    word(8),
                    word(16),
                    word(24)
                )
            };
            return Err(Error::PeerMismatch {
                ours: render(&blob),
                theirs: render(&theirs),
            });
        }
        Ok(())
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The ring `Z_{2^l}`.
    pub fn ring(&self) -> Ring {
        self.ring
    }

    /// The session configuration.
    pub fn config(&self) -> OtConfig {
        self.config
    }

    /// The OT flavour's name (`"silent"` or `"iknp"`).
    pub fn flavour(&self) -> &'static str {
        F::NAME
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        Stats {
            bytes_sent: self.main.sent + self.side.sent,
            bytes_received: self.main.received + self.side.received,
            flights: self.main.flights + self.side.flights,
            ..self.stats
        }
    }

    /// Generates `count` ROTs in each direction ahead of use (e.g. while
    /// waiting for the other party's input) and waits until they are in the
    /// pool; later calls consume them first. Both parties call it with the
    /// same `count`. Cost: the OT flavour's generation only. To generate in the
    /// background instead, see [`OtEngine::schedule_rots`].
    pub async fn preprocess_rots(&mut self, count: usize) -> Result<()> {
        if self.in_call {
            return Err(Error::Poisoned);
        }
        self.in_call = true;
        let have = self.pool.available();
        self.ensure(RotCount::new(have.send + count, have.recv + count))
            .await?;
        self.in_call = false;
        Ok(())
    }

    /// Queues background generation so that at least `send` ROTs as sender
    /// and `recv` as receiver are in the pool or on their way, in runs of at
    /// most [`OtConfig::max_rots`] per direction, and returns at once: the
    /// runs are generated one after the other while the caller goes on (an
    /// HE layer, other protocol calls), at most two finished runs ahead of
    /// use (see the `supply` module). Protocol calls then wait only for runs
    /// that are not finished yet. The peer must call it at the same point with
    /// the mirrored counts (its `send` is our `recv`). Errors only if the
    /// session is poisoned or the generator has stopped (after a failed run;
    /// the failure itself is reported by the protocol call that waits for it).
    pub fn schedule_rots(&mut self, send: usize, recv: usize) -> Result<()> {
        if self.in_call {
            return Err(Error::Poisoned);
        }
        let g = F::GRANULARITY;
        // With the flavour's own OTs, a full run generates `max_rots`.
        let cap = (self.config.max_rots.saturating_sub(F::run_overhead()) / g).max(1) * g;
        let RotCount {
            send: mut ds,
            recv: mut dr,
        } = self.shortfall(RotCount::new(send, recv));
        while ds > 0 || dr > 0 {
            let run = RotCount::new(ds.min(cap), dr.min(cap));
            self.supply.request(run)?;
            ds -= run.send;
            dr -= run.recv;
        }
        Ok(())
    }

    /// ROTs available in the pools (as sender, as receiver).
    pub fn rots_available(&self) -> (usize, usize) {
        let a = self.pool.available();
        (a.send, a.recv)
    }

    /// ROTs (as sender, as receiver) the calls of `cost` on a batch of `n`
    /// consume, run by run as the protocol methods split the batch.
    fn rots_of(&self, n: usize, cost: impl Fn(&Ctx, usize) -> RotCount) -> (usize, usize) {
        let ctx = self.ctx();
        let total = self
            .chunks(n, cost(&ctx, 64))
            .fold(RotCount::default(), |t, (s, e)| t + cost(&ctx, e - s));
        (total.send, total.recv)
    }

    /// ROTs (as sender, as receiver) [`OtEngine::millionaires`] consumes on
    /// `n` comparisons of `bits`-bit inputs (public sizes only, so both parties
    /// can plan a [`OtEngine::preprocess_rots`]; e.g. for per-element cost
    /// measurements of the comparison on its own).
    pub fn millionaires_rots(&self, n: usize, bits: u32) -> (usize, usize) {
        let plan = millionaires::Plan::new(bits, self.config.block_bits, None);
        self.rots_of(n, |ctx, k| plan.cost(ctx, k))
    }

    /// ROTs (as sender, as receiver) [`OtEngine::relu`] consumes on `n`
    /// elements (public: both parties can plan a [`OtEngine::preprocess_rots`]).
    pub fn relu_rots(&self, n: usize) -> (usize, usize) {
        self.rots_of(n, |ctx, k| relu::cost(ctx, k, Window::full(ctx)))
    }

    /// ROTs (as sender, as receiver) [`OtEngine::relu_bounded`] with
    /// `input_bits` consumes on `n` elements (`0` if `input_bits` is out of
    /// range: the call itself then fails).
    pub fn relu_bounded_rots(&self, n: usize, input_bits: u32) -> (usize, usize) {
        match self.relu_window(input_bits) {
            Ok(win) => self.rots_of(n, |ctx, k| relu::cost(ctx, k, win)),
            Err(_) => (0, 0),
        }
    }

    /// ROTs (as sender, as receiver) [`OtEngine::relu_truncate`] by `shift`
    /// consumes on `n` elements.
    pub fn relu_truncate_rots(&self, n: usize, shift: u32) -> (usize, usize) {
        self.rots_of(n, |ctx, k| relu_truncate::cost(ctx, k, shift, None))
    }

    /// ROTs (as sender, as receiver) [`OtEngine::relu_truncate_bounded`] by
    /// `shift` on inputs of `input_bits` signed bits consumes on `n` elements.
    pub fn relu_truncate_bounded_rots(
        &self,
        n: usize,
        shift: u32,
        input_bits: u32,
    ) -> (usize, usize) {
        self.rots_of(n, |ctx, k| {
            relu_truncate::cost(ctx, k, shift, Some(input_bits))
        })
    }

    /// ROTs (as sender, as receiver) [`OtEngine::truncate`] or
    /// [`OtEngine::truncate_nonneg`] by `shift` consumes on `n` elements.
    pub fn truncate_rots(&self, n: usize, shift: u32) -> (usize, usize) {
        if shift == 0 {
            return (0, 0);
        }
        self.rots_of(n, truncate::cost)
    }

    /// ROTs (as sender, as receiver) [`OtEngine::truncate_exact`] by `shift`
    /// consumes on `n` elements.
    pub fn truncate_exact_rots(&self, n: usize, shift: u32) -> (usize, usize) {
        if shift == 0 {
            return (0, 0);
        }
        self.rots_of(n, |ctx, k| truncate_exact::cost(ctx, k, shift))
    }

    /// ROTs (as sender, as receiver) [`OtEngine::square`] consumes on `n`
    /// elements.
    pub fn square_rots(&self, n: usize) -> (usize, usize) {
        self.rots_of(n, square::cost)
    }

    /// ROTs (as sender, as receiver) [`OtEngine::max_pool`] consumes on
    /// windows of the given sizes (one ReLU batch per tournament level).
    pub fn max_pool_rots(&self, window_sizes: &[usize]) -> (usize, usize) {
        self.max_pool_bounded_rots(window_sizes, self.ring.bits() - 1)
    }

    /// ROTs (as sender, as receiver) [`OtEngine::max_pool_bounded`] with
    /// `input_bits` consumes on windows of the given sizes (`0` if
    /// `input_bits` is out of range: the call itself then fails).
    pub fn max_pool_bounded_rots(&self, window_sizes: &[usize], input_bits: u32) -> (usize, usize) {
        let Ok(win) = self.max_window(input_bits) else {
            return (0, 0);
        };
        let mut sizes = window_sizes.to_vec();
        let (mut send, mut recv) = (0, 0);
        loop {
            let pairs: usize = sizes.iter().map(|k| k / 2).sum();
            if pairs == 0 {
                return (send, recv);
            }
            let (s, r) = self.rots_of(pairs, |ctx, k| relu::cost(ctx, k, win));
            send += s;
            recv += r;
            sizes.iter_mut().for_each(|k| *k = k.div_ceil(2));
        }
    }

    /// The DReLU window of a maximum of two `input_bits`-bit signed values:
    /// their difference needs `input_bits + 1` bits.
    fn max_window(&self, input_bits: u32) -> Result<Window> {
        if input_bits == 0 || input_bits >= self.ring.bits() {
            return Err(param(format!(
                "max pool: inputs of {input_bits} signed bits (need 1 ..= {})",
                self.ring.bits() - 1
            )));
        }
        Window::new(&self.ctx(), input_bits + 1, 0)
    }

    /// The DReLU window of a ReLU of `input_bits`-bit signed values.
    fn relu_window(&self, input_bits: u32) -> Result<Window> {
        self.check_input_bits("relu", input_bits)?;
        Window::new(&self.ctx(), input_bits, 0)
    }

    /// Checks a signed input width `2 <= input_bits <= l` of `what`.
    fn check_input_bits(&self, what: &str, input_bits: u32) -> Result<()> {
        if !(2..=self.ring.bits()).contains(&input_bits) {
            return Err(param(format!(
                "{what}: inputs of {input_bits} signed bits (need 2 ..= {})",
                self.ring.bits()
            )));
        }
        Ok(())
    }

    fn ctx(&self) -> Ctx {
        Ctx {
            role: self.role,
            ring: self.ring,
            m: self.config.block_bits,
        }
    }

    fn header(&self, op: Op, n: usize, param: u32) -> CallHeader {
        CallHeader {
            op,
            ring_bits: self.ring.bits() as u8,
            block_bits: self.config.block_bits as u8,
            param,
            n: n as u64,
        }
    }

    /// Makes sure the pools hold `need` ROTs: queues a generation run for
    /// whatever the pool and the runs already queued will not cover (at least
    /// [`OtConfig::min_refill`]), then collects finished runs, in order, until
    /// the pool holds enough. Both parties reach the same decisions because
    /// their pools and queues mirror each other and the protocols' needs are
    /// computed from public sizes.
    async fn ensure(&mut self, need: RotCount) -> Result<()> {
        self.supply.request(self.shortfall(need))?;
        loop {
            let have = self.pool.available();
            if have.send >= need.send && have.recv >= need.recv {
                return Ok(());
            }
            let batch = self.supply.next().await?;
            self.collect(batch);
        }
    }

    /// What the pool and the runs already queued will not cover of `want`,
    /// per direction, rounded up to at least [`OtConfig::min_refill`] and to
    /// the flavour's granularity (0 where nothing is missing).
    fn shortfall(&self, want: RotCount) -> RotCount {
        let have = self.pool.available() + self.supply.pending();
        let (min, g) = (self.config.min_refill, F::GRANULARITY);
        let short = |want: usize, have: usize| {
            if want <= have {
                0
            } else {
                (want - have).max(min).next_multiple_of(g)
            }
        };
        RotCount::new(short(want.send, have.send), short(want.recv, have.recv))
    }

    /// Moves a finished generation run into the pool.
    fn collect(&mut self, batch: Batch) {
        let got = batch.count();
        self.pool.extend(batch);
        self.stats.rots_as_sender += got.send as u64;
        self.stats.rots_as_receiver += got.recv as u64;
        self.stats.refills += 1;
    }

    /// Starts one protocol run: ROTs, the call header on the main channel,
    /// an RNG.
    async fn begin(
        &mut self,
        op: Op,
        n: usize,
        param: u32,
        cost: RotCount,
    ) -> Result<(Rots, ChaCha20Rng)> {
        if self.in_call {
            return Err(Error::Poisoned);
        }
        self.in_call = true;
        self.ensure(cost).await?;
        let rots = self.pool.split_off(cost)?;
        self.main.set_header(self.header(op, n, param));
        Ok((rots, fork(&mut self.rng)))
    }

    fn end(&mut self, rots: &Rots) -> Result<()> {
        if rots.available() != RotCount::default() {
            return Err(Error::Internal(
                "a protocol did not use exactly the ROTs it was costed for",
            ));
        }
        self.in_call = false;
        Ok(())
    }

    fn check(&self, x: &[u64], what: &str) -> Result<()> {
        if let Some(v) = x.iter().find(|&&v| !self.ring.contains(v)) {
            return Err(param(format!(
                "{what}: {v:#x} is not an element of Z_2^{}",
                self.ring.bits()
            )));
        }
        Ok(())
    }

    /// Splits a batch of `n` into runs of at most [`OtConfig::chunk`] elements
    /// and at most [`OtConfig::max_rots`] ROTs per direction (`cost64` is the
    /// cost of 64 elements). Depends on public values only, so both parties
    /// split alike.
    fn chunks(&self, n: usize, cost64: RotCount) -> impl Iterator<Item = (usize, usize)> + use<F> {
        let per64 = cost64.send.max(cost64.recv).max(1);
        let by_rots = (self.config.max_rots.saturating_mul(64) / per64).max(1);
        let c = self.config.chunk.min(by_rots);
        (0..n.div_ceil(c)).map(move |k| (k * c, ((k + 1) * c).min(n)))
    }

    /// Millionaires' comparison: XOR shares of `1{a > b}` where the server
    /// (`P0`) passes its private `a` and the client (`P1`) its private `b`, all
    /// `< 2^bits`, `bits <= 64`. Learns: nothing beyond the output share.
    /// Cost: `2 + ceil(log2 ceil(bits/m))` flights, `bits + 2(q-1)` ROTs, about
    /// `bits·(1 + 2^{m+1}/m) + 6q` bits (CrypTFlow2 Alg. 1).
    pub async fn millionaires(&mut self, input: &[u64], bits: u32) -> Result<Bits> {
        if bits > 64 || input.iter().any(|&v| v & !mask(bits) != 0) {
            return Err(param(format!(
                "millionaires: inputs must be < 2^{bits} with bits <= 64"
            )));
        }
        let ctx = self.ctx();
        let plan = millionaires::Plan::new(bits, ctx.m, None);
        let mut out = Vec::new();
        for (s, e) in self.chunks(input.len(), plan.cost(&ctx, 64)) {
            let (mut rots, mut rng) = self
                .begin(Op::Millionaires, e - s, bits, plan.cost(&ctx, e - s))
                .await?;
            let (gt, _) = millionaires::run(
                &mut self.main,
                &ctx,
                &plan,
                input[s..e].to_vec(),
                &mut rots,
                &mut rng,
            )
            .await?;
            self.end(&rots)?;
            out.push(gt);
        }
        Ok(Bits::concat(&out.iter().collect::<Vec<_>>()))
    }

    /// DReLU: XOR shares of `1{x >= 0}` (signed), exact for every ring element.
    /// Learns: nothing beyond the output share. Cost (`l = 37`): 6 flights,
    /// 52 ROTs, 348 bits; (`l = 64`): 6 flights, 93 ROTs, 625 bits.
    pub async fn drelu(&mut self, x: &[u64]) -> Result<Bits> {
        self.check(x, "drelu")?;
        let ctx = self.ctx();
        let mut out = Vec::new();
        let win = Window::full(&ctx);
        for (s, e) in self.chunks(x.len(), drelu::cost(&ctx, 64, win)) {
            let (mut rots, mut rng) = self
                .begin(Op::Drelu, e - s, 0, drelu::cost(&ctx, e - s, win))
                .await?;
            let d = drelu::run(&mut self.main, &ctx, &x[s..e], win, &mut rots, &mut rng).await?;
            self.end(&rots)?;
            out.push(d);
        }
        Ok(Bits::concat(&out.iter().collect::<Vec<_>>()))
    }

    /// ReLU: shares of `max(x, 0)`, exact for every ring element (DReLU then
    /// multiplexer). Learns: nothing beyond the output share. Cost (`l = 37`):
    /// 7 flights, 54 ROTs, 424 bits; (`l = 64`): 7 flights, 95 ROTs, 755 bits.
    pub async fn relu(&mut self, x: &[u64]) -> Result<Vec<u64>> {
        Ok(self.relu_with_drelu(x).await?.0)
    }

    /// [`OtEngine::relu`] of inputs known to fit in `input_bits` signed bits,
    /// `[-2^{input_bits-1}, 2^{input_bits-1})`, `2 <= input_bits <= l`: the
    /// comparison reads only the `input_bits` low bits of the shares
    /// ([`crate::drelu`], narrow windows), `input_bits - 1` compared bits
    /// instead of `l - 1`; the multiplexer still selects the whole `x`.
    /// Exact on that range (`input_bits = l` is [`OtEngine::relu`], exact
    /// for every element); outside it the result is unspecified (but still
    /// learns nothing). Learns: nothing beyond the output share.
    pub async fn relu_bounded(&mut self, x: &[u64], input_bits: u32) -> Result<Vec<u64>> {
        self.check(x, "relu")?;
        let win = self.relu_window(input_bits)?;
        Ok(self.relu_in(Op::Relu, input_bits, x, win).await?.0)
    }

    /// [`OtEngine::relu`] that also returns the DReLU shares (e.g. for a
    /// backward pass or an argmax). Same cost.
    pub async fn relu_with_drelu(&mut self, x: &[u64]) -> Result<(Vec<u64>, Bits)> {
        self.check(x, "relu")?;
        let win = Window::full(&self.ctx());
        self.relu_in(Op::Relu, self.ring.bits(), x, win).await
    }

    /// ReLU with the sign read through `win`, announced as `op` with `param`.
    async fn relu_in(
        &mut self,
        op: Op,
        param: u32,
        x: &[u64],
        win: Window,
    ) -> Result<(Vec<u64>, Bits)> {
        let ctx = self.ctx();
        let mut out = Vec::with_capacity(x.len());
        let mut ds = Vec::new();
        for (s, e) in self.chunks(x.len(), relu::cost(&ctx, 64, win)) {
            let (mut rots, mut rng) = self
                .begin(op, e - s, param, relu::cost(&ctx, e - s, win))
                .await?;
            let (y, d) =
                relu::run(&mut self.main, &ctx, &x[s..e], win, &mut rots, &mut rng).await?;
            self.end(&rots)?;
            out.extend(y);
            ds.push(d);
        }
        Ok((out, Bits::concat(&ds.iter().collect::<Vec<_>>())))
    }

    /// Truncation by `shift` bits of values in `[-2^{l-2}, 2^{l-2})`
    /// (Cheetah's truncation): shares of `⌊x / 2^shift⌋` **or one less**
    /// (one-bit error). Outside the range the result is wrong by about
    /// `2^{l-shift}`. Requires `shift <= l - 2`. Learns: nothing beyond the
    /// output share. Cost: 1 flight, 1 ROT, `shift + 1` bits.
    pub async fn truncate(&mut self, x: &[u64], shift: u32) -> Result<Vec<u64>> {
        self.truncate_mode(x, shift, true).await
    }

    /// Truncation with known MSB (Cheetah §5.2) of values in `[0, 2^{l-1})`,
    /// e.g. ReLU outputs: shares of `⌊x / 2^shift⌋` or one less. Requires
    /// `shift <= l - 1`. Cost: as [`OtEngine::truncate`].
    pub async fn truncate_nonneg(&mut self, x: &[u64], shift: u32) -> Result<Vec<u64>> {
        self.truncate_mode(x, shift, false).await
    }

    async fn truncate_mode(&mut self, x: &[u64], shift: u32, offset: bool) -> Result<Vec<u64>> {
        self.check(x, "truncate")?;
        let ctx = self.ctx();
        truncate::check_shift(&ctx, shift, offset)?;
        if shift == 0 {
            return Ok(x.to_vec());
        }
        let op = if offset {
            Op::Truncate
        } else {
            Op::TruncateNonNeg
        };
        let mut out = Vec::with_capacity(x.len());
        for (s, e) in self.chunks(x.len(), truncate::cost(&ctx, 64)) {
            let (mut rots, _) = self
                .begin(op, e - s, shift, truncate::cost(&ctx, e - s))
                .await?;
            out.extend(
                truncate::run(&mut self.main, &ctx, &x[s..e], shift, offset, &mut rots).await?,
            );
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Exact truncation: shares of `⌊x / 2^shift⌋` (arithmetic shift) for
    /// every ring element, no error, `shift < l`. Learns: nothing beyond the
    /// output share. Cost (`l = 37, shift = 12`): 7 flights, one `l`-bit
    /// comparison plus 2 B2As (439 bits, 57 ROTs).
    pub async fn truncate_exact(&mut self, x: &[u64], shift: u32) -> Result<Vec<u64>> {
        self.check(x, "truncate_exact")?;
        let ctx = self.ctx();
        if shift >= self.ring.bits() {
            return Err(param(format!(
                "exact truncation needs shift < {}",
                self.ring.bits()
            )));
        }
        if shift == 0 {
            return Ok(x.to_vec());
        }
        let mut out = Vec::with_capacity(x.len());
        for (s, e) in self.chunks(x.len(), truncate_exact::cost(&ctx, 64, shift)) {
            let cost = truncate_exact::cost(&ctx, e - s, shift);
            let (mut rots, mut rng) = self.begin(Op::TruncateExact, e - s, shift, cost).await?;
            out.extend(
                truncate_exact::run(&mut self.main, &ctx, &x[s..e], shift, &mut rots, &mut rng)
                    .await?,
            );
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Fused ReLU and truncation: shares of `ReLU(x) >> shift` with the
    /// one-bit error (0 for `x < 0`; `⌊x/2^shift⌋` or one less for `x >= 0`),
    /// for every ring element except the `2^min(shift+1, l-2)` most negative
    /// ones (so for all `|x| < 2^{l-2}`), `shift <= l - 1`. The comparison
    /// skips the bits the truncation drops (see [`crate::relu_truncate`]).
    /// Learns: nothing beyond the output share. Cost: a ReLU whose DReLU
    /// compares `l - 1 - min(shift+1, l-2)` bits (the truncation runs
    /// concurrently), plus 1 ROT and `shift + 1` bits.
    pub async fn relu_truncate(&mut self, x: &[u64], shift: u32) -> Result<Vec<u64>> {
        self.relu_truncate_in(x, shift, None).await
    }

    /// [`OtEngine::relu_truncate`] of inputs known to fit in `input_bits`
    /// signed bits, `[-2^{input_bits-1}, 2^{input_bits-1})`, `2 <= input_bits
    /// <= l` (at `l` the contract of [`OtEngine::relu_truncate`], which leaves
    /// out the most negative elements, applies): each party reduces its
    /// shares to `Z_{2^w}`, `w = input_bits + 1`, and the comparison,
    /// truncation and multiplexer run there (see [`crate::relu_truncate`]);
    /// the output, in `Z_{2^l}`, has the same
    /// one-bit error contract as [`OtEngine::relu_truncate`] on that range
    /// (outside it the result is unspecified, but still learns nothing).
    /// Where `Z_{2^w}` would not be narrower (`w >= l`) or too narrow for the
    /// shift (`w < shift + 3`, or `shift < 3`), this is
    /// [`OtEngine::relu_truncate`]. Learns: nothing beyond the output share.
    /// Cost: as [`OtEngine::relu_truncate`] in `Z_{2^w}`, with an extension
    /// to `Z_{2^l}` of `l - w + shift` bits.
    pub async fn relu_truncate_bounded(
        &mut self,
        x: &[u64],
        shift: u32,
        input_bits: u32,
    ) -> Result<Vec<u64>> {
        self.check_input_bits("relu_truncate", input_bits)?;
        self.relu_truncate_in(x, shift, Some(input_bits)).await
    }

    async fn relu_truncate_in(
        &mut self,
        x: &[u64],
        shift: u32,
        input_bits: Option<u32>,
    ) -> Result<Vec<u64>> {
        self.check(x, "relu_truncate")?;
        let ctx = self.ctx();
        truncate::check_shift(&ctx, shift, false)?;
        // The header names the working ring too, so both parties agree on it.
        let param = match relu_truncate::work_bits(&ctx, shift, input_bits) {
            Some(w) => shift | (w << 8),
            None => shift,
        };
        let mut out = Vec::with_capacity(x.len());
        for (s, e) in self.chunks(x.len(), relu_truncate::cost(&ctx, 64, shift, input_bits)) {
            let n = e - s;
            let (mut rots, mut rng) = self
                .begin(
                    Op::ReluTruncate,
                    n,
                    param,
                    relu_truncate::cost(&ctx, n, shift, input_bits),
                )
                .await?;
            self.side
                .set_header(self.header(Op::TruncateNonNeg, n, shift));
            out.extend(
                relu_truncate::run(
                    &mut self.main,
                    &mut self.side,
                    &ctx,
                    &x[s..e],
                    shift,
                    input_bits,
                    &mut rots,
                    &mut rng,
                )
                .await?,
            );
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Elementwise maximum of two shared vectors, `b + ReLU(a - b)`; exact for
    /// inputs in `[-2^{l-2}, 2^{l-2})`. Cost: one ReLU per element.
    pub async fn max(&mut self, a: &[u64], b: &[u64]) -> Result<Vec<u64>> {
        self.max_bounded(a, b, self.ring.bits() - 1).await
    }

    /// [`OtEngine::max`] of inputs known to fit in `input_bits` signed bits,
    /// `[-2^{input_bits-1}, 2^{input_bits-1})`, `1 <= input_bits <= l - 1`:
    /// the comparison reads only the `input_bits + 1` low bits of the shares
    /// of `a - b` ([`crate::drelu`], narrow windows), `input_bits` compared
    /// bits instead of `l - 1`. Exact on that range; outside it the result is
    /// unspecified (but still learns nothing). Cost: one such ReLU per element.
    pub async fn max_bounded(&mut self, a: &[u64], b: &[u64], input_bits: u32) -> Result<Vec<u64>> {
        if a.len() != b.len() {
            return Err(param("max: vectors of different lengths"));
        }
        self.check(a, "max")?;
        self.check(b, "max")?;
        let win = self.max_window(input_bits)?;
        let ring = self.ring;
        let d: Vec<u64> = a.iter().zip(b).map(|(&x, &y)| ring.sub(x, y)).collect();
        let (r, _) = self.relu_in(Op::MaxLevel, input_bits, &d, win).await?;
        Ok(b.iter().zip(&r).map(|(&y, &v)| ring.add(y, v)).collect())
    }

    /// Max pooling: the maximum of `x` over each window (a list of indices;
    /// windows may differ in size and overlap). A tournament of pairwise
    /// maxima; every level is one batched ReLU over all windows, so a window of
    /// `k` costs `ceil(log2 k)` ReLU rounds and `k - 1` ReLUs. Exact for inputs
    /// in `[-2^{l-2}, 2^{l-2})`. Learns: nothing beyond the output shares.
    pub async fn max_pool(&mut self, x: &[u64], windows: &[Vec<usize>]) -> Result<Vec<u64>> {
        self.max_pool_bounded(x, windows, self.ring.bits() - 1)
            .await
    }

    /// [`OtEngine::max_pool`] of inputs known to fit in `input_bits` signed
    /// bits (see [`OtEngine::max_bounded`]): each comparison reads
    /// `input_bits` bits instead of `l - 1`. `input_bits = l - 1` is
    /// [`OtEngine::max_pool`]. Exact on that range.
    pub async fn max_pool_bounded(
        &mut self,
        x: &[u64],
        windows: &[Vec<usize>],
        input_bits: u32,
    ) -> Result<Vec<u64>> {
        self.check(x, "max_pool")?;
        self.max_window(input_bits)?;
        let mut cands = maxpool::gather(x, windows)?;
        while cands.iter().any(|c| c.len() > 1) {
            let (a, b) = maxpool::pairs(&cands);
            let m = self.max_bounded(&a, &b, input_bits).await?;
            maxpool::merge(&mut cands, &m);
        }
        Ok(cands
            .into_iter()
            .map(|c| c.first().copied().unwrap_or(0))
            .collect())
    }

    /// Elementwise product `x·y` of two shared vectors (Beaver triples from
    /// OT, generated in the same flight). Exact; the product of two values at
    /// scale `f` has scale `2f` and normally needs a truncation by `f`
    /// afterwards. Learns: nothing beyond the output share. Cost: 1 flight,
    /// `2l` ROTs, `l(l+1) + 4l` bits (`l = 37`: 1554 bits).
    pub async fn mul(&mut self, x: &[u64], y: &[u64]) -> Result<Vec<u64>> {
        if x.len() != y.len() {
            return Err(param("mul: vectors of different lengths"));
        }
        self.check(x, "mul")?;
        self.check(y, "mul")?;
        let ctx = self.ctx();
        let mut out = Vec::with_capacity(x.len());
        for (s, e) in self.chunks(x.len(), mul::cost(&ctx, 64)) {
            let (mut rots, mut rng) = self
                .begin(Op::Mul, e - s, 0, mul::cost(&ctx, e - s))
                .await?;
            out.extend(
                mul::run(
                    &mut self.main,
                    &ctx,
                    &x[s..e],
                    &y[s..e],
                    &mut rots,
                    &mut rng,
                )
                .await?,
            );
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Elementwise square `x²` (square activation). Exact; scale doubles as
    /// for [`OtEngine::mul`]. Learns: nothing beyond the output share. Cost:
    /// 1 flight, `l - 1` ROTs, `l(l-1)/2 + 2l` bits (`l = 37`: 740 bits).
    pub async fn square(&mut self, x: &[u64]) -> Result<Vec<u64>> {
        self.check(x, "square")?;
        let ctx = self.ctx();
        let mut out = Vec::with_capacity(x.len());
        for (s, e) in self.chunks(x.len(), square::cost(&ctx, 64)) {
            let (mut rots, mut rng) = self
                .begin(Op::Square, e - s, 0, square::cost(&ctx, e - s))
                .await?;
            out.extend(square::run(&mut self.main, &ctx, &x[s..e], &mut rots, &mut rng).await?);
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Division by a public positive integer: by a power of two `2^s`, a
    /// truncation by `s` (result `⌊x/d⌋` or one less); otherwise local
    /// multiplication by `c = round(2^shift / d)` and truncation by `shift`
    /// (result within `|x|/2^{shift+1} + 2` of `x/d`). Range: `|x·c| < 2^{l-2}`.
    /// Cost: one truncation.
    pub async fn div_public(&mut self, x: &[u64], divisor: u64, shift: u32) -> Result<Vec<u64>> {
        self.check(x, "div_public")?;
        let (c, s) = avgpool::divisor_plan(divisor, shift)?;
        let ring = self.ring;
        let scaled: Vec<u64> = x.iter().map(|&v| ring.mul(v, c)).collect();
        self.truncate(&scaled, s).await
    }

    /// Average pooling: window sums (local) divided by the window size with
    /// [`OtEngine::div_public`] (`shift` extra bits for non-power-of-two
    /// windows). Windows must be non-empty and of equal size.
    pub async fn avg_pool(
        &mut self,
        x: &[u64],
        windows: &[Vec<usize>],
        shift: u32,
    ) -> Result<Vec<u64>> {
        self.check(x, "avg_pool")?;
        let k = windows.first().map_or(1, Vec::len);
        if windows.iter().any(|w| w.len() != k) {
            return Err(param("avg_pool: windows of different sizes"));
        }
        let sums = avgpool::window_sums(self.ring, x, windows)?;
        self.div_public(&sums, k as u64, shift).await
    }

    /// Boolean to arithmetic: shares in `Z_{2^l}` of XOR-shared bits. Learns:
    /// nothing beyond the output share. Cost: 1 flight, 1 ROT, `l + 2` bits.
    pub async fn b2a(&mut self, b: &Bits) -> Result<Vec<u64>> {
        let ctx = self.ctx();
        let mut out = Vec::with_capacity(b.len());
        for (s, e) in self.chunks(b.len(), b2a::cost(&ctx, 64)) {
            let (mut rots, mut rng) = self
                .begin(Op::B2a, e - s, 0, b2a::cost(&ctx, e - s))
                .await?;
            out.extend(b2a::run(&mut self.main, &ctx, &b.slice(s, e), &mut rots, &mut rng).await?);
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Multiplexer: shares of `b·x` for XOR-shared bits `b` and shared `x`.
    /// Learns: nothing beyond the output share. Cost: 1 flight, 2 ROTs,
    /// `2(l + 1)` bits.
    pub async fn mux(&mut self, b: &Bits, x: &[u64]) -> Result<Vec<u64>> {
        if b.len() != x.len() {
            return Err(param("mux: bits and values of different lengths"));
        }
        self.check(x, "mux")?;
        let ctx = self.ctx();
        let mut out = Vec::with_capacity(x.len());
        for (s, e) in self.chunks(x.len(), mux::cost(64)) {
            let (mut rots, _) = self.begin(Op::Mux, e - s, 0, mux::cost(e - s)).await?;
            out.extend(mux::run(&mut self.main, &ctx, &b.slice(s, e), &x[s..e], &mut rots).await?);
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// AND of XOR-shared bits (Beaver bit triples from 2 ROTs). Learns:
    /// nothing beyond the output share. Cost: 1 flight, 2 ROTs, 4 bits.
    pub async fn and(&mut self, x: &Bits, y: &Bits) -> Result<Bits> {
        if x.len() != y.len() {
            return Err(param("and: bit vectors of different lengths"));
        }
        let ctx = self.ctx();
        let mut out = Vec::new();
        for (s, e) in self.chunks(x.len(), and::cost(64)) {
            let (mut rots, _) = self.begin(Op::And, e - s, 0, and::cost(e - s)).await?;
            out.push(
                and::run(
                    &mut self.main,
                    &ctx,
                    &x.slice(s, e),
                    &y.slice(s, e),
                    &mut rots,
                )
                .await?,
            );
            self.end(&rots)?;
        }
        Ok(Bits::concat(&out.iter().collect::<Vec<_>>()))
    }

    /// Chosen-message 1-out-of-2 OT, sender side (the peer calls
    /// [`OtEngine::ot_receive`]): transfers `msgs[i][c_i]` of `bits <= 64` bits.
    /// The receiver learns only its chosen messages, the sender nothing.
    /// Cost: 2 flights, 1 ROT, `1 + 2·bits` bits.
    pub async fn ot_send(&mut self, msgs: &[[u64; 2]], bits: u32) -> Result<()> {
        let flat: Vec<u64> = msgs.iter().flat_map(|m| m.iter().copied()).collect();
        self.ot_1_of_n_send(1, bits, &flat).await
    }

    /// Chosen-message 1-out-of-2 OT, receiver side: `msgs[i][choices[i]]`.
    pub async fn ot_receive(&mut self, choices: &Bits, bits: u32) -> Result<Vec<u64>> {
        let idx: Vec<u64> = (0..choices.len())
            .map(|i| u64::from(choices.get(i)))
            .collect();
        self.ot_1_of_n_receive(1, bits, &idx).await
    }

    /// Chosen-message 1-out-of-2 OT of 128-bit blocks, sender side (the peer
    /// calls [`OtEngine::ot_receive_blocks`]): transfers `msgs[i][c_i]`, e.g.
    /// garbled-circuit wire labels ([`crate::block_ot`]). The receiver learns
    /// only its chosen blocks, the sender nothing. Cost: 2 flights, 1 ROT,
    /// `1 + 256` bits per transfer.
    pub async fn ot_send_blocks(&mut self, msgs: &[[u128; 2]]) -> Result<()> {
        for (s, e) in self.chunks(msgs.len(), RotCount::both(64)) {
            let cost = RotCount::new(e - s, 0);
            let (mut rots, _) = self.begin(Op::BlockOt, e - s, 128, cost).await?;
            let srots = rots.take_send(e - s)?;
            block_ot::send(&mut self.main, msgs[s..e].to_vec(), srots).await?;
            self.end(&rots)?;
        }
        Ok(())
    }

    /// Chosen-message 1-out-of-2 OT of 128-bit blocks, receiver side:
    /// `msgs[i][choices[i]]`.
    pub async fn ot_receive_blocks(&mut self, choices: &Bits) -> Result<Vec<u128>> {
        let mut out = Vec::with_capacity(choices.len());
        for (s, e) in self.chunks(choices.len(), RotCount::both(64)) {
            let cost = RotCount::new(0, e - s);
            let (mut rots, _) = self.begin(Op::BlockOt, e - s, 128, cost).await?;
            let rrots = rots.take_recv(e - s)?;
            out.extend(block_ot::receive(&mut self.main, choices.slice(s, e), rrots).await?);
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// 1-out-of-`2^m` OT of `bits`-bit messages (`m <= 8`, `bits <= 64`),
    /// sender side: `msgs` holds `2^m` messages per instance. Built from `m`
    /// ROTs per instance ([`crate::one_of_n`]). The receiver learns only its
    /// chosen message, the sender nothing. Cost: 2 flights, `m` ROTs,
    /// `m + 2^m·bits` bits.
    pub async fn ot_1_of_n_send(&mut self, m: u32, bits: u32, msgs: &[u64]) -> Result<()> {
        let layout = Layout::new(m, bits)?;
        if !msgs.len().is_multiple_of(layout.n) {
            return Err(param(
                "ot_1_of_n_send: message count is not a multiple of 2^m",
            ));
        }
        let n = msgs.len() / layout.n;
        for (s, e) in self.chunks(n, RotCount::both(64 * m as usize)) {
            let cost = RotCount::new((e - s) * m as usize, 0);
            let (mut rots, _) = self.begin(Op::OneOfN, e - s, m << 8 | bits, cost).await?;
            let srots = rots.take_send((e - s) * m as usize)?;
            one_of_n::send(
                &mut self.main,
                layout.clone(),
                msgs[s * layout.n..e * layout.n].to_vec(),
                srots,
            )
            .await?;
            self.end(&rots)?;
        }
        Ok(())
    }

    /// 1-out-of-`2^m` OT, receiver side: message `indices[i]` of instance `i`.
    pub async fn ot_1_of_n_receive(
        &mut self,
        m: u32,
        bits: u32,
        indices: &[u64],
    ) -> Result<Vec<u64>> {
        let layout = Layout::new(m, bits)?;
        let mut out = Vec::with_capacity(indices.len());
        for (s, e) in self.chunks(indices.len(), RotCount::both(64 * m as usize)) {
            let cost = RotCount::new(0, (e - s) * m as usize);
            let (mut rots, _) = self.begin(Op::OneOfN, e - s, m << 8 | bits, cost).await?;
            let rrots = rots.take_recv((e - s) * m as usize)?;
            out.extend(
                one_of_n::receive(
                    &mut self.main,
                    layout.clone(),
                    indices[s..e].to_vec(),
                    rrots,
                )
                .await?,
            );
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Arithmetic correlated OT over `Z_{2^l}`, sender side (the peer calls
    /// [`OtEngine::acot_receive`]): returns uniformly random `r_i`; the
    /// receiver gets `r_i + b_i·x_i`. Cost: 2 flights, 1 ROT, `1 + l` bits.
    pub async fn acot_send(&mut self, x: &[u64]) -> Result<Vec<u64>> {
        self.check(x, "acot_send")?;
        let l = self.ring.bits();
        let mut out = Vec::with_capacity(x.len());
        for (s, e) in self.chunks(x.len(), RotCount::both(64)) {
            let cost = RotCount::new(e - s, 0);
            let (mut rots, _) = self.begin(Op::Acot, e - s, l, cost).await?;
            let srots = rots.take_send(e - s)?;
            out.extend(acot::send(&mut self.main, x[s..e].to_vec(), l, srots).await?);
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Arithmetic correlated OT, receiver side: `r_i + b_i·x_i`.
    pub async fn acot_receive(&mut self, b: &Bits) -> Result<Vec<u64>> {
        let l = self.ring.bits();
        let mut out = Vec::with_capacity(b.len());
        for (s, e) in self.chunks(b.len(), RotCount::both(64)) {
            let cost = RotCount::new(0, e - s);
            let (mut rots, _) = self.begin(Op::Acot, e - s, l, cost).await?;
            let rrots = rots.take_recv(e - s)?;
            out.extend(acot::receive(&mut self.main, b.slice(s, e), l, rrots).await?);
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Gilboa's OT multiplication, sender side (the peer calls
    /// [`OtEngine::gilboa_receive`] with as many values): returns uniformly
    /// random `u_i`; the receiver gets `v_i` with `u_i + v_i = a_i·b_i` in
    /// `Z_{2^l}`, exactly ([`crate::gilboa`]; ABY's OT-generated
    /// multiplication triples). Cost per product: 2 flights, `l` ROTs,
    /// `l + l(l+1)/2` bits.
    pub async fn gilboa_send(&mut self, a: &[u64]) -> Result<Vec<u64>> {
        self.check(a, "gilboa_send")?;
        let l = self.ring.bits();
        let lu = l as usize;
        let mut out = Vec::with_capacity(a.len());
        for (s, e) in self.chunks(a.len(), RotCount::both(64 * lu)) {
            let cost = RotCount::new((e - s) * lu, 0);
            let (mut rots, _) = self.begin(Op::Gilboa, e - s, l, cost).await?;
            let srots = rots.take_send((e - s) * lu)?;
            out.extend(gilboa::send(&mut self.main, a[s..e].to_vec(), l, srots).await?);
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Gilboa's OT multiplication, receiver side: `v_i = a_i·b_i − u_i`.
    pub async fn gilboa_receive(&mut self, b: &[u64]) -> Result<Vec<u64>> {
        self.check(b, "gilboa_receive")?;
        let l = self.ring.bits();
        let lu = l as usize;
        let mut out = Vec::with_capacity(b.len());
        for (s, e) in self.chunks(b.len(), RotCount::both(64 * lu)) {
            let cost = RotCount::new(0, (e - s) * lu);
            let (mut rots, _) = self.begin(Op::Gilboa, e - s, l, cost).await?;
            let rrots = rots.take_recv((e - s) * lu)?;
            out.extend(gilboa::receive(&mut self.main, b[s..e].to_vec(), l, rrots).await?);
            self.end(&rots)?;
        }
        Ok(out)
    }
}
