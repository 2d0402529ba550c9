"""Multinomial logistic regression with an L2 penalty on frozen embeddings, and the strength sweep.

The linear-probe recipe of CLIP (Radford et al. 2021, appendix A.3): L-BFGS on the regularised cross-entropy;
the L2 strength is picked on a validation split by a parametric search that starts from 1e-6, 1e-4, ..., 1e6
and halves the step around the best value until it reaches 8 steps per decade; the final classifier is fit
again on train + validation with that strength.

Features are standardised (training mean and std) while fitting, which keeps the strengths comparable
across backbones and L-BFGS well conditioned; the scaling is folded back into the returned weights, so the
head is one affine map of the raw embedding: logits = x @ weight.T + bias.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# log10 of the strengths tried first, and the finest step (1/8 decade), as in CLIP's sweep.
COARSE = (-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0)
FINEST_STEP = 0.125
MAX_ITER = 1000
# Below this many feature values a fit is a few hundred microseconds of work per step, and torch's intra-op
# threads only add hand-off waits (30-60x slower on a loaded 2-core machine, measured): fit on one thread.
SINGLE_THREAD_BELOW = 4_000_000


@dataclass
class Head:
    """A fitted linear classifier: weight (K, D) and bias (K,) float32 on the raw embedding, l2 the strength."""

    weight: np.ndarray
    bias: np.ndarray
    l2: float

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64) @ self.weight.T.astype(np.float64) + self.bias.astype(np.float64)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(x), axis=1)


def class_weights(targets: np.ndarray, num_classes: int) -> np.ndarray:
    """'balanced' weights n / (K * n_k) per class (as scikit-learn's), so every class counts the same."""
    counts = np.bincount(targets, minlength=num_classes).astype(np.float64)
    return np.where(counts > 0, len(targets) / (num_classes * np.maximum(counts, 1)), 0.0)


def fit(x: np.ndarray, y: np.ndarray, num_classes: int, l2: float, *, sample_weight: np.ndarray | None = None
        ) -> Head:
    """Minimise mean_i w_i CE(x_i W^T + b, y_i) / mean_i w_i + l2/2 ||W||^2 (standardised x; b unpenalised)."""
    import torch

    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)  # a constant feature carries nothing; leave it unscaled
    xs = torch.from_numpy((x - mean) / std)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    w = torch.ones(len(x), dtype=torch.float64) if sample_weight is None else \
        torch.as_tensor(sample_weight, dtype=torch.float64)
    w = w / w.mean()
    weight = torch.zeros(num_classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=MAX_ITER, tolerance_grad=1e-7,
                            tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        ce = torch.nn.functional.cross_entropy(xs @ weight.T + bias, yt, reduction="none")
        loss = (w * ce).mean() + 0.5 * l2 * (weight * weight).sum()
        loss.backward()
        return loss

    threads = torch.get_num_threads()
    if x.size < SINGLE_THREAD_BELOW:
        torch.set_num_threads(1)
    try:
        with torch.enable_grad():
            opt.step(closure)
    finally:
        torch.set_num_threads(threads)
    wr = weight.detach().numpy() / std  # fold the standardisation back in: (x - m)/s @ W^T = x @ (W/s)^T - m/s @ W^T
    br = bias.detach().numpy() - wr @ mean
    return Head(weight=wr.astype(np.float32), bias=br.astype(np.float32), l2=float(l2))


def log_loss(head: Head, x: np.ndarray, y: np.ndarray) -> float:
    z = head.logits(x)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def sweep(x_train, y_train, x_val, y_val, num_classes: int, *, sample_weight=None, val_weight=None
          ) -> tuple[float, list[dict]]:
    """(best l2, every try as {l2, val_accuracy, val_loss}) by CLIP's parametric search.

    Best = highest (weighted) validation accuracy, then the lowest validation cross-entropy: with small
    validation splits many strengths tie on accuracy, and the loss still tells them apart.
    """
    y_val = np.asarray(y_val)
    vw = np.ones(len(y_val)) if val_weight is None else np.asarray(val_weight, dtype=np.float64)
    tried: dict[float, dict] = {}

    def score(log_l2: float) -> tuple[float, float]:
        key = round(log_l2, 6)
        if key not in tried:
            head = fit(x_train, y_train, num_classes, 10.0 ** log_l2, sample_weight=sample_weight)
            acc = float(np.sum(vw * (head.predict(x_val) == y_val)) / np.sum(vw))
            tried[key] = {"l2": 10.0 ** log_l2, "val_accuracy": acc, "val_loss": log_loss(head, x_val, y_val)}
        t = tried[key]
        return (t["val_accuracy"], -t["val_loss"])

    best = max(COARSE, key=score)
    step = COARSE[1] - COARSE[0]
    while step > FINEST_STEP:
        step /= 2
        best = max((best - step, best, best + step), key=score)
    history = [tried[k] for k in sorted(tried)]
    return 10.0 ** best, history
