"""d2l 8.5: max and average pooling, Gluon's defaults (stride = window), padding and stride."""
import jax.numpy as jnp

import jconv as jc
from jconv import nn

X = jnp.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
print(jc.pool2d(X, (2, 2)))  # [[4. 5.] [7. 8.]]
print(jc.pool2d(X, (2, 2), "avg"))  # [[2. 3.] [5. 6.]]

X = jnp.arange(16, dtype=jnp.float32).reshape(1, 1, 4, 4)
print(nn.MaxPool2D(3).apply({}, X))  # [[[[10.]]]]
print(nn.MaxPool2D(3, padding=1, strides=2).apply({}, X))  # [[[[ 5.  7.] [13. 15.]]]]
print(nn.MaxPool2D((2, 3), padding=(1, 2), strides=(2, 3)).apply({}, X))  # [[0 3] [8 11] [12 15]]

X = jnp.concatenate((X, X + 1), axis=1)
print(jc.max_pool2d(X, 3, padding=1, strides=2))  # one output channel per input channel
