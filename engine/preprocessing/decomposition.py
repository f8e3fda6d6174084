"""Structure / texture decomposition by interval-gradient smoothing (seed 000, eqs. 1-3,
after Lee et al., "Structure-texture decomposition of images with interval gradient", 2017).

For each axis the forward gradient ``(∇I)_p`` is compared with the interval gradient
``(∇_Ω I)_p = g^r_σ(I)(p) - g^l_σ(I)(p)`` (difference of one-sided Gaussian means right and
left of p). Gradients are rescaled (eq. 1)::

    (∇I)'_p = w_p (∇I)_p  if sign((∇I)_p) == sign((∇_Ω I)_p)  else 0,
    w_p = min(1, (|(∇_Ω I)_p| + ε_s) / (|(∇I)_p| + ε_s)),      ε_s = 1e-4     (eq. 2)

and the signal is re-integrated from the rescaled gradients (mean of the left-to-right and
right-to-left integrations), then its drift is removed by adding back the Gaussian low-pass
(σ = 6σ_r) of the residual, a light stand-in for Lee et al.'s guided-filter fitting step. Axes
alternate for ``iterations`` rounds with σ halving each round. The structure S is the result,
the texture T = I - S. Multi-channel inputs sum the gradient magnitudes over channels (eq. 3).
Works on torch tensors (B, C, H, W) inside models and on numpy 2D images.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

EPS_S = 1e-4


def _one_sided_kernels(sigma: float, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, int]:
    r = max(int(math.ceil(3 * sigma)), 1)
    k = torch.exp(-0.5 * (torch.arange(r, device=device, dtype=dtype) / sigma) ** 2)
    return k / k.sum(), r


def _smooth_axis(x: torch.Tensor, sigma: float, eps: float) -> torch.Tensor:
    """One rescale + re-integration pass along the last axis of (N, C, L)."""
    n, c, length = x.shape
    k, r = _one_sided_kernels(sigma, x.device, x.dtype)
    flat = x.reshape(n * c, 1, length)
    padded = F.pad(flat, (r, r), mode="replicate")
    # right mean at p: sum_q k[q] * x[p + 1 + q]; left mean at p: sum_q k[q] * x[p - q]
    right = F.conv1d(padded[..., r + 1:], k.view(1, 1, -1))[..., :length - 1]
    left = F.conv1d(padded[..., 1:], k.flip(0).view(1, 1, -1))[..., :length - 1]
    interval = (right - left).reshape(n, c, length - 1)
    grad = x[..., 1:] - x[..., :-1]
    gi = interval.abs().sum(1, keepdim=True)  # eq. 3: sums over channels
    gg = grad.abs().sum(1, keepdim=True)
    w = torch.clamp((gi + eps) / (gg + eps), max=1.0)
    same = torch.sign(grad) == torch.sign(interval)
    g2 = torch.where(same, grad * w, torch.zeros_like(grad))
    fwd = torch.cat([x[..., :1], x[..., :1] + torch.cumsum(g2, -1)], -1)
    bwd = torch.cat([x[..., -1:] - torch.flip(torch.cumsum(torch.flip(g2, [-1]), -1), [-1]), x[..., -1:]], -1)
    out = 0.5 * (fwd + bwd)
    # drift correction: add back the low-frequency part of the residual (the role of the
    # guided-filter fitting step of Lee et al.), so S follows the input's local mean
    resid = (x - out).reshape(n * c, 1, length)
    kc, rc = _one_sided_kernels(2.0 * r, x.device, x.dtype)
    kc = torch.cat([kc.flip(0)[:-1], kc])
    kc = (kc / kc.sum()).view(1, 1, -1)
    low = F.conv1d(F.pad(resid, (rc - 1, rc - 1), mode="replicate"), kc)
    return out + low.reshape(n, c, length)


@torch.no_grad()
def interval_gradient_smooth(x: torch.Tensor, sigma: float = 3.0, iterations: int = 3,
                             eps: float = EPS_S) -> torch.Tensor:
    """Structure component S of a (B, C, H, W) tensor in [0, 1]."""
    s = x.float()
    for it in range(iterations):
        sig = max(sigma / 2 ** it, 0.5)
        b, c, h, w = s.shape
        rows = _smooth_axis(s.permute(0, 2, 1, 3).reshape(b * h, c, w), sig, eps)
        s = rows.reshape(b, h, c, w).permute(0, 2, 1, 3)
        cols = _smooth_axis(s.permute(0, 3, 1, 2).reshape(b * w, c, h), sig, eps)
        s = cols.reshape(b, w, c, h).permute(0, 2, 3, 1)
    return s.contiguous().to(x.dtype)


def structure_texture(image: np.ndarray | torch.Tensor, sigma: float = 3.0, iterations: int = 3,
                      eps: float = EPS_S) -> tuple:
    """Split an image into (structure, texture) with ``image = structure + texture``.

    Accepts a 2D numpy array in [0, 1] (returns numpy float32) or a (B, C, H, W) tensor.
    """
    if isinstance(image, torch.Tensor):
        s = interval_gradient_smooth(image, sigma, iterations, eps)
        return s, image - s
    arr = torch.from_numpy(np.asarray(image, dtype=np.float32))[None, None]
    s = interval_gradient_smooth(arr, sigma, iterations, eps)[0, 0].numpy()
    return s, np.asarray(image, dtype=np.float32) - s
