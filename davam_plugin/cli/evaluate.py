"""``davam-evaluate``: evaluate a DAVAM model (with its prior) or an AWD model on one split; print and write JSON.

    davam-evaluate DATA --path DAVAM.pt --prior-path PRIOR.pt --split test \
        [--json OUT.json] [--batch-size 64] [--cpu]
    davam-evaluate DATA --path AWD.pt --split test [--use-ema] \
        [--iw-samples 500] [--iw-chunk 50] [--iw-max-sentences N] [--seed 1] [--mi-batch-size 32] \
        [--resume-file STATE.pt] [--json OUT.json]

DAVAM, DAVAM-q (nats; tokens = words + EOS, EOS counted, BOS not; DAVAM has one latent
code per token, DAVAM-q one per sentence):
    rec         reconstruction -log p(x | z(x)) per sentence
    kl_paper    prior KL as the authors compute it: -log p(z(x)) averaged over the latent
                positions (here the T codes + the end-of-codes prediction), per sentence
    kl          the true KL(q(z|x)||p(z)) = -log p(z(x)) summed over positions, per sentence
    nll_bound   rec + kl per sentence: an upper bound on -log p(x)
    ppl_paper   exp(sum(rec + kl_paper) / tokens)  (paper convention, NOT a bound)
    ppl_bound   exp(sum(rec + kl) / tokens)        (upper bound on the true perplexity)
    rec_ppl     exp(sum(rec) / tokens)
    code_usage  distinct codes among the split's posterior codes (of num_codes); code_ppl

GAVAM, VAE+Attn (no --prior-path: their prior is part of the model): the same keys except
code usage, with one z ~ q(z|x) (--seed); kl sums the analytic per-position KL to the
jointly trained Gaussian PixelCNN prior (GAVAM) or N(0, I) (VAE+Attn), kl_paper = kl / T.

AWD / Gaussian sentence VAEs (nats; same token count):
    rec, kl, neg_elbo   -log p(x|z) with one z ~ q(z|x), analytic KL to N(0, I), their sum
    iw_nll              -log (1/S) sum_s p(x|z_s) p(z_s) / q(z_s|x), S = --iw-samples (seeded),
                        over the first --iw-max-sentences sentences (default all: iw_sentences)
    neg_elbo_iw_subset  -ELBO over the same sentences as iw_nll
    ppl_iw, ppl_elbo    exp(sum(iw_nll) / iw_tokens), exp(sum(neg_elbo) / tokens)
    mi                  I(x; z) with the aggregate posterior over the whole split
    mi_minibatch        the same within minibatches of --mi-batch-size (jxhe's convention)
    active_units        latent dimensions whose posterior-mean variance exceeds 0.01
The importance-weighted sampling shows a progress bar with the time left on stderr when
stderr is a terminal (``--no-progress`` hides it). It decodes the sentences of a batch in
groups of similar length and runs the output layer on real tokens only, which makes it
about 2.2x faster than decoding whole padded batches (PTB test, hidden 512, S = 100, one
CPU thread) and changes no number beyond float32 rounding (about 1e-7 relative).
``--resume-file STATE.pt`` (AWD) makes a long evaluation resumable: the results so far and
the generators' states are written there (atomically) after every batch, rerunning the same
command continues from the last finished batch with the numbers an uninterrupted run gives,
and the file is deleted once the JSON is written. A file written by a different evaluation
(another checkpoint, split, seed, --iw-samples, ...) is refused with a one-line error.

The results are printed and written as JSON to ``--json`` (default: ``eval_<split>.json`` in
the directory of ``--path``, never the current directory). ``--max-sentences N`` evaluates the
first N sentences of the split only (every metric; "whole split" then means those N): a quick
check, for example of a full-size model's recipe on a CPU (JSON ``max_sentences``).
"""

import argparse
import logging
import os
import sys

from davam_plugin.cli.common import device_for, progress, setup_logging, write_json

