"""d2l 8.4: multiple input and output channels, and the 1x1 convolution as a matrix product."""
import jax
import jax.numpy as jnp

import jconv as jc

X = jnp.array([[[0, 1, 2], [3, 4, 5], [6, 7, 8]], [[1, 2, 3], [4, 5, 6], [7, 8, 9]]])
K = jnp.array([[[0, 1], [2, 3]], [[1, 2], [3, 4]]])
print(jc.corr2d_multi_in(X, K))  # [[ 56.  72.] [104. 120.]]

K = jnp.stack((K, K + 1, K + 2))
print(K.shape, jc.corr2d_multi_in_out(X, K).shape)  # (3, 2, 2, 2) (3, 2, 2)
print(jc.corr2d_multi_in_out(X, K))

kx, kk = jax.random.split(jax.random.key(0))
X = jax.random.uniform(kx, (3, 3, 3))
K = jax.random.uniform(kk, (2, 3, 1, 1))
Y1 = jc.corr2d_multi_in_out_1x1(X, K)
Y2 = jc.corr2d_multi_in_out(X, K)
print(bool(jnp.abs(Y1 - Y2).sum() < 1e-6))  # True
