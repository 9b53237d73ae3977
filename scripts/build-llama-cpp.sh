#!/usr/bin/env bash
# Prepares llama.cpp as the peer for scripts/bench_model.sh (idempotent: skips what is done).
# Downloads the llama-cpp-python 0.3.36 sdist from PyPI and builds the llama.cpp it vendors once
# with cmake (Release, CPU only, shared libs): llama-batched-bench, llama-server, llama-quantize
# (other quant types of a model, for tests and benches), libllama.so and libggml*.so. Then makes a venv whose `llama_cpp` is the sdist's pure-python package, loading
# those same libraries (no second build through `pip install llama-cpp-python`). Everything lands
# under LLCPP_DIR (default /tmp/llcpp) and LLAMA_VENV (default /tmp/llvenv); the env lines for
# bench_model.sh are printed at the end. The compile runs under `nice` with LLCPP_JOBS (2) jobs.
set -euo pipefail
ver=0.3.36
dir="${LLCPP_DIR:-/tmp/llcpp}"
venv="${LLAMA_VENV:-/tmp/llvenv}"
jobs="${LLCPP_JOBS:-2}"
src="$dir/llama_cpp_python-$ver"
lc="$src/vendor/llama.cpp"
build="$lc/build"
bin="$build/bin"

apt_updated=
apt_install() {
  command -v apt-get >/dev/null || { echo "llama.cpp: need $*, and there is no apt-get"; exit 1; }
  [ -n "$apt_updated" ] || { apt-get update -qq; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

echo "== toolchain"
command -v c++ >/dev/null && command -v make >/dev/null || apt_install g++ make
command -v python3 >/dev/null || apt_install python3 python3-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" 2>/dev/null || { rm -rf "$venv"; apt_install python3-venv; python3 -m venv "$venv"; }
fi
py="$venv/bin/python"
pip=("$py" -m pip install -q --disable-pip-version-check)
if command -v cmake >/dev/null; then
  cmake=$(command -v cmake)
else
  [ -x "$venv/bin/cmake" ] || "${pip[@]}" "cmake>=3.21"
  cmake="$venv/bin/cmake"
fi
echo "c++: $(c++ --version | head -n 1)"
echo "cmake: $("$cmake" --version | head -n 1) ($cmake)"

echo "== source"
mkdir -p "$dir"
if [ ! -f "$lc/CMakeLists.txt" ]; then
  tarball="$dir/llama_cpp_python-$ver.tar.gz"
  if [ ! -s "$tarball" ]; then
    # --no-binary for this package alone: `:all:` would also force pip to build the sdist's
    # build requirements (cmake, ninja) from source just to read its metadata.
    "$py" -m pip download -q --disable-pip-version-check --no-deps \
      --no-binary llama-cpp-python -d "$dir" "llama-cpp-python==$ver"
  fi
  rm -rf "$dir/.extract"
  mkdir -p "$dir/.extract"
  tar -xzf "$tarball" -C "$dir/.extract"
  rm -rf "$src"
  mv "$dir/.extract/llama_cpp_python-$ver" "$src"
  rmdir "$dir/.extract"
fi
echo "source: $lc"

echo "== build"
# The UI flags keep llama-server's build from fetching its web UI (it builds without one).
args=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_TESTS=OFF
  -DGGML_NATIVE=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF)
# -march=native turns on ggml's AMX kernels wherever the CPU advertises AMX, but some VMs (this
# project's among them) advertise it and still fault on tile instructions (SIGILL in
# tinygemm_kernel_amx). Keep AMX only when a probe can actually run a tile instruction.
if [ "$(uname -m)" = x86_64 ] && grep -qw amx_tile /proc/cpuinfo; then
  probe="$dir/amx-probe"
  cat >"$probe.c" <<'EOF'
#include <immintrin.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
  unsigned char cfg[64];
  if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */)) return 1;
  memset(cfg, 0, sizeof cfg);
  cfg[0] = 1; cfg[16] = 64; cfg[48] = 16; /* palette 1, tile 0: 16 rows x 64 bytes */
  _tile_loadconfig(cfg); _tile_zero(0); _tile_release();
  return 0;
}
EOF
  if cc -O1 -mamx-tile -o "$probe" "$probe.c" 2>/dev/null && { "$probe"; } 2>/dev/null; then
    echo "build: AMX works here, keeping it"
  else
    echo "build: AMX advertised but unusable here, building without it"
    args+=("-DCMAKE_C_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
      "-DCMAKE_CXX_FLAGS=-mno-amx-tile -mno-amx-int8 -mno-amx-bf16")
  fi
fi
libs=(libllama.so libggml.so libggml-base.so libggml-cpu.so)
want=(llama-batched-bench llama-server llama-quantize "${libs[@]}")
stamp="$build/.configure-args"
todo=0
for f in "${want[@]}"; do [ -e "$bin/$f" ] || todo=1; done
if [ "$(cat "$stamp" 2>/dev/null)" != "${args[*]}" ]; then
  "$cmake" -S "$lc" -B "$build" "${args[@]}"
  echo "${args[*]}" >"$stamp"
  todo=1
fi
if [ "$todo" = 1 ]; then
  start=$(date +%s)
  nice -n "${LLCPP_NICE:-15}" "$cmake" --build "$build" -j"$jobs" \
    --target llama llama-batched-bench llama-server llama-quantize
  echo "build: took $(( $(date +%s) - start )) s"
else
  echo "build: already done"
fi
for f in "${want[@]}"; do [ -e "$bin/$f" ] || { echo "build: $bin/$f is missing"; exit 1; }; done

echo "== python package"
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if ! "$py" -c "import numpy, typing_extensions, diskcache, jinja2" 2>/dev/null; then
  "${pip[@]}" "numpy>=1.20.0" "typing-extensions>=4.5.0" "diskcache>=5.6.1" "jinja2>=2.11.3"
fi
# The pure-python package, with llama_cpp/lib pointing at the build's libraries: llama_cpp.py
# looks there for libllama.so (or in $LLAMA_CPP_LIB_PATH), and libllama.so finds libggml*.so
# beside it through its build RPATH, so no env var is needed at run time.
if [ "$(readlink "$site/llama_cpp/lib" 2>/dev/null)" != "$bin" ] \
   || ! cmp -s "$src/llama_cpp/__init__.py" "$site/llama_cpp/__init__.py"; then
  rm -rf "$site/llama_cpp"
  cp -r "$src/llama_cpp" "$site/llama_cpp"
  ln -s "$bin" "$site/llama_cpp/lib"
fi
"$py" -c "import llama_cpp; print('llama_cpp', llama_cpp.__version__, 'from', llama_cpp.__file__)"
"$bin/llama-server" --help >/dev/null

echo "== ready; for scripts/bench_model.sh and the load bench:"
echo "export LLAMA_PY=$py"
echo "export LLAMA_BATCHED_BENCH=$bin/llama-batched-bench"
echo "export LLAMA_SERVER=$bin/llama-server"
echo "export LLAMA_QUANTIZE=$bin/llama-quantize"
echo "export LLAMA_CPP_LIB_PATH=$bin  # optional: $site/llama_cpp/lib already points there"
