"""Checkpoints as plain dictionaries of tensors and numbers: ``torch.load(weights_only=True)``.

Three kinds:

* training checkpoints (``<out>/last.pt``): model, optimizers, step and budget, for resuming;
* released models (``bench/learned/weights/<codec>.pt``): configuration, state dict with the
  CDF tables already built (so the decoder needs no table computation of its own) and the
  model card (data, budget, RD numbers), also written next to it as ``<codec>.json``;
* campaign snapshots (``bench/learned/campaign/<codec>.pt``): the weights a campaign has
  reached, committed so that a new machine (whose state folder is empty) continues the
  campaign from there instead of from the last release. Half the size of a release or less
  (the large weight tensors in float16, no CDF tables, no optimizer state): a warm start,
  not a codec, and never loaded by one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from bench.learned import WEIGHTS_DIR as _WEIGHTS_DIR
from bench.learned.network import RoiHyperprior

MODEL_FORMAT = "bench-learned-roi-v1"
SNAPSHOT_FORMAT = "bench-learned-roi-snapshot-v1"
WEIGHTS_DIR = _WEIGHTS_DIR  # re-exported: the trainer writes releases there
#: Where the committed campaign snapshots live (``<codec>.pt``/``.json``).
CAMPAIGN_DIR = _WEIGHTS_DIR.parent / "campaign"
#: Tensors with more elements than this are stored in float16 in a snapshot; the small ones
#: (biases, gains, GDN and entropy-model parameters, the bottleneck's quantiles) stay float32.
SNAPSHOT_HALF_ABOVE = 4096
#: Buffers of the entropy models' coding tables: built by ``update()`` for coding, unused in
#: training, so a snapshot leaves them out (the GGM's alone are 1.7 MB).
TABLE_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "_cdf_start", "scale_table")


def is_table(name: str) -> bool:
    """Whether state-dict entry ``name`` is one of the coding tables (:data:`TABLE_BUFFERS`)."""
    return name.rsplit(".", 1)[-1] in TABLE_BUFFERS


def atomic_save(obj, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class CheckpointError(ValueError):
    """A file that is not a checkpoint this project can load safely."""


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """A checkpoint's dictionary, loaded with ``weights_only=True``: a file that would need
    to run code (a pickle of arbitrary objects) is refused, never executed."""
    import pickle

    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused: it does not load as plain tensors and numbers (torch.load with "
            f"weights_only=True); it is corrupt, not a bench checkpoint, or holds objects that "
            f"only running code could rebuild, and nothing in it was run") from None
    except (RuntimeError, EOFError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(exc).splitlines()[0]})"
                              ) from None
    if not isinstance(blob, dict):
        raise CheckpointError(f"{path}: not a bench checkpoint (a {type(blob).__name__}, not "
                              f"a dictionary)")
    return blob


def build_model(config: dict) -> RoiHyperprior:
    """The network a checkpoint's ``config`` describes (release 1 configs have no gains,
    releases 1–3 no residual blocks, releases 1–7 no spatial context)."""
    return RoiHyperprior(config["entropy"], config["N"], config["M"], config["C"],
                         config.get("gains", 0), config.get("blocks", 0),
                         config.get("context", 0))


def _large_float(value: torch.Tensor) -> bool:
    """Whether ``value`` is one of the tensors that may be kept in float16: floating, with more
    than :data:`SNAPSHOT_HALF_ABOVE` elements."""
    return value.is_floating_point() and value.numel() > SNAPSHOT_HALF_ABOVE


def half_rounded(value: torch.Tensor) -> torch.Tensor:
    """``value`` rounded to float16 and back when it is a large floating tensor, else itself."""
    return value.half().to(value.dtype) if _large_float(value) else value


def export_model(model: RoiHyperprior, path: str | os.PathLike, card: dict) -> dict:
    """Build the CDF tables and write the released model (and its card as JSON beside it).

    A large float tensor whose values are all exact in float16 (the weights of a recipe with
    ``half_weights``) is stored in float16: half the bytes, and the same float32 values when
    ``load_model`` copies it into the network, so decoding is unchanged."""
    model = model.to("cpu").eval()
    model.update(force=True)
    state = {}
    for name, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        if not is_table(name) and _large_float(value) and torch.equal(half_rounded(value), value):
            value = value.half()
        state[name] = value
    return _save_with_card(MODEL_FORMAT, model.config(), state, card, path)


def _save_with_card(fmt: str, config: dict, state: dict, card: dict,
                    path: str | os.PathLike) -> dict:
    """Write ``{format, config, state_dict, card}`` atomically and the card as JSON beside
    it; return the card with the file's size."""
    card = json.loads(json.dumps(card, default=str))  # plain types only (weights_only loads)
    atomic_save({"format": fmt, "config": config, "state_dict": state, "card": card}, path)
    card = dict(card, checkpoint_bytes=Path(path).stat().st_size)
    Path(path).with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def export_snapshot(state: dict, config: dict, card: dict,
                    path: str | os.PathLike) -> dict:
    """Write a campaign snapshot of ``state`` (see the module doc) and its card beside it."""
    compact = {}
    for name, value in state.items():
        if is_table(name):
            continue
        value = value.detach().cpu().contiguous()
        if _large_float(value):
            value = value.half()
        compact[name] = value
    return _save_with_card(SNAPSHOT_FORMAT, config, compact, card, path)


def steps_of(path: str | os.PathLike, recipe: str) -> int:
    """How far along ``recipe`` the release or snapshot at ``path`` is, by the card inside it
    (-1: no file, or not a model of that recipe)."""
    if not Path(path).is_file():
        return -1
    card = load(path).get("card", {})
    if card.get("recipe", {}).get("name") != recipe:
        return -1
    return int(card.get("budget", {}).get("steps", -1))


def load_model(path: str | os.PathLike) -> tuple[RoiHyperprior, dict]:
    """A released model ready to code (eval mode, CPU, tables loaded) and its card."""
    blob = load(path)
    if blob.get("format") == SNAPSHOT_FORMAT:
        raise ValueError(snapshot_is_not_a_model(path, blob))
    if blob.get("format") != MODEL_FORMAT:
        raise ValueError(f"{path} is not a {MODEL_FORMAT} model (format {blob.get('format')!r})")
    model = build_model(blob["config"])
    model.load_state_dict(blob["state_dict"])
    model.eval()
    model.update(force=False)  # no-op when the tables came with the state dict
    # the coding layout of codec version 4 on (faster; the pixels differ in the last bits)
    model.store_transforms(torch.channels_last)
    return model, blob.get("card", {})


def snapshot_is_not_a_model(path: str | os.PathLike, blob: dict) -> str:
    """Why a campaign snapshot cannot be coded with, and the command that exports it as a
    model (its recipe, codec and step from its card and config)."""
    card = blob.get("card", {})
    recipe = card.get("recipe", {}).get("name", "RECIPE")
    steps = card.get("budget", {}).get("steps", "?")
    entropy = blob.get("config", {}).get("entropy", "ENTROPY")
    return (f"{path} is a campaign snapshot ({recipe}, {entropy}, step {steps}): a warm start "
            f"without coding tables, not a model to code with. Export it as one first: "
            f"bench train --recipe {recipe} --entropy {entropy} --out \"$(mktemp -d)\" "
            f"--warm-start {path} --export-only --export model.pt --rd-images 0")
