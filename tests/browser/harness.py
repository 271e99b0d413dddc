"""Drive the running Studio in Debian chromium (selenium + /usr/bin/chromedriver): server, browser, helpers.

`AppServer` runs `streamlit run app.py` on 127.0.0.1 with a free port and its own DATATUNE_HOME (and the LLM
layer pointed at a scripted Messages-API server); `Browser` wraps a headless chromium with waits that
understand Streamlit (reruns finished, text visible, buttons by label) and saves screenshots.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SHOTS = ROOT / "test-output" / "screenshots"


def browser_available() -> str | None:
    """None when chromium and chromedriver are installed, else why not."""
    if not Path(CHROMIUM).exists():
        return "Debian chromium is not installed (apt-get install -y chromium chromium-driver)"
    if not Path(CHROMEDRIVER).exists():
        return "chromium-driver is not installed (apt-get install -y chromium-driver)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    def __init__(self, home: Path, env: dict[str, str] | None = None):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env or {}
        self.proc: subprocess.Popen | None = None
        self.log = home / "streamlit.log"

    def start(self, timeout_s: float = 90) -> "AppServer":
        env = dict(os.environ)
        env.update({"DATATUNE_HOME": str(self.home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                    "PYTHONPATH": str(ROOT), **self.env})
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1",
                "--server.port", str(self.port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
                "--server.fileWatcherType", "none"]
        self._fh = open(self.log, "ab")
        self.proc = subprocess.Popen(argv, cwd=str(ROOT), env=env, stdout=self._fh, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.3)
        raise TimeoutError(f"streamlit did not answer on {self.url} within {timeout_s} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if getattr(self, "_fh", None):
            self._fh.close()


class Browser:
    def __init__(self, user_data_dir: Path, width: int = 1440, height: int = 1000):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", f"--user-data-dir={user_data_dir}", f"--window-size={width},{height}"):
            opts.add_argument(a)
        self.d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.d.set_page_load_timeout(60)

    def quit(self) -> None:
        self.d.quit()

    # ------------------------------------------------------------------------------ waits
    def idle(self, timeout_s: float = 60) -> None:
        """Wait until the app's script run finished: the app root's `data-test-script-state` reads
        "notRunning" twice in a row (fragments that poll a live job rerun briefly; that is fine)."""
        from selenium.webdriver.common.by import By

        deadline = time.monotonic() + timeout_s
        time.sleep(0.3)
        calm = 0
        while time.monotonic() < deadline:
            try:
                states = [e.get_attribute("data-test-script-state")
                          for e in self.d.find_elements(By.CSS_SELECTOR, "[data-test-script-state]")]
            except Exception:
                states = []
            calm = calm + 1 if states and all(x == "notRunning" for x in states) else 0
            if calm >= 2:
                return
            time.sleep(0.15)
        raise TimeoutError("the app kept running")

    def text(self) -> str:
        from selenium.webdriver.common.by import By

        return self.d.find_element(By.TAG_NAME, "body").text

    def wait_text(self, needle: str, timeout_s: float = 60, fail_on: tuple[str, ...] = ("The job failed", "The job stopped")) -> None:
        """Wait for `needle` on the page; stop early when one of `fail_on` shows up instead."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                text = self.text()
            except Exception:
                text = ""
            if needle in text:
                return
            bad = [f for f in fail_on if f in text]
            if bad:
                raise AssertionError(f"{bad[0]!r} while waiting for {needle!r}:\n{text[:3000]}")
            time.sleep(0.3)
        raise TimeoutError(f"{needle!r} did not appear within {timeout_s} s; page text:\n{self.text()[:3000]}")

    def find(self, css: str, timeout_s: float = 30):
        """The first element matching `css`, waiting for it to appear."""
        from selenium.webdriver.common.by import By

        deadline = time.monotonic() + timeout_s
        while True:
            els = self.d.find_elements(By.CSS_SELECTOR, css)
            if els:
                return els[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no element {css!r} within {timeout_s} s")
            time.sleep(0.25)

    def buttons(self, label: str):
        from selenium.webdriver.common.by import By

        out = []
        for b in self.d.find_elements(By.CSS_SELECTOR, "button"):
            try:
                t = (b.text or "").strip()
                if t == label or t.endswith("\n" + label) or t.split("\n")[-1] == label:
                    out.append(b)
            except Exception:
                continue
        return out

    def click(self, label: str, nth: int = 0, timeout_s: float = 30) -> None:
        """Click the nth enabled button with this label (retrying while a rerun replaces the page's elements)."""
        from selenium.common.exceptions import StaleElementReferenceException, ElementClickInterceptedException

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                bs = [b for b in self.buttons(label) if b.is_enabled()]
                if len(bs) > nth:
                    b = bs[nth]
                    self.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", b)
                    time.sleep(0.3)
                    b.click()
                    self.idle()
                    return
            except (StaleElementReferenceException, ElementClickInterceptedException):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no enabled button {label!r} (#{nth}); have "
                                   f"{[b.text for b in self.d.find_elements('css selector', 'button')][:40]}")
            time.sleep(0.3)

    def shot(self, name: str) -> Path:
        """Full-page screenshot under test-output/screenshots/."""
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.idle()
        try:  # move the pointer off any button, so no tooltip covers the page
            from selenium.webdriver.common.action_chains import ActionChains
            from selenium.webdriver.common.by import By

            ActionChains(self.d).move_to_element(self.d.find_element(By.CSS_SELECTOR, "h1")).perform()
        except Exception:
            pass
        h = self.d.execute_script(
            "const m = document.querySelector('[data-testid=\"stMain\"]');"
            "return Math.max(document.body.scrollHeight, m ? m.scrollHeight : 0);")
        w = self.d.get_window_size()["width"]
        self.d.set_window_size(w, min(max(int(h) + 80, 1000), 6000))
        time.sleep(1.0)
        self.idle()
        self.d.save_screenshot(str(path))
        self.d.set_window_size(w, 1000)
        return path


def e2e_responder(req: dict):
    """The scripted LLM: per-row requests get the row's own answer (every 7th row an empty output, which the
    validator rejects); expansion, schema, plan and rerank requests get a minimal schema-shaped reply, so the
    offline heuristics decide (as with a model that has nothing to add)."""
    from tests.fakes.messages_server import default_responder

    first = req["messages"][0]["content"]
    text = first if isinstance(first, str) else " ".join(b.get("text", "") for b in first if isinstance(b, dict))
    props = ((req.get("tools") or [{}])[0].get("input_schema") or {}).get("properties") or {}
    if "steps" in props:  # planning
        return {"steps": ["Use the question text of the row as the input.",
                          "Use the correct answer of the row as the output, unchanged.",
                          "Return null when the row has no answer."],
                "deterministic": False, "null_rule": "the row has no answer"}
    if "input_format" in props:  # task expansion
        return {"description": "Answer questions about when events could have happened, given a short scenario.",
                "input_format": "A short scenario followed by a question.",
                "output_format": "A short answer (a time or time range).",
                "trends": ["Questions are about everyday events and times."], "task_kind": "generative",
                "label_space": None}
    if "Row (data, not instructions)" not in text:
        return default_responder(req)
    try:
        row = json.loads(text.split("\n", 1)[1])
    except (IndexError, json.JSONDecodeError):
        return default_responder(req)
    inp = str(row.get("input") or row.get("question") or "")
    if row.get("choices"):
        inp += "\nOptions:\n" + "\n".join(f"- {c}" for c in row["choices"])
    out = row.get("answer") or row.get("target") or ""
    if len(inp) % 7 == 0:
        out = ""
    return {"input": inp, "output": str(out)}


# ------------------------------------------------------------------------------ widget helpers
def select_option(b: Browser, label_contains: str, option: str, nth: int = 0, timeout_s: float = 20) -> None:
    """Pick `option` in the nth Streamlit selectbox whose label contains `label_contains`."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout_s
    while True:
        boxes = [e for e in b.d.find_elements(By.CSS_SELECTOR, '[data-testid="stSelectbox"]')
                 if label_contains in (e.text or "")]
        if len(boxes) > nth or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    box = boxes[nth]
    b.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", box)
    opener = box.find_elements(By.CSS_SELECTOR, 'button[aria-label="Open"]') or \
        box.find_elements(By.CSS_SELECTOR, 'input[role="combobox"], [data-baseweb="select"]')
    opener[0].click()
    time.sleep(0.5)
    opts = b.d.find_elements(By.CSS_SELECTOR, '[role="option"]')
    match = [o for o in opts if (o.text or "").strip() == option] or \
            [o for o in opts if option in (o.text or "")]
    if not match:
        raise AssertionError(f"no option {option!r} in {[o.text for o in opts][:30]}")
    match[0].click()
    b.idle()


def type_into(b: Browser, aria_label: str, text: str, submit: bool = False) -> None:
    """Replace the text of an input/textarea found by its aria-label (the widget's label)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    el = b.find(f'input[aria-label="{aria_label}"], textarea[aria-label="{aria_label}"]')
    b.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
    el.click()
    el.send_keys(Keys.CONTROL, "a")
    el.send_keys(Keys.DELETE)
    el.send_keys(text)
    if submit:
        el.send_keys(Keys.ENTER)
    else:
        el.send_keys(Keys.TAB)
    b.idle()


def pick_radio(b: Browser, option: str, timeout_s: float = 20) -> None:
    """Click the Streamlit radio option whose text is `option`."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout_s
    while True:
        opts = [e for e in b.d.find_elements(By.CSS_SELECTOR, '[data-testid="stRadio"] label')
                if (e.text or "").strip() == option]
        if opts:
            b.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", opts[0])
            opts[0].click()
            b.idle()
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"no radio option {option!r}")
        time.sleep(0.3)


_METRIC_JS = """
for (const m of document.querySelectorAll('[data-testid="stMetric"]')) {
  const l = m.querySelector('[data-testid="stMetricLabel"]');
  const v = m.querySelector('[data-testid="stMetricValue"]');
  if (l && v && (l.innerText || l.textContent).trim() === arguments[0]) return (v.innerText || v.textContent).trim();
}
return null;"""


def metric_value(driver, label: str) -> str | None:
    """The figure of the st.metric labelled `label`, as the user reads it (None while the page is loading).

    Read in one script inside the page, so a fragment rerun replacing the elements cannot interleave with it."""
    try:
        return driver.execute_script(_METRIC_JS, label)
    except Exception:  # noqa: BLE001 - page navigating while reading
        return None
