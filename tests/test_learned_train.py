"""The trainer: a few steps on tiny generated data, checkpoint, resume deterministically; the
recipe's schedule survives resumption; warm start, gains and the moving average."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from bench.learned import CODEC_NAMES
from bench.learned.checkpoint import (
    CAMPAIGN_DIR,
    SNAPSHOT_FORMAT,
    WEIGHTS_DIR,
    export_model,
    export_snapshot,
    load,
    load_model,
    steps_of,
)
from bench.learned.data import ImageFolderSource, MemorySource, PackSource, make_batch, make_pack
from bench.learned.network import RoiHyperprior
from bench.learned.recipe import RECIPES, Recipe, get_recipe
from bench.learned.train import (
    TrainConfig,
    Trainer,
    cpu_has_amx_bf16,
    cpu_has_native_bf16,
    heldout_stalled,
    precision_warning,
    warm_start_source,
)
from tests.conftest import natural_image

TINY = {"N": 16, "M": 24, "C": 8}


@pytest.fixture(autouse=True)
def _keep_thread_count():
    """A Trainer sets torch's thread count (``--threads``); later tests keep their own."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture()
def image_dir(tmp_path):
    d = tmp_path / "imgs"
    d.mkdir()
    for i, (h, w) in enumerate([(40, 56), (48, 48), (30, 70)]):
        Image.fromarray(natural_image(h, w, seed=i)).save(d / f"{i}.png")
    return d


def _recipe(**kw) -> Recipe:
    base = dict(name="custom", steps=3, batch_size=2, crop=32, lr=1e-3, seed=7, **TINY)
    base.update(kw)
    return Recipe(**base)


def _config(image_dir, out, **kw):
    base = dict(entropy="ggm", out=str(out), coco_root=str(image_dir / "no-coco"),
                extra_dirs=[str(image_dir)], progress=False, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def _trainer(image_dir, out, recipe=None, resume=None, **kw):
    return Trainer(recipe or _recipe(), _config(image_dir, out, **kw), resume=resume)


def test_batches_are_deterministic(image_dir):
    source = ImageFolderSource(image_dir / "no-coco", [image_dir])
    a = make_batch(source, 5, 1, 3, 32)
    b = make_batch(source, 5, 1, 3, 32)
    c = make_batch(source, 6, 1, 3, 32)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].shape == (3, 32, 32, 3) and a[1].shape == (3, 32, 32)


def test_refuses_the_evaluation_split(tmp_path):
    with pytest.raises(ValueError, match="val2017"):
        ImageFolderSource(tmp_path, [tmp_path / "val2017"])


@pytest.mark.parametrize("entropy", ["ggm", "gaussian"])
def test_train_checkpoint_resume(image_dir, tmp_path, entropy):
    full = _trainer(image_dir, tmp_path / "full", entropy=entropy)
    losses = [r["loss"] for r in full.run()]
    assert len(losses) == 3 and all(np.isfinite(losses))

    first = _trainer(image_dir, tmp_path / "split", entropy=entropy)
    part = [r["loss"] for r in first.run(stop_at_step=2)]
    assert (tmp_path / "split" / "last.pt").is_file()
    resumed = _trainer(image_dir, tmp_path / "split", entropy=entropy, resume=True)
    assert resumed.step == 2
    rest = [r["loss"] for r in resumed.run()]
    assert part + rest == losses

    budget = resumed.budget()
    assert budget["steps"] == 3 and budget["crops_seen"] == 6 and len(budget["sessions"]) == 2
    blob = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert blob["step"] == 3
    log = (tmp_path / "split" / "train.log.jsonl").read_text().splitlines()
    assert json.loads(log[-1])["step"] == 3

    card = resumed.export(tmp_path / "model.pt")
    assert card["budget"]["steps"] == 3 and card["architecture"]["parameters"] > 0
    assert (tmp_path / "model.pt").stat().st_size < 16e6
    model, loaded_card = load_model(tmp_path / "model.pt")
    assert model.entropy == entropy and loaded_card["budget"]["crops_seen"] == 6


def test_pack_round_trip_and_training(image_dir, tmp_path):
    source = ImageFolderSource(image_dir / "no-coco", [image_dir])
    info = make_pack(tmp_path / "pack.npz", source, crop=48, max_crops=4)
    assert info["crops"] == 4
    pack = PackSource(tmp_path / "pack.npz")
    assert len(pack) == 4 and pack.images.shape == (4, 48, 48, 3)
    images, qmaps, _ = make_batch(pack, 0, 0, 2, 32)
    assert images.shape == (2, 32, 32, 3)
    trainer = _trainer(image_dir, tmp_path / "p", _recipe(steps=1),
                       pack=str(tmp_path / "pack.npz"))
    assert len(trainer.run()) == 1
    # each session says which crops it trained on: a GPU lease's pack is a small sample
    assert trainer.sessions[0]["data"].startswith("pack pack.npz (seed 0): 4 crops of 48²")
    # another seed cuts another sample of the same images (a fresh pack per GPU lease)
    make_pack(tmp_path / "pack1.npz", source, crop=48, max_crops=4, seed=1)
    other = PackSource(tmp_path / "pack1.npz")
    assert "(seed 1)" in other.describe()
    assert not np.array_equal(other.images, pack.images)
    # a resumed run knows how many steps it already took on a pack
    again = _trainer(image_dir, tmp_path / "p", _recipe(steps=2), resume=True,
                     pack=str(tmp_path / "pack.npz"))
    assert again.step == 1 and again.steps_on_this_data() == 1
    fresh = _trainer(image_dir, tmp_path / "p", _recipe(steps=2), resume=True,
                     pack=str(tmp_path / "pack1.npz"))
    assert fresh.steps_on_this_data() == 0