PROG = "davam-evaluate"
logger = logging.getLogger(PROG)


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].strip("`").replace("``", ""))
    p.add_argument("data", help="the stage-one data directory (fairseq-preprocess --only-source output)")
    p.add_argument("--path", required=True, help="DAVAM (stage one) or AWD checkpoint")
    p.add_argument("--prior-path", default=None, help="DAVAM: prior checkpoint (fairseq-train --task davam_prior)")
    p.add_argument("--use-ema", action="store_true", help="use the --store-ema averaged weights of --path")
    p.add_argument("--iw-samples", type=int, default=500, help="AWD: importance samples per sentence")
    p.add_argument("--iw-chunk", type=int, default=50, help="AWD: importance samples decoded at a time")
    p.add_argument("--iw-max-sentences", type=int, default=None,
                   help="AWD: IW-NLL over the first N sentences of the split only (default: all)")
    p.add_argument("--mi-batch-size", type=int, default=None, help="AWD: minibatch of the per-minibatch MI")
    p.add_argument("--seed", type=int, default=1, help="AWD: seed of all sampling")
    p.add_argument("--resume-file", default=None, metavar="STATE.pt",
                   help="AWD: save progress here after every batch and continue from it when it exists "
                        "(deleted when the evaluation finishes)")
    p.add_argument("--split", default="test", help="split to evaluate (default: test)")
    p.add_argument("--max-sentences", type=int, default=None,
                   help="evaluate the first N sentences of the split only, every metric (a quick check; default: all)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--json", default=None, help="write the results here (default: eval_<split>.json next to --path)")
    p.add_argument("--cpu", action="store_true", help="do not use a GPU even if there is one")
    p.add_argument("--bf16-autocast", action="store_true",
                   help="run the model under torch.autocast(bfloat16) on its device (as the tasks' --bf16-autocast)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (shown on a terminal only)")
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


DAVAM_CONVENTIONS = (
    "nats; tokens = words + EOS; kl_paper = per-sentence KL averaged over the T codes + end symbol "
    "(authors' code, not a bound); kl = summed KL; nll_bound = rec + kl"
)
GAUSSIAN_SEQUENCE_CONVENTIONS = (
    "nats; tokens = words + EOS; one z ~ q(z|x) per sentence (seeded); kl = sum over the T latent positions of "
    "KL(q(z_t|x) || p(z_t|z_<t)) (GAVAM) or || N(0, I) (VAE+Attn); kl_paper = kl / T; nll_bound = rec + kl "
    "(negative ELBO); ppl_paper uses kl_paper (not a bound)"
)
GAUSSIAN_CONVENTIONS = (
    "nats; tokens = words + EOS; neg_elbo = rec (one z ~ q) + analytic KL; iw_nll = importance-weighted NLL "
    "with log p(z) - log q(z|x) (not the analytic KL); mi over the whole split, mi_minibatch within minibatches"
)


def davam_lines(split, s):
    return [
        f"{split}: {s['sentences']} sentences, {s['tokens']} tokens (words + EOS)",
        f"  rec        {s['rec']:.3f} nats/sentence        rec_ppl   {s['rec_ppl']:.3f}",
        f"  kl_paper   {s['kl_paper']:.3f} (mean over positions)  ppl_paper {s['ppl_paper']:.3f}  (paper convention, not a bound)",
        f"  kl         {s['kl']:.3f} (sum over positions)",
        f"  nll_bound  {s['nll_bound']:.3f} nats/sentence        ppl_bound {s['ppl_bound']:.3f}  (upper bound)",
    ] + ([f"  codes      {s['code_usage']}/{s['num_codes']} used, code_ppl {s['code_ppl']:.2f}"] if "code_usage" in s else [])


def gaussian_lines(split, s):
    return [
        f"{split}: {s['sentences']} sentences, {s['tokens']} tokens (words + EOS)",
        f"  -ELBO      {s['neg_elbo']:.3f} nats/sentence (rec {s['rec']:.3f} + KL {s['kl']:.3f})  ppl_elbo {s['ppl_elbo']:.3f}",
        f"  IW-NLL     {s['iw_nll']:.3f} nats/sentence ({s['iw_samples']} samples)        ppl_iw   {s['ppl_iw']:.3f}"
        + (f"  (first {s['iw_sentences']} sentences; -ELBO on them {s['neg_elbo_iw_subset']:.3f})"
           if s["iw_sentences"] < s["sentences"] else ""),
        f"  MI         {s['mi']:.3f} (whole split)   {s['mi_minibatch']:.3f} (minibatches of {s['mi_minibatch_size']})",
        f"  active units {s['active_units']}/{s['latent_dim']}",
    ]


