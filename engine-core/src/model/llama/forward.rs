//! The forward pass: one batch of tokens from any mix of sequences to logits.

use kernels::{AttentionLayout, Backend, Rope, backend::Cols};

use super::config::RopeScaling;
use super::{KvCache, KvGroup, Llama, ModelError};

/// One step's tokens and where they sit.
#[derive(Clone, Copy, Debug)]
pub struct ForwardBatch<'a> {
    /// `[T]` token ids.
    pub tokens: &'a [u32],
    /// `[T]` absolute positions.
    pub positions: &'a [u32],
    /// `[T]` index into `block_tables` of each token's sequence.
    pub token_seq: &'a [u32],
    /// Per sequence in the batch: its block table (must cover every position it uses) in the
    /// full-attention pool.
    pub block_tables: &'a [&'a [u32]],
    /// Per sequence: its block table in the sliding-window pool, whose entries before a
    /// token's window are never read (they may name any block of that pool); `None` to use
    /// `block_tables` there too.
    pub window_block_tables: Option<&'a [&'a [u32]]>,
    /// KV block size.
    pub block_size: usize,
    /// Batch rows whose logits are wanted, in output order.
    pub logits_rows: &'a [u32],
}

impl ForwardBatch<'_> {
    fn validate(&self, vocab: usize, n_blocks: (usize, usize)) -> Result<(), ModelError> {
        let t = self.tokens.len();
        let bad = |m: String| Err(ModelError::InvalidBatch(m));
        if self.positions.len() != t || self.token_seq.len() != t {
            return bad(format!(
                "{t} tokens but {} positions, {} seq ids",
                self.positions.len(),
                self.token_seq.len()
            ));
        }
        if let Some(&id) = self.tokens.iter().find(|&&id| id as usize >= vocab) {
            return bad(format!("token id {id} outside the vocabulary of {vocab}"));
        }
        let pools = [
            (self.block_tables, n_blocks.0),
            (self.window_tables(), n_blocks.1),
        ];
        for (tables, n_blocks) in pools {
            if tables.len() != self.block_tables.len() {
                return bad(format!(
                    "{} sliding-window tables for {} sequences",
                    tables.len(),
                    self.block_tables.len()
                ));
            }
            for (i, (&s, &p)) in self.token_seq.iter().zip(self.positions).enumerate() {
                let Some(table) = tables.get(s as usize) else {
                    return bad(format!("token {i} names sequence {s} of {}", tables.len()));
                };
                if p as usize / self.block_size >= table.len() {
                    return bad(format!(
                        "token {i} at position {p} is beyond its block table"
                    ));
                }
                if n_blocks > 0 && table.iter().any(|&b| b as usize >= n_blocks) {
                    return bad(format!(
                        "sequence {s} names a block outside the pool of {n_blocks}"
                    ));
                }
            }
        }
        if let Some(&r) = self.logits_rows.iter().find(|&&r| r as usize >= t) {
            return bad(format!("logits row {r} outside the batch of {t}"));
        }
        Ok(())
    }

    /// The tables of the sliding-window pool.
    fn window_tables(&self) -> &[&[u32]] {
        self.window_block_tables.unwrap_or(self.block_tables)
    }

    /// Each token's KV slot through `tables`.
    fn slots(&self, tables: &[&[u32]]) -> Vec<u32> {
        let bs = self.block_size as u32;
        self.positions
            .iter()
            .zip(self.token_seq)
            .map(|(&p, &s)| tables[s as usize][(p / bs) as usize] * bs + p % bs)
            .collect()
    }
}

impl<B: Backend> Llama<B> {
    /// Runs the batch, writing its keys and values into `kv`, and returns the logits of
    /// `batch.logits_rows` as `[rows, vocab]` row-major.
    pub fn forward(
        &self,
        kv: &mut KvCache<B>,
        batch: &ForwardBatch<'_>,
    ) -> Result<Vec<f32>, ModelError> {
        self.backend
            .run_forward(|| self.forward_in_place(kv, batch))
    }

