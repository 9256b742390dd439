import numpy as np
import pytest
import torch

from swintormer_cli.inference import Accumulator, DeblurPipeline, ModelDefaults, TileGrid, merge_weights, parse_size
from swintormer_cli.inference.memory import format_size, is_out_of_memory

from .helpers import gradient_image, tiny_model


def test_grid_covers_the_image_and_snaps_to_the_edge():
    grid = TileGrid(100, 150, 64, 48)
    tiles = grid.tiles
    ys = sorted({t.y for t in tiles})
    xs = sorted({t.x for t in tiles})
    assert ys == [0, 36] and xs == [0, 48, 86]
    cover = torch.zeros(100, 150)
    for t in tiles:
        cover[t.slices] += 1
    assert (cover > 0).all()
    assert len(grid) == len(tiles)


def test_grid_for_a_small_image_is_one_tile_of_its_size():
    grid = TileGrid(20, 30, 64, 48)
    assert [(t.y, t.x, t.height, t.width) for t in grid.tiles] == [(0, 0, 20, 30)]


def test_shift_larger_than_window_is_refused():
    with pytest.raises(ValueError, match="must not exceed"):
        TileGrid(100, 100, 32, 40)


def test_feathered_merge_of_a_constant_is_that_constant():
    grid = TileGrid(70, 90, 32, 20)
    acc = Accumulator(3, grid, "feather")
    for t in grid.tiles:
        acc.add(t, torch.full((3, t.height, t.width), 0.37))
    assert torch.allclose(acc.result(), torch.full((3, 70, 90), 0.37), atol=1e-6)
    w = merge_weights(32, 32, "feather", 12)
    assert w.min() > 0 and w.max() == 1 and w[16, 16] == 1


def test_window_at_least_the_image_gives_exactly_the_plain_forward():
    model, _ = tiny_model()
    x = torch.rand(3, 40, 56)
    pipe = DeblurPipeline(model, window=64, device="cpu", precision="fp32")
    with torch.no_grad():
        plain = model(x[None])[0].clamp(0, 1)
    assert torch.equal(pipe.restore(x), plain)


