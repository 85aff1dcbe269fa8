#!/usr/bin/env bash
# What benchmarks/gpu_check.py needs on a lent GPU machine beyond its image (Python 3.12 with
# torch, pytorch-lightning, torchmetrics, numpy, scipy, scikit-learn, numba, matplotlib,
# tokenizers): our other dependencies as manylinux wheels, and the data files the check reads.
# Both go to .gpu/ (git-ignored), which the device call carries:
#
#   bash benchmarks/gpu_bundle.sh            # here, with the registries reachable
#   # device run, carry [".gpu"], timeout_s 420 (a session's 15 device minutes include the
#   # machine's start; a 5-minute first run leaves room to rerun after a fix):
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/whl/*.whl \
#     && export PYTHONPATH=/tmp/site:src CADENZA_DATA=$PWD/.gpu/data CADENZA_CACHE=/tmp/cache \
#     PYTHONUNBUFFERED=1 && python3 benchmarks/gpu_check.py --minutes 5 \
#     --results $OUT/gpu_check.json 2>&1 | tee $OUT/gpu_check.log
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${CADENZA_DATA:-../shared/data}"
OUT=.gpu
PY="${PYTHON:-python3}"
# The versions this checkout is tested with (.venv); the image's own torch stack is used as is.
PACKAGES="hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 pretty_midi==0.2.11.post0
mido==1.3.3 symusic==0.6.0 miditok==3.1.0 librosa==0.11.0 soundfile==0.14.0 soxr==1.1.0
audioread==3.1.0 pooch==1.9.0 decorator==5.3.2 platformdirs==4.14.9 cffi==2.1.1 pycparser==3.12
importlib_resources==7.1.0 pySmartDL==1.3.4"
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64"

rm -rf "$OUT" && mkdir -p "$OUT/whl" "$OUT/data"
grep -qxF "/$OUT/" .git/info/exclude 2>/dev/null || echo "/$OUT/" >> .git/info/exclude
for spec in $PACKAGES; do
  # shellcheck disable=SC2086
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      --implementation cp $PLATFORMS -d "$OUT/whl" "$spec" 2>/dev/null \
    || "$PY" -m pip wheel -q --no-deps -w "$OUT/whl" "$spec"  # pure Python, sdist only
done

# Nottingham (polyphonic, for the LSTM), its melodies (the VAE), and the first 300 POP909 songs
# (the Transformer, the GAN, the mel VAE): what gpu_check.py's default --files reads.
mkdir -p "$OUT/data/boulanger2012-polyphonic" "$OUT/data/nottingham/MIDI" "$OUT/data/pop909/midi"
cp "$DATA/boulanger2012-polyphonic/Nottingham.json.gz" "$OUT/data/boulanger2012-polyphonic/"
cp -r "$DATA/nottingham/MIDI/melody" "$OUT/data/nottingham/MIDI/"
cp "$DATA/pop909/POP909_annotations.tar.gz" "$OUT/data/pop909/"  # where each song's bars start
find "$DATA/pop909/midi" -maxdepth 1 -name '*.mid' | sort | head -300 \
  | xargs -I{} cp {} "$OUT/data/pop909/midi/"
du -sh "$OUT/whl" "$OUT/data" "$OUT"
