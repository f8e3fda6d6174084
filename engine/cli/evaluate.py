"""``python -m engine evaluate --model M --images DIR --labels DIR``: score a segmentation
model on labelled 2D slices.

Images are PNG/JPG slices of any size (full 512x512 slices or lung crops), 8-bit
lung-windowed; labels are PNG label maps with the same stem and size, values 0
background, 1 GGO, 2 consolidation, 3 pleural effusion. Each slice goes through the
training validation path (:func:`engine.training.trainer.predict_probs`: 8-bit / 255,
resized to the card's input size, logits resized back to the slice, softmax), so ``--split val``
on the data a model was trained on reproduces its card's ``val_metrics``.

Per finding (``ggo``, ``consolidation``, ``effusion``; averaged over the slices whose
ground truth contains it) and for ``infection`` (any finding): Dice, IoU, sensitivity,
specificity, precision, F1, F2, G-mean, MCC, MAE, S-measure, mean E-measure, and for
infection Inf-Net's threshold-averaged Dice (``mean_dice_thresholds``, "meanDic").
Binary infection models report infection only.

Examples
--------
python -m engine evaluate --model unet_infection --images ../shared/data/medseg100/images \\
    --labels ../shared/data/medseg100/labels --split val --json val.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from ..errors import DataError, ModelError
from ..labels import BACKGROUND, DEFAULT_TABLE, EFFUSION

NAME = "evaluate"
SPLITS = ("all", "val", "train")

#: model class name -> label value of the ground truth
_LABEL_OF_CLASS = {"background": BACKGROUND, **{lab.key: lab.value for lab in DEFAULT_TABLE},
                   "pleural_effusion": EFFUSION}

#: (metric key, column title) of the stdout table
TABLE_COLUMNS = (("dice", "Dice"), ("iou", "IoU"), ("sensitivity", "Sens"), ("specificity", "Spec"),
                 ("precision", "Prec"), ("f2", "F2"), ("mcc", "MCC"), ("mae", "MAE"),
                 ("s_measure", "S-meas"), ("e_measure", "E-meas"), ("mean_dice_thresholds", "meanDic"))


def register(subparsers) -> None:
    p = subparsers.add_parser(NAME, help="score a segmentation model on labelled slices (metrics as in the cards)",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model name (python -m engine models; 'default' = the shipped "
                                                  "default) or path to a .safetensors with its .json card beside it")
    p.add_argument("--images", required=True, help="folder of PNG/JPG slices")
    p.add_argument("--labels", required=True,
                   help="folder of PNG label maps (0..3), matched to the images by file stem")
    p.add_argument("--split", default="all", choices=SPLITS,
                   help="only the slices of the card's validation or training split (default all)")
    p.add_argument("--json", metavar="FILE", help="also write the metrics as JSON to FILE")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to run the model")
    p.add_argument("--batch-size", type=int, default=8, help="slices per forward pass (default 8)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--presence", action="store_true",
                   help="also score the finding probabilities (full reading: lungs, rules, the model's fitted "
                        "presence.json): per finding presence AUC, Brier score and ECE on these slices, plus the "
                        "cross-validated figures recorded when it was fitted")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------- data
def find_pairs(images: Path, labels: Path) -> list[tuple[str, Path, Path]]:
    """(stem, image, label) for every image in ``images`` with a label of the same stem in ``labels``."""
    from ..training.data import IMAGE_EXT

    for folder, what in ((images, "--images"), (labels, "--labels")):
        if not folder.is_dir():
            raise DataError(f"{what} folder {folder} does not exist.")
    imgs = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_EXT and not p.name.startswith("."))
    if not imgs:
        raise DataError(f"No PNG/JPG images in {images}.")
    labs: dict[str, Path] = {}
    for p in sorted(labels.iterdir()):
        if p.suffix.lower() in IMAGE_EXT and not p.name.startswith("."):
            if p.stem not in labs or p.suffix.lower() == ".png":  # prefer the PNG of a stem
                labs[p.stem] = p
    pairs = [(p.stem, p, labs[p.stem]) for p in imgs if p.stem in labs]
    if not pairs:
        raise DataError(f"No image in {images} has a label of the same name in {labels} "
                        f"(e.g. {imgs[0].name} needs {labels / (imgs[0].stem + '.png')}).")
    return pairs


def select_split(pairs: list[tuple[str, Path, Path]], card, split: str) -> list[tuple[str, Path, Path]]:
    """The pairs whose stems are in the card's ``split[split]`` id list (all pairs for ``"all"``)."""
    if split == "all":
        return pairs
    ids = (card.split or {}).get(split)
    if not isinstance(ids, list):
        raise DataError(f"Model '{card.name}' records no {split} split in its card: use --split all.")
    wanted = {str(i) for i in ids}
    picked = [p for p in pairs if p[0] in wanted]
    if not picked:
        raise DataError(f"None of the {len(wanted)} {split} slices of model '{card.name}' "
                        f"(e.g. {sorted(wanted)[0] if wanted else '-'}) is among the labelled images.")
    missing = len(wanted) - len(picked)
    if missing:
        print(f"note: {missing} of the {len(wanted)} {split} slices of '{card.name}' are not among the "
              f"labelled images; evaluating the other {len(picked)}", file=sys.stderr)
    return picked


