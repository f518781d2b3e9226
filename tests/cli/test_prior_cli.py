"""DAVAM stage two end to end: fairseq-train/validate --task davam_prior, fairseq-generate
--sample-from-prior, davam-evaluate against a direct computation, and bad inputs."""

import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F

import davam_plugin  # noqa: F401
from davam_plugin.loading import load_davam, load_prior

from conftest import PLUGIN, run_cli

TRAIN_PRIOR = [
    "--user-dir", PLUGIN, "--task", "davam_prior", "--arch", "davam_prior_tiny", "--criterion", "davam_prior",
    "--optimizer", "adam", "--lr", "0.003", "--batch-size", "32", "--cpu", "--num-workers", "0",
    "--no-epoch-checkpoints", "--log-format", "json", "--log-interval", "1",
]  # fmt: skip


def one_line_error(proc):
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode != 0
    assert not any("Traceback" in line for line in lines), "\n".join(lines[-30:])
    return lines[-1]


def valid_metrics(output):
    """fairseq-validate --log-format json summary: {"valid_loss": "0.31", ...} -> {"loss": 0.31, ...}."""
    line = [x for x in output.splitlines() if '"valid_loss"' in x][-1]
    record = json.loads(line[line.index("{") :])
    return {k[len("valid_") :]: float(v) for k, v in record.items()}


@pytest.fixture(scope="module")
def prior_run(tiny_data, tiny_checkpoint, tmp_path_factory):
    save = tmp_path_factory.mktemp("prior")
    proc = run_cli(
        "fairseq-train", tiny_data, *TRAIN_PRIOR, "--davam-path", tiny_checkpoint, "--max-update", "30",
        "--save-dir", save,
    )  # fmt: skip
    return save / "checkpoint_last.pt", proc.stdout + proc.stderr


def tiny_sentences(tiny_raw, split):
    return (tiny_raw / f"{split}.txt").read_text().split("\n")[:-1]


def test_prior_trains_on_every_code_sequence_and_validates(prior_run, tiny_raw, tiny_data, tiny_checkpoint):
    checkpoint, log = prior_run
    assert "davam_prior: train: 600 code sequences" in log
    state = torch.load(checkpoint, map_location="cpu")
    assert not any(k.startswith("encoder.") or k.startswith("decoder.") for k in state["model"]), (
        "the frozen stage-one model must not be saved in the prior checkpoint"
    )
    davam_state = torch.load(tiny_checkpoint, map_location="cpu")
    assert torch.equal(state["model"]["stage_one_codebook"], davam_state["model"]["encoder.bottleneck.quantizer.codebook"].float())
    losses = [float(r["loss"]) for r in map(json.loads, (x[x.index("{") :] for x in log.splitlines() if "train_inner" in x))]
    assert len(losses) == 30 and losses[-1] < losses[0]

    proc = run_cli(
        "fairseq-validate", tiny_data, "--user-dir", PLUGIN, "--task", "davam_prior", "--path", checkpoint,
        "--valid-subset", "valid", "--batch-size", "7", "--cpu", "--log-format", "json",
    )  # fmt: skip
    m = valid_metrics(proc.stdout + proc.stderr)
    valid = tiny_sentences(tiny_raw, "valid")
    n_tokens = sum(len(s.split()) + 1 for s in valid)
    assert m["bsz"] == len(valid)
    assert m["wpb"] == n_tokens + len(valid), "predictions = one code per token + one end symbol per sentence"
    assert math.isclose(m["nll_per_sentence"], m["nll_per_position"] * m["wpb"] / m["bsz"], rel_tol=1e-3)
    assert math.isclose(m["ppl"], math.exp(m["nll_per_position"]), rel_tol=1e-3)

    # the same number through the evaluation code path (prior.log_probs on the posterior codes)
    task, davam = load_davam(str(tiny_checkpoint), str(tiny_data))
    prior = load_prior(str(checkpoint))
    from davam_plugin.evaluation import evaluate_split

    summary, _ = evaluate_split(davam, prior, task.load_sentences("valid"), batch_size=5)
    assert math.isclose(summary["kl"], m["nll_per_sentence"], rel_tol=2e-3)


