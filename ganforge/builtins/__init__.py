"""Components that ship with the core, registered through the same hook as any plugin."""

from __future__ import annotations

from ..core.hookspecs import hookimpl
from ..core.registry import Registry


@hookimpl
def ganforge_register(registry: Registry) -> None:
    """Register the built-in losses, optimizers, schedules, regularizers, augmentations,
    datasets, metrics, feature extractors and callbacks."""
    from ..datasets.digits import DigitsDataset, StackedDigitsDataset
    from ..datasets.image_folder import ImageFolderDataset
    from ..datasets.lsun import LSUNDataset
    from ..datasets.prepared import PreparedDataset
    from ..datasets.synthetic import SyntheticDataset
    from ..datasets.torchvision_sets import CelebADataset, CIFAR10Dataset, MNISTDataset, SVHNDataset
    from ..evaluation.digit_metrics import ClassAccuracy, DigitsInceptionScore, ModeKL, Modes
    from ..evaluation.manifold import Coverage, Density, Precision, Recall
    from ..evaluation.metrics import FID, KID, InceptionScore
    from .augmentations import AdaptiveAugment, DiffAugment, NoAugment
    from .callbacks import StopAtMetric
    from .extractors import DigitFeatures, InceptionFeatures, PixelFeatures
    from .losses import (
        AuxClassifierLoss,
        BCELoss,
        HingeLoss,
        LeastSquaresLoss,
        RelativisticLoss,
        WassersteinLoss,
    )
    from .optimizers import AdamOptimizer, AdamWOptimizer, RMSpropOptimizer, SGDOptimizer
    from .regularizers import GradientPenalty, NoRegularizer, R1Penalty, R2Penalty, WeightClip
    from .schedules import ConstantSchedule, CosineSchedule, LinearSchedule

    registry.register("loss", "bce", BCELoss)
    registry.register("loss", "hinge", HingeLoss)
    registry.register("loss", "wgan", WassersteinLoss)
    registry.register("loss", "lsgan", LeastSquaresLoss)
    registry.register("loss", "relativistic", RelativisticLoss)
    registry.register("loss", "aux_classifier", AuxClassifierLoss)
    registry.register("optimizer", "adam", AdamOptimizer)
    registry.register("optimizer", "adamw", AdamWOptimizer)
    registry.register("optimizer", "rmsprop", RMSpropOptimizer)
    registry.register("optimizer", "sgd", SGDOptimizer)
    registry.register("scheduler", "constant", ConstantSchedule)
    registry.register("scheduler", "linear", LinearSchedule)
    registry.register("scheduler", "cosine", CosineSchedule)
    registry.register("regularizer", "none", NoRegularizer)
    registry.register("regularizer", "gradient_penalty", GradientPenalty)
    registry.register("regularizer", "r1", R1Penalty)
    registry.register("regularizer", "r2", R2Penalty)
    registry.register("regularizer", "weight_clip", WeightClip)
    registry.register("augment", "none", NoAugment)
    registry.register("augment", "diffaugment", DiffAugment)
    registry.register("augment", "ada", AdaptiveAugment)
    registry.register("dataset", "digits", DigitsDataset)
    registry.register("dataset", "stacked_digits", StackedDigitsDataset)
    registry.register("dataset", "synthetic", SyntheticDataset)
    registry.register("dataset", "image_folder", ImageFolderDataset)
    registry.register("dataset", "lsun", LSUNDataset)
    registry.register("dataset", "prepared", PreparedDataset)
    registry.register("dataset", "cifar10", CIFAR10Dataset)
    registry.register("dataset", "mnist", MNISTDataset)
    registry.register("dataset", "celeba", CelebADataset)
    registry.register("dataset", "svhn", SVHNDataset)
    registry.register("metric", "fid", FID)
    registry.register("metric", "kid", KID)
    registry.register("metric", "inception_score", InceptionScore)
    registry.register("metric", "precision", Precision)
    registry.register("metric", "recall", Recall)
    registry.register("metric", "density", Density)
    registry.register("metric", "coverage", Coverage)
    registry.register("metric", "modes", Modes)
    registry.register("metric", "mode_kl", ModeKL)
    registry.register("metric", "digits_is", DigitsInceptionScore)
    registry.register("metric", "class_accuracy", ClassAccuracy)
    registry.register("extractor", "inception", InceptionFeatures)
    registry.register("extractor", "digits", DigitFeatures)
    registry.register("extractor", "pixels", PixelFeatures)
    registry.register("callback", "stop_at_metric", StopAtMetric)
