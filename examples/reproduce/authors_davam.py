"""Train the DAVAM authors' own stage one (``sunset-clouds/DAVAM``) on CPU, resumably.

Issue 11 asks whether the gap between this plugin's PTB Rec and the paper's is in the code.
The decisive check is the authors' code on the same data for the same number of epochs. Their
``main.py`` needs CUDA and cannot resume, and a run takes days on this project's CPU, across
many working sessions. This driver imports their modules unchanged (``model.DisCreteVAE``: its
data loader, networks, loss and ``eval_model``/``test_model``). It runs their training loop
(``DisCreteVAE.train_model``) step for step, written again here with a checkpoint after every
epoch and, with ``--save-last-interval-updates N``, after every N-th update in the middle of an
epoch (as the plugin's option of that name: an epoch is 35 minutes here, and a session's end
kills the run without warning):

* per update: vq weight += (vq_max - vq_start) / (warm_up * N / batch), capped at vq_max (N is
  the number of training sentences); loss = mean over the batch of (Rec + vq weight x
  commitment), summed per sentence; gradient norm clipped at 5; one SGD step each for the
  encoder and the decoder;
* per epoch: validation ``loss`` = (Rec + commitment) per sentence; a new best saves the
  weights; a loss above the last reference loss counts a bad epoch; the second bad epoch in a
  row from their epoch 15 (0-based: the 16th) on halves the rate, reloads the best weights
  and makes that loss the reference; stage one ends after ``max_decay`` (5) halvings or
  ``epochs`` (100) epochs; then the test set is scored with the best weights.

Their batches, in the data loader's order, are visited in ``np.random.permutation`` order,
and validation also draws a permutation. The checkpoint keeps numpy's, torch's and Python's
random states and both optimizers' states with everything else; a mid-epoch one also keeps the
epoch's permutation, how far into it the run got and the epoch's running sums. So a resumed run
trains on the same batches, with the same dropout masks, as an uninterrupted one, and logs the
same records.

The only other change is the device: their vector quantizer builds its one-hot matrix with
``torch.cuda.FloatTensor``, which this driver points at the CPU tensor type in its own
process, and ``args.device`` is the CPU.

Output (``--save-dir``): ``checkpoint_last.pt`` (after every epoch and every N-th update, written
atomically; a mid-epoch save logs fairseq's line ``Saved checkpoint ... (epoch E @ U updates,
score None)``, which ``status.sh`` reads),
``best.pt`` (their ``DisCreteVAE_Best.pt``); when stage one has ended, ``--eval-json`` (test
Rec, commitment and codes in use of the best weights; default ``SAVE_DIR/eval.json``). On stdout, fairseq-style JSON records (``train_inner``
every 100 updates, ``train`` (the epoch's mean Rec and commitment) and ``valid`` after each epoch, with ``valid_rec``, ``valid_commitment``,
``valid_rec_plus_commitment``, ``valid_code_usage`` (codes chosen by the validation set's
encoder states), ``valid_lr``, ``valid_beta`` (their vq weight) and ``valid_num_updates``),
so ``davam-plot`` draws their curves beside this plugin's. Epochs are 1-based there; Rec is
their figure, nats per sentence, with the end-of-sentence token predicted and ``<s>`` not.
"""

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--authors-dir", required=True, help="a checkout of sunset-clouds/DAVAM (model.py, module.py, ...)")
    p.add_argument("--data", required=True, help="directory with train.txt, valid.txt and test.txt (one sentence per line)")
    p.add_argument("--save-dir", required=True, help="where checkpoint_last.pt, best.pt and eval.json go")
    p.add_argument("--seed", type=int, default=1, help="their --seed (numpy and torch); default 1, as this plugin's recipes")
    p.add_argument("--epochs", type=int, default=None, help="their --epochs (default: theirs, 100)")
    p.add_argument("--max-batches", type=int, default=None,
                   help="train on the first N batches of each epoch's permutation only (smoke runs)")
    p.add_argument("--eval-json", default=None,
                   help="where the test scores go when stage one has ended (default: SAVE_DIR/eval.json)")
    p.add_argument("--save-last-interval-updates", type=int, default=0, metavar="N",
                   help="also save checkpoint_last.pt after every N-th update in the middle of an epoch "
                        "(0, the default: at epoch ends only)")
    p.add_argument("--authors-args", default="",
                   help="further flags for their argparser, as one string (default: none; their defaults are the PTB settings)")
    return p.parse_args(argv)


