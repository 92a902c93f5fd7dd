"""``rrambench train ring|digits|letters``: train a score network (needs the ``train`` extra)."""

from __future__ import annotations

import argparse
import importlib.util
import sys
import zlib
from pathlib import Path

DEFAULT_EPOCHS = {"ring": 4000, "digits": 2000, "letters": 2000}
CONDITIONAL = ("digits", "letters")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a diffusion model (needs the [train] extra: torch)",
        description="Train the score network of a task with noise-injection training, "
        "evaluate its software baseline and write NAME.npz + NAME.json "
        "(digits and letters also write their convolutional VAE, NAME-vae.npz + .json). "
        "letters is the authors' task, EMNIST letters H, K, U, from EMNIST files you have "
        "(IDX format, emnist-byclass-train-images-idx3-ubyte[.gz] and its labels file; nothing is downloaded).",
    )
    p.add_argument("task", choices=sorted(DEFAULT_EPOCHS),
                   help="ring (unconditional), digits (conditional, scikit-learn's digits 0/1/7) or "
                   "letters (conditional, EMNIST H/K/U from --emnist)")
    p.add_argument("--out", type=Path, help="output file (default: ./TASK.npz)")
    p.add_argument("--epochs", type=int, help="passes over the training set (default: ring 4000, digits and "
                   "letters 2000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--no-noise", action="store_true", help="train without weight-noise injection (ring; digits, "
                   "on the shipped digits VAE, which is then not retrained: the shipped digits-plain)")
    p.add_argument("--emnist", type=Path, metavar="PATH", help="folder of your EMNIST files (letters)")
    p.add_argument("--vae-steps", type=int, help="Adam steps of the VAE (digits, letters; default 2000)")
    p.add_argument("--eval-samples", type=int, default=500,
                   help="samples per class of the software-baseline evaluation (digits, letters; default 500)")
    p.set_defaults(func=run_train)


def _check(args: argparse.Namespace) -> None:
    """Every argument check that needs neither torch nor the data."""
    from protocols.cli.main import UsageError

    epochs = DEFAULT_EPOCHS[args.task] if args.epochs is None else args.epochs
    if epochs < 1:
        raise UsageError(f"--epochs must be >= 1, got {epochs}")
    if args.no_noise and args.task == "letters":
        raise UsageError("--no-noise is offered for the ring and digits tasks only")
    if args.task == "letters" and args.emnist is None:
        raise UsageError("letters needs --emnist PATH: the folder of your EMNIST files")
    if args.emnist is not None and args.task != "letters":
        raise UsageError("--emnist is for the letters task only")
    if args.emnist is not None and not args.emnist.is_dir():
        raise UsageError(f"--emnist {args.emnist}: no such folder")
    if args.task not in CONDITIONAL and args.vae_steps is not None:
        raise UsageError("--vae-steps is for the digits and letters tasks only")
    if args.vae_steps is not None and args.vae_steps < 1:
        raise UsageError(f"--vae-steps must be >= 1, got {args.vae_steps}")
    if args.eval_samples < 1:
        raise UsageError(f"--eval-samples must be >= 1, got {args.eval_samples}")
    out = args.out or Path(f"{args.task}.npz")
    if out.suffix not in ("", ".npz"):
        raise UsageError(f"--out {out}: the model file must end in .npz")
    if not out.resolve().parent.is_dir():
        raise UsageError(f"--out {out}: folder {out.resolve().parent} does not exist")


def run_train(args: argparse.Namespace) -> int:
    from protocols.cli.main import UsageError

    _check(args)
    epochs = DEFAULT_EPOCHS[args.task] if args.epochs is None else args.epochs
    out = args.out or Path(f"{args.task}.npz")
    # Arguments and the user's files first (numpy only), so a mistyped command or a damaged
    # file says what is wrong whether or not torch is installed.
    data = None
    if args.task == "letters":
        from protocols.diffusion.emnist import letters_task

        try:
            data = letters_task(args.emnist)
        except (OSError, EOFError, ValueError, zlib.error) as exc:   # missing, unreadable or damaged files
            raise UsageError(f"--emnist {args.emnist}: {_one_line(exc)}") from None
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
        return 0
    common = {"seed": args.seed, "progress": progress, "eval_per_class": args.eval_samples,
              "vae_steps": args.vae_steps or pipelines.VAE_STEPS}
    if args.task == "digits":
        model = pipelines.train_digits(out, epochs, noise=not args.no_noise, **common)
    else:
        model = pipelines.train_letters(out, data, epochs, **common)
    m = model.meta["metrics"]
    acc = ", ".join(f"{k}: {v:.3f}" for k, v in m["accuracy_per_class"].items())
    vae = pipelines.vae_path_for(out)
    written = f" and {vae}" if model.meta["config"]["vae"] == vae.name else \
        f" (VAE: the shipped {model.meta['config']['vae']})"
    print(f"wrote {out.with_suffix('.npz')}{written}: per-class accuracy {acc}; trained in {m['train_seconds']:.0f} s")
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
