"""The checkerboard spatial context (``context = 1``): decodable in two passes, exact round
trips through real rANS streams, honest rates, and a warm start that changes nothing."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import numpy as np
import pytest
import torch

from bench.learned.checkpoint import export_model, load_model
from bench.learned.coding import decode_image, encode_image
from bench.learned.network import RoiHyperprior, checkerboard_anchors, checkerboard_context
from bench.learned.qmap import grid_point, pad_to_multiple
from bench.learned.recipe import RECIPES, Recipe
from bench.learned.train import rd_loss
from bench.learned.widen import widen_state
from tests.conftest import REPO, natural_image
from tests.test_learned_codec import _roi
from tests.test_learned_codec import _tiny as tiny_model

TINY = {"N": 16, "M": 24, "C": 8, "gains": 5}


def _tiny(entropy: str, seed: int = 0) -> RoiHyperprior:
    """A random tiny checkerboard model with a context that matters: latents spread out
    (so the rate is large), the context convolution's weights random, not zero."""
    return tiny_model(entropy, seed=seed, spread=True, gains=TINY["gains"], context=1)


def test_anchors_are_the_even_squares_of_a_checkerboard():
    mask = checkerboard_anchors(torch.zeros(1, 3, 3, 4))[0, 0]
    assert mask.tolist() == [[True, False, True, False],
                             [False, True, False, True],
                             [True, False, True, False]]


