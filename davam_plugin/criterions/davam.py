"""Criterion ``davam``: DAVAM stage-one loss, reconstruction plus annealed commitment.

    loss = sum_{tokens} -log p(y_i | y_<i, z)  +  beta(u) * sum_{real t} ||h_t - sg(e_{z_t})||^2

summed over the batch; fairseq divides the gradient by ``sample_size`` = number of sentences,
so the optimised objective is the per-sentence mean, as in the authors' code.

beta(u) rises linearly from ``--beta-start`` to ``--beta-max`` over ``--beta-warmup-updates``
updates, then stays; with ``--beta-hold-updates H`` it stays at ``--beta-start`` for the first
H updates and rises after them (the paper's text: "we first warm up the training for 10
epochs, and then gradually increase beta"; the authors' code ramps from update 0, H = 0).
``u`` is the model's update counter, which fairseq sets through ``set_num_updates`` every
step and when a checkpoint is restored, so a resumed run continues the schedule exactly.

Logged (nats; tokens = words + EOS of the target, EOS counted):
    loss            objective per sentence (rec + beta * commitment)
    rec             reconstruction NLL per sentence
    nll_per_token   reconstruction NLL per target token;  rec_ppl = exp(nll_per_token)
    commitment      unweighted commitment per sentence
    rec_plus_commitment  rec + commitment (unweighted): the authors' validation loss, which
                    their learning-rate schedule and checkpoint selection watch
    beta            the commitment weight in force
    code_usage      distinct codes used, code_ppl = exp(entropy) of the code histogram;
                    both derived from the histogram summed over the whole logging window,
                    so training-time validation and ``fairseq-validate`` agree.
    attn_entropy    (models whose decoder attends: DAVAM, GAVAM, VAE+Attn) the entropy of
                    the decoder's attention over the latent sequence, per target token,
                    H(a_i) = -sum_t a_it log a_it; attn_entropy_uniform is log T (T = the
                    sentence's latent positions) per target token, what attention spread
                    evenly would score. Near uniform: the decoder reads an average of the
                    codes rather than the code it needs.
    attn_v_norm     (the same models) ||v||_2 of the attention's score vector in
                    score_t = v^T tanh(W_q q + W_m m_t + b): |score_t| <= ||v||_1, so v near 0
                    forces uniform attention whatever the memory holds, and the keys' and
                    queries' gradients, proportional to v, vanish with it (initialised U(+-0.1):
                    about 0.92 at dimension 256). The parameter's value when logged.

The model's latent bottleneck names the term (``model.latent_regularizer``): "commitment"
above (VQ: DAVAM, DAVAM-q), or "kl" for Gaussian latents (``--latent-type gaussian``: GAVAM,
VAE+Attn), which have no commitment; the bottleneck returns the analytic KL of every
sentence, sum_t KL(q(z_t|x) || p(z_t | z_<t)) (or || N(0, I)), given one reparameterized
sample z (in training and validation), and

    loss = sum_{tokens} -log p(y_i | y_<i, z)  +  w(u) * sum_{real t} KL_t

with w(u) rising linearly from ``--kl-weight-start`` to ``--kl-weight-max`` over
``--kl-warmup-updates`` updates (driven by the update counter like beta; the defaults keep
w = 1, the plain negative ELBO). Logged instead of commitment, beta and the code statistics:
    kl              the true KL per sentence (summed over its latent positions)
    kl_paper        the authors' KL: per sentence averaged over its latent positions
    neg_elbo        rec + kl: the negative ELBO (at weight 1), an upper bound on -log p(x)
    kl_weight       w(u) in force
"""

from dataclasses import dataclass, field

from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from davam_plugin.criterions.kl_schedule import KLWeightSchedule
from davam_plugin.criterions.options import check_non_negative
from davam_plugin.metrics import at_least_fp32, attention_entropy, code_perplexity, code_usage, linear_warmup, perplexity

# 10 PTB epochs at batch 32 (42,068 training sentences -> 1,315 updates per epoch): the
# authors ramp beta over the first 10 epochs.
PTB_TEN_EPOCHS_OF_UPDATES = 13150


@dataclass
class DavamCriterionConfig(FairseqDataclass):
    beta_start: float = field(default=0.15, metadata={"help": "commitment weight at update 0"})
    beta_max: float = field(default=5.0, metadata={"help": "commitment weight after the warm-up"})
    beta_warmup_updates: int = field(
        default=PTB_TEN_EPOCHS_OF_UPDATES,
        metadata={"help": "updates over which beta rises linearly from --beta-start to --beta-max (0: always --beta-max)"},
    )
    beta_hold_updates: int = field(
        default=0,
        metadata={"help": "updates at --beta-start before the ramp begins (0, the authors' code; the paper's text: 10 epochs)"},
    )
    kl_weight_start: float = field(
        default=1.0, metadata={"help": "Gaussian latents (gavam, vae_attn): KL weight at update 0"}
    )
    kl_weight_max: float = field(
        default=1.0, metadata={"help": "Gaussian latents: KL weight after the warm-up"}
    )
    kl_warmup_updates: int = field(
        default=0,
        metadata={"help": "Gaussian latents: updates from --kl-weight-start to --kl-weight-max (0: always --kl-weight-max)"},
    )


def reconstruction_nll(model, features, target, padding_idx):
    """Summed token NLL (float32) of ``target`` given decoder features; pads are skipped.

    The output layer runs once, after the recurrence, on real target positions only.
    """
    keep = target.ne(padding_idx)
    return model.decoder.output_nll(features[keep], target[keep])