def test_pack_holdout_is_never_trained_on_and_is_evaluated(image_dir, tmp_path):
    source = ImageFolderSource(image_dir / "no-coco", [image_dir])
    make_pack(tmp_path / "pack.npz", source, crop=32, max_crops=6)
    pack = PackSource(tmp_path / "pack.npz", holdout=2)
    assert len(pack) == 4 and pack.describe() == PackSource(tmp_path / "pack.npz").describe()
    held = [pack.images[i] for i in (4, 5)]
    rng = np.random.default_rng(0)
    for _ in range(200):  # crop size = pack crop: a whole crop, maybe flipped
        image, _ = pack.crop(rng, 32)
        assert not any(np.array_equal(image, h) or np.array_equal(image, h[:, ::-1])
                       for h in held)
    a, b = pack.eval_batches(32), pack.eval_batches(32)
    assert [len(a[k][0][0]) for k in ("heldout", "seen")] == [2, 2]
    assert all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
               for k in a for x, y in zip(a[k], b[k], strict=True))
    with pytest.raises(ValueError, match="cannot hold out 4 of its 6"):
        PackSource(tmp_path / "pack.npz", holdout=4)

    trainer = _trainer(image_dir, tmp_path / "h", _recipe(steps=2), pack=str(tmp_path / "pack.npz"),
                       holdout=2, eval_every=1)
    trainer.run()
    evals = trainer.sessions[-1]["evals"]
    assert [e[0] for e in evals] == [1, 2] and all(math.isfinite(v) for e in evals for v in e[1:])
    log = (tmp_path / "h" / "train.log.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in log if "heldout_loss" in line] == [1, 2]
    # the stop: losses 2, 1, 1.5 with patience 1 end the run at the third evaluation
    stopping = _trainer(image_dir, tmp_path / "s", _recipe(steps=6),
                        pack=str(tmp_path / "pack.npz"), holdout=2, eval_every=1, patience=1)
    losses = iter([2.0, 1.0, 1.5, 0.5, 0.4, 0.3])
    stopping.evaluate = lambda: {"step": stopping.step, "heldout_loss": next(losses),
                                 "seen_loss": 1.0}
    stopping.run()
    assert stopping.step == 3 and stopping.stalled
    assert stopping.sessions[-1]["stopped"] == "held-out loss not better for 1 evaluations"
    assert stopping.sessions[-1]["holdout"] == 2
    # a restart on the same pack and held-out crops goes on counting (an eager restart after
    # a failed compile): one more evaluation without a new best stops it again
    again = _trainer(image_dir, tmp_path / "s", _recipe(steps=6), resume=True,
                     pack=str(tmp_path / "pack.npz"), holdout=2, eval_every=1, patience=1)
    again.evaluate = lambda: {"step": again.step, "heldout_loss": 1.2, "seen_loss": 1.0}
    again.run()
    assert again.step == 4 and again.stalled
    for bad, message in (({"holdout": 2}, "needs a training pack"),
                         ({"eval_every": 5}, "needs held-out crops"),
                         ({"patience": 2}, "needs evaluations")):
        with pytest.raises(ValueError, match=message):
            _trainer(image_dir, tmp_path / "bad", _recipe(steps=1), **bad)


def test_turns_leave_out_a_codec_stopped_by_its_held_out_loss(image_dir, tmp_path):
    """``--entropy both`` trains in turns: a codec whose held-out loss stalls gets no more
    turns, the other one goes on to the end."""
    from bench.cli.train_cmd import run_together

    source = ImageFolderSource(image_dir / "no-coco", [image_dir])
    make_pack(tmp_path / "pack.npz", source, crop=32, max_crops=6)
    kw = dict(pack=str(tmp_path / "pack.npz"), holdout=2, eval_every=1, patience=1)
    stalls = _trainer(image_dir, tmp_path / "a", _recipe(steps=6), **kw)
    learns = _trainer(image_dir, tmp_path / "b", _recipe(steps=6), entropy="gaussian", **kw)
    rising, falling = iter([2.0, 1.0, 1.5, 1.6, 1.7, 1.8]), iter([6.0, 5.0, 4.0, 3.0, 2.0, 1.0])
    stalls.evaluate = lambda: {"step": stalls.step, "heldout_loss": next(rising), "seen_loss": 1}
    learns.evaluate = lambda: {"step": learns.step, "heldout_loss": next(falling), "seen_loss": 1}
    run_together([stalls, learns], None, chunk=2)
    assert (stalls.step, learns.step) == (3, 6)
    assert stalls.sessions[-1]["stopped"].startswith("held-out loss")
    assert learns.sessions[-1]["stopped"] == "steps"


def test_a_session_in_turns_stays_open_between_turns(image_dir, tmp_path):
    """Between two turns of ``--entropy both`` each codec's checkpoint records its session as
    still running, so a process killed there (no signal: a machine taken away) does not read
    as a run that ended normally in ``bench train --status``; the last turn records "steps"."""
    from bench.cli.train_cmd import run_together

    first = _trainer(image_dir, tmp_path / "a", _recipe(steps=4))
    second = _trainer(image_dir, tmp_path / "b", _recipe(steps=4), entropy="gaussian")
    seen: list[tuple[int, str]] = []
    turn = second.run

    def turn_then_look(**kwargs):
        records = turn(**kwargs)
        blob = torch.load(first.out / "last.pt", weights_only=True)
        seen.append((blob["step"], json.loads(blob["sessions"])[-1]["stopped"]))
        return records

    second.run = turn_then_look
    run_together([first, second], None, chunk=2)
    assert seen == [(2, "running"), (4, "steps")]
    for trainer in (first, second):
        blob = torch.load(trainer.out / "last.pt", weights_only=True)
        assert [s["stopped"] for s in json.loads(blob["sessions"])] == ["steps"]


def test_a_stop_signal_ends_every_codec_of_a_run_in_turns(image_dir, tmp_path):
    """SIGTERM during one codec's turn (a session's end) stops the whole ``--entropy both``
    run: the codec in its turn stops after the current step, the other gets no further turn,
    and both checkpoints record the signal."""
    import os
    import signal

    from bench.cli.train_cmd import run_together

    first = _trainer(image_dir, tmp_path / "a", _recipe(steps=8))
    second = _trainer(image_dir, tmp_path / "b", _recipe(steps=8), entropy="gaussian")
    step = first.train_step

    def signalled_at_step_3():
        record = step()
        if record["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return record

    first.train_step = signalled_at_step_3
    run_together([first, second], None, chunk=2)
    assert (first.step, second.step) == (3, 2)
    for trainer, steps in ((first, 3), (second, 2)):
        assert trainer.sessions[-1]["stopped"] == "signal 15"
        blob = torch.load(trainer.out / "last.pt", weights_only=True)
        assert blob["step"] == steps
        assert json.loads(blob["sessions"])[-1]["stopped"] == "signal 15"


def test_a_stop_signal_between_turns_ends_the_run_too(image_dir, tmp_path):
    """A signal that comes while no codec is in its turn (here: right after the second
    codec's turn ends) starts no further turn and is recorded by both codecs; it does not
    kill the process with the checkpoints' last words unwritten."""
    import os
    import signal

    from bench.cli.train_cmd import run_together

    first = _trainer(image_dir, tmp_path / "a", _recipe(steps=8))
    second = _trainer(image_dir, tmp_path / "b", _recipe(steps=8), entropy="gaussian")
    turn = second.run

    def turn_then_signal(**kwargs):
        records = turn(**kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # its own handlers are gone by now
        return records

    second.run = turn_then_signal
    before = signal.getsignal(signal.SIGTERM)
    run_together([first, second], None, chunk=2)
    assert (first.step, second.step) == (2, 2)
    for trainer in (first, second):
        assert trainer.sessions[-1]["stopped"] == "signal 15"
        blob = torch.load(trainer.out / "last.pt", weights_only=True)
        assert blob["step"] == 2 and json.loads(blob["sessions"])[-1]["stopped"] == "signal 15"
    assert signal.getsignal(signal.SIGTERM) is before  # handed back


def test_a_fault_in_one_codec_stops_the_run_in_turns(image_dir, tmp_path):
    """A codec whose loss turns non-finite stops an ``--entropy both`` run: the other codec
    gets no further turn (the budgets stay equal) and records why the run ended; before, it
    recorded a normal end ("steps") and the faulty codec's stop was its only trace."""
    from bench.cli.train_cmd import run_together

    first = _trainer(image_dir, tmp_path / "a", _recipe(steps=8))
    second = _trainer(image_dir, tmp_path / "b", _recipe(steps=8), entropy="gaussian")
    step = second.train_step

    def diverges_at_step_3():
        record = step()
        return dict(record, loss=float("nan")) if record["step"] == 3 else record

    second.train_step = diverges_at_step_3
    run_together([first, second], None, chunk=2)
    assert (first.step, second.step) == (4, 3)
    assert second.sessions[-1]["stopped"] == "non-finite loss"
    assert first.sessions[-1]["stopped"] == "gaussian stopped on non-finite loss at step 3"
    blob = torch.load(first.out / "last.pt", weights_only=True)
    assert blob["step"] == 4 and json.loads(blob["sessions"])[-1]["stopped"] == \
        "gaussian stopped on non-finite loss at step 3"


def test_heldout_stalled():
    assert heldout_stalled([3.0, 2.0, 2.5, 2.6], 2)
    assert not heldout_stalled([3.0, 2.0, 2.5, 1.9], 2)
    assert not heldout_stalled([3.0, 2.0, 2.5, 2.6], 0)
    assert not heldout_stalled([3.0, 2.0], 2)  # too few to tell


def test_time_budget_stops_cleanly(image_dir, tmp_path):
    trainer = _trainer(image_dir, tmp_path / "t", _recipe(steps=100), time_budget_min=0.0)
    records = trainer.run()
    assert len(records) == 1 and trainer.step == 1
    assert (tmp_path / "t" / "last.pt").is_file()


def test_resumed_run_with_other_steps_keeps_the_recipe_schedule(image_dir, tmp_path):
    """The lr of a step comes from the recipe's planned total, stored in the checkpoint: an
    invocation that stops early, or a resume that asks for another --steps or even another
    recipe total, follows the uninterrupted run's schedule (and its losses)."""
    recipe = _recipe(steps=6, warmup=2, decay="step", decay_start=0.5, final_lr_factor=0.1)
    full = [(r["lr"], r["loss"]) for r in _trainer(image_dir, tmp_path / "full", recipe).run()]
    assert [lr for lr, _ in full] == pytest.approx([5e-4, 1e-3, 1e-3, 1e-4, 1e-4, 1e-4])

    part = _trainer(image_dir, tmp_path / "split", recipe, stop_at=2).run()
    assert len(part) == 2
    # the second invocation asks for 4 steps of a 100-step plan: the plan stays the stored one
    longer = _recipe(steps=100, warmup=2, decay="step", decay_start=0.5, final_lr_factor=0.1)
    again = _trainer(image_dir, tmp_path / "split", longer, resume=True, stop_at=4)
    assert again.recipe == recipe and again.step == 2
    part += again.run()
    part += _trainer(image_dir, tmp_path / "split", resume=True).run()
    assert [(r["lr"], r["loss"]) for r in part] == full


def test_named_recipes_plan_their_budget():
    r2 = RECIPES["release-2"]
    crops_128 = r2.steps * r2.pixels_per_step() / 128**2
    r1 = RECIPES["release-1"]
    assert crops_128 >= 8 * r1.steps * r1.batch_size  # ≥ 8× release 1 in pixels seen
    assert r2.lr_at(0) < r2.lr_at(r2.warmup) == r2.lr
    assert r2.lr_at(r2.steps - 1) == pytest.approx(r2.final_lr_factor * r2.lr, rel=1e-3)
    lrs = [r2.lr_at(s) for s in range(r2.warmup, r2.steps, 997)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))  # the lr never rises
    assert Recipe.from_json(r2.to_json()) == r2
    with pytest.raises(ValueError, match="unknown fields"):
        Recipe.from_json(r2.to_json()[:-1] + ', "future": 1}')


def test_train_help_names_every_recipe():
    from bench.cli.train_cmd import AUTOCAST_RECIPE_NAMES, RECIPE_NAMES

    assert RECIPE_NAMES.split(", ") == list(RECIPES)
    assert AUTOCAST_RECIPE_NAMES.split(", ") == [n for n, r in RECIPES.items() if r.autocast]


def test_release_5_is_release_4s_schedule_on_release_3s_network():
    """release-5's ggm run adopted the release-4 control's checkpoint (release-4 with
    ``blocks = 0`` under another name): that holds only while the two recipes are equal but
    for the name and the blocks."""
    r3, r4, r5 = RECIPES["release-3"], RECIPES["release-4"], RECIPES["release-5"]
    assert dataclasses.replace(r4, name="release-5", blocks=0) == r5
    assert r5.network() == r3.network() and r5.warm_start and r5.blocks == 0


def test_release_6_runs_release_5s_schedule_again_from_release_5():
    """release-6 is release-5 once more under a new name, so that its fresh state folders
    started from the release-5 weights at step 0 instead of continuing release-5's finished
    run."""
    r5, r6 = RECIPES["release-5"], RECIPES["release-6"]
    assert dataclasses.replace(r5, name="release-6") == r6 and r6.warm_start


def test_release_7_runs_the_schedule_again_from_release_6():
    """release-7 is release-6 once more under a new name; the released weights (release 7)
    are the end of release-7, nowhere on release-6."""
    r6, r7 = RECIPES["release-6"], RECIPES["release-7"]
    assert dataclasses.replace(r6, name="release-7") == r7 and r7.warm_start
    release = WEIGHTS_DIR / "ggm.pt"
    assert steps_of(release, "release-7") == r7.steps and steps_of(release, "release-6") == -1


def test_release_8_runs_the_schedule_again_from_release_7():
    """release-8 is release-7 once more under a new name, so that a fresh state folder starts
    from the released weights (release 7, the end of release-7) at its step 0 instead of
    continuing release-7's finished run."""
    r7, r8 = RECIPES["release-7"], RECIPES["release-8"]
    assert dataclasses.replace(r7, name="release-8") == r8 and r8.warm_start
    assert steps_of(WEIGHTS_DIR / "ggm.pt", "release-8") == -1


def test_release_8_tail_continues_release_7_at_the_rate_it_ended_with():
    """release-8-tail asks what release 7 gains from more steps at the learning rate its
    schedule ended with, so it must start there (never above it, after its warm-up), train
    release 7's network from the release's weights, and only decay further."""
    r7, tail = RECIPES["release-7"], RECIPES["release-8-tail"]
    assert tail.network() == r7.network() and tail.warm_start
    assert tail.lr == pytest.approx(r7.lr_at(r7.steps - 1), rel=1e-3)
    lrs = [tail.lr_at(s) for s in range(tail.warmup, tail.steps, 101)]
    assert max(lrs) == pytest.approx(tail.lr)
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))
    assert tail.lr_at(tail.steps - 1) == pytest.approx(r7.lr * r7.final_lr_factor / 3, rel=1e-3)
    assert steps_of(WEIGHTS_DIR / "ggm.pt", "release-8-tail") == -1
    assert dataclasses.replace(tail, name="release-7", steps=r7.steps, lr=r7.lr,
                               final_lr_factor=r7.final_lr_factor) == r7


