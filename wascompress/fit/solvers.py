"""Least-squares fits of one conv's kept taps: the normal equations of a layer, gathered batch by batch.

For a conv of a DOM, ``X_S`` are its input patches in the DOM network restricted to the taps its window
keeps, and ``Y`` the trained network's output of that conv (its own input, all of PW's taps, no bias).
Two fits of the same data (issue 35's options):

- :class:`TapsFit` — every kept filter's window taps on their own, the ridge regression
  ``W' = (X_Sᵀ X_S + λI)⁻¹ (X_Sᵀ Y + λ W_window)``, pulled towards PW's window;
- :class:`SharedMatrixFit` — Once-for-All's elastic-kernel idea: one small matrix per layer maps PW's
  k×k taps to the window's h×w, shared by every filter and input channel (``W'[o, i] = M · W[o, i]``),
  ``M`` pulled towards the plain window.

Sums are kept in float64; ``λ`` is ``ridge`` times the mean of the Gram matrix's diagonal.
"""

from __future__ import annotations

import torch
from torch import Tensor


def ridge_solve(gram: Tensor, rhs: Tensor, prior: Tensor, ridge: float) -> Tensor:
    """``(G + λI)⁻¹ (rhs + λ prior)`` for a batch of Gram matrices ``G`` [..., F, F], ``λ`` relative to
    the mean of each one's diagonal."""
    diag = torch.diagonal(gram, dim1=-2, dim2=-1)
    lam = (ridge * diag.mean(dim=-1).clamp_min(1e-12))[..., None, None]
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    return torch.linalg.solve(gram + lam * eye, rhs + lam * prior)


class TapsFit:
    """Per-filter ridge regression of a grouped conv's kept taps (see the module docstring).

    ``cols``: patches [groups, features, N] (features = in/groups · h · w); ``target``: [groups, out/groups, N].
    """

    def __init__(self, groups: int, features: int, outputs: int) -> None:
        self.gram = torch.zeros(groups, features, features, dtype=torch.float64)
        self.cross = torch.zeros(groups, features, outputs, dtype=torch.float64)

    def add(self, cols: Tensor, target: Tensor) -> None:
        cols, target = cols.double(), target.double()
        self.gram += cols @ cols.transpose(1, 2)
        self.cross += cols @ target.transpose(1, 2)

    def solve(self, window: Tensor, pw: Tensor, ridge: float) -> Tensor:
        """The fitted window [out, in/groups, h, w]; ``window`` is PW's window of the same shape (the prior)."""
        groups, features, outputs = self.cross.shape
        prior = window.double().reshape(groups, outputs, features).transpose(1, 2)
        solved = ridge_solve(self.gram, self.cross, prior, ridge)
        return solved.transpose(1, 2).reshape(window.shape).to(window.dtype)


class SharedMatrixFit:
    """One matrix ``M`` [h·w, k·k] per layer, shared by all its filters (see the module docstring).

    The output is linear in ``M``: ``y[n, o] = Σ_{s,t} M[s, t] Z[n, o, s, t]`` with
    ``Z[n, o, s, t] = Σ_i X[n, i, s] W[o, i, t]``, so ``M`` is a ridge regression on ``Z``.
    """

    CHUNK = 1 << 22  # elements of Z per pass

    def __init__(self, window_taps: int, kernel_taps: int) -> None:
        size = window_taps * kernel_taps
        self.shape = (window_taps, kernel_taps)
        self.gram = torch.zeros(size, size, dtype=torch.float64)
        self.cross = torch.zeros(size, 1, dtype=torch.float64)

    def add(self, cols: Tensor, target: Tensor, pw: Tensor) -> None:
        """``cols`` [groups, in/groups · h·w, N], ``target`` [groups, out/groups, N], ``pw`` [out, in/groups, kh, kw]."""
        groups, _, count = cols.shape
        s, t = self.shape
        w = pw.double().reshape(groups, pw.shape[0] // groups, pw.shape[1], t)  # [g, o, i, t]
        chunk = max(1, self.CHUNK // (pw.shape[0] * s * t))  # positions per pass: Z stays small
        for start in range(0, count, chunk):
            x = cols[..., start:start + chunk].double()
            x = x.reshape(groups, -1, s, x.shape[-1])  # [g, i, s, n]
            z = torch.einsum("gisn,goit->gonst", x, w).reshape(-1, s * t)
            self.gram += z.T @ z
            self.cross += z.T @ target[..., start:start + chunk].double().reshape(-1, 1)

    def solve(self, window: Tensor, pw: Tensor, ridge: float, selection: Tensor) -> Tensor:
        """The fitted window [out, in/groups, h, w]; ``selection`` [h·w, k·k] is the plain window's matrix."""
        s, t = self.shape
        matrix = ridge_solve(self.gram, self.cross, selection.double().reshape(-1, 1), ridge).reshape(s, t)
        fitted = torch.einsum("st,oit->ois", matrix, pw.double().flatten(2))
        return fitted.reshape(window.shape).to(window.dtype)