def direct_evaluation(davam, prior, sentences):
    """One sentence at a time, with the step-by-step decoder and the incremental prior."""
    rec, kl, ntok, npred, used = [], [], [], [], set()
    eos = davam.decoder.dictionary.eos()
    with torch.no_grad():
        for s in sentences:
            src = s.unsqueeze(0)
            enc = davam.encoder(src)
            prev = torch.cat([torch.tensor([[eos]]), src[:, :-1]], 1)
            logp = F.log_softmax(davam.decoder.forward_unfused(prev, enc).double(), -1)
            rec.append(-logp[0, torch.arange(len(s)), s].sum().item())
            codes = enc["codes"][0][0].tolist()
            used.update(codes)
            state, total, prev_code = prior.init_state(1), 0.0, None
            for t, z in enumerate(codes + [prior.eoc]):
                lp = F.log_softmax(prior.step(prev_code, state, t).double(), -1)[0, z].item()
                total -= lp
                prev_code = torch.tensor([z])
            kl.append(total)
            ntok.append(len(s))
            npred.append(len(codes) + 1)
    return rec, kl, ntok, npred, used


def test_evaluate_script_numbers_match_a_direct_computation(prior_run, tiny_data, tiny_checkpoint, tmp_path):
    checkpoint, _ = prior_run
    out = tmp_path / "eval.json"
    run_cli(
        "davam-evaluate", tiny_data, "--path", tiny_checkpoint, "--prior-path", checkpoint,
        "--split", "test", "--batch-size", "16", "--json", out, "--cpu",
    )  # fmt: skip
    got = json.loads(out.read_text())
    task, davam = load_davam(str(tiny_checkpoint), str(tiny_data))
    prior = load_prior(str(checkpoint))
    sentences = task.load_sentences("test")
    rec, kl, ntok, npred, used = direct_evaluation(davam, prior, [sentences[i] for i in range(len(sentences))])
    n, tokens = len(rec), sum(ntok)
    kl_paper = [k / p for k, p in zip(kl, npred, strict=True)]
    expected = {
        "sentences": 203,
        "tokens": tokens,
        "words": tokens - 203,
        "rec": sum(rec) / n,
        "kl": sum(kl) / n,
        "kl_paper": sum(kl_paper) / n,
        "nll_bound": (sum(rec) + sum(kl)) / n,
        "rec_ppl": math.exp(sum(rec) / tokens),
        "ppl_paper": math.exp((sum(rec) + sum(kl_paper)) / tokens),
        "ppl_bound": math.exp((sum(rec) + sum(kl)) / tokens),
        "code_usage": len(used),
    }
    for key, value in expected.items():
        assert math.isclose(got[key], value, rel_tol=1e-4), (key, got[key], value)
    assert got["ppl_bound"] > got["ppl_paper"], "the bound sums the KL over positions; the paper averages it"


@pytest.mark.parametrize(
    "n, flags",
    [(1, ["--beam", "1"]), (5, ["--beam", "5"]), (203, ["--beam", "1", "--sampling", "--batch-size", "16"])],
)
def test_generate_from_prior_gives_exactly_n_sentences(prior_run, tiny_data, tiny_checkpoint, n, flags):
    checkpoint, _ = prior_run
    proc = run_cli(
        "fairseq-generate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", tiny_checkpoint,
        "--prior-path", checkpoint, "--sample-from-prior", n, "--prior-topk", "10", "--cpu", "--seed", "2", *flags,
    )  # fmt: skip
    hyps = {int(x.split("\t")[0][2:]): x.split("\t")[2] for x in proc.stdout.splitlines() if x.startswith("H-")}
    assert sorted(hyps) == list(range(n))
    assert sum(1 for text in hyps.values() if text.strip()) >= n * 0.9, "samples decode to words"
    again = run_cli(
        "fairseq-generate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", tiny_checkpoint,
        "--prior-path", checkpoint, "--sample-from-prior", n, "--prior-topk", "10", "--cpu", "--seed", "2", *flags,
    ) if n == 5 else None  # fmt: skip
    if again is not None:  # seeded: the same samples
        assert [x for x in again.stdout.splitlines() if x.startswith("H-")] == [
            x for x in proc.stdout.splitlines() if x.startswith("H-")
        ]


def test_decoding_given_codes_equals_decoding_the_encoded_sentence(tiny_data, tiny_checkpoint):
    task, davam = load_davam(str(tiny_checkpoint), str(tiny_data))
    sentences = task.load_sentences("valid")
    src = torch.nn.utils.rnn.pad_sequence([sentences[i] for i in range(6)], batch_first=True, padding_value=1)
    enc = davam.encoder(src)
    lengths = src.ne(1).sum(1)
    from_codes = davam.encoder(src[:, :1], src_codes=enc["codes"][0].clamp_min(0), src_code_lengths=lengths)
    prev = torch.cat([torch.full((6, 1), 2), src[:, :-1]], 1).masked_fill(src.eq(1), 1)
    a, _ = davam.decoder(prev, encoder_out=enc)
    b, _ = davam.decoder(prev, encoder_out=from_codes)
    assert torch.equal(a[src.ne(1)], b[src.ne(1)])


