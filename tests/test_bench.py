"""scripts/bench_train.py runs end to end (a couple of steps) and reports what README 8 shows."""

import json

from conftest import run_cli


def test_bench_train_smoke(tmp_path):
    out = tmp_path / "bench.json"
    proc = run_cli("python", "scripts/bench_train.py", "--steps", "2", "--warmup", "1", "--threads", "1", "--json", out)
    assert "ratio plugin/plain" in proc.stdout and "matrix-product FLOPs per target token" in proc.stdout
    report = json.loads(out.read_text())
    plugin, plain = report["results"]["plugin"], report["results"]["plain"]
    assert plugin["steps"] == plain["steps"] == 2
    assert plugin["tokens_per_s_median"] > 0 and plain["tokens_per_s_median"] > 0
    # forward + two backward products of the 512 -> 10k output layer per token, at least;
    # the plain loop also spends them on padding, so it does more per real token
    assert plugin["mflop_per_token"] >= 6 * 512 * 10_000 / 1e6
    assert plain["mflop_per_token"] > plugin["mflop_per_token"]
    assert report["model_flop_ceiling_tokens_per_s"] > 0
