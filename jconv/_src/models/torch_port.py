"""Weights from PyTorch: a torch.nn network's parameters and BatchNorm statistics onto jconv's pytrees."""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from jconv import nn

_KINDS = {"conv": "convolution", "dense": "dense layer", "bn": "BatchNorm"}


def _kind(layer: nn.Layer) -> str | None:
    if isinstance(layer, nn.BatchNorm):
        return "bn"
    if isinstance(layer, nn.Dense):
        return "dense"
    if isinstance(layer, (nn.Conv1D, nn.Conv2D, nn.Conv3D, nn.Conv1DTranspose, nn.Conv2DTranspose,
                          nn.Conv3DTranspose)):
        return "conv"
    return None


def _rebuild(layer: nn.Layer, params: Any, state: Any, take: Callable[[nn.Layer, Any, Any], tuple]) -> tuple:
    """``(params, state)`` with every weighted leaf replaced by ``take(layer, params, state)``, in the
    order the layers run (a Residual's body, then its shortcut; a Concat's branches in order)."""
    if isinstance(layer, (nn.Sequential, nn.Concat)):
        children = layer.layers if isinstance(layer, nn.Sequential) else layer.branches
        pairs = [_rebuild(c, p, s, take) for c, p, s in zip(children, params, state)]
        return tuple(p for p, _ in pairs), tuple(s for _, s in pairs)
    if isinstance(layer, nn.Residual):
        pb, sb = _rebuild(layer.body, params["body"], state["body"], take)
        ps, ss = (params["shortcut"], state["shortcut"]) if layer.shortcut is None else _rebuild(
            layer.shortcut, params["shortcut"], state["shortcut"], take)
        return {"body": pb, "shortcut": ps}, {"body": sb, "shortcut": ss}
    return take(layer, params, state) if _kind(layer) else (params, state)


def _torch_layers(module_or_state_dict: Any) -> dict[str, list[tuple[str, dict[str, np.ndarray]]]]:
    """The torch network's weighted layers, per kind, in registration order: ``(name, tensors)``."""
    sd = module_or_state_dict.state_dict() if hasattr(module_or_state_dict, "state_dict") else module_or_state_dict
    if not hasattr(sd, "items"):
        raise TypeError(f"from_torch: `module_or_state_dict` must be a torch.nn.Module or a state dict, "
                        f"got {type(module_or_state_dict).__name__}")
    layers: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in sd.items():
        prefix, _, name = key.rpartition(".")
        if name == "num_batches_tracked":
            continue
        # a copy: jax.numpy.asarray of a CPU NumPy array may alias it, and torch updates its own in place
        layers.setdefault(prefix, {})[name] = np.array(
            tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else tensor, copy=True)
    out: dict[str, list] = {"conv": [], "dense": [], "bn": []}
    for prefix, tensors in layers.items():
        if "running_mean" in tensors:
            out["bn"].append((prefix, tensors))
        elif "weight" in tensors:
            out["conv" if tensors["weight"].ndim > 2 else "dense"].append((prefix, tensors))
    return out


def from_torch(model: nn.Layer, module_or_state_dict: Any, *,
               input_shape: tuple[int, ...] | None = None) -> tuple[Any, Any]:
    """jconv ``(params, state)`` for ``model`` holding the weights of a torch.nn network of the same
    structure (d2l's PyTorch classes): its convolutions, dense layers and BatchNorms are matched,
    kind by kind, in the order each network runs them (torch: the order its modules are
    registered), and their weights, biases, ``gamma``/``beta`` and running statistics copied.

    Args:
      model: a jconv network (built by ``jconv.models`` it knows its input shape).
      module_or_state_dict: a ``torch.nn.Module`` (lazy modules already run once) or its
        ``state_dict()``.
      input_shape: the example shape ``(C, H, W)`` when ``model`` does not record one.

    Returns:
      ``(params, state)`` as ``model.init_with_state`` returns them, in the parameters' dtypes.

    Raises:
      ValueError: the first layer that does not match (its kind, a shape, or a bias on one side only),
        or a different number of layers of a kind.

    torch is imported by the caller, never by jconv.
    """
    shape = input_shape or getattr(model, "input_shape", None)
    if shape is None:
        raise ValueError("from_torch: `model` records no input shape; pass input_shape=(C, H, W)")
    params, state = jax.eval_shape(lambda k: model.init_with_state(k, (1,) + tuple(shape)), jax.random.key(0))
    theirs = _torch_layers(module_or_state_dict)
    ours: dict[str, int] = {"conv": 0, "dense": 0, "bn": 0}

    def take(layer: nn.Layer, p: dict, s: dict) -> tuple[dict, dict]:
        kind = _kind(layer)
        i = ours[kind]
        ours[kind] += 1
        what = f"{_KINDS[kind]} {i + 1} ({layer!r})"
        if i >= len(theirs[kind]):
            raise ValueError(f"from_torch: {what} has no counterpart: the torch network has "
                             f"{len(theirs[kind])} of that kind")
        name, t = theirs[kind][i]
        pairs = ({"gamma": "weight", "beta": "bias"} if kind == "bn" else {"weight": "weight", "bias": "bias"})
        new_p = {}
        for ours_name, torch_name in pairs.items():
            if (ours_name in p) != (torch_name in t):
                side = "jconv's" if ours_name in p else f"torch's {name!r}"
                raise ValueError(f"from_torch: {what}: only {side} has a {torch_name} (use_bias / affine differ)")
            if ours_name in p:
                new_p[ours_name] = _cast(what, ours_name, p[ours_name], t[torch_name], name)
        new_s = {k: _cast(what, k, v, t[k], name) for k, v in s.items()} if kind == "bn" else s
        return new_p, new_s

    params, state = _rebuild(model, params, state, take)
    for kind, n in ours.items():
        if n != len(theirs[kind]):
            raise ValueError(f"from_torch: the jconv network has {n} {_KINDS[kind]}s, the torch one "
                             f"{len(theirs[kind])}")
    return params, state


def _cast(what: str, name: str, ours: Any, theirs: np.ndarray, torch_name: str) -> jax.Array:
    if tuple(ours.shape) != tuple(theirs.shape):
        raise ValueError(f"from_torch: {what}: {name} has shape {tuple(ours.shape)}, torch's {torch_name!r} "
                         f"{tuple(theirs.shape)}")
    return jax.numpy.asarray(theirs, dtype=ours.dtype)

