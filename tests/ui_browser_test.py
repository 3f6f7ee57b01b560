#!/usr/bin/env python3
"""cmf ui in a real browser: starts `cmf ui` on a free port over a repository with runs of
every kind this test can make, and drives headless Chromium (Debian's `chromium`) over each page.
It checks what the browser drew, not only the markup: the DOM after the page's script ran
(--dump-dom), and a screenshot of each page (kept under the build tree, SCREENSHOTS) whose pixels
must hold the chart's line colour and the graph's node outlines. Then the same for the pages of
`cmf ui --export`, opened from disk (file://).

    ui_browser_test.py CMF SCREENSHOTS [CMF_GEN_EELS]

With the dkl plugin built and cmf-gen-eels given, a short dkl-al run's page is checked too: its
survey image and maps, with the measured points numbered in order.

Without chromium it is skipped (exit 77), except under CI=true, where that is a failure.
"""
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import zlib

CHART_BLUE = (0x0B, 0x5C, 0xAD)  # the stroke of a metric chart's line (ui_pages.cpp)
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(cmd, cwd, env=None):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def png_pixels(path):
    """The RGB pixels of an 8-bit, non-interlaced PNG (what Chromium writes), row by row."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    at, idat = 8, b""
    width = height = channels = 0
    while at < len(data):
        (length,) = struct.unpack(">I", data[at:at + 4])
        kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + length]
        at += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0, "unexpected PNG layout"
            channels = {2: 3, 6: 4}[colour]
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 255
        rows.append(line)
        previous = line
    return [[tuple(row[x * channels:x * channels + 3]) for x in range(width)] for row in rows]


def count_near(pixels, colour, tolerance=40):
    return sum(1 for row in pixels for p in row
               if all(abs(a - b) <= tolerance for a, b in zip(p, colour)))


class Browser:
    def __init__(self, chromium, profile, shots):
        self.chromium, self.profile, self.shots = chromium, profile, shots

    def _run(self, args, url):
        # --no-sandbox: CI runs as root; --disable-dev-shm-usage: a container's small /dev/shm.
        cmd = [self.chromium, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
               "--hide-scrollbars",
               "--user-data-dir=" + self.profile, "--virtual-time-budget=3000"] + args + [url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise SystemExit(f"chromium failed on {url}: {done.stderr[-2000:]}")
        return done.stdout

    def dom(self, url):
        """The page's DOM after load and its script, as Chromium serialises it."""
        return self._run(["--dump-dom"], url)

    def shot(self, url, name):
        """A screenshot of URL, kept as SHOTS/NAME.png; its pixels."""
        path = os.path.join(self.shots, name + ".png")
        if os.path.exists(path):
            os.remove(path)
        self._run(["--screenshot=" + path, "--window-size=1200,1400"], url)
        check(os.path.exists(path), f"{name}: a screenshot at {path}")
        return png_pixels(path)


def href_of(dom, text):
    """The href of the first link whose text is TEXT."""
    m = re.search(r'href="([^"]+)"[^>]*>' + re.escape(text) + "<", dom)
    return m.group(1) if m else ""


def make_repository(cmf, ws):
    env = dict(os.environ)
    run([cmf, "init", "-q"], ws, env)
    with open(os.path.join(ws, "raw.csv"), "w") as f:
        f.write("1,2\n")
    run([cmf, "exec", "-q", "--stage", "prepare", "--in", "raw.csv", "--out", "patches.csv",
         "--", "sh", "-c", "echo p > patches.csv"], ws, env)
    # A parameter that would run script if a page let it: it must stay text.
    payload = ("<script>document.documentElement.setAttribute('x-'+'pwned','1')</script>"
               "<img src=x onerror=\"document.documentElement.setAttribute('x-'+'pwned','2')\">")
    series = "; ".join(f'echo "loss {s} {1.0 / (s + 1):.3f}" >&$CMF_METRICS_FD; '
                       f'echo "rmse {s} {0.5 - 0.02 * s:.3f}" >&$CMF_METRICS_FD'
                       for s in range(20))
    run([cmf, "exec", "-q", "--stage", "train", "-p", "lr=0.01", "-p", "note=" + payload,
         "--in", "patches.csv", "--out", "model.pt", "--", "sh", "-c",
         "echo w > model.pt; " + series], ws, env)
    log = run([cmf, "log", "--oneline"], ws, env).split("\n")
    return log[0].split()[0], payload


