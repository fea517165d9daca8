"""One compiled program for a function's value and its VJP: the oracle sweeps compile once per
example instead of dispatching op by op (each op of an eager VJP is its own compile)."""

import jax


def value_and_vjp(f, x, ct):
    """``(f(x), vjp(ct))`` for one-argument ``f``; traceable, so callers jit it with whatever else
    the example computes."""
    y, vjp = jax.vjp(f, x)
    return y, vjp(ct)[0]


def jit_value_and_vjp(f, args, ct):
    """``(f(*args), vjp(ct))`` (the VJP a tuple, one cotangent per argument; ``None`` arguments
    stay ``None``) as one compiled program."""

    def run(ct, *args):
        y, vjp = jax.vjp(f, *args)
        return y, vjp(ct)

    return jax.jit(run)(ct, *args)
