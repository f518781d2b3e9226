"""examples/reproduce/precision_check.py: float32 against bf16 autocast on the same training step."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import load_script

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "reproduce" / "precision_check.py"


def _module():
    return load_script(SCRIPT)


def test_two_float32_passes_are_identical(tiny_checkpoint):
    """The passes differ only in precision: same weights, codebook and dropout masks each time.
    A training-mode forward moves the EMA codebook, so without the restore the second pass would
    see another codebook, and without the reseed other dropout masks."""
    m = _module()
    from davam_plugin.checkpoint_reading import read_checkpoint
    from davam_plugin.tasks.sentence_vae import load_sentence_vae_checkpoint

    task, model = load_sentence_vae_checkpoint(str(tiny_checkpoint), None)
    _, cfg = read_checkpoint(str(tiny_checkpoint), "CHECKPOINT")
    criterion = task.build_criterion(cfg.criterion)
    task.load_dataset("train")
    sample = next(iter(task.get_batch_iterator(task.dataset("train"), max_sentences=8, seed=1).next_epoch_itr(shuffle=False)))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    recorder = m._CodeRecorder(model)
    first = m._one_pass(model, criterion, sample, state, False, True, 5, recorder)
    assert not torch.equal(model.state_dict()["encoder.bottleneck.quantizer.cluster_sum"], state["encoder.bottleneck.quantizer.cluster_sum"])
    second = m._one_pass(model, criterion, sample, state, False, True, 5, recorder)
    assert first[0] == second[0] and len(first[2]) == 1 and torch.equal(first[2][0], second[2][0])
    assert all(torch.equal(first[1][k], second[1][k]) for k in first[1])
    other_seed = m._one_pass(model, criterion, sample, state, False, True, 6, recorder)
    assert other_seed[0] != first[0]  # dropout masks differ: the reseed is what made them equal


def test_bf16_step_is_close_to_float32(tiny_checkpoint):
    out = _module().precision_check(str(tiny_checkpoint), batches=2, batch_size=8)
    assert out["num_updates"] == 20 and out["mode"] == "train" and len(out["batches"]) == 2
    first, second = out["batches"]
    assert first["grad_cos_previous_batch"] is None and -1 <= second["grad_cos_previous_batch"] <= 1
    for row in out["batches"]:
        assert row["loss_bf16"] == pytest.approx(row["loss_fp32"], rel=0.02) and row["loss_bf16"] != row["loss_fp32"]
        assert 0.9 < row["grad_cos"] < 1 + 1e-9
        assert 0.5 <= row["codes_agree"] <= 1
    shares = [p["grad_norm_share"] for p in out["parameters"].values()]
    assert "decoder.attention.v" in out["parameters"] and all(0 <= s <= 1 for s in shares)
    fresh = _module().precision_check(str(tiny_checkpoint), batches=1, batch_size=8, from_init=True)
    assert fresh["num_updates"] == 0 and fresh["batches"][0]["loss_fp32"] != first["loss_fp32"]


def test_cli_json_and_errors(tiny_checkpoint, tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), str(tiny_checkpoint), "--batches", "1", "--batch-size", "4", "--json", "--eval-mode"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    figures = json.loads(out.stdout)
    assert figures["mode"] == "eval" and len(figures["batches"]) == 1
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip().startswith(f"error: CHECKPOINT {bad}") and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tiny_checkpoint), "--batches", "0"], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: --batches and --batch-size must be at least 1"
