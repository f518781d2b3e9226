"""scripts/bench_train.py runs end to end (a couple of steps) and reports what the benchmark
section shows: fp32 and --bf16-autocast side by side, FLOPs and ceilings; a corpus smaller
than the usual sample works; a child's failure is reported."""

import json

from conftest import run_cli


def test_bench_train_smoke_on_a_small_corpus(tiny_data, tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli("python", "scripts/bench_train.py", "--models", "davam_tiny,awd_tiny,davam_prior_tiny", "--precisions", "fp32,bf16",
                   "--steps", "2", "--warmup", "1", "--awd-steps", "2", "--threads", "1", "--data", tiny_data,
                   "--json", out)  # fmt: skip
    assert "bf16/fp32 throughput" in proc.stdout and "davam_ptb fp32 / plain loop" not in proc.stdout
    report = json.loads(out.read_text())
    runs = {(r["variant"], r["precision"]): r for r in report["results"]}
    assert set(runs) == {("davam_tiny", "fp32"), ("davam_tiny", "bf16"), ("awd_tiny", "fp32"), ("awd_tiny", "bf16"),
                         ("davam_prior_tiny", "fp32"), ("davam_prior_tiny", "bf16"), ("plain", "fp32")}  # fmt: skip
    # the prior's batches are the same sentences' code sequences: one prediction more per sentence (EOC)
    assert runs[("davam_prior_tiny", "fp32")]["mean_tokens_per_batch"] > runs[("davam_tiny", "fp32")]["mean_tokens_per_batch"]
    vocab = runs[("plain", "fp32")]["vocab"]
    assert vocab < 10_000 and f"vocabulary {vocab}" in proc.stdout  # the corpus's own vocabulary, named as such
    for r in runs.values():
        assert r["steps"] == 2 and r["tokens_per_s_median"] > 0 and r["mflop_per_token"] > 0
        assert r["ceiling_fp32_tokens_per_s"] > 0 and r["ceiling_bf16_tokens_per_s"] > 0
    # autocast changes the dtype of the products, not how many there are
    for m in ("davam_tiny", "awd_tiny", "davam_prior_tiny"):
        assert abs(runs[(m, "bf16")]["mflop_per_token"] - runs[(m, "fp32")]["mflop_per_token"]) < 1e-6 * runs[(m, "fp32")]["mflop_per_token"] + 1e-9
    assert report["gemm_gflops"]["fp32"] > 0 and report["gemm_gflops"]["bf16"] > 0


def test_bench_train_reports_a_failing_child(tmp_path):
    proc = run_cli("python", "scripts/bench_train.py", "--models", "no_such_arch", "--precisions", "fp32",
                   "--no-plain", "--steps", "1", "--warmup", "0", "--threads", "1", check=False)  # fmt: skip
    assert proc.returncode != 0
    assert "error: the no_such_arch fp32 run failed" in proc.stderr and "KeyError" in proc.stderr
