"""Warm-start a wider network from a narrower one without changing what it reconstructs.

A recipe with more channels (``N``, ``M``) than the model it warm-starts from gets the old
weights in the leading channels of every tensor and fresh initial values in the new ones,
except that every convolution's weights *from* a new input channel are zero. The old
channels then compute exactly what they computed before (new channels never feed old ones),
so the reconstruction and the old latents' entropy parameters are unchanged at step 0, while
the new channels are random functions of the old ones and get gradients from the first step.
This is the function-preserving widening of Chen et al., ICLR 2016 ("Net2Net: accelerating
learning via knowledge transfer"), with zero outgoing weights instead of Net2Net's split
copies. Only the new latent and hyper-latent channels change anything: they are coded, so
the rate starts a little above the narrow model's and training decides what they carry.

A deeper recipe (more residual blocks, ``blocks``; :mod:`bench.learned.network`) is grown
the same way: the new blocks are entries the old state lacks and keep their initial values,
and a new :class:`~bench.learned.layers.ResidualBlock` is the identity (its last
convolution starts at zero), so the output is again unchanged at step 0. So is a model given
a spatial context (``context``): its context convolution is new and starts at zero, so every
latent keeps the hyperprior's entropy parameters at step 0.

Two tensors are not channel-ordered end to end and get an explicit layout: the input of the
entropy-parameter head is ``[hyper-synthesis features (N), quality condition (C)]``, its
output ``n_params`` chunks of ``M`` (mean, scale[, shape]). GDN's ``gamma`` needs nothing
special: a fresh GDN holds the parametrized zero off the diagonal, which is what the new
entries of old channels must be, and its own initial value on the new diagonal.
"""

from __future__ import annotations

import torch
from torch import nn

#: configuration keys the widening may grow (the rest must match); a config without
#: ``blocks`` (releases 1–3) has none, one without ``context`` (releases 1–7) none either
WIDENABLE = ("N", "M", "blocks", "context")


def shape_of(config: dict) -> dict:
    """The growable part of a network ``config``: its :data:`WIDENABLE` keys (absent: 0)."""
    return {k: int(config.get(k, 0)) for k in WIDENABLE}


def can_widen(old: dict, new: dict) -> bool:
    """Whether a model of config ``old`` grows to ``new`` (same kind, nothing smaller)."""
    same = all(old.get(k) == new.get(k) for k in ("entropy", "C", "gains"))
    before, after = shape_of(old), shape_of(new)
    return same and all(before[k] <= after[k] for k in WIDENABLE) and before != after


def _layout(name: str, dim: int, old: dict, new: dict, old_size: int, new_size: int):
    """``(old_start, new_start, length)`` blocks of dimension ``dim`` of tensor ``name`` that
    hold old values: one leading block, but for the head's two concatenations."""
    if name.startswith("head.0.weight") and dim == 1:  # [h (N), condition (C)]
        C = int(new["C"])
        return [(0, 0, int(old["N"])), (int(old["N"]), int(new["N"]), C)]
    if name.startswith("head.2.") and dim == 0:  # n_params chunks of M
        mo, mn = int(old["M"]), int(new["M"])
        return [(k * mo, k * mn, mo) for k in range(old_size // mo)]
    return [(0, 0, min(old_size, new_size))]


def _new_inputs(size: int, blocks) -> torch.Tensor:
    """Mask of the indexes of a dimension that no old block covers."""
    mask = torch.ones(size, dtype=torch.bool)
    for _, start, length in blocks:
        mask[start:start + length] = False
    return mask


def widen_state(state: dict, old_config: dict, model: nn.Module) -> dict:
    """A state dict for ``model`` (freshly initialized, config ``model.config()``) that holds
    ``state`` (of a model with ``old_config``) in its old channels; see the module doc.

    Entries of ``model`` that ``state`` lacks keep their fresh values; an entry of ``state``
    that ``model`` lacks, or whose number of dimensions differs, is an error.
    """
    new_config = model.config()
    if not can_widen(old_config, new_config):
        raise ValueError(f"cannot widen a model of {old_config} to {new_config}: only "
                         f"{', '.join(WIDENABLE)} may grow, nothing may shrink, and the "
                         f"entropy model, C and gains must match")
    fresh = model.state_dict()
    unknown = sorted(set(state) - set(fresh))
    if unknown:
        raise ValueError(f"the narrow model has entries the wide one lacks: {unknown[:5]}")
    # the input dimension of each weight: Conv2d (out, in, k, k), transposed (in, out, k, k)
    input_dim = {}
    for mod_name, module in model.named_modules():
        if isinstance(module, nn.ConvTranspose2d):
            input_dim[f"{mod_name}.weight"] = 0
        elif isinstance(module, nn.Conv2d):
            input_dim[f"{mod_name}.weight"] = 1
    out = {}
    for name, target in fresh.items():
        if name not in state:
            out[name] = target
            continue
        source = state[name].to(target.dtype)
        if source.dim() != target.dim():
            raise ValueError(f"{name}: {tuple(source.shape)} cannot widen to {tuple(target.shape)}")
        if source.shape == target.shape:
            out[name] = source.clone()
            continue
        value = target.detach().clone()
        layouts = [_layout(name, d, old_config, new_config, source.shape[d], target.shape[d])
                   for d in range(source.dim())]
        for d in range(source.dim()):
            if source.shape[d] > target.shape[d]:
                raise ValueError(f"{name}: dimension {d} shrinks ({source.shape[d]} → "
                                 f"{target.shape[d]})")
        if input_dim.get(name) is not None:  # nothing flows from a new channel into an old one
            d = input_dim[name]
            index = [slice(None)] * value.dim()
            index[d] = _new_inputs(value.shape[d], layouts[d])
            value[tuple(index)] = 0
        _copy_blocks(value, source, layouts)
        out[name] = value
    return out


def _copy_blocks(value: torch.Tensor, source: torch.Tensor, layouts: list) -> None:
    """Copy ``source`` into ``value`` block by block along every dimension."""
    def rec(d: int, src_index: list, dst_index: list) -> None:
        if d == len(layouts):
            value[tuple(dst_index)] = source[tuple(src_index)]
            return
        for old_start, new_start, length in layouts[d]:
            rec(d + 1, src_index + [slice(old_start, old_start + length)],
                dst_index + [slice(new_start, new_start + length)])

    rec(0, [], [])
