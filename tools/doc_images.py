"""Copy the browser tests' screenshots that the docs show into docs/img/, shrunk to small PNGs.

    nice -n 10 .venv/bin/python -m pytest tests/browser/test_e2e.py -q    # writes test-output/screenshots/
    .venv/bin/python tools/doc_images.py [--from DIR]

Only the screenshots listed in IMAGES are copied; a missing one is reported and its old image kept.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "test-output" / "screenshots"
OUT = ROOT / "docs" / "img"
WIDTH = 1100  # px; the docs column is narrower, and smaller files keep the repository light
MAX_HEIGHT = 2000  # px after scaling; taller full-page shots are cut at the bottom

# screenshot (tests/browser/…) -> image in docs/img/: a name, (name, max height) or (name, height, top), in px of the
# image scaled to WIDTH (`top` cuts a section out of a long full-page shot)
IMAGES: dict[str, str | tuple] = {
    "e2e_09_after_reload": ("studio.png", 1400),  # README: Transform & Review after a run (test_e2e.py)
    "e2e_01_projects": "projects.png",
    "e2e_02_task": "task.png",
    "e2e_03_datasets": "datasets.png",
    "e2e_04_plan_dry_run": "plan.png",
    "e2e_06_transform_done": "transform-done.png",
    "e2e_07_review_bulk_reject": "review-bulk-reject.png",
    "e2e_08_review_edit": "review-edit.png",
    "e2e_10_review_dark": "review-dark.png",
    "walk_03_rerun": "review-rerun.png",  # test_sentiment_walk.py
    "e2e_11_train_done": "train.png",  # test_e2e_train.py: live loss and the run
    "e2e_22_side_by_side": ("evaluate.png", 1200, 540),  # base vs tuned on the user's own test rows
    "e2e_13_try_it": ("try-it.png", 300, 1525),
    "e2e_13_try_it#export": ("export.png", 720, 2150),  # the same shot, its Export section
}


def shrink(src: Path, dest: Path, max_height: int = MAX_HEIGHT, top: int = 0) -> None:
    """Scale to WIDTH, keep `max_height` px from `top`, and save as a 256-colour PNG."""
    from PIL import Image

    with Image.open(src) as im:
        im = im.convert("RGB")
        if im.width > WIDTH:
            im = im.resize((WIDTH, round(im.height * WIDTH / im.width)), Image.LANCZOS)
        if top or im.height > max_height:
            im = im.crop((0, top, im.width, min(im.height, top + max_height)))
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(dest, optimize=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="src", type=Path, default=SHOTS, help="folder of the tests' screenshots")
    args = ap.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    missing = 0
    for shot, target in IMAGES.items():
        name, height, top = (tuple(target) + (0,))[:3] if isinstance(target, tuple) else (target, MAX_HEIGHT, 0)
        src = args.src / f"{shot.split('#')[0]}.png"
        if not src.is_file():
            print(f"missing {src} (kept docs/img/{name})")
            missing += 1
            continue
        shrink(src, OUT / name, height, top)
        print(f"docs/img/{name} <- {src.name} ({(OUT / name).stat().st_size // 1024} KB)")
    return 1 if missing == len(IMAGES) else 0


if __name__ == "__main__":
    raise SystemExit(main())
