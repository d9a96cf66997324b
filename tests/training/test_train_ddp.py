"""Real DDP on CPU: `torchrun --nproc_per_node 2 -m soundlens.training.main` with two gloo processes.

Checks that both ranks ran on disjoint shards, that gathered negatives gave every rank the same
global loss, that the weights are identical on both ranks after training, and that rank 0's
checkpoint loads with those weights (realtime_ecosystem.md §F).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from soundlens import models
from soundlens.training.main import param_digest

REPO = Path(__file__).resolve().parents[2]


def test_torchrun_two_gloo_processes(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    env.pop("WORLD_SIZE", None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "soundlens.training.main", "--method", "ezvsl", "--encoder", "lite", "--data",
           "procedural:64,size=112", "--epochs", "1", "--batch-size", "8", "--val-pairs", "8",
           "--gather-negatives", "--no-progress", "--device", "cpu", "--out", str(out), "--debug-rank-hashes"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ranks = [json.loads((out / "debug" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and all(r["world_size"] == 2 for r in ranks)
    # DistributedSampler: 32 disjoint indices each, together the whole set; 8 steps of 4 per rank
    shards = [set(r["indices"]["0"]) for r in ranks]
    assert len(shards[0]) == len(shards[1]) == 32 and not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(range(64)) and all(r["global_step"] == 8 for r in ranks)
    # gathered negatives: each rank computed the loss of the whole job's batch
    assert ranks[0]["mean_loss"]["0"] == pytest.approx(ranks[1]["mean_loss"]["0"], rel=1e-5)
    # identical weights on both ranks, and in rank 0's checkpoint
    assert ranks[0]["param_sha256"] == ranks[1]["param_sha256"]
    model = models.load(out / "latest.safetensors")
    assert param_digest(model) == ranks[0]["param_sha256"]
    # only rank 0 wrote the log: one start record, one epoch record
    events = [json.loads(line)["event"] for line in (out / "log.jsonl").read_text().splitlines()]
    assert events.count("start") == 1 and events.count("epoch") == 1
    assert json.loads((out / "config.json").read_text())["world_size"] == 2
