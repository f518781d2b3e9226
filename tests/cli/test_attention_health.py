"""examples/reproduce/attention_health.py: the attention-health figures of a DAVAM checkpoint,
and the bound they rest on (any two attention weights within a factor exp(2 ||v||_1))."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import load_script

from davam_plugin.modules.bahdanau_attention import BahdanauAttention

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "reproduce" / "attention_health.py"


def _module():
    return load_script(SCRIPT)


def test_the_bound_holds_for_real_attention_weights():
    torch.manual_seed(0)
    attention = BahdanauAttention(8, 6, 5)
    with torch.no_grad():
        attention.v.mul_(0.3)
    weights = {f"decoder.attention.{k}": v for k, v in attention.state_dict().items()}
    health = _module().attention_health(weights)
    assert health["v_norm"] == pytest.approx(attention.v.norm().item())
    assert health["max_weight_ratio"] == pytest.approx(math.exp(2 * attention.v.abs().sum().item()))
    memory = torch.randn(50, 7, 6) * 10  # large inputs saturate tanh: the bound is the worst case
    _, a = attention(torch.randn(50, 8) * 10, memory)
    ratio = (a.max(dim=1).values / a.min(dim=1).values).max().item()
    assert 1.0 < ratio <= health["max_weight_ratio"] * (1 + 1e-6)
    with torch.no_grad():
        attention.v.zero_()
    zero = _module().attention_health({f"decoder.attention.{k}": v for k, v in attention.state_dict().items()})
    assert zero["max_weight_ratio"] == 1.0 and "codes" not in zero
    with pytest.raises(ValueError, match="not a DAVAM model with decoder attention"):
        _module().attention_health({"decoder.embed_tokens.weight": torch.zeros(3, 2)})


def test_cli_on_a_trained_checkpoint(tiny_checkpoint, tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), str(tiny_checkpoint), "--json"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    health = json.loads(out.stdout)
    state = torch.load(tiny_checkpoint, map_location="cpu", weights_only=False)
    v = state["model"]["decoder.attention.v"]
    assert health["num_updates"] == 20 and health["v_norm"] == pytest.approx(v.norm().item())
    live = state["model"]["encoder.bottleneck.quantizer.cluster_size"] > 0
    assert health["codes"] == 64 and health["codes_live"] == int(live.sum()) > 0
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    proc = subprocess.run([sys.executable, str(SCRIPT), str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip().startswith(f"error: CHECKPOINT {bad}") and "Traceback" not in proc.stderr
