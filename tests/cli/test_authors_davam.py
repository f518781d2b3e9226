"""examples/reproduce/authors_davam.py, the resumable driver of the DAVAM authors' stage one, on a
stand-in for their package (the same interface: argparser.parse_arg, model.DisCreteVAE with
build_model / eval_model / test_model / return_embed_ind; a tiny network on a tiny corpus), since
tests may not fetch their code. The stand-in's validation loss, on which the rate schedule
decides, follows a script; its Rec and commitment are the network's own."""

import json
import subprocess
import sys

import torch

from conftest import BIN, REPO, SUBPROCESS_ENV

DRIVER = REPO / "examples" / "reproduce" / "authors_davam.py"

ARGPARSER = '''
import argparse, os, numpy as np, torch
def parse_arg():
    p = argparse.ArgumentParser()
    for name in ("--train_data", "--val_data", "--test_data", "--saver_dir"):
        p.add_argument(name, default="")
    for name, default in (("--seed", 783435), ("--epochs", 100), ("--decay_epoch", 2), ("--warm_up", 10),
                          ("--batch_size", 2)):
        p.add_argument(name, type=int, default=default)
    for name, default in (("--clip_grad", 5.0), ("--lr_decay", 0.5), ("--max_decay", 5.0), ("--momentum", 0.0),
                          ("--vq_start", 0.15), ("--vq_weight_max", 5.0), ("--lr_start", 1.0),
                          ("--train_tf_ratio", 1.0), ("--eval_tf_ratio", 1.0)):
        p.add_argument(name, type=float, default=default)
    args = p.parse_args()
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    os.makedirs(args.saver_dir, exist_ok=True)
    args.device = torch.device("cuda")
    return args
'''

MODEL = '''
import json, os, numpy as np, torch
from torch import nn

def _batches(path, size):
    words = [line.split() + ["</s>"] for line in open(path)]
    ids = [[sum(map(ord, w)) % 23 for w in s] for s in words]
    by_len = {}
    for s in ids:
        by_len.setdefault(len(s), []).append(s)
    return [torch.tensor(group[i:i + size]) for n, group in sorted(by_len.items()) for i in range(0, len(group), size)]

class DisCreteVAE(nn.Module):
    def __init__(self, args):
        super().__init__()
        self.train_data = open(args.train_data).read().splitlines()
        self.train_data_batch = _batches(args.train_data, args.batch_size)
        self.val_data_batch = _batches(args.val_data, args.batch_size)
        self.test_data_batch = _batches(args.test_data, args.batch_size)
        self.encoder = nn.Embedding(23, 4)
        self.decoder = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 23))
        self.saver_dir = args.saver_dir

    train_calls = 0

    def build_model(self, inputs, vq_weight=1.0, teacher_forcing_ratio=0.5):
        if self.training:  # a kill without warning (a session's end) at this process's N-th update
            DisCreteVAE.train_calls += 1
            if DisCreteVAE.train_calls == int(os.environ.get("KILL_AT_UPDATE", 0)):
                os._exit(137)
        h = self.encoder(inputs)
        logits = self.decoder(h.cumsum(1))
        rc = nn.functional.cross_entropy(logits.transpose(1, 2), inputs, reduction="none").sum(1)
        vq = 0.01 * h.pow(2).sum((1, 2))
        return rc + vq_weight * vq, rc, vq

    def _score(self, batches):
        rc_sum = vq_sum = n = 0.0
        for i in np.random.permutation(len(batches)):
            _, rc, vq = self.build_model(batches[i])
            rc_sum, vq_sum, n = rc_sum + rc.sum().item(), vq_sum + vq.sum().item(), n + len(batches[i])
        return rc_sum / n, vq_sum / n

    def eval_model(self, args, teacher_forcing_ratio=0, verbose=True):
        nll, vq = self._score(self.val_data_batch)
        calls = os.path.join(self.saver_dir, "eval_calls")
        k = int(open(calls).read()) if os.path.exists(calls) else 0
        open(calls, "w").write(str(k + 1))
        return json.loads(os.environ["SCRIPTED_LOSSES"])[k], nll, vq

    def test_model(self, args, teacher_forcing_ratio=0, verbose=True):
        nll, vq = self._score(self.test_data_batch)
        return nll + vq, nll, vq

    def return_embed_ind(self, inputs):
        return inputs % 7
'''

