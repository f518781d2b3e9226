"""Criterion ``davam_prior``: cross-entropy of the prior on the stage-one code sequences.

    loss = sum_{sentences} sum_{t=1..T+1} -log p(s_t | s_<t),   s = z_1..z_T EOC

fairseq divides the gradient by ``sample_size`` = number of prior predictions (T codes + 1
end symbol per sentence), so the optimised objective is the mean NLL per latent position
(as in the authors' code, which averages over positions).

Logged, in nats (not fairseq's usual bits):
    loss, nll_per_position   NLL per prior prediction (codes + end symbol)
    nll_per_sentence         sum over a sentence's predictions: this is DAVAM's KL term
                             KL(q(z|x) || p(z)) = -log p(z(x)) (one-hot posterior), the
                             term of the true bound NLL(x) <= Rec + KL
    ppl                      exp(nll_per_position)
"""

import torch.nn.functional as F
from fairseq import metrics
from fairseq.criterions import FairseqCriterion, register_criterion
from fairseq.dataclass import FairseqDataclass

from davam_plugin.metrics import perplexity


def prior_nll(model, codes):
    """Summed NLL (float32) of padded code sequences ``codes`` (B, T) under the prior."""
    logits = model(codes).float()
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), codes.reshape(-1), ignore_index=model.pad, reduction="sum")


@register_criterion("davam_prior", dataclass=FairseqDataclass)
class DavamPriorCriterion(FairseqCriterion):
    trained_with_task = "davam_prior"  # other tasks refuse it (--task sentence_vae)
    purpose = "fits the stage-two prior"

    def forward(self, model, sample, reduce=True):
        nll = prior_nll(model, sample["net_input"]["codes"])
        ntokens = sample["ntokens"]
        logging_output = {
            "loss": nll.data,
            "ntokens": ntokens,
            "nsentences": sample["nsentences"],
            "sample_size": ntokens,
        }
        return nll, ntokens, logging_output

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        def total(key):
            return sum(log.get(key, 0) for log in logging_outputs)

        ntok, nsent, loss = total("ntokens"), total("nsentences"), total("loss")
        if ntok == 0 or nsent == 0:
            return
        metrics.log_scalar("loss", loss / ntok, ntok, round=4)
        metrics.log_scalar("nll_per_position", loss / ntok, ntok, round=4)
        metrics.log_scalar("nll_per_sentence", loss / nsent, nsent, round=3)
        metrics.log_derived("ppl", lambda m: round(perplexity(m["nll_per_position"].avg, 1), 3))

    @staticmethod
    def logging_outputs_can_be_summed() -> bool:
        return True