def test_result_does_not_depend_on_the_tile_batch_size():
    model, _ = tiny_model()
    x = torch.rand(3, 90, 110)
    outs = []
    for batch in (1, 3, 16):
        pipe = DeblurPipeline(model, window=32, shift=24, device="cpu", precision="fp32")
        pipe.batch_size = batch
        outs.append(pipe.restore(x))
    for other in outs[1:]:
        # Batched convolutions may round differently in the last bit; nothing else may differ.
        assert torch.allclose(outs[0], other, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_parallel_workers_give_the_same_image_and_the_same_bytes_each_run(precision):
    model, _ = tiny_model()
    x = torch.rand(3, 90, 110)
    one = DeblurPipeline(model, window=32, shift=24, device="cpu", precision=precision, workers=1).restore(x)
    runs = [
        DeblurPipeline(model, window=32, shift=24, device="cpu", precision=precision, workers=3).restore(x)
        for _ in range(2)
    ]
    assert torch.allclose(one, runs[0], atol=1e-5 if precision == "fp32" else 2e-2)
    assert torch.equal(runs[0], runs[1])
    with pytest.raises(ValueError, match="workers"):
        DeblurPipeline(model, device="cpu", workers=0)


def test_memory_budget_sets_the_batch_size():
    model, _ = tiny_model()
    x = torch.rand(3, 96, 96)
    small = DeblurPipeline(model, window=32, shift=32, device="cpu", memory_budget=1)
    small.restore(x)
    assert small._batch_sizes[(32, 32)] == 1
    big = DeblurPipeline(model, window=32, shift=32, device="cpu", memory_budget="64GiB")
    big.restore(x)
    if big.last_tile_peak:  # measurable on Linux
        assert big._batch_sizes[(32, 32)] > 1


def test_a_tile_that_grows_the_process_by_nothing_does_not_shrink_the_batch():
    # The allocator keeps freed buffers (keep_freed_memory), so a later pipeline's measured tile may add nothing
    # to the process; that is "fits", not "unmeasurable" (which runs one tile at a time).
    model, _ = tiny_model()
    x = torch.rand(3, 96, 96)
    for _ in range(3):
        pipe = DeblurPipeline(model, window=32, shift=32, device="cpu", precision="fp32", memory_budget="64GiB")
        pipe.restore(x)
        if pipe.last_tile_peak is not None:
            assert pipe._batch_sizes[(32, 32)] > 1, pipe.last_tile_peak


class _OOMOverOne(torch.nn.Module):
    """Acts like a model whose device runs out of memory for batches above one tile."""

    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.config = model.config
        self.batches = []

    def forward(self, x, prior=None):
        self.batches.append(x.shape[0])
        if x.shape[0] > 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.inner(x, prior)


def test_out_of_memory_halves_the_batch_until_it_fits():
    model, _ = tiny_model()
    wrapped = _OOMOverOne(model)
    pipe = DeblurPipeline(wrapped, window=32, shift=32, device="cpu", precision="fp32")
    pipe.batch_size = 8
    x = torch.rand(3, 64, 96)
    out = pipe.restore(x)
    # 6 tiles in a batch of 8 fail; the batch halves to 3, which fails too, then to 1, which fits and is kept.
    assert wrapped.batches[:3] == [6, 3, 1]
    assert set(wrapped.batches[2:]) == {1} and pipe.batch_size == 1
    ref = DeblurPipeline(model, window=32, shift=32, device="cpu", precision="fp32").restore(x)
    assert torch.allclose(out, ref, atol=1e-5)


def test_out_of_memory_at_one_tile_is_a_clear_error():
    class Always(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.config = model.config

        def forward(self, x, prior=None):
            raise torch.OutOfMemoryError("out of memory")

    model, _ = tiny_model()
    pipe = DeblurPipeline(Always(model), window=32, device="cpu")
    pipe.batch_size = 1
    with pytest.raises(MemoryError, match="smaller window"):
        pipe.restore(torch.rand(3, 40, 40))
    # Without a fixed batch size the first tile runs alone to be measured: the same error there.
    pipe = DeblurPipeline(Always(model), window=32, device="cpu")
    with pytest.raises(MemoryError, match="smaller window"):
        pipe.restore(torch.rand(3, 40, 40))


class _NaNUnderAutocast(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.inner = model
        self.config = model.config
        self.fp32_calls = 0

    def forward(self, x, prior=None):
        out = self.inner(x, prior)
        if torch.is_autocast_enabled("cpu"):
            return out.to(torch.bfloat16) * float("inf")
        self.fp32_calls += 1
        return out


def test_non_finite_low_precision_tiles_are_redone_in_fp32():
    model, _ = tiny_model()
    wrapped = _NaNUnderAutocast(model)
    pipe = DeblurPipeline(wrapped, window=32, shift=32, device="cpu", precision="bf16")
    pipe.batch_size = 2
    x = torch.rand(3, 32, 64)
    out = pipe.restore(x)
    assert torch.isfinite(out).all() and wrapped.fp32_calls >= 1
    ref = DeblurPipeline(model, window=32, shift=32, device="cpu", precision="fp32").restore(x)
    assert torch.allclose(out, ref, atol=1e-5)


def test_numpy_arrays_come_back_in_their_own_dtype():
    model, _ = tiny_model()
    pipe = DeblurPipeline(model, window=32, device="cpu")
    for dtype in (np.uint8, np.uint16):
        img = gradient_image(20, 30, dtype=dtype)
        out = pipe(img)
        assert out.dtype == dtype and out.shape == img.shape


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_on_cpu_is_bf16_only_with_native_bf16(monkeypatch, native):
    from swintormer_cli.inference import device as device_module

    monkeypatch.setattr(device_module, "native_bf16_cpu", lambda: native)
    model, _ = tiny_model()
    pipe = DeblurPipeline(model, device="cpu")
    assert pipe.precision == ("bf16" if native else "fp32")
    assert ("native bf16 on this CPU" in pipe.describe()["precision_note"]) and (
        ("no native" in pipe.describe()["precision_note"]) != native
    )
    # An explicit choice wins either way and needs no explanation.
    for spec in ("fp32", "bf16"):
        explicit = DeblurPipeline(model, device="cpu", precision=spec)
        assert explicit.precision == spec and explicit.describe()["precision_note"] == ""


def test_bad_devices_are_refused():
    model, _ = tiny_model()
    with pytest.raises(ValueError):
        DeblurPipeline(model, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            DeblurPipeline(model, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_bare_cuda_device_resolves_to_the_gpu_its_tensors_report():
    from swintormer_cli.inference.device import resolve_device

    assert resolve_device("cuda") == torch.zeros(1, device="cuda").device == resolve_device("auto")


def test_native_bf16_probe_answers_without_error():
    from swintormer_cli.inference.device import native_bf16_cpu

    assert native_bf16_cpu() in (True, False)


def test_memory_sizes_parse_and_print():
    assert parse_size("4GiB") == 4 * 2**30
    assert parse_size("512MB") == 512_000_000
    assert parse_size("1.5g") == 1_500_000_000
    assert format_size(2**30) == "1.00 GiB"
    for bad in ("lots", "-1GB", "0"):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_the_default_budget_is_shared_by_the_processes_of_a_machine(monkeypatch):
    from swintormer_cli.inference import memory

    monkeypatch.setattr(memory, "available_memory", lambda device: 8 * 2**30)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    cpu = torch.device("cpu")
    assert memory.default_budget(cpu) == 4 * 2**30  # half of what is free
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # torchrun --nproc_per_node=2: two processes take half each
    assert memory.default_budget(cpu) == 2 * 2**30
    assert DeblurPipeline(tiny_model()[0], window=32, device="cpu").memory_budget == 2 * 2**30


def test_settings_own_the_defaults_and_the_checks():
    from swintormer_cli.inference import InferenceSettings, SettingError

    s = InferenceSettings().resolve()
    assert (s.window, s.shift, s.blend, s.sampler, s.prior_steps, s.eta, s.seed, s.workers) == (
        256,
        192,
        "average",
        "ddim",
        20,
        0.0,
        0,
        1,
    )
    assert InferenceSettings(window=100).resolve(model=ModelDefaults(window=64)).window == 100
    r = InferenceSettings().resolve(model=ModelDefaults(window=64), default_eta=1.0, device=torch.device("cpu"))
    assert (r.window, r.shift, r.eta, r.workers) == (64, 48, 1.0, torch.get_num_threads())
    # A model's own shift and prior steps hold by default; its shift only with its own window.
    named = ModelDefaults(window=64, shift=60, prior_steps=5)
    assert (lambda r: (r.window, r.shift, r.prior_steps))(InferenceSettings().resolve(model=named)) == (64, 60, 5)
    assert InferenceSettings(window=128).resolve(model=named).shift == 96
    assert InferenceSettings(shift=32, prior_steps=9).resolve(model=named).shift == 32
    assert InferenceSettings(prior_steps=9).resolve(model=named).prior_steps == 9
    for bad, name in [
        (dict(window=16), "window"),
        (dict(window=64, shift=80), "shift"),
        (dict(shift=0), "shift"),
        (dict(blend="median"), "blend"),
        (dict(sampler="euler"), "sampler"),
        (dict(prior_steps=0), "prior_steps"),
        (dict(eta=float("nan")), "eta"),
        (dict(eta=-1.0), "eta"),
        (dict(workers=0), "workers"),
    ]:
        with pytest.raises(SettingError) as info:
            InferenceSettings(**bad).resolve(min_window=32)
        assert info.value.name == name


def test_pipeline_takes_the_model_minimum_window_and_rejects_unknown_settings():
    from swintormer_cli.inference import InferenceSettings, SettingError

    model = tiny_model()[0]
    with pytest.raises(SettingError, match="smaller than this model allows"):
        DeblurPipeline(model, window=model.config.min_window - 1, device="cpu")
    with pytest.raises(TypeError):
        DeblurPipeline(model, windw=32, device="cpu")
    pipe = DeblurPipeline(model, settings=InferenceSettings(window=64, blend="feather"), device="cpu", workers=1)
    assert (pipe.settings.window, pipe.settings.shift, pipe.settings.blend, pipe.workers) == (64, 48, "feather", 1)