# ----------------------------------------------------------------------------- bad inputs
@pytest.fixture(scope="module")
def bad_paths(tiny_data, prior_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    garbage = root / "garbage.pt"
    garbage.write_bytes(b"this is not a checkpoint\n" * 10)
    other_dict = root / "other-dict"
    shutil.copytree(tiny_data, other_dict)
    lines = (other_dict / "dict.txt").read_text().splitlines()
    lines[0], lines[1] = lines[1], lines[0]  # same size, different dictionary
    (other_dict / "dict.txt").write_text("\n".join(lines) + "\n")
    return {"missing": root / "nosuch.pt", "garbage": garbage, "prior": prior_run[0], "other_dict": other_dict}


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "error: --davam-path {missing}: no such file"),
        ("garbage", "error: --davam-path {garbage} is not a PyTorch checkpoint"),
        ("prior", "error: --davam-path {prior} holds a 'davam_prior_tiny' model, not a stage-one DAVAM"),
        ("other_dict", "error: the dictionary of DATA"),
    ],
)
def test_bad_davam_path_fails_with_one_line_error(bad_paths, tiny_data, tiny_checkpoint, tmp_path, case, message):
    data, davam_path = tiny_data, tiny_checkpoint
    if case == "other_dict":
        data = bad_paths["other_dict"]
    else:
        davam_path = bad_paths[case]
    proc = run_cli(
        "fairseq-train", data, *TRAIN_PRIOR, "--davam-path", davam_path, "--max-update", "1",
        "--save-dir", tmp_path / "ckpt", check=False,
    )  # fmt: skip
    line = one_line_error(proc)
    assert line.startswith(message.format(**bad_paths)), line
    assert not (tmp_path / "ckpt" / "checkpoint_last.pt").exists()


def test_prior_of_another_davam_model_is_refused(prior_run, tiny_data, tiny_checkpoint, tmp_path):
    state = torch.load(prior_run[0], map_location="cpu")
    state["model"]["stage_one_codebook"] = state["model"]["stage_one_codebook"] + 0.5
    other = tmp_path / "other_prior.pt"
    torch.save(state, other)
    proc = run_cli(
        "fairseq-generate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", tiny_checkpoint,
        "--prior-path", other, "--sample-from-prior", "3", "--cpu", check=False,
    )  # fmt: skip
    assert one_line_error(proc).startswith("error: --prior-path was fitted to a different DAVAM model than --path")
    proc = run_cli(
        "fairseq-generate", tiny_data, "--user-dir", PLUGIN, "--task", "sentence_vae", "--path", tiny_checkpoint,
        "--sample-from-prior", "3", "--cpu", check=False,
    )  # fmt: skip
    assert one_line_error(proc).startswith("error: --sample-from-prior needs --prior-path")


def test_validate_refuses_a_prior_fitted_to_another_davam_model(prior_run, tiny_data, tiny_checkpoint, tmp_path):
    state = torch.load(tiny_checkpoint, map_location="cpu")
    state["model"]["encoder.bottleneck.quantizer.codebook"] = state["model"]["encoder.bottleneck.quantizer.codebook"] + 0.5
    other = tmp_path / "other_davam.pt"
    torch.save(state, other)
    proc = run_cli(
        "fairseq-validate", tiny_data, "--user-dir", PLUGIN, "--task", "davam_prior", "--path", prior_run[0],
        "--valid-subset", "valid", "--cpu", "--batch-size", "8", "--model-overrides", repr({"davam_path": str(other)}),
        check=False,
    )  # fmt: skip
    assert one_line_error(proc).startswith("error: this prior checkpoint was fitted to a different DAVAM model")
    proc = run_cli(
        "fairseq-validate", tiny_data, "--user-dir", PLUGIN, "--task", "davam_prior", "--path", prior_run[0],
        "--valid-subset", "valid", "--cpu", "--batch-size", "8", "--model-overrides",
        repr({"davam_path": str(tiny_checkpoint)}),
    )  # fmt: skip
    assert "valid on 'valid' subset" in proc.stdout + proc.stderr