# Their rule on this script (0-based epochs as theirs): no halving before epoch 15 however bad
# (3 and 4); then halvings after the 2nd bad epoch in a row at 16, 19, 21, 23 and 25, the 5th ends it
LOSSES = [100.0 - e for e in range(15)]
LOSSES[3] = LOSSES[4] = 200.0
LOSSES += [87.0, 88.0, 87.0, 90.0, 91.0, 92.0, 93.0, 94.0, 95.0, 96.0, 97.0] + [50.0] * 10


def stand_in(tmp_path):
    pkg = tmp_path / "authors"
    pkg.mkdir()
    (pkg / "argparser.py").write_text(ARGPARSER)
    (pkg / "model.py").write_text(MODEL)
    for name in ("module.py", "dataloader.py", "VectorQuantize.py"):
        (pkg / name).write_text("")
    data = tmp_path / "data"
    data.mkdir()
    sentences = ["the cat sat", "a dog ran far", "the cat ran", "dogs bark", "a cat sat down", "we ran"]
    for split, n in (("train", 6), ("valid", 4), ("test", 3)):
        (data / f"{split}.txt").write_text("\n".join(sentences[:n]) + "\n")
    return pkg, data


def drive(pkg, data, save, *extra, kill_at_update=0):
    cmd = [sys.executable, str(DRIVER), "--authors-dir", str(pkg), "--data", str(data), "--save-dir", str(save), *extra]
    env = dict(SUBPROCESS_ENV, SCRIPTED_LOSSES=json.dumps(LOSSES), KILL_AT_UPDATE=str(kill_at_update))
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def records(stdout, split):
    return [json.loads(line.split(f" | {split} | ", 1)[1]) for line in stdout.splitlines() if f" | {split} | " in line]