def read_pair(image: Path, label: Path) -> tuple[np.ndarray, np.ndarray]:
    """8-bit grey slice and uint8 label map of one pair, checked."""
    from ..training.data import read_grey, read_label

    img = read_grey(image)
    try:
        lab = read_label(label)
    except OSError as exc:
        raise DataError(f"Cannot read label {label}: {exc}") from exc
    if lab.shape != img.shape:
        raise DataError(f"Label {label.name} is {lab.shape[1]}x{lab.shape[0]} pixels, "
                        f"its image {image.name} is {img.shape[1]}x{img.shape[0]}.")
    if lab.size and lab.max() > 3:
        raise DataError(f"Label {label} holds value {int(lab.max())}: labels must be 0 background, 1 GGO, "
                        f"2 consolidation, 3 effusion (binary 0/255 masks are not ground truth here).")
    return (img if img.flags.writeable else img.copy()), lab


# --------------------------------------------------------------------------- model
def channel_map(card) -> Optional[list[int]]:
    """Ground-truth label value of each output class; ``None`` when the outputs already are
    0..3 in order, or a binary (background, infection) model.

    Raises
    ------
    ModelError
        The model is not a finding segmentation model (lung, classifiers) or has classes
        evaluate cannot match to the labels.
    """
    if card.task != "segmentation":
        raise ModelError(f"Model '{card.name}' is a {card.task} model: evaluate scores segmentation models of "
                         f"GGO / consolidation / effusion (or binary infection) against 0..3 label maps.")
    classes = tuple(c.lower() for c in card.classes)
    if classes == ("background", "infection"):
        return None
    try:
        values = [_LABEL_OF_CLASS[c] for c in classes]
    except KeyError as exc:
        raise ModelError(f"Model '{card.name}' has class {exc.args[0]!r}, which evaluate cannot match to the "
                         f"labels (0 background, 1 ggo, 2 consolidation, 3 effusion).") from None
    if 0 not in values:
        raise ModelError(f"Model '{card.name}' has no background class.")
    return None if values == [0, 1, 2, 3] else values


def _to_label_channels(probs: np.ndarray, values: Optional[list[int]]) -> np.ndarray:
    """Probabilities (K, H, W) in model class order -> (4, H, W) indexed by label value."""
    if values is None:
        return probs
    out = np.zeros((4,) + probs.shape[1:], dtype=probs.dtype)
    for k, v in enumerate(values):
        out[v] += probs[k]
    return out


def _single_input(module, in_channels: int):
    """``module`` fed a 1-channel slice: repeated to ``in_channels`` (a 2D slice has no neighbours)."""
    if in_channels == 1:
        return module
    import torch

    class Repeat(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, x):
            return self.inner(x.expand(-1, in_channels, -1, -1))

    return Repeat()


