"""Figures of the reduction and clustering reports (matplotlib, Agg backend).

Every function draws one figure and writes it atomically to ``path``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from galmorph.io import atomic_path  # noqa: E402
from galmorph.metrics import NOISE, contingency  # noqa: E402


def _save(fig, path: str | Path) -> None:
    with atomic_path(path, suffix=Path(path).suffix) as temporary:
        fig.savefig(temporary, dpi=110, bbox_inches="tight")
    plt.close(fig)


def _grid(n: int, max_cols: int = 6) -> tuple[int, int]:
    cols = min(n, max_cols) or 1
    return math.ceil(n / cols) or 1, cols


def explained_variance(ratio: np.ndarray, path: str | Path) -> None:
    """Explained variance ratio per component and cumulated."""
    ratio = np.asarray(ratio)
    fig, ax = plt.subplots(figsize=(7, 4))
    index = np.arange(1, len(ratio) + 1)
    ax.bar(index, ratio, color="tab:blue", label="per component")
    ax.set_xlabel("principal component")
    ax.set_ylabel("explained variance ratio")
    twin = ax.twinx()
    twin.plot(index, np.cumsum(ratio), color="tab:red", label="cumulative")
    twin.set_ylim(0, 1)
    twin.set_ylabel("cumulative")
    ax.set_title(f"{len(ratio)} components: {100 * ratio.sum():.1f}% of the variance")
    fig.legend(loc="center right")
    _save(fig, path)


def reconstructions(rows: dict[str, np.ndarray], titles: Sequence[str], path: str | Path) -> None:
    """One row of images per entry of ``rows`` (name -> images in [0, 1]), columns aligned."""
    n = len(titles)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.8 * n, 2 * len(rows)), squeeze=False)
    for row, (name, images) in enumerate(rows.items()):
        for i in range(n):
            axes[row, i].imshow(np.clip(images[i], 0, 1))
            axes[row, i].set_axis_off()
        axes[row, 0].text(-0.1, 0.5, name, transform=axes[row, 0].transAxes, rotation=90,
                          va="center", ha="right")  # fmt: skip
    for i in range(n):
        axes[0, i].set_title(titles[i], fontsize=8)
    _save(fig, path)


def descriptor_spread(scaler, describer, path: str | Path) -> None:
    """Mean and spread of each descriptor over the training split (what the scaler removes)."""
    names = list(describer.get_feature_names_out())
    fig, ax = plt.subplots(figsize=(max(7, 0.3 * len(names)), 4))
    index = np.arange(len(names))
    ax.errorbar(index, scaler.mean_, yerr=scaler.scale_, fmt="o", capsize=2)
    ax.set_xticks(index, names, rotation=90, fontsize=7)
    ax.set_ylabel("training mean +- standard deviation")
    ax.set_title(f"{len(names)} rotation-invariant descriptors (standardised before clustering)")
    _save(fig, path)


def class_histograms(
    clusters: np.ndarray, classes: np.ndarray, class_names: Sequence[str], path: str | Path
) -> None:
    """One bar chart of class counts per cluster (noise, if any, as its own panel)."""
    ids, table = contingency(clusters, classes)
    table = np.pad(table, ((0, 0), (0, len(class_names) - table.shape[1])))
    rows, cols = _grid(len(ids), 4)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, cluster, counts in zip(axes.flat, ids, table, strict=False):
        ax.bar(range(len(class_names)), counts, color="tab:blue")
        ax.set_xticks(range(len(class_names)), class_names, rotation=90, fontsize=7)
        name = "noise" if cluster == NOISE else f"cluster {cluster}"
        ax.set_title(f"{name} ({counts.sum()})", fontsize=9)
    for ax in axes.flat[len(ids) :]:
        ax.set_axis_off()
    fig.tight_layout()
    _save(fig, path)


def cluster_sizes(labels_by_split: dict[str, np.ndarray], path: str | Path) -> None:
    """Points per cluster, one bar group per split."""
    ids = np.unique(np.concatenate(list(labels_by_split.values())))
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(ids) + 2), 3.5))
    width = 0.8 / len(labels_by_split)
    for i, (split, labels) in enumerate(labels_by_split.items()):
        counts = [np.sum(labels == c) for c in ids]
        ax.bar(np.arange(len(ids)) + i * width, counts, width, label=split)
    ax.set_xticks(np.arange(len(ids)) + width * (len(labels_by_split) - 1) / 2)
    ax.set_xticklabels(["noise" if c == NOISE else str(c) for c in ids], fontsize=7)
    ax.set_xlabel("cluster")
    ax.set_ylabel("galaxies")
    ax.legend()
    _save(fig, path)


def centroid_images(images: np.ndarray, cluster_ids: Sequence[int], path: str | Path) -> None:
    """The mean galaxy of each cluster (already mapped back to pixels, in [0, 1])."""
    rows, cols = _grid(len(images), 6)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 * cols, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, cluster in zip(axes.flat, images, cluster_ids, strict=False):
        ax.imshow(np.clip(image, 0, 1))
        ax.set_title(f"cluster {cluster}", fontsize=8)
    _save(fig, path)


def dendrogram(linkage: np.ndarray, n_clusters: int, path: str | Path) -> None:
    """Top of the linkage tree, cut at ``n_clusters``."""
    from scipy.cluster import hierarchy

    fig, ax = plt.subplots(figsize=(9, 4))
    hierarchy.dendrogram(linkage, truncate_mode="lastp", p=max(n_clusters * 3, 12), ax=ax,
                         no_labels=False, leaf_font_size=7)  # fmt: skip
    if n_clusters > 1 and len(linkage) >= n_clusters:
        cut = np.mean(linkage[-n_clusters : -n_clusters + 2, 2])
        ax.axhline(cut, color="grey", linestyle="--", label=f"{n_clusters} clusters")
        ax.legend()
    ax.set_ylabel("linkage distance")
    _save(fig, path)


def hdbscan_trees(model, points_2d: np.ndarray, path: str | Path) -> None:
    """Minimum spanning tree (drawn on two reduced features) and the condensed tree."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    edges = model.minimum_spanning_tree_.to_numpy()
    start, end = edges[:, 0].astype(int), edges[:, 1].astype(int)
    segments = np.stack([points_2d[start], points_2d[end]], axis=1)
    lines = LineCollection(segments, array=edges[:, 2], cmap="viridis_r", linewidths=0.6)
    left.add_collection(lines)
    noise = model.labels_ == NOISE
    left.scatter(*points_2d[~noise].T, s=4, color="black", label="clustered", zorder=3)
    left.scatter(*points_2d[noise].T, s=4, color="tab:red", label="noise", zorder=3)
    left.legend(fontsize=8)
    left.autoscale()
    fig.colorbar(lines, ax=left, label="mutual reachability distance")
    left.set_title("minimum spanning tree (features 1 and 2)")
    model.condensed_tree_.plot(select_clusters=True, axis=right, colorbar=True)
    # hdbscan can give a flat selected cluster's ellipse a one-element array as
    # height (its minimum height comes from np.diff), which fails at draw time.
    for patch in right.patches:
        if isinstance(patch, Ellipse):
            patch.set_height(float(np.ravel(patch.get_height())[0]))
    right.set_title("condensed tree")
    _save(fig, path)


