#!/usr/bin/env bash
# Developer check (issue 12): the plugin pip-installed (not editable) from a clone of HEAD into a
# fresh venv outside the repository; then, from an unrelated directory, every davam-* command's
# --help, a demo corpus, stage one and two through fairseq-train --user-dir <installed package>,
# davam-evaluate and fairseq-generate --sample-from-prior. About 3 minutes (downloads included).
#
#   scripts/check_fresh_install.sh [WORKDIR]     # default: a new temporary directory
set -euxo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
W=${1:-$(mktemp -d)}
rm -rf "$W/venv" "$W/proj" "$W/clone"
git clone -q "$REPO" "$W/clone"
python3 -m venv "$W/venv"
PIP="$W/venv/bin/python -m pip install --disable-pip-version-check -q"
$PIP torch==2.13.0
$PIP --no-deps ve-fairseq==0.12.3
$PIP "$W/clone"          # install_requires brings the rest
rm -rf "$W/clone"        # nothing of the repository is left
export PATH=$W/venv/bin:$PATH OMP_NUM_THREADS=1
mkdir "$W/proj" && cd "$W/proj"
PLUGIN=$(python -c "import davam_plugin, os; print(os.path.dirname(davam_plugin.__file__))")
echo "plugin at $PLUGIN"
for c in davam-prepare-corpus davam-demo-corpus davam-evaluate davam-diversity davam-fluency davam-latent davam-adversary-view davam-plot davam-sweep davam-augment; do
  $c --help > /dev/null && echo "ok $c --help"
done
davam-demo-corpus --out-dir raw --train 400 --valid 50 --test 50
davam-prepare-corpus --trainpref raw/train.txt --validpref raw/valid.txt --testpref raw/test.txt --destdir data-bin/demo
fairseq-train data-bin/demo --user-dir "$PLUGIN" --task sentence_vae --arch davam_tiny --criterion davam \
  --optimizer adam --lr 1e-3 --batch-size 32 --max-update 20 --save-dir ckpt --num-workers 0 --log-format simple --log-interval 10
fairseq-train data-bin/demo --user-dir "$PLUGIN" --task davam_prior --davam-path ckpt/checkpoint_last.pt --arch davam_prior_tiny \
  --criterion davam_prior --optimizer adam --lr 1e-3 --batch-size 32 --max-update 10 --save-dir prior --num-workers 0 --log-format simple
davam-evaluate data-bin/demo --path ckpt/checkpoint_last.pt --prior-path prior/checkpoint_last.pt --split test --json eval.json
fairseq-generate data-bin/demo --user-dir "$PLUGIN" --task sentence_vae --path ckpt/checkpoint_last.pt --prior-path prior/checkpoint_last.pt \
  --sample-from-prior 5 --sampling --beam 1 --seed 1 --batch-size 5 | grep ^H | head -5
echo "FRESH INSTALL OK"
