"""The ablation archs end to end through the real fairseq tools on the tiny corpus.

For each of ``gavam_tiny``, ``vae_attn_tiny`` and ``davam_q_tiny``: fairseq-train (10
updates), fairseq-validate on all 40 valid sentences (the criterion's metrics) and
fairseq-generate --beam 2 on the 203 test lines (reconstruction). The three pipelines run
side by side to keep the file short. (The one-line configuration errors are checked in
process in test_ablations.py; fairseq prints a SystemExit as one line, see test_cli.py.)
"""

import json
import math
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import PLUGIN, TRAIN_TINY, run_cli
from test_cli import check_one_output_per_line, json_log, raw_lines, valid_summary

ARCHS = ("gavam_tiny", "vae_attn_tiny", "davam_q_tiny")
GAUSSIAN = ("gavam_tiny", "vae_attn_tiny")
UPDATES = 10
KL_START, KL_WARMUP = 0.5, 10


def train_flags(arch):
    flags = [a for a in TRAIN_TINY]
    flags[flags.index("davam_tiny")] = arch
    return flags + ["--max-update", UPDATES, "--seed", "1", "--kl-weight-start", KL_START, "--kl-warmup-updates", KL_WARMUP]


def pipeline(arch, data, root):
    save = root / arch
    train = run_cli("fairseq-train", data, *train_flags(arch), "--save-dir", save)
    ckpt = save / "checkpoint_last.pt"
    common = ["--user-dir", PLUGIN, "--task", "sentence_vae", "--path", ckpt, "--cpu", "--batch-size", "16"]
    validate = run_cli("fairseq-validate", data, *common, "--valid-subset", "valid")
    # --max-len-b 30: a model 10 updates old rarely ends a sentence, and beam search would run to 200
    # tokens (the check counts one output per line, not its words)
    generate = run_cli("fairseq-generate", data, *common, "--gen-subset", "test", "--beam", "2", "--max-len-b", "30")
    # stage two: GAVAM and VAE+Attn carry their prior; DAVAM-q fits one (davam_prior task)
    prior = []
    if arch not in GAUSSIAN:
        run_cli(
            "fairseq-train", data, "--user-dir", PLUGIN, "--task", "davam_prior", "--davam-path", ckpt,
            "--arch", "davam_prior_tiny", "--criterion", "davam_prior", "--optimizer", "adam", "--lr", "0.003",
            "--batch-size", "32", "--max-update", "5", "--cpu", "--num-workers", "0", "--save-dir", root / f"{arch}_prior",
        )  # fmt: skip
        prior = ["--prior-path", root / f"{arch}_prior" / "checkpoint_last.pt"]
    sampled = run_cli("fairseq-generate", data, *common, *prior, "--sample-from-prior", "6", "--beam", "1", "--sampling",
                      "--max-len-b", "30")  # fmt: skip
    out = root / f"{arch}_eval.json"
    run_cli("davam-evaluate", data, "--path", ckpt, *prior, "--split", "test", "--json", out, "--cpu")
    return {
        "train": train.stdout + train.stderr,
        "validate": validate.stdout + validate.stderr,
        "generate": generate.stdout,
        "sampled": sampled.stdout,
        "evaluation": json.loads(out.read_text()),
    }


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("ablations")
    with ThreadPoolExecutor(max_workers=len(ARCHS)) as pool:
        futures = {arch: pool.submit(pipeline, arch, tiny_data, root) for arch in ARCHS}
        return {arch: f.result() for arch, f in futures.items()}


@pytest.mark.parametrize("arch", ARCHS)
def test_train_logs_and_kl_weight_schedule(runs, arch):
    records = {int(r["num_updates"]): r for r in json_log(runs[arch]["train"], "train_inner")}
    assert sorted(records) == list(range(1, UPDATES + 1))
    for n, r in records.items():
        assert math.isfinite(float(r["loss"])) and float(r["rec"]) > 0
        if arch in GAUSSIAN:
            # the step that produced update n ran with num_updates = n - 1
            expected = KL_START + (1.0 - KL_START) * min(1.0, (n - 1) / KL_WARMUP)
            assert float(r["kl_weight"]) == pytest.approx(expected, abs=1e-3), n
            assert float(r["neg_elbo"]) == pytest.approx(float(r["rec"]) + float(r["kl"]), abs=2e-3)
            assert "code_usage" not in r and "commitment" not in r
        else:
            assert "kl" not in r and "code_usage" in r and "beta" in r


