"""Renders evaluation reports in a real browser (headless Chromium) and saves screenshots.

    python benchmarks/report_screenshot.py REPORT.html [REPORT.html ...] [--out DIR]
        [--width 1280] [--height 4000]

Installs Debian's ``chromium`` with apt-get when no Chromium is found (needs root and the Debian
mirror). The browser runs with networking components off and a throw-away profile, so a report
that tried to load anything from the network would show it as missing. Prints, per report, the
screenshot path, its size and the seconds the browser took.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser(install: bool = True) -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    if not install:
        raise SystemExit(f"No Chromium found (looked for {BROWSERS}); install it or pass --install")
    print("installing chromium with apt-get ...", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True)
    path = shutil.which("chromium")
    if path is None:
        raise SystemExit("apt-get installed chromium but it is not on PATH")
    return path


def screenshot(browser: str, report: Path, output: Path, width: int, height: int) -> float:
    """Saves a PNG of ``report`` as Chromium renders it; returns the seconds it took."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stampnet-chromium-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={output}",
            f"--window-size={width},{height}",
            report.resolve().as_uri(),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
    if result.returncode != 0 or not output.is_file():
        raise SystemExit(
            f"Chromium failed on {report} (exit {result.returncode}):\n{result.stderr[-2000:]}"
        )
    return time.perf_counter() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/screenshots"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=4000)
    parser.add_argument("--no-install", action="store_true", help="fail instead of apt-get")
    args = parser.parse_args(argv)
    browser = find_browser(install=not args.no_install)
    args.out.mkdir(parents=True, exist_ok=True)
    for report in args.reports:
        if not report.is_file():
            raise SystemExit(f"No report at {report}")
        # <run>/evaluation/<data>-<split>/report.html, or <out>/report.html for a comparison.
        parts = report.resolve().parts
        name = f"{parts[-4]}_{parts[-2]}" if parts[-3] == "evaluation" else parts[-2]
        name = name.replace("+", "_")
        output = args.out / f"{name}.png"
        seconds = screenshot(browser, report, output, args.width, args.height)
        print(f"{report}: {output} ({output.stat().st_size / 1024:.0f} KiB, {seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
