"""The Qwen3-ASR audio encoder's windowed attention in a few batched calls instead of one per window.

The encoder attends within windows of about 8 s of audio. Without flash-attn's varlen kernel, transformers runs it
window by window, one SDPA call each, and reads the window lengths back from the GPU in every layer: an aligned hour
on the H200 made 11,520 attention calls and 716 host syncs for 0.71 s of GPU work in 1.25 s (bench/RESULTS.md, run
15). Registered under a name containing "flash", the encoder takes its packed path instead and hands this function
every window at once with their boundaries (`cu_seqlens`). Here:

- on CUDA, when torch has `torch.nn.attention.varlen` (Flash Attention over packed sequences), one call per layer;
- otherwise windows of equal length go through SDPA together, one call per distinct length (most windows are full
  length; the last one of each clip is shorter). Each window still attends only to itself, through the same SDPA
  kernel as before, so the result is what the per-window loop gives.

The windows' layout is worked out once per forward pass (the boundary tensor is the same object in every layer),
not once per layer.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

NAME = "flash_windowed_sdpa"  # "flash" in the name routes the encoder to its packed (cu_seqlens) path
PACKED = "packed"  # the two ways, for benchmarks: force_way(PACKED) or force_way(GROUPED)
GROUPED = "grouped"
_state = threading.local()
_forced: list[str | None] = [None]


@dataclass(frozen=True)
class _Plan:
    """Windows grouped by length: (length, index of every position of those windows, window count)."""
    groups: tuple


def _plan(cu_seqlens):
    """The grouping for these boundaries, computed on the first layer and reused by the next ones."""
    cached = getattr(_state, "plan", None)
    if cached is not None and cached[0] is cu_seqlens:
        return cached[1]
    import torch

    bounds = cu_seqlens.tolist()  # one host sync per forward pass
    by_length: dict[int, list[int]] = {}
    for start, end in zip(bounds, bounds[1:]):
        if end > start:
            by_length.setdefault(end - start, []).append(start)
    groups = []
    for length, starts in by_length.items():
        index = (torch.tensor(starts, dtype=torch.long)[:, None] + torch.arange(length)[None, :]).reshape(-1)
        groups.append((length, index.to(cu_seqlens.device, non_blocking=True), len(starts)))
    plan = _Plan(tuple(groups))
    _state.plan = (cu_seqlens, plan)
    return plan


def packed_attention():
    """torch's packed-sequence Flash Attention (`varlen_attn`), or None where this torch has none."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


def force_way(way: str | None) -> None:
    """Benchmarks only: PACKED, GROUPED, or None for the automatic choice."""
    _forced[0] = way


def windowed_attention(module, query, key, value, attention_mask=None, scaling=None, dropout=0.0,
                       cu_seq_lens_q=None, cu_seq_lens_k=None, max_length_q=None, max_length_k=None, **kwargs):
    """transformers' attention-function interface: q, k, v as (1, heads, positions, dim) holding every window;
    returns (output as (1, positions, heads, dim), None)."""
    import torch
    import torch.nn.functional as F

    if cu_seq_lens_q is None:  # not the encoder's packed call: plain attention over everything
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=scaling)
        return out.transpose(1, 2).contiguous(), None
    way = _forced[0]
    varlen = packed_attention() if way != GROUPED and query.is_cuda and query.dtype in (torch.float16, torch.bfloat16) \
        else None
    if varlen is not None:
        q, k, v = (t[0].transpose(0, 1) for t in (query, key, value))  # (positions, heads, dim)
        cu = cu_seq_lens_q.to(torch.int32)
        out = varlen(q, k, v, cu, cu, int(max_length_q), int(max_length_q))
        return out.unsqueeze(0), None
    q, k, v = query[0], key[0], value[0]  # (heads, positions, dim)
    heads, positions, dim = q.shape
    out = torch.empty_like(q)
    for length, index, count in _plan(cu_seq_lens_q).groups:
        def windows(t):
            return t.index_select(1, index).view(heads, count, length, dim).transpose(0, 1)

        got = F.scaled_dot_product_attention(windows(q), windows(k), windows(v), scale=scaling)
        out.index_copy_(1, index, got.transpose(0, 1).reshape(heads, count * length, dim))
    return out.transpose(0, 1).unsqueeze(0), None


def use_windowed_attention(model) -> None:
    """Point every Qwen3-ASR audio encoder inside `model` at `windowed_attention` (registered once).

    The encoder and its layers get a copy of their config that names it: the model's own config keeps "sdpa", so
    saving the model or building another from its config never asks transformers for a kernel of that name."""
    import copy

    from transformers import AttentionInterface

    AttentionInterface.register(NAME, windowed_attention)
    for encoder in [m for m in model.modules() if type(m).__name__ == "Qwen3ASREncoder"]:
        shared, own = encoder.config, copy.copy(encoder.config)
        own._attn_implementation = NAME
        for sub in encoder.modules():
            if getattr(sub, "config", None) is shared:
                sub.config = own