def test_recipe_rate_defaults_to_noise_and_refuses_unknown_modes():
    """Recipes stored before ``rate`` existed (every release's card) read as the noisy rate
    they were trained with; a typo is an error, not a silent fallback."""
    stored = json.loads(RECIPES["release-6"].to_json())
    del stored["rate"]
    assert Recipe.from_json(json.dumps(stored)).rate == "noise"
    with pytest.raises(ValueError, match="rate must be one of"):
        _recipe(rate="round")


@pytest.mark.parametrize("entropy", ["ggm", "gaussian"])
def test_rounded_rate_prices_the_coded_latent_with_a_gradient_to_the_encoder(entropy):
    """rate="rounded": y's likelihoods are those of the coded round(y - mu) + mu (what the
    model's evaluation and the bitstream use, given the same entropy parameters), and the
    rate still trains the analysis transform (straight-through). The noisy rate differs."""
    torch.manual_seed(0)
    model = RoiHyperprior(entropy, N=16, M=24, C=8, gains=3).train()
    x = torch.rand(2, 3, 64, 64)
    q = torch.rand(2, 1, 64, 64)
    out = model(x, q, rate="rounded")
    params = out["params"]
    extra = {"beta_raw": params[2]} if entropy == "ggm" else {}
    _, coded = model.conditional(out["y"], params[1], means=params[0], training=False,
                                 **extra)
    torch.testing.assert_close(out["likelihoods"]["y"], coded, rtol=0, atol=0)
    torch.log2(out["likelihoods"]["y"]).sum().backward()
    assert model.a_convs[0].weight.grad.abs().sum() > 0
    _, noisy = model.conditional(out["y"], params[1], means=params[0], training=True, **extra)
    assert not torch.equal(noisy, coded)
    with pytest.raises(ValueError, match="rate must be one of"):
        model(x, q, rate="round")


