"""Criterion ``awd_elbo``: the negative ELBO of AWD with the adversary's regulariser.

    loss = rec + w(u) * KL(q(z|x) || N(0, I)) + lambda * sum_i KL(p(s_i|x) || N(0, 1))

summed over the batch; fairseq divides the gradient by ``sample_size`` = sentences, so the
optimised objective is per sentence. The adversary's gradient through the drop mask is
reversed inside the model (it minimises the ELBO the VAE maximises); the lambda term is a
plain regulariser of the adversary (not reversed). w(u) rises linearly from
``--kl-weight-start`` to ``--kl-weight-max`` over ``--kl-warmup-updates`` updates, driven by
the model's update counter (``set_num_updates``), so resumed runs continue the schedule.
The authors' schedule, 0.1 + 3e-5 per update up to 1, is the default (30,000 updates).

Logged (nats; tokens = words + EOS of the target):
    loss            optimised objective per sentence
    rec             -log p(x | z) per sentence (one z ~ q(z|x))
    kl              KL(q(z|x) || N(0, I)) per sentence
    neg_elbo        rec + kl: -ELBO at KL weight 1, what the paper reports
    elbo_ppl        exp(sum(neg_elbo) / tokens)
    nll_per_token   rec / tokens
    kl_weight       w(u) in force
    drop_frac       fraction of word inputs dropped (training; 0 in validation)
    score_kl        the adversary's KL(p(s|x) || N(0, 1)) per sentence
    score_mean, score_std   mean and standard deviation of the adversary's scores
    adversary_grad_norm     training: L2 norm of the adversary's gradient per sentence (the
                    gradient of the batch's summed loss / its sentences, before clipping; with
                    --update-freq > 1, after the micro-batch; under data parallelism the
                    gradient is already all-reduced)
"""

import math
from dataclasses import dataclass, field

from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from davam_plugin.criterions.kl_schedule import KLWeightSchedule
from davam_plugin.criterions.options import check_non_negative
from davam_plugin.metrics import at_least_fp32 as _fp32, gaussian_kl, perplexity


@dataclass
class AwdElboConfig(FairseqDataclass):
    kl_weight_start: float = field(default=0.1, metadata={"help": "KL weight at update 0 (authors: 0.1)"})
    kl_weight_max: float = field(default=1.0, metadata={"help": "KL weight after the warm-up"})
    kl_warmup_updates: int = field(
        default=30000, metadata={"help": "updates from --kl-weight-start to --kl-weight-max (authors: +3e-5 per update)"}
    )
    adversary_lambda: float = field(
        default=1.0, metadata={"help": "lambda: weight of the adversary's KL(p(s|x) || N(0, 1)) (paper: 1)"}
    )


@register_criterion("awd_elbo", dataclass=AwdElboConfig)
class AwdElboCriterion(KLWeightSchedule, FairseqCriterion):
    # the archs whose models name this criterion (``criterion_name``): the task refuses other
    # models with "--criterion NAME needs {arch_family} arch"
    arch_family = "an awd*"

    def __init__(self, task, kl_weight_start, kl_weight_max, kl_warmup_updates, adversary_lambda):
        super().__init__(task)
        self.init_kl_schedule(kl_weight_start, kl_weight_max, kl_warmup_updates)
        check_non_negative(("--adversary-lambda", adversary_lambda))
        self.adversary_lambda = adversary_lambda

    def forward(self, model, sample, reduce=True):
        features, extra = model(**sample["net_input"], features_only=True)
        target = sample["target"]
        keep_rows = target.ne(self.padding_idx)
        rec = model.decoder.output_nll(features[keep_rows], target[keep_rows])
        kl = gaussian_kl(_fp32(extra["mu"]), _fp32(extra["logvar"])).sum()
        w = self.kl_weight(getattr(model, "num_updates", 0))
        loss = rec + w * kl
        nsentences = target.size(0)
        valid = extra["valid_inputs"]
        log = {
            "rec": rec.data,
            "kl": kl.data,
            "kl_weight": w * nsentences,
            "n_inputs": int(valid.sum()),
            "n_dropped": int(((extra["keep"] < 0.5) & valid).sum()),
            "ntokens": sample["ntokens"],
            "nsentences": nsentences,
            "sample_size": nsentences,
        }
        if "score_kl" in extra:
            score_kl = _fp32(extra["score_kl"]).sum()
            loss = loss + self.adversary_lambda * score_kl
            scores = _fp32(extra["scores"][valid])
            log.update(score_kl=score_kl.data, score_sum=scores.sum().data, score_sq=scores.pow(2).sum().data)
        log["loss"] = loss.data
        return loss, nsentences, log

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        nsent, ntok = total("nsentences"), total("ntokens")
        if nsent == 0:
            return
        rec, kl = float(total("rec")), float(total("kl"))
        for key in ("loss", "rec", "kl", "kl_weight"):
            metrics.log_scalar(key, float(total(key)) / nsent, nsent, round=3)
        metrics.log_scalar("neg_elbo", (rec + kl) / nsent, nsent, round=3)
        metrics.log_scalar("nll_per_token", rec / max(ntok, 1), ntok, round=4)
        metrics.log_scalar("_neg_elbo_per_token", (rec + kl) / max(ntok, 1), ntok, round=4)
        metrics.log_derived("elbo_ppl", lambda m: round(perplexity(m["_neg_elbo_per_token"].avg, 1), 3))
        n_inputs = total("n_inputs")
        if n_inputs:
            metrics.log_scalar("drop_frac", total("n_dropped") / n_inputs, n_inputs, round=4)
        if any("score_kl" in log for log in logging_outputs) and n_inputs:
            metrics.log_scalar("score_kl", float(total("score_kl")) / nsent, nsent, round=3)
            mean = float(total("score_sum")) / n_inputs
            var = max(float(total("score_sq")) / n_inputs - mean * mean, 0.0)
            metrics.log_scalar("score_mean", mean, n_inputs, round=3)
            metrics.log_scalar("score_std", math.sqrt(var), n_inputs, round=3)
        grad_logs = [log["adversary_grad_norm"] for log in logging_outputs if "adversary_grad_norm" in log]
        if grad_logs:  # training only (the task adds it after the backward)
            metrics.log_scalar("adversary_grad_norm", sum(grad_logs) / len(grad_logs), len(grad_logs), round=8)

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return False  # score_std is derived from sums of the whole window
