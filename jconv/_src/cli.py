"""The ``jconv`` command: ``train``, ``demo`` and ``bench``."""

from __future__ import annotations

import argparse
import sys

from jconv._src import supervisor
from jconv._src.data import DATASETS
from jconv._src.models.zoo import DEFAULTS, MODELS
from jconv._src.preemption import EXIT_CODE
from jconv._src.train import TrainConfig

_DEFAULTS = TrainConfig()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="jconv", description="CNNs as pure JAX functions.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model (LeNet on 5,000 real MNIST digits by default)")
    per_model = "; ".join(f"{m}: {', '.join(f'{k} {v}' for k, v in d.items())}" for m, d in DEFAULTS.items())
    t.add_argument("--model", choices=list(MODELS), default=_DEFAULTS.model)
    t.add_argument("--dataset", choices=list(DATASETS), default=_DEFAULTS.dataset)
    t.add_argument("--epochs", type=int, default=_DEFAULTS.epochs)
    t.add_argument("--batch-size", type=int, default=None,
                   help=f"global batch size (default {_DEFAULTS.batch_size}, or the model's: {per_model})")
    t.add_argument("--lr", type=float, default=None, help=f"learning rate (default {_DEFAULTS.lr}, or the model's)")
    t.add_argument("--momentum", type=float, default=None,
                   help=f"SGD momentum (default {_DEFAULTS.momentum}, or the model's)")
    t.add_argument("--weight-decay", type=float, default=_DEFAULTS.weight_decay)
    t.add_argument("--seed", type=int, default=_DEFAULTS.seed)
    t.add_argument("--out", default=None, help="output folder (metrics, curves, checkpoints; default runs/MODEL)")
    t.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in OUT")
    t.add_argument("--data-dir", default="data", help="folder of the IDX files (mnist, fashion-mnist)")
    t.add_argument("--download", action="store_true", help="fetch missing IDX files")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    dist = t.add_argument_group("multi-process (jax.distributed)")
    dist.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0")
    dist.add_argument("--num-processes", type=int)
    dist.add_argument("--process-id", type=int)
    dist.add_argument("--init-timeout", type=int, default=60, help="seconds to wait for every process to join")
    dist.add_argument("--heartbeat-timeout", type=int, default=20,
                      help="seconds after which a silent peer ends the run")

    sub.add_parser("demo", help="print every output of the seed notebooks, computed by jconv")

    b = sub.add_parser("bench", help="benchmark jconv against PyTorch and Flax")
    b.add_argument("--quick", action="store_true", help="small sizes and few rounds (a smoke test)")
    b.add_argument("--rounds", type=int, default=None)
    return p


def _fail(msg: str) -> int:
    print(f"jconv: error: {msg}", file=sys.stderr)
    return 2


def _train(args: argparse.Namespace, argv: list[str]) -> int:
    for name in ("lr", "batch_size", "momentum"):  # the model's defaults (d2l's), where not given
        if getattr(args, name) is None:
            setattr(args, name, DEFAULTS.get(args.model, {}).get(name, getattr(_DEFAULTS, name)))
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

    from jconv._src import data as data_lib
    from jconv._src import train as train_lib

    config = TrainConfig(
        model=args.model, dataset=args.dataset, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay, seed=args.seed,
    )
    try:
        ds = data_lib.load(args.dataset, args.data_dir, args.download)
        model = MODELS[args.model](ds.num_classes, ds.x_train.shape[1:])
        _, history = train_lib.fit(
            model, ds, config, args.out, resume=args.resume,
            progress=not (args.no_progress or supervisor.is_worker()),  # stderr is relayed by line
        )
    except train_lib.Preempted as e:
        print(f"jconv: {e}", file=sys.stderr)
        return EXIT_CODE
    except (data_lib.DataError, train_lib.TrainingError) as e:
        return _fail(str(e))
    import jax

    if jax.process_index() == 0 and history:
        last = history[-1]
        print(f"final test accuracy {last['test_acc']:.4f} after {last['epoch']} epochs; "
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
    from jconv._src import bench

    return bench.main(quick=args.quick, rounds=args.rounds)


if __name__ == "__main__":
    sys.exit(main())
