"""ImageNet from the usual class-folder layout: ``train/<wnid>/*.JPEG`` and ``val/<wnid>/*.JPEG``
(the validation images sorted into class folders), read with torchvision's ImageFolder."""

from __future__ import annotations

from pathlib import Path

from torchvision import datasets, transforms

LAYOUT = "folders 'train' and 'val' under it, each with one sub-folder of images per class (the same class folders in both)"


def load_imagenet(data_dir: str | Path, split: str) -> datasets.ImageFolder:
    """Training: random resized crop 224 and horizontal flip; evaluation: resize 256 and center
    crop 224. Images are ``(3, 224, 224)`` floats in [0, 1]."""
    root = Path(data_dir) / ("train" if split == "train" else "val")
    if not root.is_dir():
        raise FileNotFoundError(f"no ImageNet folder {root}: expected {LAYOUT}")
    if split == "train":
        transform = transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor()])
    else:
        transform = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    try:
        return datasets.ImageFolder(str(root), transform=transform)
    except (FileNotFoundError, RuntimeError) as error:
        raise FileNotFoundError(f"{root} holds no class folders with images: expected {LAYOUT} ({error})") from error
