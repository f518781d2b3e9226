"""Read and check checkpoint files, with one-line errors (the layer below the tasks).

Every problem a user can cause - a missing file, a file that is not a fairseq checkpoint, a
checkpoint of another model, a prior fitted to another DAVAM model - raises ``SystemExit``
with one line naming the flag to fix (fairseq's command-line tools print no traceback for
``SystemExit``).

This module reads files and builds the stage-two prior (a plain model, no task needed); the
sentence models, which need their task, are built by
:func:`davam_plugin.tasks.sentence_vae.load_sentence_vae_checkpoint`, and
:mod:`davam_plugin.loading` (above the tasks) is the entry point scripts use.
"""

import os
from typing import Optional

import torch
from fairseq import checkpoint_utils
from fairseq.models import ARCH_MODEL_REGISTRY

from davam_plugin.atomic_checkpoint import UnreadableCheckpointError
from davam_plugin.models.davam_prior import DavamPriorModel


def read_checkpoint(path: Optional[str], flag: str):
    """(state, cfg) of a fairseq checkpoint file; one-line errors name ``flag``."""
    if not path:
        raise SystemExit(f"error: {flag} is required")
    if not os.path.isfile(path):
        raise SystemExit(f"error: {flag} {path}: no such file")
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path)
    except UnreadableCheckpointError as e:  # empty or cut short: say so, with the flag
        raise SystemExit(f"error: {flag} {path} {e.reason}") from None
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise SystemExit(f"error: {flag} {path} is not a readable fairseq checkpoint ({type(e).__name__})") from None
    cfg = state.get("cfg") if isinstance(state, dict) else None
    if cfg is None or "model" not in state:
        raise SystemExit(f"error: {flag} {path} is not a fairseq checkpoint (no cfg/model entries)")
    return state, cfg


def model_name(cfg) -> str:
    """The class name of the checkpoint's model (its arch's registered model), else the arch."""
    model_cfg = cfg.get("model") if hasattr(cfg, "get") else None
    arch = model_cfg.get("_name") if model_cfg is not None else None
    model_cls = ARCH_MODEL_REGISTRY.get(arch) if arch else None
    return getattr(model_cls, "__name__", str(arch))


def check_model_class(cfg, path: str, flag: str, expect: Optional[tuple], expect_text: str = "") -> None:
    """Refuse a checkpoint whose model is not one of ``expect`` (model classes; None: any)."""
    if expect is not None and model_name(cfg) not in {c.__name__ for c in expect}:
        wanted = expect_text or " or ".join(c.__name__ for c in expect)
        raise SystemExit(f"error: {flag} {path} holds a '{cfg.model.get('_name')}' model, not a {wanted} checkpoint")


def checkpoint_weights(state, path: str, flag: str, use_ema: bool = False):
    """The state dict to load: the trained weights, or with ``use_ema`` those averaged by
    ``fairseq-train --store-ema`` (completed by the entries fairseq's EMA does not average)."""
    weights = state["model"]
    if use_ema:
        weights = (state.get("extra_state") or {}).get("ema")
        if weights is None:
            raise SystemExit(f"error: {flag} {path} has no averaged weights (train with --store-ema), drop --use-ema")
        weights = dict(weights)
        for key, value in state["model"].items():  # entries fairseq's EMA does not average
            weights.setdefault(key, value)
    return weights


def checkpoint_num_updates(state) -> int:
    return state.get("optimizer_history", [{}])[-1].get("num_updates", 0)


def load_prior(path: Optional[str], flag: str = "--prior-path", device="cpu"):
    """DavamPriorModel (eval mode) from a stage-two checkpoint, without its stage-one model."""
    state, cfg = read_checkpoint(path, flag)
    if model_name(cfg) != DavamPriorModel.__name__:
        raise SystemExit(
            f"error: {flag} {path} holds a '{cfg.model.get('_name')}' model, not a DAVAM prior (--arch davam_prior*) checkpoint"
        )
    codebook = state["model"]["stage_one_codebook"]
    model = DavamPriorModel(cfg.model, torch.zeros_like(codebook))
    model.load_state_dict(state["model"], strict=True, model_cfg=cfg.model)
    return model.eval().to(device)


def check_prior_matches(prior, davam, prior_flag: str = "--prior-path", davam_flag: str = "--path") -> None:
    """The prior must have been fitted to this DAVAM model's codes (same codebook)."""
    fitted = prior.stage_one_codebook.detach().cpu()
    # compare in the prior's dtype: a prior trained with --fp16 stores its copy in float16
    codebook = davam.encoder.bottleneck.quantizer.codebook.detach().cpu().to(fitted.dtype)
    if fitted.shape != codebook.shape or not torch.equal(fitted, codebook):
        raise SystemExit(
            f"error: {prior_flag} was fitted to a different DAVAM model than {davam_flag} "
            f"(codebooks differ: prior {tuple(fitted.shape)}, model {tuple(codebook.shape)})"
        )


def default_device() -> torch.device:
    """The device fairseq trains on here: the current CUDA device if there is one, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
