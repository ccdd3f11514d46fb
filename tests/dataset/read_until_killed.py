"""A training loop's reading, in a process of its own, for the kill test (tests/dataset/test_resume_after_kill.py).

    python -m tests.dataset.read_until_killed OUT LOG [--checkpoint FILE --save-at EPOCH ITEM] [--resume FILE]

Reads ``--epochs`` epochs of OUT through a StatefulDataLoader with worker processes, appending one JSON
line per batch to LOG (its samples and a digest of its latents). With ``--save-at``, after that item of
that epoch it writes a checkpoint (the loader's state, the epoch, the lines logged so far) and, once it
is on disk, ``FILE.saved`` with its worker processes' ids and the lines logged; then it goes on slowly,
to be killed. With ``--resume`` it starts from such a checkpoint.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
import warnings
from pathlib import Path

import torch
from torchdata.stateful_dataloader import StatefulDataLoader

from pipeline.dataset import LatentDataset

OPTIONS = {"shuffle": True, "seed": 4, "block_rows": 4, "shuffle_blocks": 2, "batch_size": 3,
           "sample_posterior": True, "fields": ["key", "clip"]}


def line(epoch: int, batch: dict) -> str:
    digest = hashlib.sha256(batch["latent"].contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()[:16]
    return json.dumps({"epoch": epoch, "ids": [[k, c] for k, c in zip(batch["key"], batch["clip"].tolist())],
                       "latent": digest})


def save(path: Path, payload: dict) -> None:
    temporary = path.with_name(path.name + ".tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)  # a kill leaves the old checkpoint or the new one, never half of one


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("log", type=Path)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--save-at", type=int, nargs=2, metavar=("EPOCH", "ITEM"))
    parser.add_argument("--resume", type=Path)
    args = parser.parse_args()

    dataset = LatentDataset(args.out, **OPTIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loader = StatefulDataLoader(dataset, batch_size=None, num_workers=args.workers)
    first_epoch, logged = 0, 0
    if args.resume is not None:
        checkpoint = torch.load(args.resume, weights_only=False)
        loader.load_state_dict(checkpoint["loader"])
        first_epoch, logged = checkpoint["epoch"], checkpoint["logged"]
    with args.log.open("a") as log:
        for epoch in range(first_epoch, args.epochs):
            dataset.set_epoch(epoch)
            for item, batch in enumerate(loader, start=1):
                log.write(line(epoch, batch) + "\n")
                log.flush()
                logged += 1
                if args.save_at is not None and [epoch, item] == args.save_at:
                    save(args.checkpoint, {"loader": loader.state_dict(), "epoch": epoch, "logged": logged})
                    workers = [worker.pid for worker in loader._iterator._workers]
                    Path(f"{args.checkpoint}.saved").write_text(json.dumps({"workers": workers, "logged": logged}))
                if args.save_at is not None and (epoch, item) >= tuple(args.save_at):
                    time.sleep(0.5)  # waiting for the kill


if __name__ == "__main__":
    main()
