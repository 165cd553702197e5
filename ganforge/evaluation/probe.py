"""The discriminator-feature linear probe of the DCGAN paper (sections 5.1 and 5.2).

Every convolutional layer's output of D is max-pooled to a 4x4 grid, flattened and
concatenated; a regularised linear L2-SVM (scikit-learn's ``LinearSVC``, squared hinge) is
trained on N labelled images per class and scored on held-out images. The same protocol
runs on a randomly initialised D of the same architecture as the baseline. The features are
used raw (no per-feature standardisation, as in the paper); the SVM's C is chosen by
stratified cross-validation on the labelled images only, separately for each D.

A **conditional** D (:func:`~ganforge.core.interfaces.is_conditional`) is called as ``D(images,
y)`` with one fixed class, :data:`PROBE_CLASS`, for every image, and so is the random
baseline. Given each image's true label instead, its features would carry the label itself
(the DCGAN plugin concatenates it to the input: a random conditional D then scores 100%),
and the probe would measure nothing D learned. :attr:`ProbeResult.fixed_class` records it.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import DataError, UsageError
from ..core.interfaces import is_conditional
from ..datasets.policy import Skipped, image_of

#: The class a conditional D is given for every image in the probe (so its features carry
#: no label information).
PROBE_CLASS = 0

#: Candidate regularisation strengths for the cross-validated choice of C.
C_GRID = (1e-3, 1e-2, 1e-1, 1.0)


@attrs.frozen
class ProbeResult:
    """Accuracy of one discriminator's features, and how it was measured."""

    name: str
    accuracy: float
    C: float
    feature_dim: int
    n_train: int
    n_test: int
    #: The class a conditional D was given for every image (None: D is unconditional).
    fixed_class: int | None = None

    @property
    def error(self) -> float:
        return 1.0 - self.accuracy


@torch.no_grad()
def discriminator_features(discriminator: nn.Module, images: torch.Tensor,
                           batch_size: int = 256, device: torch.device | str = "cpu",
                           labels: torch.Tensor | np.ndarray | None = None) -> np.ndarray:
    """Concatenated 4x4 max-pooled outputs of every conv layer of D (layers whose output
    is smaller than 4x4, such as the logit layer, are left out). A conditional D is called
    as ``D(images, labels)``: ``labels`` (one class index per image) are then required."""
    conditional = is_conditional(discriminator)
    y: torch.Tensor | None = None
    if conditional:
        if labels is None:
            raise UsageError("probe: the discriminator is conditional: give the images' labels")
        y = torch.as_tensor(labels).reshape(-1).long()
        if y.shape[0] != images.shape[0]:
            raise ValueError(f"probe: {y.shape[0]} labels for {images.shape[0]} images")
    outputs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
             for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    if not hooks:
        raise UsageError("probe: the discriminator has no Conv2d layers")
    was_training = discriminator.training
    discriminator.eval()
    chunks: list[np.ndarray] = []
    try:
        for start in range(0, images.shape[0], batch_size):
            outputs.clear()
            chunk = images[start:start + batch_size].to(device)
            if y is not None:
                discriminator(chunk, y[start:start + batch_size].to(device))
            else:
                discriminator(chunk)
            pooled = [F.adaptive_max_pool2d(o.float(), 4).flatten(1) for o in outputs
                      if o.shape[-1] >= 4 and o.shape[-2] >= 4]
            chunks.append(torch.cat(pooled, 1).cpu().numpy())
    finally:
        for hook in hooks:
            hook.remove()
        discriminator.train(was_training)
    return np.concatenate(chunks)


