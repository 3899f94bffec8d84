"""Building blocks of DCMPNet: dense dilated blocks, the transformer stages and the fusion modules.

All tensors are NCHW unless a docstring says otherwise.  The forward passes follow the published
network operation by operation, so that upstream weights reproduce upstream outputs; optional
fast paths (``use_sdpa``) are numerically equivalent within float32 rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def reflect_pad(x: torch.Tensor, left: int, right: int, top: int, bottom: int) -> torch.Tensor:
    """Reflect-pad the last two dims; also for pads >= the side length.

    ``F.pad(mode='reflect')`` requires each pad to be smaller than the side it pads.  The
    published network simply fails there (inputs of 16-24 pixels).  Here a pad that is too
    large is applied in steps, each reflecting the already padded tensor, which equals
    ``F.pad`` whenever ``F.pad`` is defined.  A side of length 1 is replicated.
    """
    h, w = x.shape[-2:]
    if left < w and right < w and top < h and bottom < h:
        if left or right or top or bottom:
            return F.pad(x, (left, right, top, bottom), mode="reflect")
        return x
    while left or right or top or bottom:
        h, w = x.shape[-2:]
        if w == 1 or h == 1:
            return F.pad(x, (left, right, top, bottom), mode="replicate")
        sl, sr, st, sb = min(left, w - 1), min(right, w - 1), min(top, h - 1), min(bottom, h - 1)
        x = F.pad(x, (sl, sr, st, sb), mode="reflect")
        left, right, top, bottom = left - sl, right - sr, top - st, bottom - sb
    return x


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad right/bottom so that H and W become multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return reflect_pad(x, 0, pw, 0, ph)


class DRDB(nn.Module):
    """Dilated residual dense block.

    Five 3x3 convs (dilation 2), each seeing the block input and all earlier outputs, ``growth``
    channels each; a 1x1 conv back to ``channels``; output ``x + relu(fuse(...))``.
    """

    def __init__(self, channels: int, growth: int = 32, num_convs: int = 5) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(channels + i * growth, growth, 3, padding=2, dilation=2) for i in range(num_convs)
        )
        self.fuse = nn.Conv2d(channels + num_convs * growth, channels, 1)
        # A small positive bias keeps the ReLU'd residual alive at initialisation; with few output
        # channels (the 1-channel depth-prior refiner) a default init often starts it dead.
        nn.init.constant_(self.fuse.bias, 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = x
        for conv in self.convs:
            feats = torch.cat([feats, F.relu(conv(feats))], dim=1)
        return x + F.relu(self.fuse(feats))


class DoubleConv(nn.Module):
    """(3x3 conv -> BatchNorm -> ReLU) twice: the U-Net guide's unit."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(x)))


class RescaleNorm(nn.Module):
    """Rescale-aware layer norm (RLN).

    Normalises each sample over C, H and W together and also returns a per-channel ``rescale``
    and ``rebias`` predicted from the removed statistics, which the transformer block applies to
    the mixer's output so that the block does not lose the feature scale.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.scale_proj = nn.Conv2d(1, dim, 1)
        self.shift_proj = nn.Conv2d(1, dim, 1)
        nn.init.trunc_normal_(self.scale_proj.weight, std=0.02)
        nn.init.constant_(self.scale_proj.bias, 1.0)
        nn.init.trunc_normal_(self.shift_proj.weight, std=0.02)
        nn.init.constant_(self.shift_proj.bias, 0.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # The statistics are computed in the parameters' dtype: inference in fp16/bf16 keeps this module in
        # float32 (fastpath.keep_fp32_islands), because (x - mean)^2 overflows fp16 for |x - mean| > 256.
        io_dtype = x.dtype
        x = x.to(self.weight.dtype)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = torch.sqrt((x - mean).pow(2).mean(dim=(1, 2, 3), keepdim=True) + self.eps)
        out = (x - mean) / std * self.weight + self.bias
        return out.to(io_dtype), self.scale_proj(std).to(io_dtype), self.shift_proj(mean).to(io_dtype)


# Windows per attention call: CUDA kernels put the batch (windows) on a grid axis limited to 65,535
# blocks, and older torch builds fail beyond it with "invalid configuration argument" (4K frames, or
# a batch of 2 at 1080p).  Windows are independent, so splitting them changes no value.
MAX_WINDOWS_PER_CALL = 32768


def sdpa_is_efficient(head_dim: int, dtype: torch.dtype, device_type: str) -> bool:
    """Whether ``F.scaled_dot_product_attention`` can use a fused kernel here (else the manual path is used).

    On CUDA the fused half-precision kernels need a head dimension that is a multiple of 8; with
    the paper model's head dimension 12, fp16/bf16 SDPA would fall back to its math kernel, which
    materialises every score matrix (about 1 GB at 1080p) and is slower than the manual path.
    """
    if device_type == "cuda" and dtype in (torch.float16, torch.bfloat16):
        return head_dim % 8 == 0
    return True


def instance_norm_fp32(x: torch.Tensor) -> torch.Tensor:
    """Instance norm (no affine) with float32 statistics, returned in the input's dtype."""
    return F.instance_norm(x.float()).to(x.dtype)


