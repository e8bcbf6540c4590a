"""What `fetalhead predict` spends per image: the network and measurement, then writing its mask
and overlay PNGs, at the zlib level it uses and at Pillow's default.

For each of the first `--images` held-out test images (HC18, 800x540 px most of them) this script
loads the image, measures it with the shipped model (`Predictor.predict_batch`, batches of 8, as
predict does), draws its overlay, and writes its mask and overlay as PNG at zlib level 6
(Pillow's default) and at `fetalhead.report.PNG_LEVEL`; each written file is read back and must
hold exactly the pixels written (PNG is lossless at any level). Seconds per image of each step,
the files' sizes, and the ratios, all in one run on one machine.

    python benchmarks/predict_outputs.py --images 50 --results benchmarks/predict_outputs_cpu.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fetalhead.data import image_path, load_image, read_training_csv
from fetalhead.errors import FetalheadError, OneLineParser, run_script
from fetalhead.paths import data_dir
from fetalhead.predict import Predictor
from fetalhead.report import PNG_LEVEL, draw_overlay, save_png
from fetalhead.results import check_new_results, provenance, write_results
from fetalhead.split import load_split

DEFAULT_LEVEL = 6  #: Pillow's own zlib level for PNG


def write_outputs(images: list[np.ndarray], masks: list[np.ndarray], overlays: list[np.ndarray], folder: Path,
                  level: int) -> dict[str, float]:
    """Write each mask (uint8 (H, W), 0/255) and overlay (uint8 (H, W, 3)) as PNG at zlib `level`
    into `folder`, timed; then read each back, which must give exactly its pixels (FetalheadError
    if not). Seconds per image and mean file sizes in KiB."""
    start = time.perf_counter()
    for i, (mask, overlay) in enumerate(zip(masks, overlays, strict=True)):
        save_png(mask, folder / f"{i}_mask.png", level)
        save_png(overlay, folder / f"{i}_overlay.png", level)
    seconds = time.perf_counter() - start
    for i, (mask, overlay) in enumerate(zip(masks, overlays, strict=True)):
        for name, pixels in (("mask", mask), ("overlay", overlay)):
            if not np.array_equal(np.asarray(Image.open(folder / f"{i}_{name}.png")), pixels):
                raise FetalheadError(f"the {name} of image {i} written at level {level} reads back other pixels")
    sizes = {name: float(np.mean([(folder / f"{i}_{name}.png").stat().st_size for i in range(len(images))]) / 1024)
             for name in ("mask", "overlay")}
    return {"seconds_per_image": seconds / len(images), "mask_kib": sizes["mask"], "overlay_kib": sizes["overlay"]}


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog=Path(__file__).name, description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=50, help="held-out test images measured (default 50)")
    p.add_argument("--model", default=None, help="a shipped model (default: the best shipped)")
    p.add_argument("--data", type=Path, default=None, help="HC18 folder (default: $HC18_DIR, else data/hc18)")
    p.add_argument("--results", type=Path, required=True, help="the summary JSON")
    return run_script(p, _run, argv)


def _run(args: argparse.Namespace, argv: list[str] | None) -> None:
    if args.images < 1:
        raise FetalheadError(f"--images {args.images}: must be at least 1")
    check_new_results(args.results)
    root = data_dir(args.data)
    split = load_split()
    names = sorted(split.loc[split["split"] == "test", "filename"])[: args.images]
    pixel_size = read_training_csv(root).set_index("filename")["pixel_size_mm"]
    predictor = Predictor.from_checkpoint(model=args.model)
    start = time.perf_counter()
    images = [load_image(image_path(name, root=root)) for name in names]
    loaded = time.perf_counter()
    preds = predictor.predict_batch(images, [float(pixel_size[n]) for n in names], batch_size=8)
    measured = time.perf_counter()
    overlays = [draw_overlay(image, pred) for image, pred in zip(images, preds, strict=True)]
    drawn = time.perf_counter()
    masks = [pred.mask * 255 for pred in preds]
    with tempfile.TemporaryDirectory() as tmp:
        levels = {str(level): write_outputs(images, masks, overlays, Path(tmp), level)
                  for level in (DEFAULT_LEVEL, PNG_LEVEL)}
    n = len(names)
    steps = {"load_s": (loaded - start) / n, "measure_s": (measured - loaded) / n, "overlay_s": (drawn - measured) / n}
    slow, fast = levels[str(DEFAULT_LEVEL)], levels[str(PNG_LEVEL)]
    record = {
        "what": "seconds per image of fetalhead predict's steps, and writing its mask and overlay PNGs at two zlib levels",
        "model": predictor.weights, "n_images": n, "shape_px": list(images[0].shape), "steps": steps,
        "levels": levels, "level_used": PNG_LEVEL, "default_level": DEFAULT_LEVEL,
        "write_speedup": slow["seconds_per_image"] / fast["seconds_per_image"],
        "overlay_size_ratio": fast["overlay_kib"] / slow["overlay_kib"],
        "per_image_s": {str(level): sum(steps.values()) + levels[str(level)]["seconds_per_image"]
                        for level in (DEFAULT_LEVEL, PNG_LEVEL)},
        "command": "python benchmarks/predict_outputs.py " + " ".join(sys.argv[1:] if argv is None else argv),
        **provenance(),
    }
    write_results(record, args.results)
    print(f"{n} images: load {1000 * steps['load_s']:.1f} ms, measure {1000 * steps['measure_s']:.1f} ms, overlay "
          f"{1000 * steps['overlay_s']:.1f} ms; mask + overlay PNGs {1000 * slow['seconds_per_image']:.1f} ms at level "
          f"{DEFAULT_LEVEL} ({slow['overlay_kib']:.0f} KiB overlay), {1000 * fast['seconds_per_image']:.1f} ms at level "
          f"{PNG_LEVEL} ({fast['overlay_kib']:.0f} KiB): {record['write_speedup']:.1f}x; wrote {args.results}")


if __name__ == "__main__":
    raise SystemExit(main())