def die(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def check_args(args):
    if args.save_last_interval_updates < 0:
        die(f"--save-last-interval-updates must be >= 0, got {args.save_last_interval_updates}")
    if args.max_batches is not None and args.max_batches < 1:
        die(f"--max-batches must be >= 1, got {args.max_batches}")


def load_authors(args):
    """Their argparser's args (PTB defaults, our paths and seed) and a fresh DisCreteVAE."""
    for name in ("model.py", "module.py", "argparser.py", "dataloader.py", "VectorQuantize.py"):
        if not os.path.isfile(os.path.join(args.authors_dir, name)):
            die(f"--authors-dir {args.authors_dir} has no {name}: point it at a checkout of sunset-clouds/DAVAM")
    for split in ("train", "valid", "test"):
        if not os.path.isfile(os.path.join(args.data, f"{split}.txt")):
            die(f"--data {args.data} has no {split}.txt")
    sys.path.insert(0, os.path.abspath(args.authors_dir))
    torch.cuda.FloatTensor = torch.FloatTensor  # their one-hot matrix, on the CPU
    import argparser as authors_argparser  # noqa: E402 (theirs)

    argv = ["--train_data", os.path.join(args.data, "train.txt"), "--val_data", os.path.join(args.data, "valid.txt"),
            "--test_data", os.path.join(args.data, "test.txt"), "--saver_dir", args.save_dir, "--seed", str(args.seed)]
    if args.epochs is not None:
        argv += ["--epochs", str(args.epochs)]
    argv += args.authors_args.split()
    saved_argv, sys.argv = sys.argv, ["main.py"] + argv
    try:
        a = authors_argparser.parse_arg()  # seeds numpy and torch with --seed, makes saver_dir
    finally:
        sys.argv = saved_argv
    a.device = torch.device("cpu")
    from model import DisCreteVAE  # noqa: E402 (theirs)

    return a, DisCreteVAE(a)


def record(split, obj):
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    print(f"{stamp} | INFO | {split} | {json.dumps(obj)}", flush=True)


def atomic_save(obj, path):
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_state():
    return {"numpy": np.random.get_state(), "torch": torch.get_rng_state(), "python": random.getstate()}


def set_rng_state(state):
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])


def codes_in_use(model, batches):
    """Distinct codes the encoder picks for a split's batches (every position, ``<s>``'s
    included: their batches hold sentences of one length, so there is no padding)."""
    seen = set()
    with torch.no_grad():
        for batch in batches:
            seen.update(model.return_embed_ind(batch).reshape(-1).tolist())
    return len(seen)


def sgd_pair(model, lr, momentum):
    return (torch.optim.SGD(model.encoder.parameters(), lr=lr, momentum=momentum),
            torch.optim.SGD(model.decoder.parameters(), lr=lr, momentum=momentum))  # fmt: skip


def save_last(path, model, state, opts):
    atomic_save({"model": model.state_dict(), "state": state, "rng": rng_state(),
                 "optimizers": [opt.state_dict() for opt in opts]}, path)  # fmt: skip


