"""Speaker embeddings -> speaker labels, by spectral clustering in torch (on the embeddings' device, so a GPU job
never leaves the GPU): a pruned cosine-affinity graph, its Laplacian's eigenvectors, k-means on them. The number of
speakers is the one asked for, else where the Laplacian's eigenvalues jump most within [fewest, most].
"""
from __future__ import annotations

import numpy as np
import torch

# Each window keeps edges to its nearest 5 % of windows, and at least KEEP_MIN (a quarter of them in a short file):
# fewer left a few-minute talk's graph in pieces (17 speakers found for 2 voices; 30-40 neighbours needed, measured
# with a pretrained stand-in model, bench/RESULTS.md).
KEEP_SHARE = 0.05
KEEP_MIN = 40
KMEANS_ITERS = 30
KMEANS_TRIES = 4


def cluster(embeddings: torch.Tensor, fewest: int = 1, most: int = 20, *, seed: int = 0) -> np.ndarray:
    """Labels 0..k-1 for `embeddings` (n, d); k is within [fewest, most] and at most n."""
    n = embeddings.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    most = max(1, min(most, n))
    fewest = max(1, min(fewest, most))
    if most == 1 or n < 3:
        return np.arange(n, dtype=np.int64) if fewest >= n else np.zeros(n, dtype=np.int64)
    x = torch.nn.functional.normalize(embeddings.float(), dim=1)
    affinity = x @ x.T
    keep = max(int(KEEP_SHARE * n), min(KEEP_MIN, n // 4), 2)
    top = affinity.topk(keep, dim=1).indices
    graph = torch.zeros_like(affinity).scatter_(1, top, 1.0)
    graph = (graph + graph.T) / 2
    degree = graph.sum(dim=1)
    inv = degree.clamp_min(1e-9).rsqrt()
    laplacian = torch.eye(n, device=x.device) - inv[:, None] * graph * inv[None, :]
    values, vectors = torch.linalg.eigh(laplacian)
    if fewest < most:  # an eigengap needs one eigenvalue past the last candidate count
        most = min(most, n - 1)
        fewest = min(fewest, most)
    if fewest == most:
        k = fewest
    else:
        gaps = values[1:most + 1] - values[:most]
        k = int(torch.argmax(gaps[fewest - 1:most]).item()) + fewest
    points = torch.nn.functional.normalize(vectors[:, :k], dim=1)
    return kmeans(points, k, seed=seed)


def kmeans(points: torch.Tensor, k: int, *, seed: int = 0) -> np.ndarray:
    """Best of a few k-means++ runs (deterministic for a seed); every label 0..k-1 is used when n >= k."""
    n = points.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(seed)
    best, best_cost, best_dist = None, float("inf"), None
    for _ in range(KMEANS_TRIES):
        centres = points[torch.randint(n, (1,), generator=gen)]
        for _ in range(1, k):
            d = torch.cdist(points, centres).min(dim=1).values.square().cpu()
            pick = torch.multinomial(d + 1e-12, 1, generator=gen) if d.sum() > 0 else torch.randint(n, (1,),
                                                                                                      generator=gen)
            centres = torch.cat([centres, points[pick.to(points.device)]])
        for _ in range(KMEANS_ITERS):
            labels = torch.cdist(points, centres).argmin(dim=1)
            moved = torch.stack([points[labels == j].mean(dim=0) if (labels == j).any() else centres[j]
                                 for j in range(k)])
            if torch.allclose(moved, centres):
                break
            centres = moved
        dist = torch.cdist(points, centres)
        labels = dist.argmin(dim=1)
        cost = float(dist.gather(1, labels[:, None]).square().sum())
        if cost < best_cost:
            best, best_cost, best_dist = labels, cost, dist
    labels = best.cpu().numpy().astype(np.int64)
    missing = [j for j in range(k) if not (labels == j).any()]
    if missing and n >= k:  # an empty cluster takes the points farthest from their centres: the count holds
        far = np.argsort(-best_dist.gather(1, best[:, None]).squeeze(1).cpu().numpy())
        counts = np.bincount(labels, minlength=k)
        for j, i in zip(missing, (i for i in far if counts[labels[i]] > 1)):
            counts[labels[i]] -= 1
            labels[i] = j
    return labels
