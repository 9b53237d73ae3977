//! Batch invariance, exactly: a sequence's logits are bit-identical whether it runs alone or in
//! a batch with others, and whether its prompt is prefilled in one chunk or several.

mod common;

use engine_core::kv_cache::{BlockAllocator, BlockTable};
use engine_core::model::Model;
use engine_core::model::gguf::GgufFile;
use engine_core::model::llama::{Arch, ForwardBatch};
use engine_core::model::tiny::{TINY_SLIDING_WINDOW, TinySpec, tiny_model_bytes};
use kernels::{CpuBackend, GgmlType, KvDtype};

const BLOCK: usize = 4;

/// One sequence's part of a batch: tokens placed at positions `start..`.
struct Part<'a> {
    seq: usize,
    tokens: &'a [u32],
    start: usize,
}

struct Harness<'m> {
    model: &'m Model<CpuBackend>,
    alloc: BlockAllocator,
    tables: Vec<BlockTable>,
    pool: engine_core::model::llama::KvCache<CpuBackend>,
}

impl<'m> Harness<'m> {
    fn new(model: &'m Model<CpuBackend>, n_seqs: usize) -> Self {
        let alloc = BlockAllocator::new(256, BLOCK);
        let pool = model.llama.alloc_kv_pool(256, BLOCK).unwrap();
        Self {
            model,
            alloc,
            tables: (0..n_seqs).map(|_| BlockTable::new()).collect(),
            pool,
        }
    }

    /// Runs the parts as one batch; returns each part's logits, one row per token.
    fn step(&mut self, parts: &[Part<'_>]) -> Vec<Vec<Vec<f32>>> {
        let (mut tokens, mut positions, mut token_seq) = (Vec::new(), Vec::new(), Vec::new());
        for p in parts {
            self.tables[p.seq]
                .reserve(&mut self.alloc, p.start + p.tokens.len())
                .unwrap();
            tokens.extend_from_slice(p.tokens);
            positions.extend(p.start as u32..(p.start + p.tokens.len()) as u32);
            token_seq.extend(std::iter::repeat_n(p.seq as u32, p.tokens.len()));
        }
        let tables: Vec<&[u32]> = self.tables.iter().map(BlockTable::as_raw).collect();
        let rows: Vec<u32> = (0..tokens.len() as u32).collect();
        let batch = ForwardBatch {
            tokens: &tokens,
            positions: &positions,
            token_seq: &token_seq,
            block_tables: &tables,
            window_block_tables: None,
            block_size: BLOCK,
            logits_rows: &rows,
        };
        let logits = self.model.llama.forward(&mut self.pool, &batch).unwrap();
        let vocab = self.model.llama.config().vocab_size;
        let mut rows = logits.chunks_exact(vocab).map(<[f32]>::to_vec);
        parts
            .iter()
            .map(|p| rows.by_ref().take(p.tokens.len()).collect())
            .collect()
    }
}

fn bits(rows: &[Vec<f32>]) -> Vec<Vec<u32>> {
    rows.iter()
        .map(|r| r.iter().map(|x| x.to_bits()).collect())
        .collect()
}

fn check_invariance(model: &Model<CpuBackend>, a: &[u32], b: &[u32], c: &[u32]) {
    // Alone, one chunk.
    let reference = Harness::new(model, 1)
        .step(&[Part {
            seq: 0,
            tokens: a,
            start: 0,
        }])
        .remove(0);

    // Alone, uneven chunks.
    let mut h = Harness::new(model, 1);
    let mut chunked = Vec::new();
    let cuts = [0, 3, 8, 30.min(a.len()), a.len()];
    for w in cuts.windows(2) {
        chunked.extend(
            h.step(&[Part {
                seq: 0,
                tokens: &a[w[0]..w[1]],
                start: w[0],
            }])
            .remove(0),
        );
    }
    assert_eq!(
        bits(&chunked),
        bits(&reference),
        "chunked prefill changed the logits"
    );

    // In a batch with a decoding sequence and another prefill chunk, in several orders.
    let mut h = Harness::new(model, 3);
    h.step(&[
        Part {
            seq: 1,
            tokens: &b[..b.len() - 1],
            start: 0,
        },
        Part {
            seq: 2,
            tokens: &c[..5],
            start: 0,
        },
    ]);
    let out = h.step(&[
        Part {
            seq: 2,
            tokens: &c[5..],
            start: 5,
        },
        Part {
            seq: 0,
            tokens: &a[..6],
            start: 0,
        },
        Part {
            seq: 1,
            tokens: &b[b.len() - 1..],
            start: b.len() - 1,
        },
    ]);
    let mut batched = out[1].clone();
    let out = h.step(&[
        Part {
            seq: 0,
            tokens: &a[6..],
            start: 6,
        },
        Part {
            seq: 1,
            tokens: &[7],
            start: b.len(),
        },
    ]);
    batched.extend(out[0].clone());
    assert_eq!(
        bits(&batched),
        bits(&reference),
        "batching with other sequences changed the logits"
    );
}

fn tiny(arch: Arch, ty: GgmlType) -> Model<CpuBackend> {
    tiny_with(arch, ty, KvDtype::F32)
}

fn tiny_with(arch: Arch, ty: GgmlType, kv: KvDtype) -> Model<CpuBackend> {
    let spec = TinySpec {
        weight_type: ty,
        // Llama's tiny model also runs Llama 3's frequency factors.
        rope_freqs: arch == Arch::Llama,
        ..TinySpec::for_arch(arch)
    };
    let file = GgufFile::from_bytes(tiny_model_bytes(&spec)).unwrap();
    Model::from_gguf(&file, CpuBackend::new().with_kv_dtype(kv)).unwrap()
}

#[test]
fn tiny_model_is_batch_invariant_for_every_weight_type_and_architecture() {
    // Longer than the tiny Gemma 3's sliding window, so windowed chunks are checked too.
    let a: Vec<u32> = (0..37).map(|i| (i * 7 + 3) % 250 + 3).collect();
    assert!(a.len() > TINY_SLIDING_WINDOW);
    let b: Vec<u32> = (0..9).map(|i| (i * 11 + 5) % 250 + 3).collect();
    let c: Vec<u32> = (0..12).map(|i| (i * 13 + 1) % 250 + 3).collect();
    for ty in GgmlType::ALL {
        for arch in Arch::ALL {
            check_invariance(&tiny(arch, ty), &a, &b, &c);
        }
    }
    // An f16 KV cache rounds each key and value once, where it is written: the same bits
    // whatever the batch.
    for arch in Arch::ALL {
        check_invariance(&tiny_with(arch, GgmlType::Q8_0, KvDtype::F16), &a, &b, &c);
    }
}

#[test]
fn smollm2_is_batch_invariant() {
    let model = Model::load(common::real_model_path(), CpuBackend::new()).unwrap();
    let enc = |s: &str| model.tokenizer.encode(s, true).unwrap();
    let a = enc(
        "The quick brown fox jumps over the lazy dog because it wants to reach the river bank.",
    );
    let b = enc("Hello, how are you today?");
    let c = enc("1, 2, 3, 4, 5, 6, 7, 8, 9, 10");
    assert!(a.len() > 10 && c.len() > 6);
    check_invariance(&model, &a, &b, &c);
}
