"""The HTML report as a user sees it: rendered by a real headless Chromium (Debian's package) into a
screenshot, whose pixels must show the photo's tinted change and the legend. Skipped where no
Chromium is installed."""
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from sam_sr.reporting.report import ReportRow, write_report
from sam_sr.reporting.visualize import ADDED

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no Chromium installed (Debian: apt install chromium)")


def screenshot(html, png, width=1200, height=900):
    """Render ``html`` (a file) headless into ``png``; the flags keep Chromium off the network."""
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={png.parent / 'chromium-profile'}", "--hide-scrollbars",
                    f"--window-size={width},{height}", f"--screenshot={png}", html.resolve().as_uri()],
                   check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(png).convert("RGB"))


def test_the_report_renders_the_tinted_change_in_a_browser(tmp_path):
    image = np.full((300, 400, 3), 120, np.uint8)
    coarse = np.zeros((300, 400), bool)
    coarse[50:250, 50:350] = True
    refined = coarse.copy()
    refined[120:180, 150:250] = False                       # a hole opened: removed pixels
    refined[250:270, 50:350] = True                         # a band added
    rows = [ReportRow("photo.png", 0.2, lambda: (image, [coarse], [refined], None), {"IoU": (0.9, 0.95)})]
    html = write_report(rows, tmp_path / "report.html", "browser check", progress=False)
    shot = screenshot(html, tmp_path / "shot.png")
    assert shot.shape[0] >= 800 and shot.std() > 10
    # the added band's tint, blended over the grey photo, is on screen
    tint = np.round(0.45 * 120 + 0.55 * np.array(ADDED)).astype(int)
    close = np.abs(shot.astype(int) - tint).max(axis=2) <= 12
    assert close.sum() > 200, "the tinted change is not visible in the rendered page"