def iter_probabilities(loaded, slices: list[tuple[np.ndarray, np.ndarray]], batch: int = 8,
                       progress=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(probabilities indexed by label value, labels) per slice, as in training validation.

    Slices of one size are batched together; the order of the output follows the sizes.
    """
    from ..training.trainer import predict_probs

    card = loaded.card
    h, w = card.input_size
    if h != w:
        raise ModelError(f"Model '{card.name}' has a non-square input size {w}x{h}; evaluate needs a square one.")
    values = channel_map(card)
    module = _single_input(loaded.module, int(card.in_channels))
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, (img, _) in enumerate(slices):
        by_shape.setdefault(img.shape, []).append(i)
    done = 0
    for idx in by_shape.values():
        for start in range(0, len(idx), batch):
            chunk = idx[start:start + batch]
            probs = predict_probs(module, [slices[i][0] for i in chunk], int(h), loaded.device, amp=False,
                                  full_size=True, batch=batch)
            for i, p in zip(chunk, probs):
                yield _to_label_channels(p, values), slices[i][1]
                done += 1
                if progress is not None:
                    progress(done / len(slices), f"{done}/{len(slices)} slices")


# --------------------------------------------------------------------------- output
def format_table(result: dict, binary: bool = False) -> str:
    """One row per class (none for a ``binary`` infection model) and infection, the main
    metrics as columns; ``n`` is the number of slices whose ground truth holds the class."""
    head = f"{'class':<14}{'n':>4}" + "".join(f"{t:>8}" for _, t in TABLE_COLUMNS)
    lines = [head, "-" * len(head)]
    rows = [] if binary else list(result["classes"].items())
    for key, m in rows + [("infection", result["infection"])]:
        if m is None:
            lines.append(f"{key:<14}{0:>4}  not in the ground truth")
            continue
        cells = "".join(f"{m[k]:>8.4f}" if k in m else f"{'-':>8}" for k, _ in TABLE_COLUMNS)
        lines.append(f"{key:<14}{m['n_images']:>4}{cells}")
    return "\n".join(lines)


def presence_figures(model: str, pairs: list[tuple[str, Path, Path]], device: str) -> dict:
    """Presence AUC / Brier / ECE of the model's fitted probabilities on ``pairs`` (full reading)."""
    from ..inference import Predictor
    from ..inference.calibration import labelled_evidence, presence_metrics
    from ..inference.presence import KEEP_ALL, load_for, presence_path

    predictor = Predictor(model, device=device, covid_model=False, presence=KEEP_ALL, keep_probabilities=False)
    seg = predictor.load()["segmentation"]
    fitted, note = load_for(seg.name, seg.sha256)
    evidence, refused = labelled_evidence(predictor, pairs)
    metrics = presence_metrics(fitted, evidence)
    at_fit = fitted.metrics.get("cross_validated_held_out") if fitted.calibrated else None
    return {"calibration": note or f"{presence_path(seg.name).name}: {fitted.fitted_on}",
            "on_these_slices": {k: {m: v for m, v in d.items() if m != "reliability"} for k, d in metrics.items()},
            "cross_validated_at_fit": at_fit, "refused_slices": refused}


def run(args: argparse.Namespace) -> int:
    from ..inference.nets import resolve_device
    from ..metrics.evaluation import evaluate_segmentation
    from ..models import registry
    from .progress_bar import ProgressBar

    if args.batch_size < 1:
        raise DataError("--batch-size must be at least 1.")
    images, labels = Path(args.images).expanduser(), Path(args.labels).expanduser()
    pairs = find_pairs(images, labels)  # folder errors before the (slower) model load
    device = resolve_device(args.device)
    loaded = registry.load(args.model, device=device)
    card = loaded.card
    channel_map(card)  # refuse lung / classifier models before reading the data
    pairs = select_split(pairs, card, args.split)
    t0 = time.monotonic()
    slices = [read_pair(img, lab) for _, img, lab in pairs]
    bar = ProgressBar(f"{card.name[:24]:<24} evaluating", enabled=not args.quiet)
    try:
        result = evaluate_segmentation(iter_probabilities(loaded, slices, args.batch_size, progress=bar))
    finally:
        bar.close()
    if getattr(args, "presence", False):
        result["presence"] = presence_figures(args.model, pairs, device.type)
    elapsed = time.monotonic() - t0
    split = "" if args.split == "all" else f", {args.split} split"
    print(f"{card.name} on {len(slices)} slices of {images}{split} ({device.type}, {elapsed:.1f} s)")
    print(format_table(result, binary=len(card.classes) == 2))
    if "presence" in result:
        pres = result["presence"]
        print(f"finding presence per slice ({pres['calibration']}):")
        for key, m in pres["on_these_slices"].items():
            cv = (pres.get("cross_validated_at_fit") or {}).get(key, {})
            print(f"  {key:<14} AUC {m['auc']:.3f}  Brier {m['brier']:.3f}  ECE {m['ece']:.3f}  n {m['n']} "
                  f"({m['positives']} with it)" + (f"   | at fit, 5-fold CV: AUC {cv['auc']:.3f} Brier "
                                                    f"{cv['brier']:.3f} ECE {cv['ece']:.3f}" if cv else ""))
    if args.json:
        out = Path(args.json).expanduser()
        try:
            out.write_text(json.dumps(result, indent=1) + "\n")
        except OSError as exc:
            raise DataError(f"Cannot write {out}: {exc}") from exc
        print(f"metrics written to {out}")
    return 0