def test_authors_rule_halvings_stop_and_exact_resume(tmp_path):
    pkg, data = stand_in(tmp_path)
    whole = drive(pkg, data, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    valid = records(whole.stdout, "valid")
    # the rate each epoch trained at (1-based epochs): halved after epochs 17, 20, 22, 24, 26; stop after 26
    lrs = [1.0] * 17 + [0.5] * 3 + [0.25] * 2 + [0.125] * 2 + [0.0625] * 2
    assert [r["epoch"] for r in valid] == list(range(1, 27))
    assert [float(r["valid_lr"]) for r in valid] == lrs
    assert [float(r["valid_rec_plus_commitment"]) for r in valid] == LOSSES[:26]
    assert float(valid[-1]["valid_best_rec_plus_commitment"]) == 86.0
    assert whole.stdout.count("best weights reloaded") == 5
    # vq weight: +4.85 / (10 epochs x 6 sentences / batch 2) per update, capped at 5 (3 updates per epoch)
    assert float(valid[0]["valid_beta"]) == float(f"{0.15 + 3 * 4.85 / 30:.4g}") and float(valid[-1]["valid_beta"]) == 5.0
    result = json.loads((tmp_path / "whole" / "eval.json").read_text())
    assert (result["epochs"], result["lr_decays"], result["updates"]) == (26, 5, 78)
    assert f"{result['rec']:.3f}" == records(whole.stdout, "test")[0]["test_rec"] and result["tool"] == "authors_davam.py"
    decays = [line for line in whole.stdout.splitlines() if line.startswith("authors' rule: ")]
    assert decays[0] == "authors' rule: epoch 17: decay 1/5, lr 0.5, best weights reloaded" and len(decays) == 5
    # interrupted after the first halving: the weights are the best epoch's (15th), reloaded
    part = drive(pkg, data, tmp_path / "part", "--epochs", "17")
    assert part.returncode == 0, part.stderr
    last = torch.load(tmp_path / "part" / "checkpoint_last.pt", weights_only=False)
    best = torch.load(tmp_path / "part" / "best.pt")
    assert all(torch.equal(last["model"][k], best[k]) for k in best)
    # ... and continued: the same batches, dropout masks and decisions as the uninterrupted run
    rest = drive(pkg, data, tmp_path / "part")
    assert rest.returncode == 0, rest.stderr
    assert "resumed from" in rest.stdout
    assert timeless(records(part.stdout, "valid") + records(rest.stdout, "valid")) == timeless(valid)
    assert records(rest.stdout, "test") == records(whole.stdout, "test")


def timeless(recs):  # wall-clock figures differ from run to run
    return [{k: v for k, v in r.items() if k not in ("valid_train_hours", "train_wall")} for r in recs]


def test_mid_epoch_saves_resume_exactly_after_kills(tmp_path):
    """--save-last-interval-updates 2 on 3 updates per epoch: a save after update 2 (mid-epoch 1),
    4 (the first of epoch 2), 8, 10, ... but none at an epoch's last update (6, 12: the epoch-end
    save follows). Killed twice without warning, the run ends with the records of one never
    stopped (and never saving mid-epoch): the same batches, dropout masks, running sums and the
    authors' halvings, the first of which falls in the epoch redone after the second kill."""
    pkg, data = stand_in(tmp_path)
    whole = drive(pkg, data, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    save = tmp_path / "killed"
    first = drive(pkg, data, save, "--save-last-interval-updates", "2", kill_at_update=3)
    assert first.returncode == 137
    assert first.stdout.splitlines()[-1] == f"Saved checkpoint {save / 'checkpoint_last.pt'} (epoch 1 @ 2 updates, score None)"
    assert records(first.stdout, "valid") == []
    ckpt = torch.load(save / "checkpoint_last.pt", weights_only=False)
    assert (ckpt["state"]["epoch"], ckpt["state"]["iter"], ckpt["state"]["in_epoch"]["next"]) == (0, 2, 2)
    assert len(ckpt["state"]["in_epoch"]["order"]) == 3 and len(ckpt["optimizers"]) == 2
    # the second process resumes at update 3 and dies at update 51 (its 49th), the last of epoch 17,
    # before that epoch's validation and halving; its last save is from update 50
    second = drive(pkg, data, save, "--save-last-interval-updates", "2", kill_at_update=49)
    assert second.returncode == 137
    assert "resumed from" in second.stdout and ": 2 updates into epoch 1, 2 updates, lr 1.0" in second.stdout
    saves = [line for line in second.stdout.splitlines() if line.startswith("Saved checkpoint")]
    assert [int(line.split(" @ ")[1].split()[0]) for line in saves] == [u for u in range(4, 51, 2) if u % 3]
    assert [r["epoch"] for r in records(second.stdout, "valid")] == list(range(1, 17))
    third = drive(pkg, data, save, "--save-last-interval-updates", "2")
    assert third.returncode == 0, third.stderr
    assert ": 2 updates into epoch 17, 50 updates, lr 1.0" in third.stdout
    for split in ("train", "valid"):
        joined = records(first.stdout, split) + records(second.stdout, split) + records(third.stdout, split)
        assert timeless(joined) == timeless(records(whole.stdout, split)), split
    assert records(third.stdout, "test") == records(whole.stdout, "test")
    assert third.stdout.count("best weights reloaded") == 5


def test_missing_authors_files_and_data_are_one_line_errors(tmp_path):
    pkg, data = stand_in(tmp_path)
    (pkg / "module.py").unlink()
    proc = drive(pkg, data, tmp_path / "s")
    assert proc.returncode == 2
    assert proc.stderr == f"error: --authors-dir {pkg} has no module.py: point it at a checkout of sunset-clouds/DAVAM\n"
    (pkg / "module.py").write_text("")
    (data / "valid.txt").unlink()
    proc = drive(pkg, data, tmp_path / "s")
    assert proc.returncode == 2 and proc.stderr == f"error: --data {data} has no valid.txt\n"
    proc = drive(pkg, data, tmp_path / "s", "--save-last-interval-updates", "-1")
    assert proc.returncode == 2 and proc.stderr == "error: --save-last-interval-updates must be >= 0, got -1\n"


def test_recipe_runs_the_driver_resumably_and_refuses_an_unreachable_repository(tmp_path):
    """davam_ptb_authors_code.sh: with their code already in RUN/src (it clones AUTHORS_REPO only
    when it is not) it trains EPOCHS epochs into RUN/stage1, logging to RUN/stage1.log; run again
    it continues from the checkpoint until the authors' rule ends stage one, then scores the test
    set into RUN/eval.json, which results.py and the README table read."""
    pkg, data = stand_in(tmp_path)
    runs = tmp_path / "runs"
    env = dict(SUBPROCESS_ENV, RUNS=str(runs), PTB=str(data), VENV_BIN=str(BIN), SCRIPTED_LOSSES=json.dumps(LOSSES))
    script = REPO / "examples" / "reproduce" / "davam_ptb_authors_code.sh"
    bad = subprocess.run(["bash", str(script)], env=dict(env, AUTHORS_REPO=str(tmp_path / "nowhere")),
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.endswith(f"error: could not clone AUTHORS_REPO={tmp_path / 'nowhere'}: set it to a reachable clone of sunset-clouds/DAVAM\n")
    run = runs / "davam_ptb_authors_code"
    (run / "src").mkdir(parents=True)
    for f in pkg.iterdir():
        (run / "src" / f.name).write_text(f.read_text())
    first = subprocess.run(["bash", str(script)], env=dict(env, EPOCHS="2"), capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert (run / "stage1.cmd").read_text().split()[-4:] == ["--save-last-interval-updates", "500", "--epochs", "2"]
    assert [r["epoch"] for r in records((run / "stage1.log").read_text(), "valid")] == [1, 2]
    (run / "stage1.done").unlink()
    again = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    log = (run / "stage1.log").read_text()
    assert "resumed from" in log and [r["epoch"] for r in records(log, "valid")] == list(range(1, 27))
    assert (run / "recipe.done").exists() and json.loads((run / "eval.json").read_text())["epochs"] == 26
    # results.py makes the row's results/ files like any stage-one row's, the authors' halvings included
    out = tmp_path / "results"
    proc = subprocess.run([sys.executable, str(REPO / "examples" / "reproduce" / "results.py"), "davam_ptb_authors_code",
                           "--runs", str(runs), "--out", str(out), "--data", str(tmp_path / "no-data")],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    row = json.loads((out / "davam_ptb_authors_code.json").read_text())
    assert row["status"] == "finished" and row["epochs"] == 26 and row["updates"] == 78
    assert [d["after_epoch"] for d in row["lr_decays"]] == [17, 20, 22, 24, 26]
    assert row["evaluation"]["rec"] == json.loads((run / "eval.json").read_text())["rec"]
    assert (out / "davam_ptb_authors_code.png").is_file()
    table = subprocess.run([sys.executable, str(REPO / "examples" / "reproduce" / "results.py"), "--table", "--out", str(out)],
                           env=env, capture_output=True, text=True, timeout=300).stdout  # fmt: skip
    line = next(x for x in table.splitlines() if x.startswith("| `davam_ptb_authors_code`"))
    e = row["evaluation"]
    assert line.endswith(f"| Rec {e['rec']:.2f}, commitment {e['commitment']:.2f}, {e['code_usage']:.0f} codes "
                         "(stage one only: no prior, so no KL or PPL) |")