def test_autocast_refuses_crops_whose_bfloat16_gradients_are_garbage():
    with pytest.raises(ValueError, match="at least 64"):
        _recipe(autocast=True, crop=32)
    assert _recipe(autocast=False, crop=32).crop == 32


def test_warm_start_from_a_release_1_model_keeps_its_weights_and_adds_gains(image_dir, tmp_path):
    torch.manual_seed(3)
    old = RoiHyperprior("ggm", **TINY)
    export_model(old, tmp_path / "old.pt", {"budget": {"steps": 11}})
    # autocast needs 64² crops (Recipe refuses smaller ones: garbage bfloat16 gradients on CPU)
    recipe = _recipe(gains=5, warm_start=True, ema=0.9, autocast=True, channels_last=True,
                     crop=64)
    trainer = _trainer(image_dir, tmp_path / "w", recipe,
                       warm_start_from=str(tmp_path / "old.pt"))
    assert trainer.step == 0  # another recipe's release: its schedule starts anew
    assert trainer.warm_start["initialized"] == ["log_gain", "log_inv_gain"]
    assert trainer.warm_start["card_steps"] == 11
    assert trainer.describe_warm_start() == "warm-started from old.pt (unnamed recipe, 11 steps)"
    state = trainer.model.state_dict()
    for name, value in old.state_dict().items():
        if not name.startswith(("entropy_bottleneck._", "conditional._")):
            assert torch.equal(state[name], value), name
    records = trainer.run()
    assert len(records) == 3 and all(np.isfinite(r["loss"]) for r in records)
    assert not any(r["skipped"] for r in records)
    # the moving average is what is released, and it differs from the live weights
    released = trainer.release_model().state_dict()
    live = trainer.model.state_dict()["s_convs.0.weight"].contiguous()
    assert not torch.equal(released["s_convs.0.weight"], live)
    card = trainer.export(tmp_path / "new.pt")
    model, loaded = load_model(tmp_path / "new.pt")
    assert model.gains == 5 and loaded["recipe"]["gains"] == 5
    assert torch.equal(model.state_dict()["s_convs.0.weight"], released["s_convs.0.weight"])
    assert card["warm_start"]["from"] == "old.pt" and card["budget"]["steps"] == 3


