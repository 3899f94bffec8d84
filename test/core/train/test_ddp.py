"""DistributedDataParallel on CPU (gloo): two processes with batch B each match one process with batch 2B.

What "match" means here: the U-Net guide of the dehazing network has BatchNorm.  With per-process
batch statistics, two processes normalise each half batch by its own mean and variance, which is
a different function from normalising the whole batch, so gradients legitimately differ.  The
trainer therefore uses SyncBatchNorm under multi-GPU DDP (``train.bn: auto``); SyncBatchNorm needs
CUDA, so on CPU the equivalence is checked with BatchNorm frozen (``train.bn: frozen``, running
statistics, eval mode), where the function is identical and only the summation order differs.
With per-process statistics (``train.bn: batch``) the test checks what DDP does guarantee: the
replicas stay identical.
"""
from __future__ import annotations

import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hazy_photos import HazyPhotoPairs, no_onednn

from dcmpnet_core.train.config import train_config_from_dict
from dcmpnet_core.train.loop import Trainer

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


@pytest.fixture(autouse=True, scope="module")
def _no_onednn():
    yield from no_onednn()


def _cfg(bn: str):
    return train_config_from_dict({
        "model": "tiny", "data": {"workers": 0},
        "train": {"batch_size": 4, "max_steps": 2, "device": "cpu", "bn": bn, "checkpoint_every": 100},
        "optim": {"lr_dehaze": 1e-3, "lr_depth": 1e-3},
    })


def _run(cfg, out) -> dict:
    """Train 2 steps; return the gradients after step 1 and the weights after step 2."""
    tr = Trainer(cfg, out, train_set=HazyPhotoPairs(8, 32), progress=False, overwrite=True)
    record = {}
    step = tr.train_step

    def train_step(batch):
        result = step(batch)
        if tr.step == 1:
            record["grads"] = {n: p.grad.detach().clone() for n, p in tr.model.named_parameters()}
        return result

    tr.train_step = train_step
    tr.fit()
    record["params"] = {k: v.detach().clone() for k, v in tr.model.named_parameters()}
    return record


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        frozen = _run(_cfg("frozen"), os.path.join(out, "frozen"))
        batch = _run(_cfg("batch"), os.path.join(out, "batch"))
        torch.save({"frozen": frozen, "batch": batch}, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_with_the_doubled_batch(tmp_path):
    ctx = mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + 300
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            pytest.fail("the DDP workers did not finish in 300 s")
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]

    torch.manual_seed(0)
    single = _run(_cfg("frozen"), tmp_path / "single")
    assert set(single["grads"]) == set(ranks[0]["frozen"]["grads"])
    for name, g in single["grads"].items():
        # Both networks: DDP averages the half-batch gradients, and the routing holds under DDP.
        torch.testing.assert_close(ranks[0]["frozen"]["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)
        torch.testing.assert_close(ranks[1]["frozen"]["grads"][name], ranks[0]["frozen"]["grads"][name],
                                   rtol=0, atol=0, msg=name)
    for name, v in single["params"].items():
        g = single["grads"][name]
        if g.abs().max() < 1e-6:
            # A gradient that is float noise (|g| ~ Adam's eps): the update's size is arbitrary
            # in both runs; it is at most lr per step.
            assert (ranks[0]["frozen"]["params"][name] - v).abs().max() <= 2 * 1e-3 + 1e-6, name
            continue
        torch.testing.assert_close(ranks[0]["frozen"]["params"][name], v, rtol=1e-5, atol=1e-6, msg=name)

    # Per-process BatchNorm statistics: a different function, but the replicas stay identical.
    # (BatchNorm running statistics are per process: only parameters are kept equal.)
    for name in ranks[0]["frozen"]["grads"]:
        v = ranks[0]["batch"]["params"][name]
        torch.testing.assert_close(ranks[1]["batch"]["params"][name], v, rtol=0, atol=0, msg=name)
    # Only rank 0 wrote the run directory.
    assert (tmp_path / "frozen" / "last.pt").is_file() and (tmp_path / "frozen" / "train_state.pt").is_file()
