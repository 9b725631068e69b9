"""PSNR and SSIM behave as their definitions say."""

from __future__ import annotations

import math

import torch

from rt_dtgan.train.metrics import psnr, ssim


def test_identical_images_score_perfectly():
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    assert psnr(image, image) == math.inf
    assert torch.allclose(ssim(image, image), torch.ones(2))


def test_psnr_matches_its_formula_and_respects_the_mask():
    a = torch.zeros(1, 3, 8, 8)
    b = a.clone()
    b[..., :4, :] = 0.2  # an error of 0.1 on [0, 1] over half the pixels
    assert abs(psnr(a, b) - 10 * math.log10(1 / (0.01 / 2))) < 1e-4
    top = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    top[..., :4, :] = True
    assert abs(psnr(a, b, top) - 20.0) < 1e-4
    assert psnr(a, b, ~top) == math.inf
    assert math.isnan(psnr(a, b, torch.zeros_like(top)))


def test_ssim_falls_with_noise_and_ignores_nothing_structural():
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, 64, 64, generator=generator) * 2 - 1
    slightly = (image + 0.05 * torch.randn(image.shape, generator=generator)).clamp(-1, 1)
    heavily = (image + 0.5 * torch.randn(image.shape, generator=generator)).clamp(-1, 1)
    assert 1 > ssim(image, slightly).item() > ssim(image, heavily).item()
    assert ssim(image, -image).item() < 0