    fn forward_in_place(
        &self,
        kv: &mut KvCache<B>,
        batch: &ForwardBatch<'_>,
    ) -> Result<Vec<f32>, ModelError> {
        let c = &self.cfg;
        batch.validate(c.vocab_size, kv.num_blocks(&self.backend))?;
        for pool in kv.full.iter().chain(&kv.window) {
            if batch.block_size != self.backend.kv_pool_config(pool).block_size {
                return Err(ModelError::InvalidBatch(
                    "block size differs from the pool's".into(),
                ));
            }
        }
        let t = batch.tokens.len();
        if t == 0 {
            return Ok(Vec::new());
        }
        let be = &self.backend;
        let opts = c.options;
        let (d, q, hd, kvd) = (c.dim, c.q_dim(), c.head_dim, c.kv_dim());
        let (q_cols, k_cols, v_cols) =
            (Cols::new(0, q), Cols::new(q, kvd), Cols::new(q + kvd, kvd));
        let slots = batch.slots(batch.block_tables);
        let window_slots = batch.slots(batch.window_tables());
        let layout = AttentionLayout {
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: hd,
            block_size: batch.block_size,
            token_seq: batch.token_seq,
            positions: batch.positions,
            block_tables: batch.block_tables,
            slots: &slots,
            scale: c.attn_scale,
            window: None,
        };
        let global_rope = Rope {
            rot_dim: c.rope_dim,
            base: c.rope_base,
            style: opts.rope_style,
            freq_scale: match c.rope_scaling {
                RopeScaling::Linear(f) => 1.0 / f,
                RopeScaling::None | RopeScaling::FreqFactors => 1.0,
            },
            freq_factors: self.rope_freqs.as_deref(),
        };
        // Sliding-window layers keep their own base and are never scaled (llama.cpp's gemma3).
        let local_rope = Rope {
            base: c.rope_base_local,
            freq_scale: 1.0,
            freq_factors: None,
            ..global_rope
        };

        let mut x = be.zeros(t, d); //          [T, dim] residual stream
        let mut h = be.zeros(t, d); //          [T, dim] normed input (and normed block output)
        let mut qkv = be.zeros(t, q + 2 * kvd); // [T, q | k | v]
        let mut attn = be.zeros(t, q); //       [T, n_heads * head_dim]
        let mut proj = be.zeros(t, d); //       [T, dim] block output
        let mut gate_up = be.zeros(t, 2 * c.ffn_dim); // [T, gate | up]
        let mut act = be.zeros(t, c.ffn_dim); // [T, ffn]
        be.embedding(&self.embd, batch.tokens, &mut x);
        if opts.embed_scale {
            be.scale(&mut x, (d as f32).sqrt());
        }
        for (l, w) in self.layers.iter().enumerate() {
            let window = c.layer_window(l);
            let rope = if window.is_some() {
                &local_rope
            } else {
                &global_rope
            };
            be.rms_norm(&x, &w.attn_norm, c.rms_eps, &mut h);
            be.matmul(&h, &[&w.wq, &w.wk, &w.wv], &mut qkv);
            if let Some([bq, bk, bv]) = &w.qkv_bias {
                be.add_bias(&mut qkv, q_cols, bq);
                be.add_bias(&mut qkv, k_cols, bk);
                be.add_bias(&mut qkv, v_cols, bv);
            }
            if let Some([nq, nk]) = &w.qk_norm {
                be.rms_norm_heads(&mut qkv, q_cols, hd, nq, c.rms_eps);
                be.rms_norm_heads(&mut qkv, k_cols, hd, nk, c.rms_eps);
            }
            // Q and K side by side: one call, so each row's angles are computed once.
            be.rope(&mut qkv, Cols::new(0, q + kvd), hd, batch.positions, rope);
            let (group, index) = self.kv_slot(l);
            let (pool, layer_layout) = match group {
                KvGroup::Full => (kv.full.as_mut(), AttentionLayout { window, ..layout }),
                KvGroup::Window(_) => (
                    kv.window.as_mut(),
                    AttentionLayout {
                        window,
                        block_tables: batch.window_tables(),
                        slots: &window_slots,
                        ..layout
                    },
                ),
            };
            let pool = pool.expect("a pool for every layer's group");
            be.write_kv(pool, index, &qkv, k_cols, v_cols, layer_layout.slots);
            be.attention(&qkv, q_cols, pool, index, &layer_layout, &mut attn);
            be.matmul(&attn, &[&w.wo], &mut proj);
            self.residual(&mut x, &proj, w.post_norms.as_ref().map(|n| &n[0]), &mut h);

            be.rms_norm(&x, &w.ffn_norm, c.rms_eps, &mut h);
            be.matmul(&h, &[&w.w_gate, &w.w_up], &mut gate_up);
            be.glu(opts.activation, &gate_up, &mut act);
            be.matmul(&act, &[&w.w_down], &mut proj);
            self.residual(&mut x, &proj, w.post_norms.as_ref().map(|n| &n[1]), &mut h);
        }
        let rows = batch.logits_rows.len();
        let mut last = be.zeros(rows, d); // [R, dim]
        be.gather_rows(&x, batch.logits_rows, &mut last);
        let mut normed = be.zeros(rows, d);
        be.rms_norm(&last, &self.output_norm, c.rms_eps, &mut normed);
        let mut logits = be.zeros(rows, c.vocab_size); // [R, vocab]
        be.matmul(
            &normed,
            &[self.output.as_ref().unwrap_or(&self.embd)],
            &mut logits,
        );
        Ok(be.move_to_host(logits))
    }

    /// `x += post_norm(out)`, or `x += out` without a post-norm; `scratch` holds the normed
    /// output.
    fn residual(
        &self,
        x: &mut B::Tensor,
        out: &B::Tensor,
        post_norm: Option<&B::Weight>,
        scratch: &mut B::Tensor,
    ) {
        match post_norm {
            Some(norm) => {
                self.backend.rms_norm(out, norm, self.cfg.rms_eps, scratch);
                self.backend.add_assign(x, scratch);
            }
            None => self.backend.add_assign(x, out),
        }
    }
}
