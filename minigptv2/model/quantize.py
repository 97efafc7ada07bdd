"""Weight-only int8 and int4 for the language model's linear layers, for CPU inference.

Decoding reads every weight once per token, so its speed is set by bytes read: int8 weights are a
quarter of fp32 and half of bf16, int4 an eighth of fp32. Activations stay in floating point; only
the weights are rounded.

* int8: one scale per output channel (symmetric, ``scale = max|w| / 127``), the scheme of
  gpt-fast and torchao's ``int8_weight_only``.
* int4: one scale and one zero point per group of ``group_size`` input channels of each output
  channel (asymmetric, ``w = (q - 8) * scale + zero`` with ``q`` in 0..15), the scheme of
  gpt-fast's and torchao's ``int4_weight_only``, stored in PyTorch's CPU packing.

Two paths per layer, chosen by the number of rows (tokens) in the input:

* decode (at most ``MATRIX_ROWS`` rows): PyTorch's kernels ``_weight_int8pack_mm`` and
  ``_weight_int4pack_mm_for_cpu`` multiply by the packed weights without materialising a
  dequantised copy. They are vectorised for bf16 activations only (fp32 takes a scalar loop, 7-14x
  slower), hence the cast to bf16 and back.
* prefill (more rows: the prompt and the image tokens): a block of the weight is dequantised into
  the matmul dtype and multiplied by a BLAS GEMM, block after block, so prefill runs at the speed
  of a floating-point matmul instead of the decode kernels' 1-40 GFLOP/s.

The int4 packing is PyTorch's and depends on the CPU (blocks of 64 output channels with AVX-512,
32 with AVX2): it is detected once by packing a probe, and a quantised model is a runtime object,
never saved. Inference only: the quantised weights are buffers and do not train. The README's
speed section has the measurements behind the choices (group size, ``MATRIX_ROWS``, the kernels).
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from minigptv2.errors import ConfigError

_INT8_KERNEL = getattr(torch.ops.aten, "_weight_int8pack_mm", None)
_INT4_PACK = getattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu", None)
_INT4_KERNEL = getattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu", None)

# Rows up to which the decode kernels run; above, dequantise-then-GEMM. Measured on one AVX2
# thread (4096x4096, group 128, `python -m benchmarks.quantized_linear --rows 4 16 64 296`): the
# int4 kernel costs ~1.3 ms per row, the GEMM path ~50 ms of dequantisation plus ~0.8 ms per row;
# at 64 rows 82 ms against 105 ms, at 296 rows the GEMM path is 1.7x faster. A chat turn stays on
# the kernel; a prompt with an image (256 image tokens for the released model) takes the GEMM.
MATRIX_ROWS = 64
# Input channels dequantised per GEMM block: 256 x 4096 fp32 is 4 MB, about an L2 + L3 share.
BLOCK_IN = 256
INT4_GROUP_SIZES = (32, 64, 128, 256)  # what the CPU kernel accepts
DEFAULT_GROUP_SIZE = 128
# Output channels are padded to a multiple of the widest kernel block (AVX-512's 64), so every
# block is full and has one layout.
OUT_MULTIPLE = 64


def _require(kernel: object, name: str, quantization: str, version: str) -> None:
    if kernel is None:
        raise ConfigError(
            f"torch {torch.__version__} has no {name} kernel; --quantize {quantization} needs "
            f"torch >= {version} (upgrade torch, or drop --quantize to run in floating point)"
        )


@functools.cache
def _native_bf16() -> bool:
    from minigptv2.hardware import native_bf16

    return native_bf16()


def matmul_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a prefill GEMM runs in: bf16 only where the CPU multiplies bf16 natively.

    Without AVX512-BF16/AMX, a bf16 GEMM is emulated at about a seventh of the fp32 rate.
    """
    if dtype == torch.bfloat16 and (torch.cuda.is_available() or _native_bf16()):
        return torch.bfloat16
    return torch.float32


def _rows(x: torch.Tensor, in_features: int) -> torch.Tensor:
    return x.reshape(-1, in_features)  # (..., in) -> (tokens, in)


