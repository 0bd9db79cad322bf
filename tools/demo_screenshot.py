"""Screenshot the demo's gate report for the README (docs/demo-gate-report.png).

Loads the HTML page `prefline demo` wrote in headless Chromium and saves a 1280-pixel-wide PNG,
reduced to a 64-colour palette so it stays small enough to commit.

    python tools/demo_screenshot.py ~/.prefline/demo/gate-dpo-voice.html [docs/demo-gate-report.png] [--height 1500]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--hide-scrollbars"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path, nargs="?", default=Path(__file__).resolve().parents[1] / "docs" / "demo-gate-report.png")
    parser.add_argument("--height", type=int, default=1500)
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("error: chromium is not installed (apt-get install -y chromium)", file=sys.stderr)
        return 2
    if not args.page.is_file():
        print(f"error: {args.page}: no such file (run `prefline demo` first)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "shot.png"
        subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp}/profile", f"--screenshot={raw}", f"--window-size=1280,{args.height}",
                        args.page.resolve().as_uri()], check=True, capture_output=True, timeout=120)
        Image.open(raw).convert("RGB").quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(args.png, optimize=True)
    print(f"{args.png} ({args.png.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
