//! Our reference dequantizers against an independent implementation: blocks dequantized by
//! gguf-py's numpy code (`scripts/gen_quant_goldens.py` writes `tests/data/quant_goldens.txt`;
//! see the script for which blocks: random, all-min/all-max quants, zero, negative, subnormal
//! and largest fp16 scales, every sub-block scale value of the K types).
//!
//! Both sides compute each value in f32 with the same operations (an fp16 scale times an
//! integer, minus or plus an fp16 offset where the format has one, each rounded once), so the
//! match is required bit for bit.

use std::path::PathBuf;

use kernels::GgmlType;
use kernels::quant::dequantize_row;

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

#[test]
fn dequantizers_match_gguf_py_bit_for_bit() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/quant_goldens.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "missing golden file {} ({e}); regenerate it with scripts/gen_quant_goldens.py",
            path.display()
        )
    });
    let mut blocks_per_type = vec![0usize; GgmlType::ALL.len()];
    let mut values = 0usize;
    for (no, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#'))
    {
        let at = format!("{}:{}", path.display(), no + 1);
        let mut fields = line.split(' ');
        let (Some(name), Some(bytes), Some(want), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            panic!("{at}: expected `TYPE BYTES VALUES`");
        };
        let (ti, ty) = GgmlType::ALL
            .into_iter()
            .enumerate()
            .find(|(_, t)| t.name() == name)
            .unwrap_or_else(|| panic!("{at}: type {name} is not supported"));
        let bytes = unhex(bytes);
        let want: Vec<u32> = unhex(want)
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(bytes.len(), ty.block_bytes(), "{at}: block size");
        assert_eq!(want.len(), ty.block_elems(), "{at}: value count");
        let mut got = vec![0.0f32; want.len()];
        dequantize_row(ty, &bytes, &mut got);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                *w,
                "{at}: {name} element {i}: ours {g:e}, gguf-py {:e}",
                f32::from_bits(*w)
            );
        }
        blocks_per_type[ti] += 1;
        values += want.len();
    }
    for (ty, n) in GgmlType::ALL.into_iter().zip(blocks_per_type) {
        if ty.block_elems() > 1 {
            assert!(n >= 10, "{ty}: only {n} golden blocks");
        }
        eprintln!("{ty}: {n} golden blocks");
    }
    assert!(values > 0);
}
