//! The per-party session object of the prime-field path: [`FieldOtEngine`].
//!
//! CrypTFlow2's SCI_HE non-linear layers on additive shares in `Z_p`, over
//! IKNP random OT ([`crate::Iknp`]) and KK13 1-of-`N` OT extension
//! ([`crate::kk13`]); no silent OT anywhere. Separate from [`crate::OtEngine`]
//! (the ring path is untouched): its own channels, OT instances and pools.

use cryprot_net::Connection;
use fusion_core::field::PrimeField;
use rand::{CryptoRng, Rng, SeedableRng, rngs::ChaCha20Rng};

use crate::{
    bits::Bits,
    channel::{CallHeader, Channel, Op},
    ctx::{FieldCtx, Role, fork},
    error::{Error, Result, param},
    field_drelu, field_millionaires, field_mux, field_relu, field_relu_truncate, field_truncate,
    flavour::{Iknp, OtFlavour},
    kk13::{self, Kk13Receiver, Kk13Sender, Table},
    maxpool,
    pool::{Batch, RotCount, Rots},
};

/// Session parameters of the field path; both parties must use the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldOtConfig {
    /// Millionaires' block size `m` in bits, `1..=8` (default 4, as SCI).
    pub block_bits: u32,
    /// Largest batch per protocol run (default `2^16`); larger inputs run in
    /// chunks, each repeating the flights.
    pub chunk: usize,
    /// Minimum number of IKNP ROTs generated per refill and direction
    /// (default `2^14`).
    pub min_refill: usize,
}

impl Default for FieldOtConfig {
    fn default() -> Self {
        FieldOtConfig {
            block_bits: 4,
            chunk: 1 << 16,
            min_refill: 1 << 14,
        }
    }
}

/// Counters of one field session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldStats {
    /// Protocol bytes we sent (frames and call headers included; KK13
    /// extension matrices and tables are protocol messages and counted here;
    /// IKNP generation runs on CryProt's own streams and is not).
    pub bytes_sent: u64,
    /// Protocol bytes we received (same scope).
    pub bytes_received: u64,
    /// Protocol flights, excluding the one-byte fences around IKNP
    /// generation (whose bytes are excluded from the byte counts too).
    pub flights: u64,
    /// IKNP ROTs generated with us as sender.
    pub rots_as_sender: u64,
    /// IKNP ROTs generated with us as receiver.
    pub rots_as_receiver: u64,
    /// IKNP ROTs consumed by protocol calls (per direction; KK13 base OTs
    /// included).
    pub rots_used: u64,
}

/// One party's session of the prime-field non-linear layers.
///
/// Both parties call the same methods in the same order with their own
/// shares (canonical elements `< p`, checked), as with [`crate::OtEngine`];
/// a mismatch is reported as [`Error::PeerMismatch`], and after a failed or
/// cancelled call the session returns [`Error::Poisoned`].
pub struct FieldOtEngine {
    role: Role,
    field: PrimeField,
    config: FieldOtConfig,
    main: Channel,
    sender: <Iknp as OtFlavour>::Sender,
    receiver: <Iknp as OtFlavour>::Receiver,
    pool: Rots,
    kk_send: Kk13Sender,
    kk_recv: Kk13Receiver,
    rng: ChaCha20Rng,
    stats: FieldStats,
    /// Fence flights around IKNP generation and their bytes (both directions).
    fences: (u64, u64),
    in_call: bool,
}

