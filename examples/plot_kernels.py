"""Train LeNet briefly, then save a PNG of its first-layer kernels and the feature maps they
produce on one test digit (``lenet_features.png``, or the path given as the first argument)."""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import jconv as jc
from jconv import data, train

ds = data.load("mnist5k")
model = jc.models.lenet(variant="modern")
config = train.TrainConfig(epochs=2)
params, _ = train.fit(model, ds, config, progress=False)

digit = ds.x_test[:1]  # (1, 1, 28, 28)
conv1 = model.layers[0]
maps = conv1.apply(params[0], digit)[0]  # (6, 28, 28)
kernels = params[0]["weight"][:, 0]  # (6, 5, 5)

fig, axes = plt.subplots(3, 6, figsize=(9, 4.8))
for ax in axes.ravel():
    ax.axis("off")
axes[0, 0].imshow(digit[0, 0], cmap="gray")
axes[0, 0].set_title(f"label {ds.y_test[0]}")
for i in range(6):
    axes[1, i].imshow(kernels[i], cmap="coolwarm")
    axes[1, i].set_title(f"kernel {i}")
    axes[2, i].imshow(maps[i], cmap="viridis")
    axes[2, i].set_title(f"map {i}")
fig.tight_layout()
path = sys.argv[1] if len(sys.argv) > 1 else "lenet_features.png"
fig.savefig(path)
print(f"saved {path}")