def som_maps(distance_map: np.ndarray, hits: np.ndarray, path: str | Path) -> None:
    """U-matrix (mean distance of each node to its neighbours) and hit map."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 4))
    for ax, values, title, cmap in (
        (left, distance_map, "U-matrix", "bone_r"),
        (right, hits, "hits (training galaxies per node)", "Blues"),
    ):
        image = ax.imshow(values, cmap=cmap)
        fig.colorbar(image, ax=ax)
        ax.set_title(title)
        ax.set_xticks(range(values.shape[1]))
        ax.set_yticks(range(values.shape[0]))
        ax.set_xlabel("col")
        ax.set_ylabel("row")
    for (row, col), count in np.ndenumerate(hits):
        right.text(col, row, int(count), ha="center", va="center", fontsize=8)
    _save(fig, path)


def cluster_scatter(
    points: np.ndarray, labels: np.ndarray, centers: np.ndarray | None, title: str, path
) -> None:
    """Training points on the first two reduced features, coloured by cluster."""
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(points[:, 0], points[:, 1], c=labels, s=4, cmap="tab20")
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="black", s=60, label="centres")
        ax.legend()
    ax.set_xlabel("feature 1 (standardised PC 1)")
    ax.set_ylabel("feature 2 (standardised PC 2)")
    ax.set_title(title)
    _save(fig, path)


def cluster_map(
    points: np.ndarray,
    classes: np.ndarray,
    class_names: Sequence[str],
    clusters: np.ndarray,
    thumbnail_rows: np.ndarray,
    thumbnails: np.ndarray,
    title: str,
    path: str | Path,
) -> None:
    """The 2-D map twice, coloured by class (left) and by cluster (right), thumbnails on both."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    fig, axes = plt.subplots(1, 2, figsize=(15, 7))
    by_class, by_cluster = axes
    palette = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    for index, name in enumerate(class_names):
        mine = classes == index
        if mine.any():
            by_class.scatter(*points[mine].T, s=5, color=palette(index % palette.N),
                             label=f"{name} ({int(mine.sum())})")  # fmt: skip
    by_class.legend(fontsize=7, markerscale=2, loc="best")
    by_class.set_title("coloured by class")
    ids = np.unique(clusters)
    cluster_palette = plt.get_cmap("tab20")
    for i, cluster in enumerate(ids):
        mine = clusters == cluster
        colour = "lightgrey" if cluster == NOISE else cluster_palette(i % 20)
        by_cluster.scatter(*points[mine].T, s=5, color=colour)
        if cluster != NOISE:
            x, y = np.median(points[mine], axis=0)
            by_cluster.text(x, y, str(cluster), fontsize=11, weight="bold", ha="center",
                            zorder=10, bbox=dict(facecolor="white", alpha=0.8, pad=1))  # fmt: skip
    by_cluster.set_title("coloured by cluster" + (" (grey: noise)" if NOISE in ids else ""))
    zoom = 30.0 / max(thumbnails.shape[1], 1) if len(thumbnails) else 1.0
    for ax in axes:
        for row, image in zip(thumbnail_rows, thumbnails, strict=True):
            box = OffsetImage(image, zoom=zoom)
            ax.add_artist(AnnotationBbox(box, points[row], frameon=True, pad=0.1, zorder=5,
                                         bboxprops=dict(edgecolor="black", lw=0.5)))  # fmt: skip
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{title} (t-SNE map of the clustering features)")
    _save(fig, path)


