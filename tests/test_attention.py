"""Cross-modal attention: SDPA equals the textbook formula, K/V pooling, residual, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dagan.models.attention import CrossModalAttention, naive_attention, pool_factor, sdpa


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def manual_cross_attention(module: CrossModalAttention, fw: torch.Tensor, fd: torch.Tensor) -> torch.Tensor:
    """γ·softmax(QKᵀ·s)V + F^w written out with plain matmuls (no pooling)."""
    b, c, h, w = fw.shape
    q = module.query(fw).flatten(2).transpose(1, 2)
    k = module.key(fd).flatten(2).transpose(1, 2)
    v = module.value(fd).flatten(2).transpose(1, 2)
    logits = torch.einsum("bnd,bmd->bnm", q, k) * module.scale
    out = torch.einsum("bnm,bmc->bnc", torch.softmax(logits, dim=-1), v)
    return module.gamma * out.transpose(1, 2).reshape(b, c, h, w) + fw


@pytest.mark.parametrize("scale", [1 / math.sqrt(4), 1.0])
@pytest.mark.parametrize("value_dim", [4, 16])
def test_sdpa_equals_naive_attention(scale: float, value_dim: int) -> None:
    q, k, v = torch.randn(2, 37, 4), torch.randn(2, 23, 4), torch.randn(2, 23, value_dim)
    expected, attn = naive_attention(q, k, v, scale)
    torch.testing.assert_close(sdpa(q, k, v, scale), expected, atol=1e-5, rtol=1e-5)
    # non-contiguous inputs (what a conv + transpose produces) give the same result
    qt = q.transpose(1, 2).contiguous().transpose(1, 2)
    torch.testing.assert_close(sdpa(qt, k, v, scale), expected, atol=1e-5, rtol=1e-5)
    # the reference really is softmax(QKᵀ·s)V
    ref = torch.softmax(q @ k.transpose(1, 2) * scale, -1)
    torch.testing.assert_close(attn, ref)


@pytest.mark.parametrize("value_dim", [4, 16])
def test_padded_and_unpadded_heads_agree(value_dim: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The zero-padded heads of eager CPU runs and the unpadded ones of CUDA and exported graphs."""
    import dagan.models.attention as attention

    q, k, v = torch.randn(2, 300, 4), torch.randn(2, 64, 4), torch.randn(2, 64, value_dim)
    assert attention.pads_head_size(q)  # an eager CPU run
    padded = sdpa(q, k, v, 0.5)
    monkeypatch.setattr(attention, "pads_head_size", lambda _: False)
    torch.testing.assert_close(sdpa(q, k, v, 0.5), padded, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(padded, naive_attention(q, k, v, 0.5)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("scaled", [True, False])
def test_module_matches_formula(scaled: bool) -> None:
    module = CrossModalAttention(16, depth_channels=12, qk_reduction=4, mode="exact", scaled=scaled)
    with torch.no_grad():
        module.gamma.fill_(0.7)  # make the gain visible in the check
    fw, fd = torch.randn(2, 16, 6, 5), torch.randn(2, 12, 6, 5)
    assert module.scale == (1 / math.sqrt(4) if scaled else 1.0)
    torch.testing.assert_close(module(fw, fd), manual_cross_attention(module, fw, fd), atol=1e-5, rtol=1e-5)


def test_scaled_and_unscaled_differ() -> None:
    fw, fd = torch.randn(1, 16, 5, 5), torch.randn(1, 16, 5, 5)
    a = CrossModalAttention(16, scaled=True)
    b = CrossModalAttention(16, scaled=False)
    b.load_state_dict(a.state_dict())
    assert not torch.allclose(a(fw, fd), b(fw, fd), atol=1e-4)


def test_pool_without_reduction_equals_exact() -> None:
    pool = CrossModalAttention(16, max_tokens=64, mode="pool")
    exact = CrossModalAttention(16, max_tokens=64, mode="exact")
    exact.load_state_dict(pool.state_dict())
    fw, fd = torch.randn(2, 16, 8, 8), torch.randn(2, 16, 8, 8)  # 64 tokens: no pooling needed
    assert pool.project_keys_values(fd)[0].shape[1] == 64
    assert torch.equal(pool(fw, fd), exact(fw, fd))


def test_pool_reduces_keys_and_exact_never_does() -> None:
    pool = CrossModalAttention(16, max_tokens=100, mode="pool")
    exact = CrossModalAttention(16, max_tokens=100, mode="exact")
    exact.load_state_dict(pool.state_dict())
    fd = torch.randn(1, 16, 20, 20)
    k, v = pool.project_keys_values(fd)
    assert k.shape == (1, 100, 2) and v.shape == (1, 100, 16)  # factor 2: 10×10
    k_exact, v_exact = exact.project_keys_values(fd)
    assert k_exact.shape[1] == v_exact.shape[1] == 400
    # the pooled keys/values are the projections of the average-pooled depth features
    pooled = F.avg_pool2d(fd, 2)
    torch.testing.assert_close(k, pool.key(pooled).flatten(2).transpose(1, 2))
    torch.testing.assert_close(v, pool.value(pooled).flatten(2).transpose(1, 2))
    # queries stay at full resolution
    assert pool(torch.randn(1, 16, 20, 20), fd).shape == (1, 16, 20, 20)
    # odd sizes: 21×21 needs factor 3 (factor 2 would leave 11×11 = 121 > 100); border pixels are kept
    k_odd, _ = pool.project_keys_values(torch.randn(1, 16, 21, 21))
    assert k_odd.shape[1] == 49


@pytest.mark.parametrize(
    ("h", "w", "max_tokens"),
    [
        (256, 256, 4096),
        (128, 128, 4096),
        (64, 64, 4096),
        (21, 21, 100),
        (30, 7, 10),
        (1, 1, 1),
        (512, 512, 4096),
    ],
)
def test_pool_factor_is_smallest_sufficient(h: int, w: int, max_tokens: int) -> None:
    f = pool_factor(h, w, max_tokens)
    assert math.ceil(h / f) * math.ceil(w / f) <= max_tokens
    if f > 1:
        assert math.ceil(h / (f - 1)) * math.ceil(w / (f - 1)) > max_tokens
    assert pool_factor(256, 256, 4096) == 4 and pool_factor(512, 512, 4096) == 8


def test_return_attention_rows_sum_to_one_and_match_fast_path() -> None:
    module = CrossModalAttention(16, max_tokens=16, mode="pool")
    fw, fd = torch.randn(2, 16, 6, 6), torch.randn(2, 16, 8, 8)
    out, attn = module(fw, fd, return_attention=True)
    assert attn.shape == (2, 36, 16)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 36))
    assert (attn >= 0).all()
    torch.testing.assert_close(out, module(fw, fd), atol=1e-5, rtol=1e-5)


