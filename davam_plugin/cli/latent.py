"""``davam-latent``: explore the latent space of a Gaussian sentence VAE (AWD): decode chosen latent codes.

    davam-latent DATA --path AWD.pt sample --num 10 [--temperature 1.0]
    davam-latent DATA --path AWD.pt reconstruct --sentence "The cat sat."
    davam-latent DATA --path AWD.pt interpolate \\
        --sentence-a "The cat sat." --sentence-b "A dog ran away." --steps 5
    davam-latent DATA --path AWD.pt neighbours --sentence "The cat sat." --num 5

sample:      z ~ N(0, temperature^2 I), the prior
reconstruct: z = posterior mean mu(x)
interpolate: z_t = (1 - t) mu(a) + t mu(b) for t = 0, 1/(steps-1), .., 1 (linear, between means)
neighbours:  z ~ q(z|x), several posterior samples of one sentence
Every z is decoded with fairseq's SequenceGenerator (--beam, default 5; --sampling for
ancestral sampling).

Sentences are raw text: when DATA was made by ``davam-prepare-corpus`` they get the same
preparation as the training data (Moses tokenization, lower-casing, sentencepiece: as
stored in ``DATA/preprocessing.json``); ``--no-preprocess`` uses them as given (already
prepared). Each prepared sentence is logged on stderr, with a warning naming the words that
are not in the dictionary (read as ``<unk>``).
Output (stdout): one line per decoded sentence, "<label>\\t<sentence>". ``--use-ema`` decodes
with the --store-ema averaged weights.
"""

import argparse
import logging
import sys

from davam_plugin.cli.common import device_for, sentence_preparer, setup_logging, warn_unknown_words

PROG = "davam-latent"
logger = logging.getLogger("davam_plugin.cli.latent")


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description="decode chosen latent codes of an AWD model")
    p.add_argument("data", help="the data directory the model was trained on (its dict.txt)")
    p.add_argument("--path", required=True, help="AWD checkpoint")
    p.add_argument("--use-ema", action="store_true", help="use the --store-ema averaged weights")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--sampling", action="store_true", help="ancestral sampling instead of beam search")
    p.add_argument("--max-len", type=int, default=100, help="longest decoded sentence (tokens)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cpu", action="store_true")
    p.add_argument("--no-preprocess", action="store_true",
                   help="the sentences are already prepared as the training data: do not apply DATA/preprocessing.json")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample", help="decode z ~ N(0, temperature^2 I)")
    s.add_argument("--num", type=int, default=10)
    s.add_argument("--temperature", type=float, default=1.0)
    r = sub.add_parser("reconstruct", help="decode the posterior mean of each --sentence")
    r.add_argument("--sentence", required=True, action="append")
    i = sub.add_parser("interpolate", help="decode points between the posterior means of two sentences")
    i.add_argument("--sentence-a", required=True)
    i.add_argument("--sentence-b", required=True)
    i.add_argument("--steps", type=int, default=5)
    n = sub.add_parser("neighbours", help="decode posterior samples of one sentence")
    n.add_argument("--sentence", required=True)
    n.add_argument("--num", type=int, default=5)
    return p


def parse_args(argv=None):
    return build_parser().parse_args(argv)


def latents(args, model, dictionary, device, prepare=None):
    """(labels, z (N, Z)) for the chosen command; ``prepare`` maps a raw sentence to tokens."""
    import torch

    prepare = prepare or (lambda line: line)

    def posterior(sentence, label):
        prepared = prepare(sentence)
        logger.info(f"{label}: {prepared}")
        warn_unknown_words(dictionary, label, prepared)
        tokens = dictionary.encode_line(prepared, add_if_not_exist=False, append_eos=True).long()
        mu, logvar = model.encoder.posterior(tokens.unsqueeze(0).to(device))
        return mu[0], logvar[0]

    Z = model.encoder.latent_dim
    if args.command == "sample":
        if args.num < 1 or args.temperature <= 0:
            sys.exit("error: sample needs --num >= 1 and --temperature > 0")
        return [f"sample-{k}" for k in range(args.num)], torch.randn(args.num, Z, device=device) * args.temperature
    if args.command == "reconstruct":
        means = [posterior(s, f"input mean-{k}")[0] for k, s in enumerate(args.sentence)]
        return [f"mean-{k}" for k in range(len(args.sentence))], torch.stack(means)
    if args.command == "interpolate":
        if args.steps < 2:
            sys.exit(f"error: --steps must be >= 2, got {args.steps}")
        a, b = posterior(args.sentence_a, "input a")[0], posterior(args.sentence_b, "input b")[0]
        ts = torch.linspace(0, 1, args.steps, device=device)
        return [f"t={t:.2f}" for t in ts.tolist()], torch.stack([(1 - t) * a + t * b for t in ts])
    if args.num < 1:
        sys.exit(f"error: --num must be >= 1, got {args.num}")
    mu, logvar = posterior(args.sentence, "input")
    eps = torch.randn(args.num, Z, device=device)
    return [f"neighbour-{k}" for k in range(args.num)], mu + torch.exp(0.5 * logvar) * eps


def decode(model, dictionary, z, beam, sampling, max_len):
    """Sentences (strings) decoded from each row of z with fairseq's SequenceGenerator."""
    import torch
    from fairseq import search
    from fairseq.sequence_generator import SequenceGenerator

    generator = SequenceGenerator(
        [model], dictionary, beam_size=1 if sampling else beam, max_len_b=max_len,
        search_strategy=search.Sampling(dictionary) if sampling else None,
    )  # fmt: skip
    n = z.size(0)
    src = torch.full((n, 1), dictionary.eos(), dtype=torch.long, device=z.device)
    sample = {"net_input": {"src_tokens": src, "src_lengths": torch.ones(n, dtype=torch.long), "z": z}}
    with torch.no_grad():
        hypos = generator.generate([model], sample)
    return [dictionary.string(h[0]["tokens"]) for h in hypos]


def run(args):
    """Decode and print; return [(label, sentence)]."""
    import torch

    from davam_plugin.loading import load_sentence_model
    from davam_plugin.models.awd import AwdModel

    if args.beam < 1:
        sys.exit(f"error: --beam must be >= 1, got {args.beam}")
    torch.manual_seed(args.seed)
    device = device_for(args.cpu)
    task, model = load_sentence_model(
        args.path, args.data, "--path", device, use_ema=args.use_ema, expect=(AwdModel,),
        expect_text="Gaussian-latent (--arch awd*)",
    )  # fmt: skip
    prepare = sentence_preparer(args.data, args.no_preprocess) if args.command != "sample" else None
    labels, z = latents(args, model, task.source_dictionary, device, prepare)
    sentences = decode(model, task.source_dictionary, z.float(), args.beam, args.sampling, args.max_len)
    for label, sentence in zip(labels, sentences, strict=True):
        print(f"{label}\t{sentence}")
    return list(zip(labels, sentences, strict=True))


def main(argv=None):
    """Console script ``davam-latent``: 0, or an error line and a non-zero status."""
    args = parse_args(argv)
    setup_logging()
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