class FirstSentences:
    """The first ``n`` sentences of a split's dataset (its length and items: all the evaluation reads)."""

    def __init__(self, dataset, n):
        self.dataset, self.n = dataset, n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        if not 0 <= index < self.n:
            raise IndexError(index)
        return self.dataset[index]


def main(argv=None):
    """Console script ``davam-evaluate``: 0, or an error line and a non-zero status."""
    args = parse_args(argv)
    setup_logging()
    run(args)
    return 0


def run(args):
    """Evaluate, print, write the JSON; return the results."""
    for name in ("batch_size", "iw_samples", "iw_chunk", "iw_max_sentences", "max_sentences"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            sys.exit(f"error: --{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    device = device_for(args.cpu)
    from davam_plugin.loading import load_sentence_model
    from davam_plugin.models.awd import AwdModel
    from davam_plugin.models.davam import DavamModel

    task, model = load_sentence_model(
        args.path, args.data, "--path", device, use_ema=args.use_ema, expect=(DavamModel, AwdModel)
    )
    if args.resume_file and not isinstance(model, AwdModel):
        sys.exit("error: --resume-file applies to AWD checkpoints only (the other evaluations take minutes); "
                 "drop it")  # fmt: skip
    sentences = task.load_sentences(args.split)
    total = len(sentences)
    if args.max_sentences is not None and args.max_sentences < total:
        sentences = FirstSentences(sentences, args.max_sentences)
    header = {"split": args.split, "max_sentences": args.max_sentences, "path": args.path, "use_ema": args.use_ema,
              "precision": "bf16-autocast" if args.bf16_autocast else str(next(model.parameters()).dtype)}
    from davam_plugin.modules.precision import bf16_autocast

    with bf16_autocast(args.bf16_autocast, device.type):
        result, lines = evaluate(args, task, model, sentences, header, device)
    if len(sentences) < total:
        lines[0] += f" - the first {len(sentences)} of {total} (--max-sentences)"
    out = args.json or os.path.join(os.path.dirname(os.path.abspath(args.path)), f"eval_{args.split}.json")
    write_json(out, result)
    if args.resume_file and os.path.exists(args.resume_file):
        os.unlink(args.resume_file)  # finished: the JSON holds everything it kept
    print("\n".join(lines))
    print(f"wrote {out}")
    return result


def evaluate(args, task, model, sentences, header, device):
    from davam_plugin.evaluation import evaluate_split
    from davam_plugin.loading import check_prior_matches, load_prior
    from davam_plugin.models.davam import DavamModel

    if isinstance(model, DavamModel) and not model.encoder.bottleneck.discrete:
        from davam_plugin.evaluation import evaluate_gaussian_sequence_split

        summary = evaluate_gaussian_sequence_split(model, sentences, args.batch_size, args.seed, device)
        result = {**header, "conventions": GAUSSIAN_SEQUENCE_CONVENTIONS, **summary}
        lines = davam_lines(args.split, summary)
    elif isinstance(model, DavamModel):
        if not args.prior_path:
            sys.exit("error: --prior-path is required for a DAVAM checkpoint (fairseq-train --task davam_prior)")
        prior = load_prior(args.prior_path, flag="--prior-path", device=device)
        check_prior_matches(prior, model, "--prior-path", "--path")
        summary, _ = evaluate_split(model, prior, sentences, args.batch_size, device)
        result = {**header, "prior_path": args.prior_path, "conventions": DAVAM_CONVENTIONS, **summary}
        lines = davam_lines(args.split, summary)
    else:
        from davam_plugin.evaluation import evaluate_gaussian_split

        n_iw = len(sentences) if args.iw_max_sentences is None else min(args.iw_max_sentences, len(sentences))
        resume = ResumeFile(args.resume_file, fingerprint(args, header)) if args.resume_file else None
        done = resume.sentences_done() if resume else 0
        decodes_done = done + min(done, n_iw) * args.iw_samples
        with decoded_sentences_progress(model, len(sentences) + n_iw * args.iw_samples, args.no_progress,
                                        initial=decodes_done):  # fmt: skip
            summary = evaluate_gaussian_split(
                model, sentences, args.iw_samples, args.iw_chunk, args.batch_size, args.seed, args.mi_batch_size,
                device, iw_max_sentences=args.iw_max_sentences, resume=resume,
            )
        result = {**header, "conventions": GAUSSIAN_CONVENTIONS, **summary}
        lines = gaussian_lines(args.split, summary)
    return result, lines


def fingerprint(args, header):
    """What must not change between the runs that write one --resume-file: every setting that
    changes a sentence's numbers or which sentences are evaluated (``--iw-chunk`` and the
    progress bar do not), and the checkpoint file itself (its size and modification time)."""
    stat = os.stat(args.path)
    return {
        "path": os.path.abspath(args.path), "checkpoint_size": stat.st_size, "checkpoint_mtime_ns": stat.st_mtime_ns,
        "data": os.path.abspath(args.data), "split": args.split, "use_ema": bool(args.use_ema),
        "precision": header["precision"], "seed": args.seed, "iw_samples": args.iw_samples,
        "iw_max_sentences": args.iw_max_sentences, "max_sentences": args.max_sentences,
        "batch_size": args.batch_size,
    }  # fmt: skip


class ResumeFile:
    """``--resume-file``: what :class:`davam_plugin.evaluation.EvaluationState` asks for, kept in a file
    (torch.save of the state plus the evaluation's :func:`fingerprint`, written atomically)."""

    def __init__(self, path, fingerprint):
        self.path, self.fingerprint = path, fingerprint
        self.state = self._read() if os.path.exists(path) else None
        if self.state is not None:
            logger.info(f"resuming from --resume-file {path}: {self.sentences_done()} sentences done")

    def _read(self):
        import torch

        from davam_plugin.atomic_checkpoint import unreadable_reason

        reason = unreadable_reason(self.path)
        try:
            saved = None if reason else torch.load(self.path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one-line error
            reason = f"cannot be loaded ({type(e).__name__})"
        if reason or not isinstance(saved, dict) or "fingerprint" not in saved:
            sys.exit(f"error: --resume-file {self.path} {reason or 'is not an evaluation state'}; "
                     "delete it to start the evaluation again")  # fmt: skip
        changed = [k for k in sorted(set(self.fingerprint) | set(saved["fingerprint"]))
                   if self.fingerprint.get(k) != saved["fingerprint"].get(k)]  # fmt: skip
        if changed:
            k = changed[0]
            sys.exit(f"error: --resume-file {self.path} belongs to another evaluation ({k}: "
                     f"{saved['fingerprint'].get(k)!r} there, {self.fingerprint.get(k)!r} now); "
                     "delete it or name another file")  # fmt: skip
        return saved["state"]

    def sentences_done(self):
        return 0 if self.state is None else int(self.state["next_sentence"])

    def load(self):
        return self.state

    def save(self, state):
        import torch

        from davam_plugin.atomic_checkpoint import atomic_write

        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        atomic_write(self.path, lambda f: torch.save({"fingerprint": self.fingerprint, "state": state}, f))


class decoded_sentences_progress:
    """A progress bar over the sentences the decoder scores (one per sentence for the ELBO,
    ``--iw-samples`` per sentence of the IW subset): a forward hook on the model's decoder
    advances it by each call's batch size, so the evaluation code itself is untouched."""

    def __init__(self, model, total, disable=False, initial=0):
        self.model, self.total, self.disable, self.initial = model, total, disable, initial

    def __enter__(self):
        self.bar = self.handle = None
        if self.disable:
            return self
        self.bar = progress(self.total, "IW sampling", unit="decodes", initial=self.initial)

        def advance(module, inputs, output):
            self.bar.update(int(inputs[0].size(0)) if inputs and hasattr(inputs[0], "size") else 0)

        self.handle = self.model.decoder.register_forward_hook(advance)
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.remove()
        if self.bar is not None:
            self.bar.close()
        return False


if __name__ == "__main__":
    sys.exit(main())