def test_return_attention_refuses_large_maps() -> None:
    module = CrossModalAttention(8, mode="exact")
    with pytest.raises(ValueError, match="small inputs"):
        module(torch.randn(1, 8, 128, 128), torch.randn(1, 8, 128, 128), return_attention=True)


def test_residual_when_values_are_zero() -> None:
    module = CrossModalAttention(8)
    with torch.no_grad():
        module.value.weight.zero_()
        module.value.bias.zero_()
    fw = torch.randn(1, 8, 4, 4)
    torch.testing.assert_close(module(fw, torch.randn(1, 8, 4, 4)), fw)


def test_every_parameter_gets_gradient_at_init() -> None:
    module = CrossModalAttention(16, max_tokens=16)
    assert module.gamma.item() == 1.0
    fw = torch.randn(2, 16, 8, 8, requires_grad=True)
    fd = torch.randn(2, 16, 8, 8, requires_grad=True)
    (module(fw, fd) * torch.randn(2, 16, 8, 8)).sum().backward()
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert fd.grad.abs().sum() > 0


def test_cached_keys_values_equal_forward() -> None:
    module = CrossModalAttention(16, max_tokens=32)
    fw, fd = torch.randn(3, 16, 8, 8), torch.randn(1, 16, 8, 8)
    k, v = module.project_keys_values(fd)
    out = module.attend(fw, k.expand(3, -1, -1), v.expand(3, -1, -1))
    torch.testing.assert_close(out, module(fw, fd.expand(3, -1, -1, -1)))


def test_bad_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="mode"):
        CrossModalAttention(8, mode="window")  # type: ignore[arg-type]
