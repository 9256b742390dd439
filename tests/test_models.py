import pytest
import torch

from swintormer_cli.models import PRESETS, Swintormer, count_macs, preset
from swintormer_cli.models.attention import ChannelAttention, GatedFeedForward, MixedAttention, WindowAttention

from .helpers import tiny_config, tiny_model


@pytest.mark.parametrize("in_views", [1, 2])
@pytest.mark.parametrize("size", [(17, 33), (300, 517), (16, 16), (5, 7)])
def test_any_size_keeps_its_shape(in_views, size):
    model, _ = tiny_model(in_views=in_views)
    x = torch.rand(1, 3 * in_views, *size)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (1, 3, *size)
    assert torch.isfinite(y).all()


def test_paper_preset_has_25m_parameters():
    n = Swintormer(PRESETS["paper"]).num_parameters
    assert abs(n - 25e6) <= 1e6, n


def test_restormer_reference_counts_155_gmacs():
    # Restormer's published configuration, counted with the same FLOP counter. Every layer's cost is linear in
    # the number of pixels (channel attention too), so 64x64 counts 1/16 of 256x256.
    macs = count_macs(Swintormer(preset("restormer")).eval(), 64) * 16
    assert 150e9 < macs < 160e9


def test_presets_are_ordered_by_cost():
    macs = {n: count_macs(Swintormer(PRESETS[n]).eval(), 64) for n in ("tiny-channel", "tiny", "small", "paper")}
    assert macs["tiny-channel"] < macs["tiny"] < macs["small"] < macs["paper"]


@pytest.mark.parametrize("mode", ["channel", "window", "mixed"])
def test_every_attention_mode_trains_one_step(mode):
    torch.manual_seed(0)
    model = Swintormer(tiny_config(attention=mode))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    loss0 = (model(x) - y).abs().mean()
    opt.zero_grad()
    loss0.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    opt.step()
    with torch.no_grad():
        loss1 = (model(x) - y).abs().mean()
    assert loss1 < loss0


def test_attention_modes_give_the_channels_to_the_right_branch():
    mixed = MixedAttention(16, 2, "mixed", 4, 0, False)
    assert mixed.window_attn is not None and mixed.channel_attn is not None
    assert MixedAttention(16, 2, "window", 4, 0, False).channel_attn is None
    assert MixedAttention(16, 2, "channel", 4, 0, False).window_attn is None


def _attend(attn, v_map):
    q = torch.ones_like(v_map)
    return attn(q, q, v_map)


def test_shifted_window_mask_keeps_wrapped_pixels_apart():
    # 8x8 map, window 4, shift 2: after the cyclic roll, the window at the bottom-right corner holds pixels
    # from all four corners of the image. Without the mask, changing a top-left pixel would change outputs
    # at the bottom-right corner.
    torch.manual_seed(0)
    attn = WindowAttention(heads=1, window=4, shift=2)
    v = torch.rand(1, 2, 8, 8)
    base = _attend(attn, v)
    perturbed = v.clone()
    perturbed[..., 0, 0] += 10.0
    changed = (_attend(attn, perturbed) - base).abs().sum(dim=1)[0] > 1e-6
    # Pixel (0, 0) is only seen by the pixels of its own (shifted) window: rows and columns 0..1.
    assert changed[:2, :2].all()
    assert not changed[2:, :].any() and not changed[:, 2:].any()


def test_unshifted_window_sees_only_its_window():
    attn = WindowAttention(heads=1, window=4, shift=0)
    v = torch.rand(1, 2, 8, 8)
    base = _attend(attn, v)
    perturbed = v.clone()
    perturbed[..., 5, 6] += 10.0
    changed = (_attend(attn, perturbed) - base).abs().sum(dim=1)[0] > 1e-6
    assert changed[4:, 4:].all() and changed.sum() == 16


