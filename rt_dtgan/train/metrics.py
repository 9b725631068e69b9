"""Image quality measures on tensors in [-1, 1]: PSNR (also over a pixel mask) and SSIM."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_SSIM_C1 = 0.01**2
_SSIM_C2 = 0.03**2


def psnr(a: Tensor, b: Tensor, mask: Tensor | None = None) -> float:
    """PSNR in dB of images in [-1, 1] (measured on [0, 1]), over the pixels where ``mask``
    (broadcastable to a, bool) is set; inf for identical pixels, nan for an empty mask."""
    error = ((a - b) / 2) ** 2
    if mask is not None:
        mask = mask.expand_as(error)
        if not mask.any():
            return float("nan")
        error = error[mask]
    mse = error.mean().item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Per-image SSIM (Wang et al., 2004; Gaussian window 11, sigma 1.5) of (N, 3, S, S)
    images in [-1, 1], measured on [0, 1] -> (N,)."""
    x, y = (a + 1) / 2, (b + 1) / 2
    window = _gaussian_window(x.shape[1], x.device, x.dtype)

    def blur(image: Tensor) -> Tensor:
        return F.conv2d(image, window, groups=image.shape[1])

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    numerator = (2 * mu_x * mu_y + _SSIM_C1) * (2 * cov + _SSIM_C2)
    denominator = (mu_x**2 + mu_y**2 + _SSIM_C1) * (var_x + var_y + _SSIM_C2)
    return (numerator / denominator).mean(dim=(1, 2, 3))


def _gaussian_window(channels: int, device: torch.device, dtype: torch.dtype, size: int = 11, sigma: float = 1.5) -> Tensor:
    coordinates = torch.arange(size, device=device, dtype=dtype) - size // 2
    kernel = torch.exp(-(coordinates**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    return (kernel[:, None] * kernel[None, :]).expand(channels, 1, size, size).contiguous()