impl std::fmt::Debug for FieldOtEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldOtEngine")
            .field("role", &self.role)
            .field("field", &self.field)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl FieldOtEngine {
    /// Sets up a session over `conn`: IKNP in both directions (128
    /// Chou–Orlandi base OTs each), then the KK13 base OTs (256 IKNP ROTs per
    /// direction). `rng` seeds all of the session's randomness.
    pub async fn setup<R: Rng + CryptoRng + ?Sized>(
        conn: Connection,
        role: Role,
        field: PrimeField,
        config: FieldOtConfig,
        rng: &mut R,
    ) -> Result<Self> {
        Self::setup_on(conn, None, role, field, config, rng).await
    }

    /// [`FieldOtEngine::setup`], metering the protocol frames on `meter`.
    pub async fn setup_on<R: Rng + CryptoRng + ?Sized>(
        mut conn: Connection,
        meter: Option<&fusion_net::Meter>,
        role: Role,
        field: PrimeField,
        config: FieldOtConfig,
        rng: &mut R,
    ) -> Result<Self> {
        if !(1..=8).contains(&config.block_bits)
            || !(1..=1 << 26).contains(&config.chunk)
            || !(1..=1 << 26).contains(&config.min_refill)
        {
            return Err(param(format!("invalid field OT configuration {config:?}")));
        }
        let mut rng = ChaCha20Rng::from_rng(rng);
        let c0 = conn.sub_connection();
        let c1 = conn.sub_connection();
        let mut proto = conn.sub_connection();
        let main = Channel::open(&mut proto, meter).await?;
        let (sender, receiver) = if role.is_p0() {
            (Iknp::sender(c0, &mut rng), Iknp::receiver(c1, &mut rng))
        } else {
            (Iknp::sender(c1, &mut rng), Iknp::receiver(c0, &mut rng))
        };
        let mut main = main;
        let blob = [
            field.modulus().to_le_bytes(),
            (config.chunk as u64).to_le_bytes(),
            (config.min_refill as u64).to_le_bytes(),
        ]
        .concat();
        main.set_header(CallHeader {
            op: Op::FieldSetup,
            ring_bits: field.bits() as u8,
            block_bits: config.block_bits as u8,
            param: 0,
            n: 0,
        });
        let theirs = main.exchange(&blob, blob.len()).await?;
        if theirs != blob {
            return Err(Error::PeerMismatch {
                ours: format!("field setup {blob:02x?}"),
                theirs: format!("field setup {theirs:02x?}"),
            });
        }
        let mut pool = Rots::default();
        let mut stats = FieldStats::default();
        let mut fences = (0, 0);
        let mut sender = sender;
        let mut receiver = receiver;
        let need = RotCount::both(kk13::CODE_BITS + config.min_refill);
        Self::refill(
            role,
            &config,
            &mut main,
            &mut sender,
            &mut receiver,
            &mut pool,
            &mut rng,
            &mut stats,
            &mut fences,
            need,
        )
        .await?;
        let kk_recv = Kk13Receiver::new(&pool.take_send(kk13::CODE_BITS)?)?;
        let kk_send = Kk13Sender::new(&pool.take_recv(kk13::CODE_BITS)?)?;
        stats.rots_used += kk13::CODE_BITS as u64;
        Ok(FieldOtEngine {
            role,
            field,
            config,
            main,
            sender,
            receiver,
            pool,
            kk_send,
            kk_recv,
            rng,
            stats,
            fences,
            in_call: false,
        })
    }

    /// Generates IKNP ROTs until the pools hold `need` (P0's sender instance
    /// first, then P1's, fenced; see [`crate::OtEngine`]).
    #[allow(clippy::too_many_arguments)]
    async fn refill(
        role: Role,
        config: &FieldOtConfig,
        main: &mut Channel,
        sender: &mut <Iknp as OtFlavour>::Sender,
        receiver: &mut <Iknp as OtFlavour>::Receiver,
        pool: &mut Rots,
        rng: &mut ChaCha20Rng,
        stats: &mut FieldStats,
        fences: &mut (u64, u64),
        need: RotCount,
    ) -> Result<()> {
        let have = pool.available();
        let amount = |need: usize, have: usize| {
            if need <= have {
                0
            } else {
                (need - have)
                    .max(config.min_refill)
                    .next_multiple_of(Iknp::GRANULARITY)
            }
        };
        let (ns, nr) = (amount(need.send, have.send), amount(need.recv, have.recv));
        if ns == 0 && nr == 0 {
            return Ok(());
        }
        let mut rrng = fork(rng);
        let (s0, r0) = (main.sent, main.received);
        barrier(main).await?;
        let (sent, (recv, choices)) = if role.is_p0() {
            let s = gen_send(sender, ns).await?;
            barrier(main).await?;
            (s, gen_recv(receiver, nr, &mut rrng).await?)
        } else {
            let r = gen_recv(receiver, nr, &mut rrng).await?;
            barrier(main).await?;
            (gen_send(sender, ns).await?, r)
        };
        barrier(main).await?;
        fences.0 += 3;
        fences.1 += main.sent - s0 + main.received - r0;
        pool.extend(Batch {
            send: sent,
            recv,
            choices,
        });
        stats.rots_as_sender += ns as u64;
        stats.rots_as_receiver += nr as u64;
        Ok(())
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The field `Z_p`.
    pub fn field(&self) -> PrimeField {
        self.field
    }

    /// Counters so far.
    pub fn stats(&self) -> FieldStats {
        FieldStats {
            bytes_sent: self.main.sent - self.fences.1 / 2,
            bytes_received: self.main.received - self.fences.1 / 2,
            flights: self.main.flights - self.fences.0,
            ..self.stats
        }
    }

    fn ctx(&self) -> FieldCtx {
        FieldCtx {
            role: self.role,
            field: self.field,
            m: self.config.block_bits,
        }
    }

    fn check(&self, x: &[u64], what: &str) -> Result<()> {
        if let Some(v) = x.iter().find(|&&v| !self.field.contains(v)) {
            return Err(param(format!(
                "{what}: {v} is not an element of Z_{}",
                self.field.modulus()
            )));
        }
        Ok(())
    }

    async fn begin(
        &mut self,
        op: Op,
        n: usize,
        prm: u32,
        cost: RotCount,
    ) -> Result<(Rots, ChaCha20Rng)> {
        if self.in_call {
            return Err(Error::Poisoned);
        }
        self.in_call = true;
        Self::refill(
            self.role,
            &self.config,
            &mut self.main,
            &mut self.sender,
            &mut self.receiver,
            &mut self.pool,
            &mut self.rng,
            &mut self.stats,
            &mut self.fences,
            cost,
        )
        .await?;
        let rots = self.pool.split_off(cost)?;
        self.stats.rots_used += cost.send as u64;
        self.main.set_header(CallHeader {
            op,
            ring_bits: self.field.bits() as u8,
            block_bits: self.config.block_bits as u8,
            param: prm,
            n: n as u64,
        });
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

    fn chunks(&self, n: usize) -> impl Iterator<Item = (usize, usize)> + use<> {
        let c = self.config.chunk;
        (0..n.div_ceil(c)).map(move |k| (k * c, ((k + 1) * c).min(n)))
    }

    /// Chosen-message 1-out-of-`2^m` OT of `bits`-bit messages by KK13
    /// (`1 <= m <= 8`, `bits <= 64`), **sender side**; `msgs` holds `2^m`
    /// messages per instance. The peer calls [`FieldOtEngine::kkot_receive`].
    /// The receiver learns only its chosen messages, the sender nothing.
    /// Cost per instance: 2 flights, `256` bits receiver→sender, `2^m·bits`
    /// bits sender→receiver.
    pub async fn kkot_send(&mut self, m: u32, bits: u32, msgs: &[u64]) -> Result<()> {
        let shape = kkot_shape(m, bits)?;
        if !msgs.len().is_multiple_of(shape.n) || msgs.iter().any(|&v| v >> (bits - 1) >> 1 != 0) {
            return Err(param("kkot_send: message count or width does not fit"));
        }
        let n = msgs.len() / shape.n;
        for (s, e) in self.chunks(n) {
            let (rots, _) = self
                .begin(Op::Kkot, e - s, m << 8 | bits, RotCount::default())
                .await?;
            kk13::both_ways(
                &mut self.main,
                &mut self.kk_send,
                &mut self.kk_recv,
                Vec::new(),
                &[],
                &vec![shape; e - s],
                &msgs[s * shape.n..e * shape.n],
            )
            .await?;
            self.end(&rots)?;
        }
        Ok(())
    }

    /// KK13 1-out-of-`2^m` OT, **receiver side**: message `indices[i]` of
    /// instance `i`.
    pub async fn kkot_receive(&mut self, m: u32, bits: u32, indices: &[u64]) -> Result<Vec<u64>> {
        let shape = kkot_shape(m, bits)?;
        if indices.iter().any(|&r| r >= shape.n as u64) {
            return Err(param("kkot_receive: index out of range"));
        }
        let mut out = Vec::with_capacity(indices.len());
        for (s, e) in self.chunks(indices.len()) {
            let (rots, _) = self
                .begin(Op::Kkot, e - s, m << 8 | bits, RotCount::default())
                .await?;
            let choices = indices[s..e].iter().map(|&r| r as u8).collect();
            out.extend(
                kk13::both_ways(
                    &mut self.main,
                    &mut self.kk_send,
                    &mut self.kk_recv,
                    choices,
                    &vec![shape; e - s],
                    &[],
                    &[],
                )
                .await?,
            );
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Random 1-out-of-`N` OT by KK13 (`2 <= N <= 256`), **sender side**, for
    /// `count` instances: returns `N` pseudorandom 128-bit messages per
    /// instance (flattened). The peer calls
    /// [`FieldOtEngine::kkot_receive_random`]. Cost: 1 flight, `256` bits per
    /// instance receiver→sender.
    pub async fn kkot_send_random(&mut self, big_n: usize, count: usize) -> Result<Vec<u128>> {
        if !(2..=kk13::MAX_N).contains(&big_n) {
            return Err(param("random KK13 OT needs 2 <= N <= 256"));
        }
        let (rots, _) = self
            .begin(Op::Kkot, count, big_n as u32, RotCount::default())
            .await?;
        let peer = self.main.exchange(&[], kk13::matrix_bytes(count)).await?;
        let batch = self.kk_send.extend(count, &peer)?;
        let pads = batch.pads(&vec![big_n; count]);
        self.end(&rots)?;
        Ok(pads)
    }

    /// Random 1-out-of-`N` OT, **receiver side**: the message at our choice
    /// `choices[i] < N` of each instance.
    pub async fn kkot_receive_random(&mut self, big_n: usize, choices: &[u8]) -> Result<Vec<u128>> {
        if !(2..=kk13::MAX_N).contains(&big_n) || choices.iter().any(|&c| c as usize >= big_n) {
            return Err(param(
                "random KK13 OT needs 2 <= N <= 256 and choices below N",
            ));
        }
        let (rots, _) = self
            .begin(Op::Kkot, choices.len(), big_n as u32, RotCount::default())
            .await?;
        let (msg, batch) = self.kk_recv.extend(choices.to_vec(), big_n);
        self.main.exchange(&msg, 0).await?;
        let out = (0..choices.len()).map(|i| batch.pad(i)).collect();
        self.end(&rots)?;
        Ok(out)
    }

    /// Millionaires' comparison: XOR shares of `1{a > b}` for the server's
    /// `a` and the client's `b`, both `< 2^bits` (`bits <= 62`). Uses the
    /// field path's comparison ([`crate::field_millionaires`]) with the
    /// server as KK13 receiver throughout. Learns: nothing beyond the output
    /// share.
    pub async fn millionaires(&mut self, input: &[u64], bits: u32) -> Result<Bits> {
        if !(1..=62).contains(&bits) || input.iter().any(|&v| v >> bits != 0) {
            return Err(param(
                "millionaires: inputs must be < 2^bits, 1 <= bits <= 62",
            ));
        }
        let plan = field_millionaires::Plan::new(&[bits], self.config.block_bits);
        let mut out = Vec::new();
        for (s, e) in self.chunks(input.len()) {
            let n = e - s;
            // The server is the KK13 receiver for every element.
            let (mut rots, mut rng) = self
                .begin(Op::FieldMillionaires, n, bits, plan.cost(n))
                .await?;
            let u = &input[s..e];
            let r = field_millionaires::run(
                &mut self.main,
                self.role.is_p0(),
                n,
                &plan,
                (&mut self.kk_send, &mut self.kk_recv),
                u,
                u,
                &mut rots,
                &mut rng,
            )
            .await?;
            self.end(&rots)?;
            out.push(r[0].clone());
        }
        Ok(Bits::concat(&out.iter().collect::<Vec<_>>()))
    }

    /// DReLU: XOR shares of `1{x >= 0}` for the centred representative of
    /// `x ∈ Z_p`, exact for every element ([`crate::field_drelu`]).
    pub async fn drelu(&mut self, x: &[u64]) -> Result<Bits> {
        self.check(x, "drelu")?;
        let ctx = self.ctx();
        let mut out = Vec::new();
        for (s, e) in self.chunks(x.len()) {
            let (mut rots, mut rng) = self
                .begin(Op::FieldDrelu, e - s, 0, field_drelu::cost(&ctx, e - s))
                .await?;
            let d = field_drelu::run(
                &mut self.main,
                &ctx,
                (&mut self.kk_send, &mut self.kk_recv),
                &x[s..e],
                &mut rots,
                &mut rng,
            )
            .await?;
            self.end(&rots)?;
            out.push(d);
        }
        Ok(Bits::concat(&out.iter().collect::<Vec<_>>()))
    }

    /// ReLU: shares of `max(x, 0)` (centred), exact for every element
    /// ([`crate::field_relu`]).
    pub async fn relu(&mut self, x: &[u64]) -> Result<Vec<u64>> {
        Ok(self.relu_with_drelu(x).await?.0)
    }

    /// [`FieldOtEngine::relu`] that also returns the DReLU shares.
    pub async fn relu_with_drelu(&mut self, x: &[u64]) -> Result<(Vec<u64>, Bits)> {
        self.check(x, "relu")?;
        let ctx = self.ctx();
        let mut out = Vec::with_capacity(x.len());
        let mut ds = Vec::new();
        for (s, e) in self.chunks(x.len()) {
            let (mut rots, mut rng) = self
                .begin(Op::FieldRelu, e - s, 0, field_relu::cost(&ctx, e - s))
                .await?;
            let (y, d) = field_relu::run(
                &mut self.main,
                &ctx,
                (&mut self.kk_send, &mut self.kk_recv),
                &x[s..e],
                &mut rots,
                &mut rng,
            )
            .await?;
            self.end(&rots)?;
            out.extend(y);
            ds.push(d);
        }
        Ok((out, Bits::concat(&ds.iter().collect::<Vec<_>>())))
    }

    /// Multiplexer: shares in `Z_p` of `b·x` ([`crate::field_mux`]).
    pub async fn mux(&mut self, b: &Bits, x: &[u64]) -> Result<Vec<u64>> {
        if b.len() != x.len() {
            return Err(param("mux: bits and values of different lengths"));
        }
        self.check(x, "mux")?;
        let ctx = self.ctx();
        let mut out = Vec::with_capacity(x.len());
        for (s, e) in self.chunks(x.len()) {
            let (mut rots, mut rng) = self
                .begin(Op::FieldMux, e - s, 0, field_mux::cost(e - s))
                .await?;
            out.extend(
                field_mux::run(
                    &mut self.main,
                    &ctx,
                    &b.slice(s, e),
                    &x[s..e],
                    &mut rots,
                    &mut rng,
                )
                .await?,
            );
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Truncation: shares of `⌊x / 2^shift⌋` (floor of the centred value),
    /// **exact** for `x ∈ [-K, (p-1)/2]`, `K = 2^shift·⌊((p-1)/2) / 2^shift⌋`
    /// ([`crate::field_truncate`]); `shift < ⌈log2 p⌉ - 1`.
    pub async fn truncate(&mut self, x: &[u64], shift: u32) -> Result<Vec<u64>> {
        self.check(x, "truncate")?;
        let ctx = self.ctx();
        field_truncate::check_shift(&ctx, shift)?;
        if shift == 0 {
            return Ok(x.to_vec());
        }
        let mut out = Vec::with_capacity(x.len());
        for (s, e) in self.chunks(x.len()) {
            let cost = field_truncate::cost(&ctx, e - s, shift);
            let (mut rots, mut rng) = self.begin(Op::FieldTruncate, e - s, shift, cost).await?;
            out.extend(
                field_truncate::run(
                    &mut self.main,
                    &ctx,
                    (&mut self.kk_send, &mut self.kk_recv),
                    &x[s..e],
                    shift,
                    &mut rots,
                    &mut rng,
                )
                .await?,
            );
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Fused ReLU and truncation: shares of `⌊max(x, 0) / 2^shift⌋`,
    /// **exact for every** `x ∈ Z_p` (no range assumption), `1 <= shift <
    /// ⌈log2 p⌉ - 1` ([`crate::field_relu_truncate`]). Cheaper than
    /// [`FieldOtEngine::relu`] followed by [`FieldOtEngine::truncate`]: the
    /// wrap comparison and the leaf OTs are shared.
    pub async fn relu_truncate(&mut self, x: &[u64], shift: u32) -> Result<Vec<u64>> {
        self.check(x, "relu_truncate")?;
        let ctx = self.ctx();
        field_truncate::check_shift(&ctx, shift)?;
        if shift == 0 {
            return self.relu(x).await;
        }
        let mut out = Vec::with_capacity(x.len());
        for (s, e) in self.chunks(x.len()) {
            let cost = field_relu_truncate::cost(&ctx, e - s, shift);
            let (mut rots, mut rng) = self
                .begin(Op::FieldReluTruncate, e - s, shift, cost)
                .await?;
            out.extend(
                field_relu_truncate::run(
                    &mut self.main,
                    &ctx,
                    (&mut self.kk_send, &mut self.kk_recv),
                    &x[s..e],
                    shift,
                    &mut rots,
                    &mut rng,
                )
                .await?,
            );
            self.end(&rots)?;
        }
        Ok(out)
    }

    /// Elementwise maximum `b + ReLU(a - b)`; exact when the centred
    /// `a - b` does not wrap (e.g. all inputs in `(-p/4, p/4)`).
    pub async fn max(&mut self, a: &[u64], b: &[u64]) -> Result<Vec<u64>> {
        if a.len() != b.len() {
            return Err(param("max: vectors of different lengths"));
        }
        self.check(a, "max")?;
        self.check(b, "max")?;
        let f = self.field;
        let d: Vec<u64> = a.iter().zip(b).map(|(&x, &y)| f.sub(x, y)).collect();
        let r = self.relu(&d).await?;
        Ok(b.iter().zip(&r).map(|(&y, &v)| f.add(y, v)).collect())
    }

    /// Max pooling over windows of indices (a tournament of
    /// [`FieldOtEngine::max`], one batched ReLU per level; CrypTFlow2 §4.2).
    /// Exact for inputs in `(-p/4, p/4)`.
    pub async fn maxpool(&mut self, x: &[u64], windows: &[Vec<usize>]) -> Result<Vec<u64>> {
        self.check(x, "maxpool")?;
        let mut cands = maxpool::gather(x, windows)?;
        while cands.iter().any(|c| c.len() > 1) {
            let (a, b) = maxpool::pairs(&cands);
            let m = self.max(&a, &b).await?;
            maxpool::merge(&mut cands, &m);
        }
        Ok(cands
            .into_iter()
            .map(|c| c.first().copied().unwrap_or(0))
            .collect())
    }

    /// The cost formulas of this session ([`crate::FieldCosts`]).
    pub fn costs(&self) -> crate::FieldCosts {
        crate::FieldCosts::new(self.field, self.config)
    }

    /// Protocol bits on the wire (both directions, without framing and call
    /// headers) of one [`FieldOtEngine::drelu`] run on `n` elements, and the
    /// IKNP ROTs it consumes per direction.
    pub fn drelu_cost(&self, n: usize) -> (usize, usize) {
        pair(self.costs().drelu(n))
    }

    /// As [`FieldOtEngine::drelu_cost`] for [`FieldOtEngine::millionaires`]
    /// on `bits`-bit inputs.
    pub fn millionaires_cost(&self, n: usize, bits: u32) -> (usize, usize) {
        pair(self.costs().millionaires(n, bits))
    }

    /// As [`FieldOtEngine::drelu_cost`] for [`FieldOtEngine::relu`].
    pub fn relu_cost(&self, n: usize) -> (usize, usize) {
        pair(self.costs().relu(n))
    }

    /// As [`FieldOtEngine::drelu_cost`] for [`FieldOtEngine::truncate`].
    pub fn truncate_cost(&self, n: usize, shift: u32) -> (usize, usize) {
        pair(self.costs().truncate(n, shift))
    }

    /// As [`FieldOtEngine::drelu_cost`] for [`FieldOtEngine::relu_truncate`].
    pub fn relu_truncate_cost(&self, n: usize, shift: u32) -> (usize, usize) {
        pair(self.costs().relu_truncate(n, shift))
    }
}

fn pair(c: crate::FieldCost) -> (usize, usize) {
    (c.bits as usize, c.rots_per_direction as usize)
}

fn kkot_shape(m: u32, bits: u32) -> Result<Table> {
    if !(1..=8).contains(&m) || !(1..=64).contains(&bits) {
        return Err(param("KK13 OT needs 1 <= m <= 8 and 1 <= bits <= 64"));
    }
    Ok(Table { n: 1 << m, t: bits })
}

async fn gen_send(
    s: &mut <Iknp as OtFlavour>::Sender,
    n: usize,
) -> Result<Vec<[cryprot_core::Block; 2]>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    Iknp::send(s, n).await
}

async fn gen_recv(
    r: &mut <Iknp as OtFlavour>::Receiver,
    n: usize,
    rng: &mut ChaCha20Rng,
) -> Result<(Vec<cryprot_core::Block>, Vec<u8>)> {
    if n == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    Iknp::receive(r, n, rng).await
}

async fn barrier(ch: &mut Channel) -> Result<()> {
    const BARRIER: u8 = 0xb8;
    let b = ch.exchange(&[BARRIER], 1).await?;
    if b[0] != BARRIER {
        return Err(Error::Malformed {
            what: "barrier",
            detail: "the peer is not generating OTs at this point",
        });
    }
    Ok(())
}
