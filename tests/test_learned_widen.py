"""Warm-starting a wider network (release-3 widens release-2's): the old channels compute what
they computed, the new ones learn, and a half-precision release decodes like its trainer."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from bench.learned.checkpoint import export_model, is_table, load, load_model
from bench.learned.network import RoiHyperprior
from bench.learned.recipe import RECIPES, Recipe
from bench.learned.train import TrainConfig, Trainer, rd_loss
from bench.learned.widen import widen_state
from tests.conftest import natural_image

NARROW = {"N": 16, "M": 24, "C": 8, "gains": 3}
WIDE = {"N": 24, "M": 40, "C": 8, "gains": 3}


def _trained_looking(entropy: str, seed: int = 0) -> RoiHyperprior:
    """A narrow model whose SFTs are not the identity (their init is), as after training."""
    torch.manual_seed(seed)
    model = RoiHyperprior(entropy, **NARROW)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "sft" in name and name.endswith("weight"):
                p.normal_(0, 0.05)
    return model.eval()


def _inputs(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, 3, 64, 96, generator=g), torch.rand(2, 1, 64, 96, generator=g)


def _grown(narrow: RoiHyperprior, **network) -> RoiHyperprior:
    """A fresh model of ``network`` holding ``narrow``'s weights (:func:`widen_state`)."""
    torch.manual_seed(5)
    grown = RoiHyperprior(narrow.entropy, **network)
    state = {k: v for k, v in narrow.state_dict().items() if not is_table(k)}
    grown.load_state_dict(widen_state(state, narrow.config(), grown))
    return grown.eval()


@pytest.mark.parametrize("entropy", ["ggm", "gaussian"])
def test_widening_keeps_the_reconstruction_and_the_old_latents(entropy):
    narrow = _trained_looking(entropy)
    wide = _grown(narrow, **WIDE)
    x, q = _inputs()
    with torch.no_grad():
        a, b = narrow(x, q), wide(x, q)
    M = NARROW["M"]
    assert (a["x_hat"] - b["x_hat"]).abs().max() < 1e-5
    for old, new in zip(a["params"], b["params"], strict=True):  # μ, scale (and β) per element
        assert (old - new[:, :M]).abs().max() < 1e-5
    assert torch.allclose(a["likelihoods"]["y"], b["likelihoods"]["y"][:, :M], atol=1e-6)
    assert torch.allclose(a["likelihoods"]["z"], b["likelihoods"]["z"][:, :NARROW["N"]])
    # the new channels are not dead: the loss reaches the weights from them and into them
    wide.train()
    loss = rd_loss(wide(x, q), x, q)["loss"]
    loss.backward()
    from_new_latents = wide.s_convs[0].weight.grad[M:]  # transposed conv: (in, out, k, k)
    into_new_latents = wide.a_convs[3].weight.grad[M:]
    assert from_new_latents.abs().sum() > 0 and into_new_latents.abs().sum() > 0
    assert torch.equal(wide.state_dict()["s_convs.0.weight"][M:],
                       torch.zeros_like(wide.s_convs[0].weight[M:]))


def test_widening_refuses_to_shrink_or_change_the_condition():
    narrow = _trained_looking("ggm")
    with pytest.raises(ValueError, match="cannot widen"):
        widen_state(RoiHyperprior("ggm", **WIDE).state_dict(), dict(WIDE, entropy="ggm"), narrow)
    with pytest.raises(ValueError, match="cannot widen"):
        widen_state(narrow.state_dict(), narrow.config(),
                    RoiHyperprior("ggm", **dict(WIDE, C=12)))


def test_release_3_widens_release_2():
    r2, r3 = RECIPES["release-2"], RECIPES["release-3"]
    assert r3.warm_start and r3.half_weights and (r3.N, r3.M) > (r2.N, r2.M)
    assert (r3.C, r3.gains, r3.crop) == (r2.C, r2.gains, r2.crop)
    assert Recipe.from_json(r3.to_json()) == r3


def _trainer_from_release(tmp_path, released: RoiHyperprior, **recipe_fields) -> Trainer:
    """A 2-step custom-recipe trainer on two small pictures that warm-starts from
    ``released``, exported as ``narrow.pt`` with a card of 9 steps."""
    images = tmp_path / "imgs"
    images.mkdir()
    for i, (h, w) in enumerate([(72, 80), (64, 96)]):
        Image.fromarray(natural_image(h, w, seed=i)).save(images / f"{i}.png")
    export_model(released, tmp_path / "narrow.pt", {"budget": {"steps": 9}})
    recipe = Recipe(name="custom", steps=2, batch_size=2, crop=64, lr=1e-3, seed=7,
                    warm_start=True, **recipe_fields)
    config = TrainConfig(entropy=released.entropy, out=str(tmp_path / "w"),
                         coco_root=str(images / "no-coco"), extra_dirs=[str(images)],
                         progress=False, threads=1, warm_start_from=str(tmp_path / "narrow.pt"))
    return Trainer(recipe, config)