@register_criterion("davam", dataclass=DavamCriterionConfig)
class DavamCriterion(KLWeightSchedule, FairseqCriterion):
    # the archs whose models name this criterion (``criterion_name``): the task refuses other
    # models with "--criterion NAME needs {arch_family} arch"
    arch_family = "a davam*, gavam*, davam_q* or vae_attn*"

    def __init__(
        self, task, beta_start, beta_max, beta_warmup_updates, kl_weight_start=1.0, kl_weight_max=1.0, kl_warmup_updates=0,
        beta_hold_updates=0,
    ):
        super().__init__(task)
        self.init_kl_schedule(kl_weight_start, kl_weight_max, kl_warmup_updates)
        check_non_negative(
            ("--beta-start", beta_start), ("--beta-max", beta_max), ("--beta-warmup-updates", beta_warmup_updates),
            ("--beta-hold-updates", beta_hold_updates),
        )
        self.beta_start = beta_start
        self.beta_max = beta_max
        self.beta_warmup_updates = beta_warmup_updates
        self.beta_hold_updates = beta_hold_updates

    def beta(self, num_updates: int) -> float:
        if num_updates < self.beta_hold_updates:
            return float(self.beta_start)
        return linear_warmup(num_updates - self.beta_hold_updates, self.beta_start, self.beta_max, self.beta_warmup_updates)

    def forward(self, model, sample, reduce=True):
        features, extra = model(**sample["net_input"], features_only=True)
        rec = reconstruction_nll(model, features, sample["target"], self.padding_idx)
        nsentences = sample["target"].size(0)
        logging_output = {"rec": rec.data, "ntokens": sample["ntokens"], "nsentences": nsentences, "sample_size": nsentences}
        # the model's latent bottleneck names its regularizer (modules/latent_bottleneck.py)
        regularizer = model.latent_regularizer
        if regularizer == "commitment":
            loss = self._commitment_terms(model, rec, extra, logging_output)
        elif regularizer == "kl":
            loss = self._kl_terms(model, rec, extra, logging_output)
        else:
            raise ValueError(f"criterion davam: unknown latent regularizer {regularizer!r}")
        attn = extra.get("attn", [None])[0]
        if attn is not None:
            entropy, uniform = attention_entropy(attn.detach(), sample["target"].ne(self.padding_idx), extra["src_lengths"])
            logging_output.update(_attn_entropy=entropy, _attn_entropy_uniform=uniform)
            v = getattr(getattr(model.decoder, "attention", None), "v", None)
            if v is not None:  # weighted by sentences so that summed logs average to the value
                logging_output["_attn_v_norm"] = v.detach().float().norm() * nsentences
        logging_output["loss"] = loss.data
        return loss, nsentences, logging_output

    def _commitment_terms(self, model, rec, extra, logging_output):
        """rec + beta(u) * commitment (VQ bottleneck: DAVAM, DAVAM-q)."""
        beta = self.beta(getattr(model, "num_updates", 0))
        commitment = extra["commitment"]
        logging_output.update(
            commitment=commitment.data, beta=beta * logging_output["nsentences"], _code_hist=extra["code_counts"].data.double()
        )
        return rec + beta * commitment

    def _kl_terms(self, model, rec, extra, logging_output):
        """rec + w(u) * KL (Gaussian bottleneck: GAVAM, VAE+Attn); module docstring."""
        kl_per_sentence = at_least_fp32(extra["kl"])
        kl = kl_per_sentence.sum()
        w = self.kl_weight(getattr(model, "num_updates", 0))
        kl_paper = (kl_per_sentence / extra["src_lengths"].clamp_min(1).to(kl_per_sentence.dtype)).sum()
        logging_output.update(kl=kl.data, kl_paper=kl_paper.data, kl_weight=w * logging_output["nsentences"])
        return rec + w * kl

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        nsent = total("nsentences")
        ntok = total("ntokens")
        if nsent == 0:
            return
        gaussian = any("kl" in log for log in logging_outputs)
        if gaussian:  # Gaussian latents: no commitment, no codes
            rec, kl = float(total("rec")), float(total("kl"))
            for key in ("loss", "rec", "kl", "kl_paper"):
                metrics.log_scalar(key, float(total(key)) / nsent, nsent, round=3)
            metrics.log_scalar("neg_elbo", (rec + kl) / nsent, nsent, round=3)
            metrics.log_scalar("kl_weight", total("kl_weight") / nsent, nsent, round=3)
        else:
            for key in ("loss", "rec", "commitment", "beta"):
                metrics.log_scalar(key, total(key) / nsent, nsent, round=3)
            rec_commit = float(total("rec")) + float(total("commitment"))
            metrics.log_scalar("rec_plus_commitment", rec_commit / nsent, nsent, round=3)
        metrics.log_scalar("nll_per_token", total("rec") / max(ntok, 1), ntok, round=4)
        metrics.log_derived("rec_ppl", lambda m: round(perplexity(m["nll_per_token"].avg, 1), 3))
        if any("_attn_entropy" in log for log in logging_outputs):
            for key in ("attn_entropy", "attn_entropy_uniform"):
                metrics.log_scalar(key, float(total("_" + key)) / max(ntok, 1), ntok, round=3)
        if any("_attn_v_norm" in log for log in logging_outputs):
            metrics.log_scalar("attn_v_norm", float(total("_attn_v_norm")) / nsent, nsent, round=4)
        hists = [log["_code_hist"] for log in logging_outputs if "_code_hist" in log]
        if hists:
            metrics.log_scalar_sum("_code_hist", sum(h.cpu() for h in hists))
            metrics.log_derived("code_usage", lambda m: code_usage(m["_code_hist"].sum))
            metrics.log_derived("code_ppl", lambda m: round(float(code_perplexity(m["_code_hist"].sum)), 2))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