def test_a_release_of_the_same_recipe_continues_its_schedule(image_dir, tmp_path):
    recipe = _recipe(steps=5, gains=3, warm_start=True)
    torch.manual_seed(0)
    export_model(RoiHyperprior("ggm", **TINY), tmp_path / "r1.pt", {})
    first = _trainer(image_dir, tmp_path / "a", recipe, warm_start_from=str(tmp_path / "r1.pt"),
                     stop_at=2)
    first.run()
    first.export(tmp_path / "snapshot.pt")
    # the state folder is gone (a new machine): the snapshot release carries the run on
    second = _trainer(image_dir, tmp_path / "b", recipe,
                      warm_start_from=str(tmp_path / "snapshot.pt"))
    assert second.step == 2 and second.warm_start["resumed_release"] == "snapshot.pt"
    assert second.describe_warm_start().endswith(", continuing release snapshot.pt")
    assert second.warm_start["from"] == "r1.pt"
    assert [r["step"] for r in second.run()] == [3, 4, 5]
    assert second.budget()["crops_seen"] == 10 and len(second.sessions) == 2


def test_a_campaign_snapshot_carries_the_run_to_a_new_machine(image_dir, tmp_path):
    recipe = _recipe(steps=5, gains=3, warm_start=True, ema=0.9)
    torch.manual_seed(0)
    export_model(RoiHyperprior("ggm", gains=3, **TINY), tmp_path / "release.pt", {})
    first = _trainer(image_dir, tmp_path / "a", recipe,
                     warm_start_from=str(tmp_path / "release.pt"), stop_at=2)
    first.run()
    snap = tmp_path / "campaign" / "ggm.pt"
    card = first.snapshot(snap)
    release = first.export(tmp_path / "full.pt")
    assert card["budget"]["steps"] == 2 and card["checkpoint_bytes"] < release["checkpoint_bytes"]
    stored = load(snap)
    assert stored["format"] == SNAPSHOT_FORMAT
    assert stored["state_dict"]["s_convs.0.weight"].dtype == torch.float16
    assert stored["state_dict"]["log_gain"].dtype == torch.float32  # small tensors stay exact
    assert "conditional._quantized_cdf" in first.model.state_dict()
    assert not any(k.endswith("_quantized_cdf") for k in stored["state_dict"])  # no tables
    # the state folder is gone: of the release (step 0, no recipe) and the snapshot, the
    # snapshot is further along, so the run goes on from its step with its weights
    assert warm_start_source("ggm", recipe.name, [tmp_path / "release.pt", snap]) == snap
    second = _trainer(image_dir, tmp_path / "b", recipe, warm_start_from=str(snap))
    assert second.step == 2 and second.warm_start["resumed_snapshot"] == "ggm.pt"
    assert second.warm_start["from"] == "release.pt"
    expected = first.release_state()
    for name, value in second.model.state_dict().items():
        if value.is_floating_point() and value.numel():
            torch.testing.assert_close(value, expected[name].float(), rtol=1e-3, atol=1e-4)
    assert [r["step"] for r in second.run()] == [3, 4, 5]
    assert second.budget()["crops_seen"] == 10 and len(second.sessions) == 2


def test_warm_start_source_prefers_the_release_unless_a_snapshot_is_further(tmp_path):
    torch.manual_seed(0)
    model = RoiHyperprior("ggm", **TINY)
    release, other, behind = tmp_path / "r.pt", tmp_path / "o.pt", tmp_path / "b.pt"
    export_model(model, release, {"recipe": {"name": "custom"}, "budget": {"steps": 4}})
    export_snapshot(model.state_dict(), model.config(),
                    {"recipe": {"name": "other"}, "budget": {"steps": 9}}, other)
    export_snapshot(model.state_dict(), model.config(),
                    {"recipe": {"name": "custom"}, "budget": {"steps": 4}}, behind)
    assert warm_start_source("ggm", "custom", [release, other]) == release  # another recipe
    assert warm_start_source("ggm", "custom", [release, behind]) == release  # a tie
    assert warm_start_source("ggm", "custom", [release, tmp_path / "absent.pt"]) == release
    assert warm_start_source("ggm", "none", [release, other]) == release  # nothing matches


def test_a_snapshot_given_as_a_model_names_the_export_command(tmp_path):
    """A campaign snapshot has no coding tables: loading it as a model says what it is and
    the command that exports it, with its own recipe and entropy model filled in."""
    model = RoiHyperprior("gaussian", **TINY)
    snap = tmp_path / "gaussian-roi.pt"
    export_snapshot(model.state_dict(), model.config(),
                    {"recipe": {"name": "release-8-ctx"}, "budget": {"steps": 5517}}, snap)
    with pytest.raises(ValueError) as info:
        load_model(snap)
    message = str(info.value)
    assert "campaign snapshot (release-8-ctx, gaussian, step 5517)" in message
    assert (f"bench train --recipe release-8-ctx --entropy gaussian --out \"$(mktemp -d)\" "
            f"--warm-start {snap} --export-only --export model.pt --rd-images 0") in message


@pytest.mark.parametrize("entropy", ["ggm", "gaussian"])
def test_committed_campaign_snapshots_are_sound_and_not_behind_the_release(entropy):
    codec = CODEC_NAMES[entropy]
    snap, release = CAMPAIGN_DIR / f"{codec}.pt", WEIGHTS_DIR / f"{codec}.pt"
    if not snap.is_file():
        pytest.skip(f"no campaign snapshot committed at {snap}")
    blob, released = load(snap), load(release)
    recipe = blob["card"]["recipe"]["name"]
    # the snapshot's network is its recipe's (release-3 widens the release's)
    network = get_recipe(recipe).network()
    assert blob["format"] == SNAPSHOT_FORMAT
    assert blob["config"] == {"entropy": released["config"]["entropy"], **network}
    assert snap.stat().st_size <= 16_000_000
    beside = json.loads(snap.with_suffix(".json").read_text())
    assert beside["budget"] == blob["card"]["budget"]
    # a snapshot behind the release is stale: refresh it (--snapshot) or delete it
    assert steps_of(snap, recipe) >= steps_of(release, recipe)
    if steps_of(snap, recipe) > steps_of(release, recipe):
        assert warm_start_source(entropy, recipe) == snap