def add_dkl_run(cmf, gen, ws):
    """A short dkl-al run on a generated experiment, when the plugin is built; its short id."""
    plugins = subprocess.run([cmf, "plugins", "--json"], cwd=ws, capture_output=True, text=True)
    if plugins.returncode != 0 or '"dkl-al"' not in plugins.stdout or not os.path.exists(gen):
        return None
    run([gen, "-o", "sample.h5", "--seed", "3"], ws)
    run([cmf, "add", "-q", "sample.h5"], ws)
    run([cmf, "run", "-q", "dkl-al", "--data", "sample.h5", "--steps", "8", "--acquisition", "ei",
         "--out", "al"], ws)
    dkl = run([cmf, "log", "-n", "1", "--oneline"], ws).split()[0]
    # A meta-model trained on what that run measured.
    run([cmf, "run", "-q", "reptile", "--tasks-from-stage", "dkl-al", "--iterations", "4",
         "-o", "meta.pt"], ws)
    reptile = run([cmf, "log", "-n", "1", "--oneline"], ws).split()[0]
    return dkl, reptile


def check_reptile_page(browser, url, dkl, label):
    """A reptile run: its two losses on one chart, its task leading to the dkl-al run."""
    page = browser.dom(url)
    m = re.search(r'<figure class="chart" data-series="meta_loss adapted_loss">(.*?)</figure>',
                  page, re.S)
    check(m is not None and m.group(1).count("<polyline") == 2,
          f"{label} reptile page: meta_loss and adapted_loss drawn on one chart")
    made_by = href_of(page, dkl)
    check(made_by != "", f"{label} reptile page: its task links to the dkl-al run that measured it")
    browser.shot(url, f"{label}-reptile")


def check_lists(browser, base, suffix, label):
    """The artifacts by kind and the sites."""
    artifacts = browser.dom(base + "artifacts" + suffix)
    kinds = re.findall(r'data-kind="([a-z]+)"', artifacts)
    check("model" in kinds and "dataset" in kinds,
          f"{label} artifacts: listed by kind ({kinds})")
    check("this site" in artifacts, f"{label} artifacts: who holds the bytes")
    browser.shot(base + "artifacts" + suffix, f"{label}-artifacts")
    sites = browser.dom(base + "sites" + suffix)
    check("(this site)" in sites and 'id="sites"' in sites, f"{label} sites: this site listed")
    browser.shot(base + "sites" + suffix, f"{label}-sites")


