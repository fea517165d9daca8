"""d2l 8.2.3: a [1, -1] kernel finds vertical edges, and none in the transposed image."""
import jax.numpy as jnp

import jconv as jc

X = jnp.ones((6, 8)).at[:, 2:6].set(0)
print(X)
K = jnp.array([[1, -1]])
Y = jc.corr2d(X, K)
print(Y)  # 1 where white turns black, -1 where black turns white
print(jc.corr2d(X.T, K))  # all zeros
