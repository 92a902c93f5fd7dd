"""``rrambench train ring|digits``: train a score network (needs the ``train`` extra)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

DEFAULT_EPOCHS = {"ring": 4000, "digits": 2000}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a diffusion model (needs the [train] extra: torch)",
        description="Train the score network of a task with noise-injection training, "
        "evaluate its software baseline and write NAME.npz + NAME.json "
        "(digits also writes NAME-vae.npz + .json).",
    )
    p.add_argument("task", choices=sorted(DEFAULT_EPOCHS), help="ring (unconditional) or digits (conditional)")
    p.add_argument("--out", type=Path, help="output file (default: ./TASK.npz)")
    p.add_argument("--epochs", type=int, help="passes over the training set (default: ring 4000, digits 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-noise", action="store_true", help="train without weight-noise injection")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from protocols.cli.main import UsageError

    epochs = DEFAULT_EPOCHS[args.task] if args.epochs is None else args.epochs
    if epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {epochs}")
    if args.no_noise and args.task != "ring":
        raise UsageError("--no-noise is offered for the ring task only")
    out = args.out or Path(f"{args.task}.npz")
    if out.suffix not in ("", ".npz"):
        raise UsageError(f"--out {out}: the model file must end in .npz")
    if not out.resolve().parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.resolve().parent} does not exist")
    # Arguments first, so a mistyped command says what is wrong whether or not torch is installed.
    if importlib.util.find_spec("torch") is None:
        raise UsageError("training needs PyTorch: pip install 'rrambench[train]'")

    from protocols.diffusion.training import pipelines

    def progress(epoch: int, total: int, loss: float) -> None:
        if sys.stderr.isatty() and (epoch == total or epoch % max(1, total // 100) == 0):
            print(f"\r{args.task}: epoch {epoch}/{total} loss {loss:.4f}", end="", file=sys.stderr)
            if epoch == total:
                print(file=sys.stderr)

    if args.task == "ring":
        model = pipelines.train_ring(out, epochs, noise=not args.no_noise, seed=args.seed,
                                     progress=progress)
        m = model.meta["metrics"]
        print(f"wrote {out.with_suffix('.npz')}: mean radius {m['mean_radius']:.3f}, "
              f"KL x/y {m['kl_xy'][0]:.4f}/{m['kl_xy'][1]:.4f}, "
              f"trained in {m['train_seconds']:.0f} s")
    else:
        model = pipelines.train_digits(out, epochs, seed=args.seed, progress=progress)
        m = model.meta["metrics"]
        acc = ", ".join(f"{k}: {v:.3f}" for k, v in m["accuracy_per_class"].items())
        print(f"wrote {out.with_suffix('.npz')} and {pipelines.vae_path_for(out)}: "
              f"per-class accuracy {acc}; trained in {m['train_seconds']:.0f} s")
    return 0