def test_gpu_script_explains_its_arguments_and_a_missing_pack(tmp_path):
    """The GPU lease's script fails at once, saying what to do, rather than after the machine
    has started training nothing."""
    import subprocess

    script = str(CAMPAIGN_DIR / "gpu.sh")
    usage = subprocess.run(["bash", script], capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr
    missing = subprocess.run(["bash", script, "release-3", "1", str(tmp_path / "out"),
                              str(tmp_path / "no-pack.npz")], capture_output=True, text=True)
    assert missing.returncode == 2 and "--make-pack" in missing.stderr
    assert not (tmp_path / "out").exists()


def test_snapshot_command_needs_a_checkpoint_and_is_not_an_export(image_dir, tmp_path, capsys):
    from bench.cli import main

    common = ["train", "--recipe", "release-3", "--out", str(tmp_path / "empty"),
              "--data-root", str(image_dir / "no-coco"), "--extra-dir", str(image_dir),
              "--no-progress"]
    assert main(common + ["--snapshot", str(tmp_path / "s.pt"), "--export-only"]) == 2
    assert "one at a time" in capsys.readouterr().err
    assert main(common + ["--snapshot", str(tmp_path / "s.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "s.pt").exists()


def test_recipe_narrower_than_the_release_names_its_warm_start(image_dir, tmp_path, capsys):
    """release-2's network is narrower than the released weights (release 7, on release 3's
    network widened from it): a fresh run of release-2 cannot start from them, and the error
    says from which file and what to pass instead of only the shapes."""
    from bench.cli import main

    code = main(["train", "--recipe", "release-2", "--entropy", "ggm", "--out",
                 str(tmp_path / "empty"), "--data-root", str(image_dir / "no-coco"),
                 "--extra-dir", str(image_dir), "--no-progress", "--steps", "1"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "cannot warm-start from" in err and "ggm.pt (release-7)" in err, err
    assert "--warm-start PATH" in err and "nothing may shrink" in err
    assert not any((tmp_path / "empty").rglob("*.pt"))  # no checkpoint was started


def test_missing_warm_start_is_a_clear_error(image_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="warm-starts from"):
        _trainer(image_dir, tmp_path / "x", _recipe(warm_start=True),
                 warm_start_from=str(tmp_path / "absent.pt"))


def test_memory_source_crops_are_deterministic(image_dir):
    source = MemorySource(image_dir / "no-coco", [image_dir])
    assert len(source) == 3 and "in memory" in source.describe()
    a = make_batch(source, 3, 0, 4, 32, RECIPES["release-2"].qmap_weights)
    b = make_batch(source, 3, 0, 4, 32, RECIPES["release-2"].qmap_weights)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert a[0].shape == (4, 32, 32, 3) and set(a[2]) <= {"uniform", "gradient", "blobs"}


def test_cli_custom_run_trains_on_the_rounded_rate_when_asked(image_dir, tmp_path):
    from bench.cli import main

    argv = ["train", "--entropy", "gaussian", "--steps", "1", "--batch-size", "2", "--crop",
            "32", "--channels", "16,24,8", "--out", str(tmp_path / "r"), "--data-root",
            str(image_dir / "no-coco"), "--extra-dir", str(image_dir), "--threads", "1",
            "--no-progress", "--rate", "rounded"]
    assert main(argv) == 0
    blob = torch.load(tmp_path / "r" / "last.pt", weights_only=True)
    assert Recipe.from_json(blob["recipe"]).rate == "rounded"


def test_cli_trains_both_codecs_to_the_same_step(image_dir, tmp_path):
    """``--entropy both`` (the GPU command's mode): turns of --chunk steps, equal budgets,
    one session record per model, and --steps stops a resumed run without moving its plan."""
    from bench.cli import main

    argv = ["train", "--entropy", "both", "--steps", "3", "--batch-size", "2", "--crop", "32",
            "--channels", "16,24,8", "--lr", "1e-3", "--out", str(tmp_path / "both"),
            "--data-root", str(image_dir / "no-coco"), "--extra-dir", str(image_dir),
            "--chunk", "2", "--threads", "1", "--no-progress"]
    assert main(argv) == 0
    for kind in ("ggm", "gaussian"):
        blob = torch.load(tmp_path / "both" / kind / "last.pt", weights_only=True)
        assert blob["step"] == 3 and len(json.loads(blob["sessions"])) == 1
        assert json.loads(blob["sessions"])[0]["stopped"] == "steps"
        assert Recipe.from_json(blob["recipe"]).steps == 3
    # a time budget that runs out between turns is what the sessions record, not "steps"
    # (a budget of 0 still trains one turn, as a single model trains one step)
    budget = [a if a != str(tmp_path / "both") else str(tmp_path / "budget") for a in argv]
    assert main(budget[:-1] + ["--steps", "6", "--time-budget", "0", "--no-progress"]) == 0
    for kind in ("ggm", "gaussian"):
        blob = torch.load(tmp_path / "budget" / kind / "last.pt", weights_only=True)
        assert blob["step"] == 2
        assert [s["stopped"] for s in json.loads(blob["sessions"])] == ["time budget"]
    assert main(["train", "--entropy", "both", "--export", "x.pt", "--out", str(tmp_path)]) == 2
    # the GPU command's ending: both snapshots exported into one folder, no RD measurement
    assert main(argv[:-1] + ["--export-only", "--export", str(tmp_path / "snap"),
                             "--rd-images", "0", "--no-progress"]) == 0
    for codec in ("ggm", "gaussian-roi"):
        model, card = load_model(tmp_path / "snap" / f"{codec}.pt")
        assert card["budget"]["steps"] == 3 and card["recipe"]["name"] == "custom"


@pytest.mark.slow
def test_sigterm_stops_with_a_checkpoint(image_dir, tmp_path, capsys):
    """A session's end (SIGTERM) stops training after the current step and saves it; while it
    trains, the process holds its folder's lock and a second ``bench train`` there is
    refused."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from bench.cli import main
    from bench.learned.lock import holder

    out = tmp_path / "sig"
    cmd = [sys.executable, "-m", "bench", "train", "--entropy", "ggm", "--steps", "100000",
           "--batch-size", "1", "--crop", "32", "--channels", "16,24,8", "--out", str(out),
           "--data-root", str(image_dir / "no-coco"), "--extra-dir", str(image_dir),
           "--threads", "1", "--no-progress", "--checkpoint-every", "1000"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, BENCH_PROGRESS="0"))
    log = out / "train.log.jsonl"
    deadline = time.monotonic() + 120
    while not (log.is_file() and log.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    record = holder(out)  # a real trainer holds its folder while it trains
    assert record["pid"] == proc.pid and record["command"].startswith("bench train --entropy")
    assert main(cmd[3:]) == 2
    assert f"is being trained by pid {proc.pid}" in capsys.readouterr().err
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "signal 15" in err
    assert holder(out) is None
    blob = torch.load(out / "last.pt", weights_only=True)
    assert blob["step"] >= 10 and json.loads(blob["sessions"])[-1]["stopped"] == "signal 15"


def test_non_finite_gradients_skip_the_update_and_never_reach_a_checkpoint(image_dir, tmp_path):
    trainer = _trainer(image_dir, tmp_path / "nan")
    trainer.run(stop_at_step=1)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    weight = trainer.model.h_a[4].weight
    hook = weight.register_hook(lambda grad: torch.full_like(grad, float("nan")))
    record = trainer.train_step()
    hook.remove()
    assert record["skipped"] and trainer.skipped_steps == 1 and trainer.step == 2
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.endswith("quantiles"))
    assert trainer.budget()["skipped_steps"] == 1
    saved = (tmp_path / "nan" / "last.pt").stat().st_mtime_ns
    with torch.no_grad():
        weight.fill_(float("nan"))
    trainer.save()  # refused: the last good checkpoint stays
    assert (tmp_path / "nan" / "last.pt").stat().st_mtime_ns == saved
    assert torch.load(tmp_path / "nan" / "last.pt", weights_only=True)["step"] == 1


class _Evil:
    """Unpickling this creates a file: what a malicious checkpoint could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_checkpoints_are_refused_without_running_code(image_dir, tmp_path):
    from bench.cli import main

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "bench-learned-train-v2", "payload": _Evil(marker)}, evil)
    not_a_checkpoint = tmp_path / "junk.pt"
    not_a_checkpoint.write_bytes(b"\x00not a zip" * 10)
    common = ["--steps", "2", "--batch-size", "1", "--crop", "32", "--channels", "16,24,8",
              "--data-root", str(image_dir / "no-coco"), "--extra-dir", str(image_dir),
              "--no-progress", "--out", str(tmp_path / "o")]
    for bad in (evil, not_a_checkpoint):
        assert main(["train", "--resume", str(bad)] + common) == 2
        assert main(["train", "--recipe", "release-2", "--warm-start", str(bad),
                     "--out", str(tmp_path / "r"), "--data-root", str(image_dir / "no-coco"),
                     "--extra-dir", str(image_dir), "--no-progress"]) == 2
        assert main(["analyze-latents", "--weights", str(bad), "--limit", "1"]) == 2
    assert not marker.exists()


def test_fp32_trains_a_bf16_recipe_in_float32_and_says_so(image_dir, tmp_path):
    """--fp32 (for CPUs that emulate bfloat16) computes exactly what the recipe would compute
    without autocast, and each session records its precision."""
    bf16 = _recipe(autocast=True, crop=64, steps=1, batch_size=1)
    runs = {name: _trainer(image_dir, tmp_path / name, recipe, fp32=fp32)
            for name, recipe, fp32 in (("bf16", bf16, False), ("fp32", bf16, True),
                                       ("plain", dataclasses.replace(bf16, autocast=False),
                                        False))}
    loss = {name: t.run()[0]["loss"] for name, t in runs.items()}
    assert loss["fp32"] == loss["plain"] and loss["fp32"] != loss["bf16"]
    assert [t.sessions[0]["precision"] for t in runs.values()] == [
        "bf16 autocast", "fp32", "fp32"]
    resumed = _trainer(image_dir, tmp_path / "fp32", _recipe(autocast=True, crop=64, steps=2,
                                                             batch_size=1), resume=True)
    resumed.run()
    assert [s["precision"] for s in resumed.sessions] == ["fp32", "bf16 autocast"]


def test_native_bf16_is_read_from_the_cpu_flags():
    assert cpu_has_native_bf16("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    assert cpu_has_native_bf16("flags\t: fpu sse amx_bf16 amx_tile\n")
    assert cpu_has_native_bf16("flags\t: fpu avx avx2 fma sha_ni vaes\n") is False
    assert cpu_has_native_bf16("processor\t: 0\n") is None
    assert cpu_has_amx_bf16("flags\t: fpu sse amx_bf16 amx_tile avx512_bf16\n")
    assert cpu_has_amx_bf16("flags\t\t: fpu avx2 avx512f avx512_bf16\n") is False
    assert cpu_has_amx_bf16("processor\t: 0\n") is None


@pytest.mark.parametrize("recipe_autocast, fp32, native, amx, says", [
    (True, False, False, False, "add --fp32"),    # emulated bf16: float32 is faster
    (True, True, True, True, "3x"),               # AMX: float32 is the slow choice
    (True, True, True, None, "drop --fp32"),      # native, AMX unknown: as with AMX
    (True, True, True, False, "no faster"),       # AVX-512 BF16 alone: no speed to lose
    (True, True, False, False, ""), (True, False, True, True, ""),  # the right choice
    (True, False, True, False, ""),
    (True, True, None, None, ""), (False, True, True, True, ""),  # unknown CPU; fp32 recipe
])
def test_precision_warning_points_to_the_faster_choice(recipe_autocast, fp32, native, amx,
                                                        says):
    warning = precision_warning(recipe_autocast, fp32, native, amx)
    assert (says in warning) if says else warning == ""
    if fp32 and native and amx is False:
        assert "3x" not in warning  # the Xeon's speed-up is not this CPU's


def test_status_reads_the_state_folder_and_changes_nothing(image_dir, tmp_path):
    """``bench train --status``: step, phase, the session record and the snapshot, from a
    real checkpoint; the folder is left as it was."""
    from bench.learned.status import describe, read_status

    recipe = _recipe(steps=6, warmup=2, decay="cosine", decay_start=0.5)
    _trainer(image_dir, tmp_path / "run", recipe, stop_at=3).run()
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()}
    status = read_status(recipe, "ggm", tmp_path / "run")
    assert status.step == 3 and status.sessions[0]["stopped"] == "steps"
    assert status.snapshot_step == -1  # no committed snapshot of a recipe named "custom"
    lines = describe(recipe, status)
    assert lines[0].endswith("step 3 of 6 (50%), lr 0.001 (cosine decay since step 3)")
    assert lines[1].startswith("  not running; last session ended: steps")
    assert "  1 session: 3 steps on cpu" in lines
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "run").iterdir()} == before
    empty = describe(recipe, read_status(recipe, "gaussian", tmp_path / "none"))
    assert empty == [f"gaussian-roi ({tmp_path / 'none'}): no checkpoint yet; it would start "
                     "as the recipe says"]


def test_status_tells_a_running_trainer_from_a_killed_one(tmp_path):
    """Running: the log is fresh and newer than the checkpoint (pace and time left from the
    session); a session still marked running whose log went stale was killed."""
    import time

    from bench.learned.status import CodecStatus, describe

    recipe = _recipe(steps=10_000, warmup=100, decay="cosine", decay_start=0.7)
    now = time.time()
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(now - 3600 - 60))
    session = {"device": "cpu:x86_64x1", "precision": "fp32", "start_step": 1000,
               "end_step": 1600, "stopped": "running", "started": started}
    gpu = {"device": "cuda:NVIDIA H200", "start_step": 0, "end_step": 1000, "stopped": "time "
           "budget", "started": started}

    def status(log_age):
        return CodecStatus("ggm", tmp_path, 1600, [gpu, session], now - 60.0, now - log_age,
                           1200, -1)

    running = describe(recipe, status(5.0), now=now)
    assert running[0].endswith("lr 0.001 (constant; cosine decay from step 7,000)")
    assert running[1].startswith("  training now (log written 5 s ago)")
    assert running[2] == ("  latest session (cpu:x86_64x1, fp32): 600 steps in 1.0 h = 600 "
                          "steps/h; the 8,400 left take 14.0 h at that pace")
    assert "  2 sessions: 600 steps on cpu, 1,000 steps on cuda" in running
    assert running[-1] == "  committed snapshot at step 1,200 (+400 since)"
    killed = describe(recipe, status(7200.0), now=now)
    assert killed[1].startswith("  not running: its last session never finished")


def test_status_needs_a_recipe(capsys):
    from bench.cli import main

    assert main(["train", "--status"]) == 2
    assert "--status reads a recipe's state folders" in capsys.readouterr().err


def _lock_holder(folder):
    """A separate process that holds ``folder``'s trainer lock until killed."""
    import subprocess
    import sys

    code = ("import sys, time; from bench.learned.lock import hold\n"
            "with hold(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(600)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    proc.stdout.close()
    return proc


def test_a_second_trainer_is_refused_and_status_names_the_first(image_dir, tmp_path, capsys):
    """While a process holds a state folder's lock, ``bench train`` there stops with an error
    naming it (and touches no checkpoint), and the status says who trains; once that process
    is killed (no chance to clean up), the status says it is not running."""
    import os
    import signal
    import socket
    from unittest import mock

    from bench.cli import main
    from bench.learned.lock import LOCK_NAME, hold, holder
    from bench.learned.status import describe, read_status

    recipe = _recipe(steps=6)
    folder = tmp_path / "run"
    _trainer(image_dir, folder, recipe, stop_at=2).run()
    with pytest.raises(LookupError):  # a folder no locking trainer has used
        holder(folder)
    proc = _lock_holder(folder)
    argv = ["train", "--entropy", "ggm", "--steps", "6", "--batch-size", "2", "--crop", "32",
            "--channels", "16,24,8", "--out", str(folder), "--data-root",
            str(image_dir / "no-coco"), "--extra-dir", str(image_dir), "--no-progress"]
    try:
        before = (folder / "last.pt").stat().st_mtime_ns
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"{folder} is being trained by pid {proc.pid} on " in err
        assert f"kill -TERM {proc.pid}: it" in err and "another folder (--out)" in err
        assert (folder / "last.pt").stat().st_mtime_ns == before
        # reading the checkpoint beside a trainer stays allowed
        assert main(argv + ["--export-only", "--export", str(tmp_path / "x.pt"),
                            "--rd-images", "0"]) == 0
        assert (tmp_path / "x.pt").is_file()
        status = read_status(recipe, "ggm", folder)
        assert status.locked and status.holder["pid"] == proc.pid
        assert describe(recipe, status)[1].startswith(f"  training now (pid {proc.pid} on ")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    status = read_status(recipe, "ggm", folder)
    assert status.locked is False and status.holder is None
    assert describe(recipe, status)[1].startswith("  not running; last session ended: steps")
    with hold(folder, "bench train --out 'a b'"):  # free again; the record is the holder's
        assert holder(folder) == {"pid": os.getpid(), "host": socket.gethostname(),
                                  "started": mock.ANY, "command": "bench train --out 'a b'"}
    assert holder(folder) is None and (folder / LOCK_NAME).read_text() == ""
    fresh = tmp_path / "fresh"  # a trainer before its first checkpoint
    with hold(fresh):
        [line] = describe(recipe, read_status(recipe, "ggm", fresh))
        assert line.startswith(f"ggm ({fresh}): no checkpoint yet; training now (pid "
                               f"{os.getpid()} on {socket.gethostname()} since ")


def test_a_starting_trainer_waits_out_a_status_check(tmp_path):
    """``--status`` tests the lock with a momentary shared lock; a trainer starting in that
    moment waits for it instead of reporting the folder busy, and gives up only on a lock
    held longer (``WAIT_S``)."""
    import fcntl
    import os
    import threading
    import time

    from bench.learned.lock import LOCK_NAME, WAIT_S, FolderBusy, hold

    folder = tmp_path / "run"
    with hold(folder):
        pass
    fd = os.open(folder / LOCK_NAME, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        threading.Timer(0.3, fcntl.flock, (fd, fcntl.LOCK_UN)).start()
        t0 = time.monotonic()
        with hold(folder):
            assert 0.2 < time.monotonic() - t0 < WAIT_S
        fcntl.flock(fd, fcntl.LOCK_SH)  # held past the wait: busy, naming no process
        with pytest.raises(FolderBusy, match="being trained by another process"):
            with hold(folder):
                pass
    finally:
        os.close(fd)