def unusual_gallery(images: np.ndarray, table, score_name: str, path: str | Path) -> None:
    """The most unusual test galaxies, most unusual first, with id, class and score."""
    n = len(images)
    rows, cols = _grid(max(n, 1), 8)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.3 * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, image, (_, row) in zip(axes.flat, images, table.iterrows(), strict=False):
        ax.imshow(image)
        cluster = "noise" if row["cluster"] == NOISE else f"cl. {row['cluster']}"
        ax.set_title(f"{row['dr7objid']}\n{row['class']}, {cluster}\n{row['outlier_score']:.3g}",
                     fontsize=6)  # fmt: skip
    fig.suptitle(f"unusual test galaxies: largest {score_name}", fontsize=10)
    _save(fig, path)


def summary(table, scores: Sequence[str], path: str | Path) -> None:
    """Grouped bars: each score per method, test split solid, train hatched."""
    methods = list(dict.fromkeys(table["method"]))
    fig, axes = plt.subplots(1, len(scores), figsize=(2.6 * len(scores), 3.6), squeeze=False)
    for ax, score in zip(axes[0], scores, strict=True):
        for j, split in enumerate(("train", "test")):
            rows = table[table["split"] == split].set_index("method").reindex(methods)
            values = rows[score].astype(float).fillna(0).to_numpy()
            ax.bar(np.arange(len(methods)) + 0.4 * j, values, 0.4, label=split,
                   hatch="//" if split == "train" else None, alpha=0.8)  # fmt: skip
        ax.set_xticks(np.arange(len(methods)) + 0.2, methods, rotation=45, fontsize=8)
        ax.set_title(score.replace("_", " "), fontsize=9)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