def split_labels(labels: np.ndarray, per_class: int, seed: int, test_size: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Seeded choice of ``per_class`` training indices per class; the rest (up to
    ``test_size``) are the held-out test indices."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    classes = np.unique(labels)
    train = []
    for c in classes:
        members = order[labels[order] == c]
        if len(members) <= per_class:
            raise UsageError(f"probe: class {c} has {len(members)} images, not more than "
                             f"--labels-per-class {per_class}")
        train.append(members[:per_class])
    train_idx = np.sort(np.concatenate(train))
    test_idx = np.setdiff1d(order, train_idx, assume_unique=False)
    test_idx = rng.permutation(test_idx)
    if test_size is not None:
        test_idx = test_idx[:test_size]
    return train_idx, np.sort(test_idx)


def fit_and_score(name: str, train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                  test_y: np.ndarray, seed: int, c_grid: Sequence[float] = C_GRID
                  ) -> ProbeResult:
    """Choose C by stratified cross-validation on the training set, refit, score on test."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.svm import LinearSVC

    folds = int(min(3, np.bincount(np.unique(train_y, return_inverse=True)[1]).min()))
    svm = LinearSVC(loss="squared_hinge", penalty="l2", dual="auto", max_iter=20_000)
    if folds >= 2 and len(c_grid) > 1:
        search = GridSearchCV(svm, {"C": list(c_grid)},
                              cv=StratifiedKFold(folds, shuffle=True, random_state=seed))
        search.fit(train_x, train_y)
        best_c = float(search.best_params_["C"])
    else:
        best_c = float(c_grid[len(c_grid) // 2])
    model = LinearSVC(C=best_c, loss="squared_hinge", penalty="l2", dual="auto",
                      max_iter=20_000).fit(train_x, train_y)
    accuracy = float((model.predict(test_x) == test_y).mean())
    return ProbeResult(name, accuracy, best_c, train_x.shape[1], len(train_y), len(test_y))


def dataset_labels(dataset: object) -> np.ndarray:
    """The class labels of a labelled dataset, as integers: its ``targets`` when it keeps
    them (CelebA's identities included), else, for a dataset whose spec has classes, the
    labels of its items (every image read once)."""
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return np.asarray(torch.as_tensor(targets).reshape(-1).numpy()).astype(np.int64)
    if int(getattr(dataset, "classes", 0) or 0) > 0:
        from .evaluator import dataset_labels as read_labels

        labels = read_labels(dataset).numpy().astype(np.int64)
        if (labels < 0).any():
            raise DataError(f"probe: {int((labels < 0).sum())} image(s) of dataset "
                            f"{type(dataset).__name__} could not be read for their labels")
        return labels
    raise UsageError(f"probe: dataset {type(dataset).__name__} has no class labels "
                     "(use digits, cifar10, svhn or mnist)")


def images_at(dataset: torch.utils.data.Dataset, indices: np.ndarray) -> torch.Tensor:
    """Stack the images at ``indices`` (float, [-1, 1]); items that are ``(image, label)``
    pairs give their image."""
    images = []
    for i in indices:
        image = image_of(dataset[int(i)])
        if isinstance(image, Skipped):
            raise DataError(f"probe: image {int(i)} ({image.key}) could not be read: "
                            f"{image.reason}")
        images.append(image)
    return torch.stack(images)


def discriminator_classes(discriminator: nn.Module) -> int:
    """How many classes a conditional D takes (its ``classes``, else its spec's)."""
    classes = getattr(discriminator, "classes", None)
    if classes is None:
        classes = getattr(getattr(discriminator, "image_spec", None), "classes", 0)
    return int(classes or 0)


def fixed(labels: np.ndarray) -> np.ndarray:
    """:data:`PROBE_CLASS` for every image of ``labels``."""
    return np.full_like(labels, PROBE_CLASS)


def run_probe(trained: nn.Module, random: nn.Module, dataset: torch.utils.data.Dataset,
              per_class: int, seed: int = 0, test_size: int | None = 10_000,
              device: torch.device | str = "cpu") -> list[ProbeResult]:
    """The probe on the trained D and on the random baseline, same images, same protocol.
    A conditional D (and its baseline) is given :data:`PROBE_CLASS` for every image."""
    labels = dataset_labels(dataset)
    train_idx, test_idx = split_labels(labels, per_class, seed, test_size)
    train_images, test_images = images_at(dataset, train_idx), images_at(dataset, test_idx)
    results = []
    for name, network in (("trained discriminator", trained), ("random discriminator", random)):
        network = network.to(device)
        conditional = is_conditional(network)
        if conditional:
            classes = discriminator_classes(network)
            if classes and classes <= PROBE_CLASS:
                raise UsageError(f"probe: the conditional discriminator takes no class "
                                 f"{PROBE_CLASS}")
        train_y, test_y = labels[train_idx], labels[test_idx]
        result = fit_and_score(
            name, discriminator_features(network, train_images, device=device,
                                         labels=fixed(train_y) if conditional else None),
            train_y, discriminator_features(network, test_images, device=device,
                                            labels=fixed(test_y) if conditional else None),
            test_y, seed)
        results.append(attrs.evolve(result,
                                    fixed_class=PROBE_CLASS if conditional else None))
    return results
