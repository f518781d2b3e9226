"""Load a stage-one DAVAM model and a stage-two prior from checkpoints, with one-line errors.

Used by the ``davam_prior`` task (``--davam-path``), by ``sentence_vae`` generation
(``--prior-path``) and by ``scripts/evaluate.py``. Every problem a user can cause - a
missing file, a file that is not a fairseq checkpoint, a checkpoint of another model, a data
directory whose dictionary differs from the one the model was trained with, a prior fitted
to another DAVAM model - raises ``SystemExit`` with one line naming the flag to fix
(fairseq's command-line tools print no traceback for ``SystemExit``).
"""

import os
from typing import Optional, Tuple

import torch
from fairseq import checkpoint_utils
from fairseq.models import ARCH_MODEL_REGISTRY

from davam_plugin.atomic_checkpoint import UnreadableCheckpointError


def _read_checkpoint(path: Optional[str], flag: str):
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


def _model_name(cfg) -> str:
    model_cfg = cfg.get("model") if hasattr(cfg, "get") else None
    arch = model_cfg.get("_name") if model_cfg is not None else None
    model_cls = ARCH_MODEL_REGISTRY.get(arch) if arch else None
    return getattr(model_cls, "__name__", str(arch))


def load_sentence_model(path: Optional[str], data: Optional[str], flag: str = "--path", device="cpu",
                        use_ema: bool = False, expect: Optional[tuple] = None, expect_text: str = ""):  # fmt: skip
    """(SentenceVAETask, model) from a ``--task sentence_vae`` checkpoint (DAVAM, AWD, ...).

    The task reads ``data`` (the checkpoint's own data directory if None). ``use_ema`` loads the
    weights averaged by ``fairseq-train --store-ema`` instead of the trained ones. ``expect``
    (model classes) refuses other models with one line. The model is in eval mode."""
    from davam_plugin.tasks.sentence_vae import SentenceVAEConfig, SentenceVAETask

    state, cfg = _read_checkpoint(path, flag)
    name = _model_name(cfg)
    if expect is not None and name not in {c.__name__ for c in expect}:
        wanted = expect_text or " or ".join(c.__name__ for c in expect)
        raise SystemExit(f"error: {flag} {path} holds a '{cfg.model.get('_name')}' model, not a {wanted} checkpoint")
    saved_task = cfg.get("task") or {}
    if saved_task.get("_name") not in (None, "sentence_vae"):
        raise SystemExit(f"error: {flag} {path} was trained with --task {saved_task.get('_name')}, not sentence_vae")
    task_cfg = SentenceVAEConfig(
        data=data if data is not None else saved_task.get("data"),
        max_sentence_length=saved_task.get("max_sentence_length", SentenceVAEConfig.max_sentence_length),
    )
    task = SentenceVAETask.setup_task(task_cfg)
    model = task.build_model(cfg.model)
    weights = state["model"]
    if use_ema:
        weights = (state.get("extra_state") or {}).get("ema")
        if weights is None:
            raise SystemExit(f"error: {flag} {path} has no averaged weights (train with --store-ema), drop --use-ema")
        weights = dict(weights)
        for key, value in state["model"].items():  # entries fairseq's EMA does not average
            weights.setdefault(key, value)
    model.load_state_dict(weights, strict=True, model_cfg=cfg.model)
    model.set_num_updates(state.get("optimizer_history", [{}])[-1].get("num_updates", 0))
    return task, model.eval().to(device)


def load_davam(path: Optional[str], data: Optional[str], flag: str = "--path", device="cpu"):
    """(SentenceVAETask, DavamModel) from a stage-one checkpoint (see :func:`load_sentence_model`)."""
    from davam_plugin.models.davam import DavamModel

    return load_sentence_model(
        path, data, flag, device, expect=(DavamModel,), expect_text="stage-one DAVAM (--arch davam*)"
    )


def load_prior(path: Optional[str], flag: str = "--prior-path", device="cpu"):
    """DavamPriorModel (eval mode) from a stage-two checkpoint, without its stage-one model."""
    from davam_plugin.models.davam_prior import DavamPriorModel

    state, cfg = _read_checkpoint(path, flag)
    if _model_name(cfg) != DavamPriorModel.__name__:
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
    codebook = davam.encoder.quantizer.codebook.detach().cpu().to(fitted.dtype)
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


__all__: Tuple[str, ...] = ("load_sentence_model", "load_davam", "load_prior", "check_prior_matches", "default_device")