def log_relative_coords(window: int) -> torch.Tensor:
    """(N, N, 2) relative (dy, dx) of every token pair in a window, as sign(r) * log(1 + |r|)."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])              # (2, N), row-major
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).float()
    return torch.sign(rel) * torch.log1p(rel.abs())


class WindowAttention(nn.Module):
    """Multi-head self-attention inside one window, with an MLP-predicted relative position bias.

    Input ``qkv`` of shape (B*, N, 3*dim) holds q, k and v side by side; output (B*, N, dim).
    """

    def __init__(self, dim: int, num_heads: int, window: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.bias_mlp = nn.Sequential(nn.Linear(2, 256), nn.ReLU(inplace=True), nn.Linear(256, num_heads))
        # A fixed function of the window size, so it is not part of the state dict.
        self.register_buffer("rel_coords", log_relative_coords(window), persistent=False)
        self.use_sdpa = False

    def position_bias(self) -> torch.Tensor:
        """(heads, N, N) additive attention bias."""
        return self.bias_mlp(self.rel_coords).permute(2, 0, 1)

    def forward(self, qkv: torch.Tensor) -> torch.Tensor:
        b, n, _ = qkv.shape
        head_dim = self.dim // self.num_heads
        qkv = qkv.reshape(b, n, 3, self.num_heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        bias = self.position_bias().unsqueeze(0).to(q.dtype)
        fused = self.use_sdpa and sdpa_is_efficient(head_dim, q.dtype, q.device.type)
        if b <= MAX_WINDOWS_PER_CALL:
            out = self._attend(q, k, v, bias, fused)
        else:
            out = torch.cat([self._attend(q[i:i + MAX_WINDOWS_PER_CALL], k[i:i + MAX_WINDOWS_PER_CALL],
                                          v[i:i + MAX_WINDOWS_PER_CALL], bias, fused)
                             for i in range(0, b, MAX_WINDOWS_PER_CALL)])
        return out.transpose(1, 2).reshape(b, n, self.dim)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                fused: bool) -> torch.Tensor:
        if fused:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        return torch.softmax(attn + bias, dim=-1) @ v


class ConvAttentionMixer(nn.Module):
    """Token mixer: a 5x5 depth-wise conv branch plus (optionally) shifted-window attention.

    ``V`` is shared by both branches.  Shifting is done by reflect padding (``shift`` pixels on the
    left/top), not by a cyclic roll, so no attention mask is needed.
    """

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, use_attn: bool) -> None:
        super().__init__()
        self.window = window
        self.shift = shift
        self.use_attn = use_attn
        self.value = nn.Conv2d(dim, dim, 1)
        self.local = nn.Conv2d(dim, dim, 5, padding=2, groups=dim, padding_mode="reflect")
        self.proj = nn.Conv2d(dim, dim, 1)
        if use_attn:
            self.qk = nn.Conv2d(dim, 2 * dim, 1)
            self.attn = WindowAttention(dim, num_heads, window)

    def _window_attention(self, qkv: torch.Tensor) -> torch.Tensor:
        _, _, h, w = qkv.shape
        ws, s = self.window, self.shift
        mh, mw = (-h) % ws, (-w) % ws
        if s > 0:
            qkv = reflect_pad(qkv, s, (ws - s + mw) % ws, s, (ws - s + mh) % ws)
        else:
            qkv = reflect_pad(qkv, 0, mw, 0, mh)
        b, c, hp, wp = qkv.shape
        nh, nw = hp // ws, wp // ws
        tokens = qkv.reshape(b, c, nh, ws, nw, ws).permute(0, 2, 4, 3, 5, 1).reshape(b * nh * nw, ws * ws, c)
        out = self.attn(tokens)
        c_out = out.shape[-1]
        out = out.reshape(b, nh, nw, ws, ws, c_out).permute(0, 5, 1, 3, 2, 4).reshape(b, c_out, hp, wp)
        return out[:, :, s:s + h, s:s + w]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.value(x)
        local = self.local(v)
        if not self.use_attn:
            return self.proj(local)
        qkv = torch.cat([self.qk(x), v], dim=1)
        return self.proj(local + self._window_attention(qkv))


class TransformerBlock(nn.Module):
    """Mixer and MLP with residuals; only blocks with attention normalise (RLN) their input."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, window: int, shift: int,
                 use_attn: bool) -> None:
        super().__init__()
        self.use_attn = use_attn
        if use_attn:
            self.norm = RescaleNorm(dim)
        self.mixer = ConvAttentionMixer(dim, num_heads, window, shift, use_attn)
        hidden = int(dim * mlp_ratio)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_attn:
            y, rescale, rebias = self.norm(x)
            x = x + (self.mixer(y) * rescale + rebias)
        else:
            x = x + self.mixer(x)
        return x + self.fc2(F.relu(self.fc1(x)))


