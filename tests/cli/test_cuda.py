"""CUDA checks (marker ``cuda``; skipped without a GPU, run by scripts/gpu_check.sh):
device placement of the quantizer, the prior and generation, --bf16-autocast on CUDA, and
fairseq's own --fp16 and --amp training steps with the plugin's models."""

import pytest
import torch

from conftest import TRAIN_TINY, run_cli
from helpers import SENTENCES, make_batch, tiny_model

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# TRAIN_TINY without --cpu: fairseq then trains on the GPU
TRAIN_GPU = [a for a in TRAIN_TINY if a != "--cpu"]


def test_quantizer_and_model_run_on_the_gpu():
    model, d = tiny_model()
    model = model.cuda()
    q = model.encoder.bottleneck.quantizer
    assert q.codebook.is_cuda and q.cluster_size.dtype == torch.float32
    batch = make_batch(d, SENTENCES)
    net = {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch["net_input"].items()}
    model.train()
    features, extra = model(**net, features_only=True)
    assert features.is_cuda and extra["codes"].is_cuda
    with torch.autocast("cuda", dtype=torch.bfloat16):
        features16, extra16 = model(**net, features_only=True)
    assert extra16["commitment"].dtype == torch.float32 and q.codebook.dtype == torch.float32


def test_prior_samples_on_the_gpu():
    from davam_plugin.models.davam_prior import DavamPriorConfig, DavamPriorModel

    torch.manual_seed(0)
    cfg = DavamPriorConfig(prior_embed_dim=16, prior_layers=2, prior_kernel_size=3, prior_head_dim=16)

    class Task:
        num_codes = 6

        def stage_one_codebook(self):
            return torch.randn(6, 4)

    prior = DavamPriorModel.build_model(cfg, Task()).cuda().eval()
    codes, lengths = prior.sample(5, 7, 1.0, 0)
    assert codes.is_cuda and lengths.is_cuda and int(lengths.max()) <= 7


def test_cli_gpu_training_modes_and_generation(tiny_data, tmp_path):
    """fairseq-train on the GPU in fp32, --bf16-autocast, fairseq's --fp16 and --amp; then
    validation and generation (reconstruction) on the GPU with the bf16 model."""
    for name, flags in {"fp32": [], "bf16": ["--bf16-autocast"], "fp16": ["--fp16"], "amp": ["--amp"]}.items():
        save = tmp_path / name
        out = run_cli("fairseq-train", tiny_data, *TRAIN_GPU, "--max-update", "6", "--save-dir", save, *flags)
        text = out.stdout + out.stderr
        assert "training on 1 devices (GPUs/TPUs)" in text and '"train_rec"' in text, name
    ckpt = tmp_path / "bf16" / "checkpoint_last.pt"
    common = ["--user-dir", TRAIN_TINY[1], "--task", "sentence_vae", "--path", ckpt, "--batch-size", "16", "--bf16-autocast"]
    run_cli("fairseq-validate", tiny_data, *common)
    gen = run_cli("fairseq-generate", tiny_data, *common, "--gen-subset", "valid", "--beam", "2")
    assert sum(line.startswith("H-") for line in gen.stdout.splitlines()) == 40


def test_cli_prior_and_sampling_on_the_gpu(tiny_data, tmp_path):
    save = tmp_path / "stage1"
    run_cli("fairseq-train", tiny_data, *TRAIN_GPU, "--max-update", "10", "--save-dir", save)
    prior = tmp_path / "prior"
    run_cli("fairseq-train", tiny_data, "--user-dir", TRAIN_TINY[1], "--task", "davam_prior", "--davam-path",
            save / "checkpoint_last.pt", "--arch", "davam_prior_tiny", "--criterion", "davam_prior", "--optimizer",
            "adam", "--lr", "0.003", "--batch-size", "32", "--max-update", "5", "--save-dir", prior,
            "--bf16-autocast", "--num-workers", "0")  # fmt: skip
    gen = run_cli("fairseq-generate", tiny_data, "--user-dir", TRAIN_TINY[1], "--task", "sentence_vae", "--path",
                  save / "checkpoint_last.pt", "--prior-path", prior / "checkpoint_last.pt", "--sample-from-prior",
                  "7", "--beam", "1", "--sampling", "--batch-size", "4", "--bf16-autocast")  # fmt: skip
    assert sum(line.startswith("H-") for line in gen.stdout.splitlines()) == 7