def train(args):
    check_args(args)
    a, model = load_authors(args)
    last = os.path.join(args.save_dir, "checkpoint_last.pt")
    best_path = os.path.join(args.save_dir, "best.pt")
    n_train = len(model.train_data)
    anneal = (a.vq_weight_max - a.vq_start) / (a.warm_up * (n_train / a.batch_size))
    state = {"epoch": 0, "iter": 0, "vq_weight": a.vq_start, "decay_cnt": 0, "done": False, "train_seconds": 0.0,
             "opt_dict": {"not_improved": 0, "lr": a.lr_start, "best_loss": 1e4}, "best_loss": 1e4}  # fmt: skip
    ckpt = None
    if os.path.exists(last):
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        state = ckpt["state"]
        set_rng_state(ckpt["rng"])
        where = (f"{state['in_epoch']['next']} updates into epoch {state['epoch'] + 1}" if state.get("in_epoch")
                 else f"{state['epoch']} epochs done")  # fmt: skip
        print(f"resumed from {last}: {where}, {state['iter']} updates, lr {state['opt_dict']['lr']}", flush=True)
    enc_opt, dec_opt = sgd_pair(model, state["opt_dict"]["lr"], a.momentum)
    if ckpt is not None and "optimizers" in ckpt:  # (checkpoints of before 2026-12-05 have none: momentum 0)
        enc_opt.load_state_dict(ckpt["optimizers"][0])
        dec_opt.load_state_dict(ckpt["optimizers"][1])
    every = args.save_last_interval_updates
    while not state["done"] and state["epoch"] < a.epochs:
        epoch = state["epoch"]  # 0-based, as theirs
        model.train()
        resume = state.pop("in_epoch", None)
        if resume is None:  # a new epoch
            order = np.random.permutation(len(model.train_data_batch))
            if args.max_batches is not None:
                order = order[: args.max_batches]
            first, sums, seconds_before = 0, [0.0] * 6, 0.0
        else:  # the rest of an epoch that a mid-epoch save interrupted
            order, first, sums, seconds_before = np.asarray(resume["order"]), resume["next"], resume["sums"], resume["seconds"]
        # since the last train_inner record, and since the epoch began
        rec_sum, vq_sum, sents, epoch_rec, epoch_vq, epoch_sents = sums
        start = time.time() - seconds_before
        interval_start = time.time()
        for k in range(first, len(order)):
            batch = model.train_data_batch[order[k]]
            state["vq_weight"] = min(a.vq_weight_max, state["vq_weight"] + anneal)
            enc_opt.zero_grad()
            dec_opt.zero_grad()
            loss, loss_rc, loss_vq = model.build_model(batch, state["vq_weight"], a.train_tf_ratio)
            loss.mean().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip_grad)
            enc_opt.step()
            dec_opt.step()
            batch_rec, batch_vq = loss_rc.sum().item(), loss_vq.sum().item()
            rec_sum, vq_sum, sents = rec_sum + batch_rec, vq_sum + batch_vq, sents + batch.size(0)
            epoch_rec, epoch_vq, epoch_sents = epoch_rec + batch_rec, epoch_vq + batch_vq, epoch_sents + batch.size(0)
            state["iter"] += 1
            if state["iter"] % 100 == 0:
                record("train_inner", {"epoch": epoch + 1, "update": round(epoch + (k + 1) / len(order), 3),
                                       "rec": f"{rec_sum / sents:.3f}", "commitment": f"{vq_sum / sents:.3f}",
                                       "beta": f"{state['vq_weight']:.4g}", "lr": f"{state['opt_dict']['lr']:.4g}",
                                       "num_updates": str(state["iter"]),
                                       "train_wall": f"{time.time() - interval_start:.1f}"})  # fmt: skip
                rec_sum = vq_sum = sents = 0.0
                interval_start = time.time()
            if every and state["iter"] % every == 0 and k + 1 < len(order):
                state["in_epoch"] = {"order": order.tolist(), "next": k + 1, "seconds": time.time() - start,
                                     "sums": [rec_sum, vq_sum, sents, epoch_rec, epoch_vq, epoch_sents]}  # fmt: skip
                save_last(last, model, state, (enc_opt, dec_opt))
                del state["in_epoch"]
                print(f"Saved checkpoint {last} (epoch {epoch + 1} @ {state['iter']} updates, score None)", flush=True)
        seconds = time.time() - start
        state["train_seconds"] += seconds
        record("train", {"epoch": epoch + 1, "train_rec": f"{epoch_rec / epoch_sents:.3f}",
                         "train_commitment": f"{epoch_vq / epoch_sents:.3f}", "train_num_updates": str(state["iter"]),
                         "train_wall": f"{seconds:.1f}"})  # fmt: skip
        model.eval()
        with torch.no_grad():
            val_loss, nll, vq = model.eval_model(a, a.eval_tf_ratio, verbose=False)
        usage = codes_in_use(model, model.val_data_batch)
        if val_loss < state["best_loss"]:
            state["best_loss"] = val_loss
            atomic_save(model.state_dict(), best_path)
        opt = state["opt_dict"]
        lr_used, decayed = opt["lr"], False
        if val_loss > opt["best_loss"]:
            opt["not_improved"] += 1
            if opt["not_improved"] >= a.decay_epoch and epoch >= 15:
                opt["best_loss"] = val_loss
                opt["not_improved"] = 0
                opt["lr"] *= a.lr_decay
                model.load_state_dict(torch.load(best_path, map_location="cpu"))
                state["decay_cnt"] += 1
                enc_opt, dec_opt = sgd_pair(model, opt["lr"], a.momentum)
                decayed = True
        else:
            opt["not_improved"] = 0
            opt["best_loss"] = val_loss
        record("valid", {"epoch": epoch + 1, "valid_rec": f"{nll:.3f}", "valid_commitment": f"{vq:.3f}",
                         "valid_rec_plus_commitment": f"{val_loss:.3f}", "valid_code_usage": str(usage),
                         "valid_best_rec_plus_commitment": f"{state['best_loss']:.3f}",
                         "valid_lr": f"{lr_used:.4g}",
                         "valid_beta": f"{state['vq_weight']:.4g}", "valid_num_updates": str(state["iter"]),
                         "valid_train_hours": f"{state['train_seconds'] / 3600:.3f}"})  # fmt: skip
        if decayed:  # (results.py reads these lines as davam_plateau's)
            print(f"authors' rule: epoch {epoch + 1}: decay {state['decay_cnt']}/{a.max_decay:g}, lr {opt['lr']:g}, "
                  "best weights reloaded", flush=True)
        state["epoch"] = epoch + 1
        state["done"] = state["decay_cnt"] == a.max_decay
        save_last(last, model, state, (enc_opt, dec_opt))
    # their test: the best weights on the test set
    model.load_state_dict(torch.load(best_path, map_location="cpu"))
    model.eval()
    with torch.no_grad():
        test_loss, nll, vq = model.test_model(a, a.eval_tf_ratio, verbose=False)
    test_codes = codes_in_use(model, model.test_data_batch)
    settings = {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v)) for k, v in vars(a).items()}
    result = {"tool": "authors_davam.py", "split": "test", "path": "stage1/best.pt", "rec": nll, "commitment": vq,
              "rec_plus_commitment": test_loss, "code_usage": test_codes,
              "best_valid_rec_plus_commitment": state["best_loss"], "epochs": state["epoch"], "updates": state["iter"],
              "lr_decays": state["decay_cnt"], "train_hours": state["train_seconds"] / 3600, "seed": args.seed,
              "authors_settings": settings | {"device": "cpu"}}  # fmt: skip
    path = args.eval_json or os.path.join(args.save_dir, "eval.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)
    record("test", {"epoch": state["epoch"], "test_rec": f"{nll:.3f}", "test_commitment": f"{vq:.3f}",
                    "test_code_usage": str(test_codes)})  # fmt: skip


if __name__ == "__main__":
    train(parse_args())