def attention_flags(depth: int, attn_ratio: float) -> list[bool]:
    """Which blocks of a stage use attention: the last ``attn_ratio * depth`` ones."""
    attn_depth = attn_ratio * depth
    return [i >= depth - attn_depth for i in range(depth)]


class TransformerStage(nn.Module):
    """A stack of blocks (upstream LEGM); odd blocks shift their windows by half a window."""

    def __init__(self, dim: int, depth: int, num_heads: int, mlp_ratio: float, attn_ratio: float,
                 window: int) -> None:
        super().__init__()
        flags = attention_flags(depth, attn_ratio)
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, mlp_ratio, window, 0 if i % 2 == 0 else window // 2, flags[i])
            for i in range(depth)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class SelectiveFusion(nn.Module):
    """Selective-kernel fusion of two same-shaped maps (upstream MFM, height 2).

    A channel attention computed from the pooled sum chooses, per channel, how to mix the inputs.
    """

    def __init__(self, dim: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(int(dim / reduction), 4)
        self.fc1 = nn.Conv2d(dim, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, dim * 2, 1, bias=False)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        n, c = a.shape[:2]
        pooled = (a + b).mean(dim=(2, 3), keepdim=True)
        weights = torch.softmax(self.fc2(F.relu(self.fc1(pooled))).view(n, 2, c, 1, 1), dim=1)
        return a * weights[:, 0] + b * weights[:, 1]


class MultiScaleAggregation(nn.Module):
    """Multi-scale aggregation attention (MSAAM).

    Scalar weights per sample for the three encoder levels (from their pooled means) re-weight
    them; the full-scale concatenation is then reduced to 1/2 and 1/4 scale for the decoder.
    Returns ``(half, quarter)``.
    """

    def __init__(self, dims: tuple[int, int, int], hidden: int) -> None:
        super().__init__()
        total = sum(dims)
        self.score1 = nn.Conv2d(total, hidden, 1)
        self.score2 = nn.Conv2d(hidden, 3, 1)
        self.to_half = nn.Conv2d(total, dims[1], 3, stride=2, padding=1)
        self.to_quarter = nn.Conv2d(total, dims[2], 5, stride=4, padding=1)
        # The published network also feeds ``fused`` to a branch whose output it never uses; only the
        # benchmark's "as published" reference sets this, to cost that wasted work.
        self.unused_branch: nn.Module | None = None

    def forward(self, e1: torch.Tensor, e2: torch.Tensor, e3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = torch.cat([e.mean(dim=(2, 3), keepdim=True) for e in (e1, e2, e3)], dim=1)
        w1, w2, w3 = torch.chunk(self.score2(F.relu(self.score1(pooled))), 3, dim=1)
        fused = torch.cat([
            e1 * w1,
            F.interpolate(e2 * w2, scale_factor=2.0, mode="nearest"),
            F.interpolate(e3 * w3, scale_factor=4.0, mode="nearest"),
        ], dim=1)
        if self.unused_branch is not None:
            self.unused_branch(fused)
        half = F.relu(instance_norm_fp32(self.to_half(fused)))
        quarter = F.relu(instance_norm_fp32(self.to_quarter(fused)))
        return half, quarter


class PatchSplit(nn.Module):
    """1x1 conv to ``out_ch * 4`` channels, then PixelShuffle(2): doubles the resolution."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch * 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), 2)
