"""d2l 8.3: output shapes under padding and stride."""
import jax

from jconv import nn


def comp_conv2d(conv2d, X):
    X = X.reshape((1, 1) + X.shape)  # add batch and channel axes
    Y = conv2d.apply(conv2d.init(jax.random.key(0), X.shape), X)
    return Y.reshape(Y.shape[2:])


X = jax.random.uniform(jax.random.key(0), (8, 8))
print(comp_conv2d(nn.Conv2D(1, kernel_size=3, padding=1), X).shape)  # (8, 8)
print(comp_conv2d(nn.Conv2D(1, kernel_size=(5, 3), padding=(2, 1)), X).shape)  # (8, 8)
print(comp_conv2d(nn.Conv2D(1, kernel_size=3, padding=1, strides=2), X).shape)  # (4, 4)
print(comp_conv2d(nn.Conv2D(1, kernel_size=(3, 5), padding=(0, 1), strides=(3, 4)), X).shape)  # (2, 2)