class Int8Linear(nn.Module):
    """``y = x Wᵀ + b`` with ``W`` stored as int8 and one bf16 scale per output channel."""

    def __init__(self, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.in_features = weight.shape[1]
        self.out_features = weight.shape[0]
        self.register_buffer("weight_int8", weight.contiguous())  # (out, in) int8
        self.register_buffer("scales", scales)  # (out,) bf16
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        weight = linear.weight.detach().float()
        scales = weight.abs().amax(dim=1).clamp(min=1e-8) / 127  # (out,)
        quantized = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(quantized, scales.to(torch.bfloat16), bias)

    def dequantize(self) -> torch.Tensor:
        """The fp32 weight both paths multiply by: (out, in)."""
        return self.weight_int8.float() * self.scales.float()[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = _rows(x, self.in_features)
        if flat.shape[0] > MATRIX_ROWS:
            y = self._gemm(flat)
        else:
            y = _INT8_KERNEL(flat.to(torch.bfloat16), self.weight_int8, self.scales)
        y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def _gemm(self, flat: torch.Tensor) -> torch.Tensor:
        """(tokens, in) -> (tokens, out): the per-channel scale factors out of the sum, so a
        block is just int8 -> float and the scales multiply the result once."""
        dtype = matmul_dtype(flat.dtype)
        flat = flat.to(dtype)
        out = flat.new_zeros(flat.shape[0], self.out_features)
        for start in range(0, self.in_features, BLOCK_IN):
            block = self.weight_int8[:, start : start + BLOCK_IN].to(dtype)  # (out, block)
            out.addmm_(flat[:, start : start + BLOCK_IN], block.t())
        return out * self.scales.to(dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weights"


# -- int4 ----------------------------------------------------------------------------------------


def _unpack_halves(packed: torch.Tensor, block: int) -> torch.Tensor:
    """AVX2/AVX-512 layout: per block of ``block`` output channels and per input channel, byte
    ``j`` holds channel ``j`` (low nibble) and channel ``j + block/2`` (high nibble)."""
    low, high = packed & 15, packed >> 4  # (blocks, in, block/2) each
    return torch.cat([low, high], dim=-1)  # (blocks, in, block)


def _unpack_pairs(packed: torch.Tensor, block: int) -> torch.Tensor:
    """Scalar-build layout: byte ``j`` holds channels ``2j`` (low) and ``2j + 1`` (high)."""
    pairs = torch.stack([packed & 15, packed >> 4], dim=-1)  # (blocks, in, block/2, 2)
    return pairs.flatten(-2)  # (blocks, in, block)


# (block of output channels, how a byte holds two of them): the layouts of PyTorch's
# weight_to_int4pack_kernel (aten/src/ATen/native/cpu/int4mm_kernel.cpp) for full blocks.
_LAYOUTS = {
    "avx512": (64, _unpack_halves),
    "avx2": (32, _unpack_halves),
    "scalar": (32, _unpack_pairs),
}


def _pack(q: torch.Tensor) -> torch.Tensor:
    """(out, in) int32 in 0..15 -> PyTorch's CPU int4 packing of this machine, (out, in/2) uint8."""
    return _INT4_PACK(q.to(torch.int32).contiguous(), 1)


@functools.cache
def packing_layout() -> str:
    """Which of ``_LAYOUTS`` this torch and CPU pack in, found by packing a probe."""
    _require(_INT4_PACK, "_convert_weight_to_int4pack_for_cpu", "int4", "2.6")
    probe = torch.randint(0, 16, (2 * OUT_MULTIPLE, 64), generator=torch.Generator().manual_seed(0))
    packed = _pack(probe)
    for name in _LAYOUTS:
        if torch.equal(_unpack_transposed(packed, probe.shape[1], name).t(), probe.to(torch.uint8)):
            return name
    raise ConfigError(
        f"torch {torch.__version__} packs int4 weights in a layout this version of minigptv2 does "
        f"not know (CPU capability {torch.backends.cpu.get_cpu_capability()}); use --quantize int8"
    )


def _unpack_transposed(packed: torch.Tensor, in_features: int, layout: str) -> torch.Tensor:
    """Packed (out, in/2) uint8 -> q transposed, (in, out) uint8 in 0..15."""
    block, unpack = _LAYOUTS[layout]
    blocks = packed.numel() * 2 // (in_features * block)
    values = unpack(packed.view(blocks, in_features, block // 2), block)  # (blocks, in, block)
    return values.permute(1, 0, 2).reshape(in_features, blocks * block)  # (in, out)


def unpack_int4(packed: torch.Tensor, in_features: int) -> torch.Tensor:
    """Packed (out, in/2) uint8 -> (out, in) uint8 in 0..15; the inverse of the CPU packing."""
    return _unpack_transposed(packed, in_features, packing_layout()).t().contiguous()


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """(out, in) integers in 0..15 -> PyTorch's CPU int4 packing; ``out`` a multiple of 64."""
    if q.shape[0] % OUT_MULTIPLE or q.shape[1] % 2:
        raise ConfigError(
            f"int4 packing needs a multiple of {OUT_MULTIPLE} output channels and an even number "
            f"of input channels, got {tuple(q.shape)}"
        )
    return _pack(q)


class Int4Linear(nn.Module):
    """``y = x Wᵀ + b`` with ``W`` stored as 4-bit integers, a scale and a zero per group.

    Shapes that do not fit the kernel are padded with zero weights: input channels to a multiple
    of the group size (the input gets zero columns), output channels to a multiple of 64 (the
    extra outputs are dropped). Scales and zeros are bf16, the dtype the kernel reads them in.
    """

    def __init__(
        self,
        packed: torch.Tensor,
        scales_and_zeros: torch.Tensor,
        bias: torch.Tensor | None,
        in_features: int,
        out_features: int,
        group_size: int,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.group_size = group_size
        self.padded_in = scales_and_zeros.shape[0] * group_size
        self.register_buffer("weight_int4", packed)  # (padded out, padded in / 2) uint8
        self.register_buffer("scales_and_zeros", scales_and_zeros)  # (groups, padded out, 2)
        self.register_buffer("bias", bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int = DEFAULT_GROUP_SIZE) -> Int4Linear:
        out_features, in_features = linear.weight.shape
        padded_in = -(-in_features // group_size) * group_size
        padded_out = -(-out_features // OUT_MULTIPLE) * OUT_MULTIPLE
        weight = linear.weight.detach().float().new_zeros(padded_out, padded_in)
        weight[:out_features, :in_features] = linear.weight.detach().float()
        groups = weight.view(padded_out, padded_in // group_size, group_size)
        low, high = groups.amin(dim=-1), groups.amax(dim=-1)  # (out, groups)
        # Round the parameters to the kernel's bf16 first, then the weights against them.
        scales = ((high - low) / 15).clamp(min=1e-6).bfloat16().float()
        zeros = (low + 8 * scales).bfloat16().float()
        offset = zeros - 8 * scales  # the value of q = 0
        q = torch.round((groups - offset[..., None]) / scales[..., None]).clamp(0, 15)
        packed = pack_int4(q.view(padded_out, padded_in))
        # (out, groups, 2) -> (groups, out, 2): the kernel's order
        scales_and_zeros = torch.stack([scales, zeros], dim=-1).transpose(0, 1).contiguous()
        bias = None if linear.bias is None else linear.bias.detach().clone()
        return cls(
            packed,
            scales_and_zeros.bfloat16(),
            bias,
            in_features,
            out_features,
            group_size,
        )

    def _dequantize_block(self, start: int, stop: int, dtype: torch.dtype) -> torch.Tensor:
        """Input channels ``start:stop`` (whole groups) of Wᵀ in ``dtype``: (stop - start, out)."""
        rows = stop - start
        padded_out = self.scales_and_zeros.shape[1]
        block, unpack = _LAYOUTS[packing_layout()]
        packed = self.weight_int4.view(padded_out // block, self.padded_in, block // 2)
        q = unpack(packed[:, start:stop], block)  # (blocks, rows, block)
        q = q.permute(1, 0, 2).reshape(rows // self.group_size, self.group_size, padded_out)
        parameters = self.scales_and_zeros[start // self.group_size : stop // self.group_size]
        scales = parameters[..., 0].to(dtype)[:, None]  # (groups, 1, out)
        offset = parameters[..., 1].to(dtype)[:, None] - 8 * scales
        return torch.addcmul(offset, q.to(dtype), scales).view(rows, padded_out)

    def dequantize(self) -> torch.Tensor:
        """The fp32 weight both paths multiply by: (out, in)."""
        weight = self._dequantize_block(0, self.padded_in, torch.float32)
        return weight[: self.in_features, : self.out_features].t()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = _rows(x, self.in_features)
        if self.padded_in != self.in_features:
            flat = nn.functional.pad(flat, (0, self.padded_in - self.in_features))
        if flat.shape[0] > MATRIX_ROWS:
            y = self._gemm(flat)
        else:
            y = _INT4_KERNEL(
                flat.to(torch.bfloat16), self.weight_int4, self.group_size, self.scales_and_zeros
            )
        y = y[:, : self.out_features].to(x.dtype).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias.to(x.dtype)

    def _gemm(self, flat: torch.Tensor) -> torch.Tensor:
        """(tokens, padded in) -> (tokens, padded out), ``BLOCK_IN`` input channels at a time."""
        dtype = matmul_dtype(flat.dtype)
        flat = flat.to(dtype)
        out = flat.new_zeros(flat.shape[0], self.scales_and_zeros.shape[1])
        step = max(BLOCK_IN // self.group_size, 1) * self.group_size
        for start in range(0, self.padded_in, step):
            stop = min(start + step, self.padded_in)
            out.addmm_(flat[:, start:stop], self._dequantize_block(start, stop, dtype))
        return out

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"int4 weights in groups of {self.group_size}"
        )


# -- whole models --------------------------------------------------------------------------------


def _linears(module: nn.Module) -> list[tuple[str, nn.Linear]]:
    """Every ``nn.Linear`` under ``module`` but LoRA adapters, which must stay trainable floats."""
    return [
        (name, child)
        for name, child in module.named_modules()
        if isinstance(child, nn.Linear) and "lora_" not in name
    ]


def _replace(module: nn.Module, name: str, replacement: nn.Module) -> None:
    parent_name, _, attribute = name.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    setattr(parent, attribute, replacement)


def _check_finite(name: str, linear: nn.Linear, quantization: str) -> None:
    if not torch.isfinite(linear.weight).all():
        raise ConfigError(
            f"layer {name} has non-finite weights (inf or nan), which {quantization} cannot "
            "represent; fix the checkpoint, or load without --quantize"
        )


def quantize_int8(module: nn.Module) -> int:
    """Replace every ``nn.Linear`` under ``module`` but LoRA adapters; returns how many."""
    _require(_INT8_KERNEL, "_weight_int8pack_mm", "int8", "2.3")
    targets = _linears(module)
    for name, linear in targets:
        _check_finite(name, linear, "int8")
    for name, linear in targets:
        _replace(module, name, Int8Linear.from_linear(linear))
    return len(targets)


def quantize_int4(module: nn.Module, group_size: int = DEFAULT_GROUP_SIZE) -> int:
    """Replace every ``nn.Linear`` under ``module`` but LoRA adapters with ``Int4Linear``.

    Returns how many. Every layer is checked before any is replaced, so a refusal leaves the
    model as it was.
    """
    _require(_INT4_KERNEL, "_weight_int4pack_mm_for_cpu", "int4", "2.6")
    if group_size not in INT4_GROUP_SIZES:
        raise ConfigError(
            f"int4 group size {group_size} is not one the CPU kernel takes; choose one of "
            f"{INT4_GROUP_SIZES}"
        )
    packing_layout()
    targets = _linears(module)
    for name, linear in targets:
        _check_finite(name, linear, "int4")
    for name, linear in targets:
        _replace(module, name, Int4Linear.from_linear(linear, group_size))
    return len(targets)
