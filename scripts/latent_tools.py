#!/usr/bin/env python3
"""Explore the latent space of a Gaussian sentence VAE (AWD): decode chosen latent codes.

    python scripts/latent_tools.py DATA --path AWD.pt sample --num 10 [--temperature 1.0]
    python scripts/latent_tools.py DATA --path AWD.pt reconstruct --sentence "the cat sat ."
    python scripts/latent_tools.py DATA --path AWD.pt interpolate \\
        --sentence-a "the cat sat ." --sentence-b "a dog ran away ." --steps 5
    python scripts/latent_tools.py DATA --path AWD.pt neighbours --sentence "the cat sat ." --num 5

sample:      z ~ N(0, temperature^2 I), the prior
reconstruct: z = posterior mean mu(x)
interpolate: z_t = (1 - t) mu(a) + t mu(b) for t = 0, 1/(steps-1), .., 1 (linear, between means)
neighbours:  z ~ q(z|x), several posterior samples of one sentence
Every z is decoded with fairseq's SequenceGenerator (--beam, default 5; --sampling for
ancestral sampling). Sentences are given already tokenized as in the training data.
Output: one line per decoded sentence, "<label>\\t<sentence>". ``--use-ema`` decodes with the
--store-ema averaged weights.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _script_setup  # noqa: E402,F401  (import path, logging)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="decode chosen latent codes of an AWD model")
    p.add_argument("data", help="the data directory the model was trained on (its dict.txt)")
    p.add_argument("--path", required=True, help="AWD checkpoint")
    p.add_argument("--use-ema", action="store_true", help="use the --store-ema averaged weights")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--sampling", action="store_true", help="ancestral sampling instead of beam search")
    p.add_argument("--max-len", type=int, default=100, help="longest decoded sentence (tokens)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--cpu", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--num", type=int, default=10)
    s.add_argument("--temperature", type=float, default=1.0)
    r = sub.add_parser("reconstruct")
    r.add_argument("--sentence", required=True, action="append")
    i = sub.add_parser("interpolate")
    i.add_argument("--sentence-a", required=True)
    i.add_argument("--sentence-b", required=True)
    i.add_argument("--steps", type=int, default=5)
    n = sub.add_parser("neighbours")
    n.add_argument("--sentence", required=True)
    n.add_argument("--num", type=int, default=5)
    return p.parse_args(argv)


def latents(args, model, dictionary, device):
    """(labels, z (N, Z)) for the chosen command."""
    import torch

    def posterior(sentence):
        tokens = dictionary.encode_line(sentence, add_if_not_exist=False, append_eos=True).long()
        mu, logvar = model.encoder.posterior(tokens.unsqueeze(0).to(device))
        return mu[0], logvar[0]

    Z = model.encoder.latent_dim
    if args.command == "sample":
        if args.num < 1 or args.temperature <= 0:
            sys.exit("error: sample needs --num >= 1 and --temperature > 0")
        return [f"sample-{k}" for k in range(args.num)], torch.randn(args.num, Z, device=device) * args.temperature
    if args.command == "reconstruct":
        return [f"mean-{k}" for k in range(len(args.sentence))], torch.stack([posterior(s)[0] for s in args.sentence])
    if args.command == "interpolate":
        if args.steps < 2:
            sys.exit(f"error: --steps must be >= 2, got {args.steps}")
        a, b = posterior(args.sentence_a)[0], posterior(args.sentence_b)[0]
        ts = torch.linspace(0, 1, args.steps, device=device)
        return [f"t={t:.2f}" for t in ts.tolist()], torch.stack([(1 - t) * a + t * b for t in ts])
    mu, logvar = posterior(args.sentence)
    if args.num < 1:
        sys.exit(f"error: --num must be >= 1, got {args.num}")
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


def main(argv=None):
    args = parse_args(argv)
    import torch

    import davam_plugin  # noqa: F401
    from davam_plugin.loading import load_sentence_model
    from davam_plugin.models.awd import AwdModel

    torch.manual_seed(args.seed)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    task, model = load_sentence_model(
        args.path, args.data, "--path", device, use_ema=args.use_ema, expect=(AwdModel,),
        expect_text="Gaussian-latent (--arch awd*)",
    )  # fmt: skip
    labels, z = latents(args, model, task.source_dictionary, device)
    sentences = decode(model, task.source_dictionary, z.float(), args.beam, args.sampling, args.max_len)
    for label, sentence in zip(labels, sentences):
        print(f"{label}\t{sentence}")
    return list(zip(labels, sentences))


if __name__ == "__main__":
    main()
