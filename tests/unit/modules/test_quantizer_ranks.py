"""Dead-code restarts and k-means initialisation across workers take the rows of a worker with data.

Two real gloo workers (processes forked from the test) run the quantizer on their own
batches; a worker on fairseq's dummy batch (``contribute=False``, out of data) must not be the
source of the restarted codes or of the k-means centres (it used to be, as rank 0, and every
restarted code landed on 0). Every worker must end with the same codebook, and with no
contributing worker nothing changes.
"""

import datetime
import multiprocessing
import traceback

import pytest
import torch

from davam_plugin.modules.ema_vector_quantizer import EMAVectorQuantizer

FAR = [[0.0, 0.0], [100.0, 100.0], [-100.0, 100.0], [100.0, -100.0]]  # codes 1..3 are never nearest
CENTRES = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])


def dead_code_quantizer():
    q = EMAVectorQuantizer(num_codes=4, code_dim=2, decay=0.5, dead_code_threshold=0.5).train()
    q.codebook.copy_(torch.tensor(FAR))
    q.cluster_sum.copy_(q.codebook)
    return q


def kmeans_quantizer():
    torch.manual_seed(0)  # the same random initial codebook on every worker
    return EMAVectorQuantizer(num_codes=3, code_dim=2, kmeans_init=True, kmeans_iters=20).train()


def batch_near(point, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.tensor(point) + 0.1 * torch.randn(2, 8, 2, generator=g)


def clusters(seed):
    g = torch.Generator().manual_seed(seed)
    return CENTRES[torch.randint(0, 3, (3, 40), generator=g)] + 0.01 * torch.randn(3, 40, 2, generator=g)


def scenarios(rank):
    """(name, quantizer, inputs, contribute) for this rank; every rank runs them in order."""
    return [
        ("restart_rank0_dummy", dead_code_quantizer(), batch_near([5.0, 5.0], 10 + rank), rank == 1),
        ("restart_both", dead_code_quantizer(), batch_near([5.0, 5.0] if rank == 0 else [-5.0, -5.0], 20 + rank), True),
        ("restart_rank1_dummy", dead_code_quantizer(), batch_near([5.0, 5.0], 30 + rank), rank == 0),
        ("restart_nobody", dead_code_quantizer(), batch_near([5.0, 5.0], 40 + rank), False),
        ("kmeans_rank0_dummy", kmeans_quantizer(), clusters(50 + rank), rank == 1),
        ("kmeans_nobody", kmeans_quantizer(), clusters(60 + rank), False),
    ]


def worker(rank, init_file, out_file):
    try:
        torch.set_num_threads(1)
        torch.distributed.init_process_group(
            "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60)
        )
        torch.manual_seed(100 + rank)  # each worker draws its own random rows
        results = {}
        for name, q, x, contribute in scenarios(rank):
            before = {k: v.clone() for k, v in q.state_dict().items()}
            q(x, contribute=contribute)
            results[name] = {"before": before, "after": {k: v.clone() for k, v in q.state_dict().items()}}
        torch.distributed.destroy_process_group()
        torch.save(results, out_file)
    except BaseException:  # noqa: BLE001 - reported by the test
        with open(f"{out_file}.err", "w") as f:
            f.write(traceback.format_exc())
        raise


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    root = tmp_path_factory.mktemp("ranks")
    ctx = multiprocessing.get_context("fork")  # the plugin is imported already: no start-up cost
    procs = [ctx.Process(target=worker, args=(r, root / "init", root / f"rank{r}.pt")) for r in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        if p.is_alive():
            p.kill()
    errors = [(root / f"rank{r}.pt.err") for r in (0, 1) if (root / f"rank{r}.pt.err").exists()]
    assert all(p.exitcode == 0 for p in procs) and not errors, [e.read_text() for e in errors]
    return [torch.load(root / f"rank{r}.pt", weights_only=True) for r in (0, 1)]


def both(two_workers, name):
    r0, r1 = two_workers[0][name], two_workers[1][name]
    for key in r0["after"]:
        assert torch.equal(r0["after"][key], r1["after"][key]), f"{name}: workers differ in {key}"
    return r0


def distance_to(codes, point):
    return (codes - torch.tensor(point)).norm(dim=1)


def test_restart_takes_rows_from_the_worker_with_data(two_workers):
    r = both(two_workers, "restart_rank0_dummy")  # rank 0 on a dummy batch, rank 1's data near (5, 5)
    restarted = r["after"]["codebook"][1:]
    assert (distance_to(restarted, [5.0, 5.0]) < 1.0).all(), restarted  # not at rank 0's zeros
    assert (r["after"]["cluster_size"] >= 0.5).all()


def test_restart_with_two_contributing_workers_takes_the_lowest_rank(two_workers):
    r = both(two_workers, "restart_both")  # rank 0 near (5, 5), rank 1 near (-5, -5)
    assert (distance_to(r["after"]["codebook"][1:], [5.0, 5.0]) < 1.0).all()


def test_restart_with_rank1_on_a_dummy_batch(two_workers):
    r = both(two_workers, "restart_rank1_dummy")
    assert (distance_to(r["after"]["codebook"][1:], [5.0, 5.0]) < 1.0).all()


def test_restart_without_data_changes_nothing(two_workers):
    r = both(two_workers, "restart_nobody")
    for key, value in r["before"].items():
        assert torch.equal(r["after"][key], value), key


def test_kmeans_init_takes_centres_from_the_worker_with_data(two_workers):
    r = both(two_workers, "kmeans_rank0_dummy")
    assert int(r["after"]["initialized"]) == 1
    d = torch.cdist(CENTRES, r["after"]["codebook"]).min(1).values
    assert (d < 0.5).all(), r["after"]["codebook"]


def test_kmeans_init_without_data_waits_for_the_next_batch(two_workers):
    r = both(two_workers, "kmeans_nobody")
    assert int(r["after"]["initialized"]) == 0
    for key, value in r["before"].items():
        assert torch.equal(r["after"][key], value), key


def test_kmeans_init_of_a_lone_dummy_batch_changes_nothing():
    q = kmeans_quantizer()
    before = {k: v.clone() for k, v in q.state_dict().items()}
    q(clusters(0), contribute=False)
    assert int(q.initialized) == 0
    for key, value in before.items():
        assert torch.equal(q.state_dict()[key], value), key
    q(clusters(0))
    assert int(q.initialized) == 1