def check_dkl_page(browser, url, label):
    """The pictures of a dkl-al run: the survey image and the two maps, each with the 8 points."""
    page = browser.dom(url)
    figures = re.findall(r'<figure class="picture" id="([a-z]+)"', page)
    check(figures == ["survey", "mean", "uncertainty"],
          f"{label} dkl-al page: the survey image, predicted and uncertainty maps ({figures})")
    check(page.count('<image href="data:image/png;base64,') == 3,
          f"{label} dkl-al page: each picture holds its raster")
    points = re.findall(r'<g class="point" data-step="([0-9]+)"', page)
    check(len(points) == 24 and sorted(set(points), key=int) == [str(k) for k in range(1, 9)],
          f"{label} dkl-al page: steps 1 to 8 numbered on each picture ({len(points)} marks)")
    pixels = browser.shot(url, f"{label}-dkl-al")
    yellow = count_near(pixels, (253, 231, 37), 30)
    purple = count_near(pixels, (68, 1, 84), 30)
    check(yellow > 20 and purple > 200,
          f"{label} dkl-al page: the maps are drawn in their colours ({yellow} yellow, {purple} purple pixels)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_pages(browser, base, train, payload, label, suffix=""):
    """The executions, the train run and the lineage its output leads to, from BASE."""
    home = browser.dom(base + ("index.html" if suffix else ""))
    check(home.count('class="id"') >= 2, f"{label} executions: the runs listed")
    check('x-pwned' not in home.split("<body")[0], f"{label} executions: the payload ran no script")
    page_href = href_of(home, train)
    check(page_href != "", f"{label} executions: the train run links to its page")
    page_url = base + page_href.lstrip("./") if suffix else base.rstrip("/") + page_href
    page = browser.dom(page_url)
    check("<h1>" in page and "/train" in page, f"{label} run page: loaded ({page_url})")
    charts = re.findall(r'<polyline[^>]*points="([^"]+)"', page)
    check(len(charts) == 2, f"{label} run page: a drawn line per metric series ({len(charts)})")
    check(all(len(c.split()) == 20 for c in charts), f"{label} run page: 20 points in each line")
    check("x-pwned" not in page.split("<body")[0], f"{label} run page: the payload ran no script")
    check("&lt;script&gt;document.documentElement" in page,
          f"{label} run page: the payload shows as text")
    pixels = browser.shot(page_url, f"{label}-execution")
    blue = count_near(pixels, CHART_BLUE)
    check(blue > 200, f"{label} run page: the chart lines are drawn ({blue} pixels of their colour)")

    lineage_href = href_of(page, "model.pt")
    check("lineage/" in lineage_href, f"{label} run page: model.pt links to its lineage")
    lineage_url = (page_url.rsplit("/", 1)[0] + "/" + lineage_href) if suffix \
        else base.rstrip("/") + lineage_href
    lineage = browser.dom(lineage_url)
    nodes = lineage.count('class="node"')
    check(nodes == 4, f"{label} lineage: 4 nodes drawn up from model.pt ({nodes})")
    check(lineage.count('class="edge"') == 3, f"{label} lineage: 3 edges")
    check(train in lineage, f"{label} lineage: the train run is a node")
    pixels = browser.shot(lineage_url, f"{label}-lineage")
    ink = sum(1 for row in pixels for p in row if max(p) < 80)
    check(ink > 500, f"{label} lineage: nodes, edges and labels are drawn ({ink} dark pixels)")
    browser.shot(base + ("index.html" if suffix else ""), f"{label}-executions")


def main():
    cmf, shots = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    gen = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else ""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        if os.environ.get("CI") == "true":
            print("FAIL chromium is not installed (.ci/setup installs it)")
            return 1
        print("skipped: no chromium (Debian's package `chromium`) on PATH")
        return 77
    os.makedirs(shots, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cmf-ui-browser-") as top:
        ws = os.path.join(top, "ws")
        os.makedirs(ws)
        train, payload = make_repository(cmf, ws)
        runs = add_dkl_run(cmf, gen, ws) if gen else None
        dkl, reptile = runs if runs else (None, None)
        if dkl is None:
            print("skipped: the dkl-al page (no dkl plugin built, or no cmf-gen-eels)")
            if os.environ.get("CI") == "true":
                check(False, "the dkl plugin is built under CI")
        browser = Browser(chromium, os.path.join(top, "profile"), shots)

        port = free_port()
        server = subprocess.Popen([cmf, "ui", "--port", str(port)], cwd=ws,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = server.stdout.readline()
            check(f"http://127.0.0.1:{port}/" in line, f"cmf ui: says where it serves ({line.strip()})")
            check_pages(browser, f"http://127.0.0.1:{port}/", train, payload, "served")
            check_lists(browser, f"http://127.0.0.1:{port}/", "", "served")
            if dkl:
                check_dkl_page(browser, f"http://127.0.0.1:{port}/execution/{dkl}", "served")
                check_reptile_page(browser, f"http://127.0.0.1:{port}/execution/{reptile}",
                                   dkl, "served")
        finally:
            server.terminate()
            server.wait(timeout=30)

        site = os.path.join(top, "site")
        out = run([cmf, "ui", "--export", site], ws)
        check("index.html" in out, f"cmf ui --export: {out.strip()}")
        check_pages(browser, "file://" + site + "/", train, payload, "export", suffix=".html")
        check_lists(browser, "file://" + site + "/", ".html", "export")
        if dkl:
            pages = os.listdir(os.path.join(site, "execution"))
            for short in (dkl, reptile):
                full = [f for f in pages if short in f]
                check(len(full) == 1, f"export: the page of {short}")
            full = {short: "file://" + os.path.join(site, "execution", f)
                    for short in (dkl, reptile) for f in pages if short in f}
            if dkl in full:
                check_dkl_page(browser, full[dkl], "export")
            if reptile in full:
                check_reptile_page(browser, full[reptile], dkl, "export")

    print(f"{len(failures)} failed" if failures else "all passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