@pytest.mark.parametrize("size", [(5, 6), (6, 5), (7, 7), (8, 8), (1, 1), (1, 4), (2, 3)])
@pytest.mark.parametrize("kernel", [5, 3])
def test_the_coding_context_is_the_dense_convolution_at_the_non_anchors(size, kernel):
    """Coding computes the context convolution only at the non-anchors and only from the
    anchors: there it equals the dense convolution of the anchors' values (to float64's
    last bits), on odd and even sizes, down to a single position; at the anchors it is 0."""
    torch.manual_seed(2)
    h, w = size
    x = torch.randn(2, 6, h, w, dtype=torch.float64)
    anchors = checkerboard_anchors(x).expand_as(x)
    x = torch.where(anchors, x, 0.0)
    weight = torch.randn(4, 6, kernel, kernel, dtype=torch.float64)
    bias = torch.randn(4, dtype=torch.float64)
    dense = torch.nn.functional.conv2d(x, weight, bias, padding=kernel // 2)
    sparse = checkerboard_context(x, weight, bias)
    rest = ~checkerboard_anchors(dense).expand_as(dense)
    assert sparse.shape == dense.shape
    torch.testing.assert_close(sparse[rest], dense[rest], rtol=1e-12, atol=1e-12)
    assert not sparse[~rest].any()


@pytest.mark.parametrize("entropy", ["ggm", "gaussian"])
def test_parameters_need_only_what_the_decoder_has(entropy):
    """Anchors' entropy parameters do not depend on ``y`` at all, the others' only on the
    anchors' latents: what makes two decoding passes possible."""
    model = _tiny(entropy)
    torch.manual_seed(1)
    h, w = 5, 6
    y = 5 * torch.randn(1, TINY["M"], h, w, dtype=torch.float64)
    z_hat = torch.round(torch.randn(1, TINY["N"], 2, 2))
    q_lat = torch.rand(1, 1, h, w)
    gains = model.gain_maps(q_lat, torch.float64)
    anchors = checkerboard_anchors(y)
    with torch.no_grad():
        _, _, base = model.latent_parameters(y, z_hat, q_lat, gains, torch.float64)
        moved_rest = torch.where(anchors, y, y + 3 * torch.randn_like(y))
        _, _, same = model.latent_parameters(moved_rest, z_hat, q_lat, gains, torch.float64)
        moved_anchors = torch.where(anchors, y + 3 * torch.randn_like(y), y)
        _, _, other = model.latent_parameters(moved_anchors, z_hat, q_lat, gains, torch.float64)
    for a, b, c in zip(base, same, other, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a[anchors.expand_as(a)], c[anchors.expand_as(c)])
        assert not torch.equal(a, c)  # the context is used


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("entropy", ["ggm", "gaussian"])
def test_round_trip_is_exact(entropy, fmt):
    model = _tiny(entropy)
    image = natural_image(37, 53, seed=2)
    data, enc = encode_image(model, image, _roi(37, 53), grid_point("q5"), return_details=True,
                             stream_format=fmt)
    recon, dec = decode_image(model, data, return_details=True)
    assert torch.equal(enc["y_hat"], dec["y_hat"])
    assert torch.equal(enc["x_hat"], dec["x_hat"])
    assert enc["y_hat"].abs().max() > 1  # not a trivial all-zero latent
    assert recon.shape == image.shape


def test_format_1_is_refused_with_the_reason():
    model = _tiny("ggm")
    with pytest.raises(ValueError, match="format 2 or 3"):
        encode_image(model, natural_image(32, 32), None, grid_point("q3"), stream_format=1)


@pytest.mark.parametrize("entropy", ["ggm", "gaussian"])
def test_actual_rate_matches_estimate(entropy):
    """The bitstream costs what the evaluation pass's likelihoods (the second pass's
    parameters for the non-anchors) say, so the training rate is the coded rate's estimate."""
    model = _tiny(entropy, seed=3)
    image = natural_image(96, 128, seed=1)
    point = grid_point("q6")
    data = encode_image(model, image, None, point, stream_format=3)
    x = torch.from_numpy(pad_to_multiple(image).copy()).permute(2, 0, 1)[None].float() / 255
    q = torch.full((1, 1, *x.shape[-2:]), point.uniform / 100)
    with torch.no_grad():
        out = model(x, q)
    est = sum(float((-torch.log2(lik)).sum()) for lik in out["likelihoods"].values())
    assert est > 2000
    assert abs(8 * len(data) - est) / est < 0.05  # header, map and the coder's flush included


@pytest.mark.parametrize("entropy", ["ggm", "gaussian"])
def test_a_context_warm_start_changes_nothing_and_the_context_learns(entropy):
    """release-8-ctx grows release 7 by the context convolution, which starts at zero: the
    reconstruction and every latent's parameters are the same at step 0, the bytes as long,
    and the convolution gets gradients from the first step."""
    torch.manual_seed(0)
    plain = RoiHyperprior(entropy, **TINY).eval()
    with torch.no_grad():
        plain.a_convs[3].weight.mul_(40)
    grown = RoiHyperprior(entropy, **TINY, context=1)
    grown.load_state_dict(widen_state(plain.state_dict(), plain.config(), grown))
    grown.eval()
    g = torch.Generator().manual_seed(1)
    x, q = torch.rand(2, 3, 64, 96, generator=g), torch.rand(2, 1, 64, 96, generator=g)
    with torch.no_grad():
        a, b = plain(x, q), grown(x, q)
    assert torch.equal(a["x_hat"], b["x_hat"])
    for old, new in zip(a["params"], b["params"], strict=True):
        assert torch.equal(old, new)
    plain.update(), grown.update()
    image = natural_image(48, 64, seed=5)
    one = encode_image(plain, image, _roi(48, 64), grid_point("q4"))
    two = encode_image(grown, image, _roi(48, 64), grid_point("q4"))
    assert abs(len(one) - len(two)) <= 2  # the same symbols in another order
    assert np.array_equal(decode_image(plain, one), decode_image(grown, two))
    grown.train()
    rd_loss(grown(x, q), x, q)["loss"].backward()
    assert grown.ctx.weight.grad.abs().sum() > 0


def test_a_released_context_model_decodes_in_another_process(tmp_path):
    """The second pass's parameters are floats computed again by the decoder: another
    process must pick the same rANS tables from them (format 3, the one written)."""
    model = _tiny("ggm", seed=4)
    export_model(model, tmp_path / "ggm.pt", {})
    loaded, _ = load_model(tmp_path / "ggm.pt")
    assert loaded.config() == dict(TINY, entropy="ggm", context=1)
    image = natural_image(40, 56, seed=6)
    data, enc = encode_image(loaded, image, _roi(40, 56), grid_point("q2"), return_details=True)
    (tmp_path / "bits").write_bytes(data)
    script = (
        "import sys, torch\n"
        "from bench.learned.checkpoint import load_model\n"
        "from bench.learned.coding import decode_image\n"
        "model, _ = load_model(sys.argv[1])\n"
        "_, out = decode_image(model, open(sys.argv[2], 'rb').read(), return_details=True)\n"
        "torch.save(out['y_hat'], sys.argv[3])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "ggm.pt"),
                    str(tmp_path / "bits"), str(tmp_path / "y.pt")],
                   check=True, cwd=REPO, timeout=120)
    assert torch.equal(torch.load(tmp_path / "y.pt"), enc["y_hat"])


def test_release_8_ctx_is_release_8_with_a_context():
    r8, ctx = RECIPES["release-8"], RECIPES["release-8-ctx"]
    assert ctx.context == 1 and r8.context == 0
    assert dataclasses.replace(ctx, name="release-8", context=0) == r8
    assert ctx.network() == dict(r8.network(), context=1)
    assert Recipe.from_json(ctx.to_json()) == ctx
