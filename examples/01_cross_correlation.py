"""d2l 8.2.1: the cross-correlation operator."""
import jax.numpy as jnp

import jconv as jc

X = jnp.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]])
K = jnp.array([[0, 1], [2, 3]])
print(jc.corr2d(X, K))  # [[19. 25.] [37. 43.]]