def test_trainer_widens_a_release_and_releases_half_precision_weights(tmp_path):
    narrow = _trained_looking("ggm")
    trainer = _trainer_from_release(tmp_path, narrow, half_weights=True, ema=0.9, **WIDE)
    assert trainer.warm_start["widened_from"] == {"N": 16, "M": 24, "blocks": 0, "context": 0}
    assert trainer.describe_warm_start() == (
        f"warm-started from narrow.pt (unnamed recipe, 9 steps), grown from N=16, M=24 to "
        f"N={WIDE['N']}, M={WIDE['M']}")
    x, q = _inputs()
    trainer.model.eval()
    with torch.no_grad():
        assert (trainer.model(x, q)["x_hat"] - narrow(x, q)["x_hat"]).abs().max() < 1e-5
    trainer.model.train()
    assert len(trainer.run()) == 2
    card = trainer.export(tmp_path / "wide.pt")
    assert card["warm_start"]["widened_from"] == {"N": 16, "M": 24, "blocks": 0, "context": 0}
    stored = load(tmp_path / "wide.pt")["state_dict"]
    assert stored["s_convs.1.weight"].dtype == torch.float16  # large weights: half the bytes
    assert stored["log_gain"].dtype == torch.float32  # small ones as they are
    model, _ = load_model(tmp_path / "wide.pt")
    released = trainer.release_model()
    for name, value in released.state_dict().items():
        if not is_table(name):
            assert torch.equal(model.state_dict()[name], value), name
    assert model.s_convs[1].weight.dtype == torch.float32  # the codec computes in float32


@pytest.mark.parametrize("entropy", ["ggm", "gaussian"])
def test_deepening_keeps_the_reconstruction_and_the_new_blocks_learn(entropy):
    """release-4 grows release 3 by residual blocks: step 0 reconstructs what release 3 did
    (every latent's entropy parameters included), and the blocks get gradients at once."""
    narrow = _trained_looking(entropy)
    deep = _grown(narrow, **dict(NARROW, blocks=2))
    x, q = _inputs()
    with torch.no_grad():
        a, b = narrow(x, q), deep(x, q)
    assert (a["x_hat"] - b["x_hat"]).abs().max() < 1e-5
    for old, new in zip(a["params"], b["params"], strict=True):
        assert (old - new).abs().max() < 1e-5
    deep.train()
    rd_loss(deep(x, q), x, q)["loss"].backward()
    for place in ("a_blocks.1.0", "a_blocks.2.1", "s_blocks.0.0", "s_blocks.2.1"):
        last = deep.get_submodule(f"{place}.body.2")
        assert torch.equal(last.weight, torch.zeros_like(last.weight))  # the identity at first
        assert last.weight.grad.abs().sum() > 0, place  # that training moves


def test_deepening_refuses_fewer_blocks():
    deep = RoiHyperprior("ggm", **dict(NARROW, blocks=2))
    with pytest.raises(ValueError, match="cannot widen"):
        widen_state(deep.state_dict(), deep.config(),
                    RoiHyperprior("ggm", **dict(NARROW, blocks=1)))


def test_release_4_deepens_release_3_and_round_trips(tmp_path):
    r3, r4 = RECIPES["release-3"], RECIPES["release-4"]
    assert r4.warm_start and r4.blocks > 0 and r3.blocks == 0
    assert {k: v for k, v in r4.network().items() if k != "blocks"} == r3.network()
    assert Recipe.from_json(r4.to_json()) == r4
    torch.manual_seed(3)
    model = RoiHyperprior("ggm", **dict(NARROW, blocks=1)).eval()
    export_model(model, tmp_path / "deep.pt", {})
    loaded, _ = load_model(tmp_path / "deep.pt")
    assert loaded.config() == model.config() == dict(NARROW, blocks=1, entropy="ggm")
    loaded_state = loaded.state_dict()
    assert all(torch.equal(loaded_state[k], v) for k, v in model.state_dict().items())
    x, q = _inputs()
    with torch.no_grad():
        # load_model stores the transforms channels-last (the coding layout): another
        # summation order, so the forward pass agrees to float32 rounding, not bit for bit
        torch.testing.assert_close(loaded(x, q)["x_hat"], model(x, q)["x_hat"],
                                   atol=1e-4, rtol=0)


def test_a_deeper_recipe_warm_starts_from_a_shallower_release(tmp_path):
    shallow = _trained_looking("gaussian")
    trainer = _trainer_from_release(tmp_path, shallow, **dict(NARROW, blocks=1))
    assert trainer.describe_warm_start() == (
        "warm-started from narrow.pt (unnamed recipe, 9 steps), grown from blocks=0 to blocks=1")
    x, q = _inputs()
    trainer.model.eval()
    with torch.no_grad():
        assert (trainer.model(x, q)["x_hat"] - shallow(x, q)["x_hat"]).abs().max() < 1e-5