def test_padding_does_not_leak_into_real_pixels():
    # A 6x6 map padded to 8x8: the padded keys are masked, so the result equals attention restricted to the
    # real pixels of each window (checked against a map whose padding area holds other values).
    torch.manual_seed(0)
    attn = WindowAttention(heads=1, window=4, shift=0)
    q, k, v = (torch.rand(1, 2, 6, 6) for _ in range(3))
    out = attn(q, k, v)
    # Top-left window is all real pixels: compare with plain softmax attention over those 16 pixels.
    bias = attn.relative_position_bias[attn.relative_position_index.reshape(-1)].reshape(16, 16)
    qs, ks, vs = (t[0, :, :4, :4].reshape(2, 16).T for t in (q, k, v))
    ref = torch.softmax(qs @ ks.T / (2**0.5) + bias, dim=-1) @ vs
    assert torch.allclose(out[0, :, :4, :4].reshape(2, 16).T, ref, atol=1e-5)
    assert torch.isfinite(out).all()


def test_model_without_prior_has_no_prior_modules_and_rejects_one():
    model, _ = tiny_model(prior=False)
    assert not any(n.startswith("prior_") for n, _ in model.named_parameters())
    with pytest.raises(ValueError, match="without a prior"):
        model(torch.rand(1, 3, 16, 16), torch.rand(1, 4, 1, 1))


def test_model_with_prior_uses_it():
    model, prior = tiny_model(prior=True)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        a = model(x, torch.zeros(1, prior.channels, 2, 2))
        b = model(x, torch.ones(1, prior.channels, 2, 2))
    assert (a - b).abs().max() > 1e-4
    with pytest.raises(ValueError, match="needs one"):
        model(x)


def test_config_round_trip_and_unknown_keys():
    cfg = tiny_config(prior_channels=4)
    assert type(cfg).from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        type(cfg).from_dict({**cfg.to_dict(), "nope": 1})


def test_gated_feed_forward_is_restormers_gdfn():
    # The forward runs gate and value through halves of the weights; it must equal the plain formulation:
    # one 1x1 conv, one depth-wise 3x3, chunk, GELU gate.
    torch.manual_seed(0)
    ffn = GatedFeedForward(12, 2.66, bias=True)
    with torch.no_grad():
        ffn.project_in.bias.normal_()
        ffn.dwconv.bias.normal_()
    x = torch.rand(2, 12, 9, 11)
    with torch.no_grad():
        gate, value = ffn.dwconv(ffn.project_in(x)).chunk(2, dim=1)
        reference = ffn.project_out(torch.nn.functional.gelu(gate) * value)
        assert torch.allclose(ffn(x), reference, atol=1e-6)


def test_channel_attention_is_restormers_mdta():
    torch.manual_seed(0)
    attn = ChannelAttention(heads=2)
    with torch.no_grad():
        attn.temperature.copy_(torch.tensor([[[0.7]], [[1.9]]]))
    q, k, v = (torch.rand(1, 8, 5, 6) for _ in range(3))
    qs, ks, vs = (t.reshape(1, 2, 4, 30) for t in (q, k, v))
    qs, ks = torch.nn.functional.normalize(qs, dim=-1), torch.nn.functional.normalize(ks, dim=-1)
    reference = ((qs @ ks.transpose(-2, -1)) * attn.temperature).softmax(-1) @ vs
    assert torch.allclose(attn(q, k, v), reference.reshape(1, 8, 5, 6), atol=1e-6)


def test_channels_last_gives_the_same_output():
    model, _ = tiny_model()
    x = torch.rand(2, 3, 40, 52)
    with torch.no_grad():
        plain = model(x)
        model.to(memory_format=torch.channels_last)
        fast = model(x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(plain, fast, atol=1e-5)


def test_window_attention_bias_cache_follows_the_weights():
    # At inference the bias + mask is built once per map size; new weights must not reuse the old one.
    torch.manual_seed(0)
    attn = WindowAttention(heads=1, window=4, shift=2)
    q, k, v = (torch.rand(1, 2, 8, 8) for _ in range(3))
    with torch.no_grad():
        before = attn(q, k, v)
        assert torch.equal(attn(q, k, v), before)
        attn.load_state_dict({"relative_position_bias": torch.randn_like(attn.relative_position_bias) * 5})
        after = attn(q, k, v)
    assert (after - before).abs().max() > 1e-3
    # With gradients on, nothing is cached and the bias table gets its gradient.
    attn(q, k, v).sum().backward()
    assert attn.relative_position_bias.grad is not None