@pytest.mark.parametrize("arch", ARCHS)
def test_validate_reports_metrics_for_all_sentences(runs, tiny_raw, arch):
    valid = raw_lines(tiny_raw / "valid.txt")
    m = valid_summary(runs[arch]["validate"])
    assert m["bsz"] == len(valid) == 40, "fairseq-validate must see every sentence once"
    assert m["wpb"] == sum(len(s.split()) + 1 for s in valid), "tokens are words + EOS"
    if arch in GAUSSIAN:
        keys = ("loss", "rec", "kl", "kl_paper", "neg_elbo", "kl_weight", "nll_per_token", "rec_ppl")
        assert all(k in m and math.isfinite(m[k]) for k in keys), sorted(m)
        assert m["neg_elbo"] == pytest.approx(m["rec"] + m["kl"], abs=2e-3)
        assert m["kl"] > 0 and m["kl_paper"] < m["kl"]  # averaged over > 1 position per sentence
        assert m["kl_weight"] == 1.0  # after the 10-update warm-up
        assert "code_usage" not in m and "code_ppl" not in m
    else:
        keys = ("loss", "rec", "commitment", "beta", "nll_per_token", "rec_ppl", "code_usage", "code_ppl")
        assert all(k in m and math.isfinite(m[k]) for k in keys), sorted(m)
        assert "kl" not in m
    assert m["nll_per_token"] == pytest.approx(m["rec"] * 40 / m["wpb"], rel=1e-3)


@pytest.mark.parametrize("arch", ARCHS)
def test_generate_reconstructs_every_test_line(runs, tiny_raw, arch):
    check_one_output_per_line(runs[arch]["generate"], raw_lines(tiny_raw / "test.txt"))



@pytest.mark.parametrize("arch", ARCHS)
def test_generation_from_the_prior_and_evaluation(runs, tiny_raw, arch):
    ids = sorted(int(x.split("\t")[0][2:]) for x in runs[arch]["sampled"].splitlines() if x.startswith("H-"))
    assert ids == list(range(6))
    e = runs[arch]["evaluation"]
    test = raw_lines(tiny_raw / "test.txt")
    assert e["sentences"] == len(test) == 203 and e["tokens"] == sum(len(s.split()) + 1 for s in test)
    assert e["nll_bound"] == pytest.approx(e["rec"] + e["kl"])
    assert e["ppl_bound"] == pytest.approx(math.exp(e["nll_bound"] * 203 / e["tokens"]), rel=1e-6)
    if arch in GAUSSIAN:  # one latent per token, no end symbol
        assert e["latent_positions"] == e["tokens"] and "code_usage" not in e
    else:  # DAVAM-q: one code per sentence, scored with the end symbol: kl_paper = kl / 2
        assert e["latent_positions"] == 203 and e["prior_predictions"] == 406
        assert e["kl_paper"] == pytest.approx(e["kl"] / 2)


def test_prior_sampling_dispatch_by_model(tiny_data):
    """--sample-from-prior feeds each family its own prior's latents: GAVAM/VAE+Attn a latent
    sequence whose lengths come from the training split, AWD one z, DAVAM codes (needs a prior)."""
    import torch
    from fairseq.data import Dictionary

    from davam_plugin.models.awd import AwdConfig, AwdModel
    from davam_plugin.models.davam import DavamModel
    from davam_plugin.tasks.sentence_vae import SentenceVAEConfig, SentenceVAETask
    from helpers import ABLATIONS, tiny_config

    task = SentenceVAETask(SentenceVAEConfig(data=str(tiny_data), sample_from_prior=5), Dictionary.load(str(tiny_data / "dict.txt")))
    train_sizes = set(task.load_sentences("train").sizes.tolist())
    sample = {"net_input": {"src_tokens": torch.full((5, 1), 2), "src_lengths": torch.ones(5, dtype=torch.long)}}

    class Task:
        source_dictionary = target_dictionary = task.dictionary

    for name in ("gavam", "vae_attn"):
        model = DavamModel.build_model(tiny_config(**ABLATIONS[name]), Task()).eval()
        net = task._prior_sample(model, sample)["net_input"]
        z, lengths = net["src_latents"], net["src_code_lengths"]
        assert z.shape == (5, int(lengths.max()), 4) and set(lengths.tolist()) <= train_sizes
        assert (z[torch.arange(z.size(1)).unsqueeze(0) >= lengths.unsqueeze(1)] == 0).all()
    awd = AwdModel.build_model(AwdConfig(embed_dim=8, encoder_hidden_dim=8, decoder_hidden_dim=8, latent_dim=3,
                                         adversary_embed_dim=4, adversary_hidden_dim=4), Task())  # fmt: skip
    assert task._prior_sample(awd, sample)["net_input"]["z"].shape == (5, 3)
    davam = DavamModel.build_model(tiny_config(), Task())
    with pytest.raises(SystemExit, match="needs --prior-path"):
        task._prior_sample(davam, sample)
