"""`arcface-keras serve`: every endpoint, every bad request, parity with the
identify command, and the page in a real (headless) browser."""

import csv
import io
import os
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, load_script
from PIL import Image
from test_gallery import _images

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from arcface_keras.toolkit import service as service_lib  # noqa: E402


@pytest.fixture(scope="module")
def served(finished_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    service = service_lib.Service(str(finished_run), str(root / "gallery.db"))
    return service, TestClient(service_lib.create_app(service)), root


def _png(path):
    return ("images" if path is None else os.path.basename(path), open(path, "rb").read(), "image/png")


def _files(folder):
    return sorted(os.path.join(folder, name) for name in os.listdir(folder))


def test_every_endpoint_and_identify_parity_with_the_command(served, finished_run, tmp_path):
    service, client, root = served
    known = _images(tmp_path / "known", [0, 1, 2])
    probes = _images(tmp_path / "probes", [0, 1, 2, 3], seed=2)
    assert client.get("/health").json() == {"status": "ok", "classes": 0}
    for label in (0, 1, 2):
        folder = known / f"class {label}"
        response = client.post("/enrol", data={"name": f"class {label}"},
                               files=[("images", _png(path)) for path in _files(folder)])
        assert response.status_code == 200 and response.json() == {"name": f"class {label}", "images": 4}
    assert client.get("/classes").json() == {"classes": [{"name": f"class {c}", "images": 4} for c in (0, 1, 2)]}
    # the command over the same store and the same files gives the same answers
    identify = load_script("identify")
    output = tmp_path / "predictions.csv"
    assert identify.main([str(finished_run), "--gallery", str(root / "gallery.db"), "--data", str(probes),
                          "--output", str(output), "--top-k", "3"]) == 0
    with open(output) as file:
        rows = list(csv.DictReader(file))
    for row in rows:
        answer = client.post("/identify", files={"image": _png(row["path"])}, data={"top_k": "3"}).json()
        assert answer["label"] == row["label"] and answer["score"] == pytest.approx(float(row["score"]), abs=1e-6)
        assert [hit["label"] for hit in answer["top_k"]] == [row["label"], row["label_2"], row["label_3"]]
    unknown = client.post("/identify", files={"image": _png(rows[0]["path"])}, data={"threshold": "0.9999"}).json()
    assert unknown["label"] == "unknown" and unknown["threshold"] == 0.9999
    first, second = _files(known / "class 0")[:2]
    verdict = client.post("/verify", files={"image1": _png(first), "image2": _png(second)}).json()
    embeddings = service.model.embed([first, second])
    assert verdict["cosine"] == pytest.approx(float(embeddings[0] @ embeddings[1]), abs=1e-6)
    assert verdict["threshold"] == service.model.calibration["thresholds"]["eer"]
    embedded = client.post("/embed", files={"image": _png(first)}).json()["embedding"]
    np.testing.assert_allclose(embedded, embeddings[0], atol=1e-6)
    assert client.post("/enrol", data={"name": "class 0", "replace": "true"},
                       files=[("images", _png(first))]).json() == {"name": "class 0", "images": 1}
    assert client.delete("/classes/class 2").json() == {"deleted": "class 2"}
    assert [c["name"] for c in client.get("/classes").json()["classes"]] == ["class 0", "class 1"]
    assert client.get("/openapi.json").status_code == 200 and "/identify" in client.get("/openapi.json").json()["paths"]
    assert "Who is this?" in client.get("/").text


def _bomb():
    """A 60-byte PNG whose header declares 100,000 × 100,000 pixels (a decompression bomb's header)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _truncated(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()[:200]


@pytest.mark.parametrize("request_, status, message", [
    (lambda t: ("post", "/identify", {"files": {"image": ("a.txt", b"hello, not an image", "text/plain")}}), 400,
     "is not an image"),
    (lambda t: ("post", "/identify", {"files": {"image": ("a.png", b"", "image/png")}}), 400, "is empty"),
    (lambda t: ("post", "/identify", {"files": {"image": ("a.png", _truncated(t), "image/png")}}), 400,
     "truncated or corrupt"),
    (lambda t: ("post", "/identify", {"files": {"image": ("bomb.png", _bomb(), "image/png")}}), 413, "pixels"),
    (lambda t: ("post", "/identify", {"data": {"top_k": "2"}}), 422, "Field 'image' is required"),
    (lambda t: ("post", "/identify", {"content": b"{not json", "headers": {"content-type": "application/json"}}), 422,
     ""),
    (lambda t: ("post", "/identify", {"files": {"image": ("a.png", _image_bytes(), "image/png")},
                                      "data": {"top_k": "0"}}), 422, "top_k"),
    (lambda t: ("post", "/identify", {"files": {"image": ("a.png", _image_bytes(), "image/png")},
                                      "data": {"far": "0.5"}}), 400, "calibrated rates"),
    (lambda t: ("post", "/enrol", {"data": {"name": "x"}}), 422, "Field 'images' is required"),
    (lambda t: ("post", "/enrol", {"data": {"name": "class 1"},
                                   "files": [("images", ("a.png", _image_bytes(), "image/png"))]}), 409, "replace=true"),
    (lambda t: ("delete", "/classes/nobody", {}), 404, "No class 'nobody'"),
    (lambda t: ("post", "/verify", {"files": {"image1": ("a.png", _image_bytes(), "image/png")}}), 422, "image2"),
])
def test_bad_requests_get_a_4xx_and_one_sentence_and_the_server_goes_on(served, tmp_path, request_, status, message):
    _, client, _ = served
    if not client.get("/classes").json()["classes"]:
        client.post("/enrol", data={"name": "class 1"}, files=[("images", ("a.png", _image_bytes(), "image/png"))])
    method, url, options = request_(tmp_path)
    response = getattr(client, method)(url, **options)
    body = response.json()
    assert response.status_code == status and set(body) == {"error"}, body
    assert message in body["error"] and body["error"].count(". ") == 0 and "\n" not in body["error"], body
    assert client.get("/health").json()["status"] == "ok"


def _image_bytes():
    buffer = io.BytesIO()
    image = np.random.default_rng(1).integers(0, 60, (12, 12)).astype("uint8")
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_concurrent_requests_share_model_calls(served):
    import concurrent.futures

    service, client, _ = served
    calls = []
    batcher = service_lib.Batcher(lambda images: calls.append(len(images)) or service.model.embed(images), wait=0.05)
    images = np.stack([service.decode(_image_bytes(), "image")] * 8)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: batcher(images[i:i + 1]), range(8)))
    assert sum(calls) == 8 and len(calls) < 8  # fewer model calls than requests
    np.testing.assert_allclose(np.concatenate(results), service.model.embed(images), atol=1e-6)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port, process, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "the server did not start"
            time.sleep(0.2)


@pytest.mark.slow
def test_the_command_listens_on_loopback_only_by_default(finished_run, tmp_path):
    port = _free_port()
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "serve.py"), str(finished_run),
                                "--gallery", str(tmp_path / "g.db"), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        assert "serving" in process.stdout.readline()
        _wait_for_port(port, process)
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
        if listening:  # the local address column: loopback, not 0.0.0.0 or *
            assert [line.split()[3] for line in listening.splitlines()] == [f"127.0.0.1:{port}"], listening
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_the_page_enrols_and_identifies_in_a_real_browser(finished_run, tmp_path):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("no chromium and chromedriver here (Debian: apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    known = _images(tmp_path / "known", [0, 1])
    port = _free_port()
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "scripts", "serve.py"), str(finished_run),
                                "--gallery", str(tmp_path / "g.db"), "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    browser = None
    try:
        assert "serving" in process.stdout.readline()
        browser = webdriver.Chrome(service=webdriver.ChromeService(executable_path=driver), options=options)
        wait = WebDriverWait(browser, 60, poll_frequency=0.2)
        _wait_for_port(port, process)
        browser.get(f"http://127.0.0.1:{port}/")
        wait.until(lambda b: "Service ready" in b.find_element(By.ID, "health").text)
        for label in (0, 1):
            browser.find_element(By.ID, "enrol-name").clear()
            browser.find_element(By.ID, "enrol-name").send_keys(f"class {label}")
            browser.find_element(By.ID, "enrol-files").send_keys("\n".join(_files(known / f"class {label}")))
            browser.find_element(By.ID, "enrol-button").click()
            try:
                wait.until(lambda b: f"Enrolled class {label}: 4 images" in b.find_element(By.ID, "enrol-answer").text)
            except Exception:
                raise AssertionError(browser.find_element(By.ID, "enrol-answer").text) from None
        wait.until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#classes tr")) == 2)
        browser.find_element(By.ID, "identify-file").send_keys(_files(known / "class 1")[0])
        wait.until(lambda b: b.find_elements(By.ID, "identify-label"))
        assert browser.find_element(By.ID, "identify-label").text == "class 1"
        assert "class 1" in browser.find_element(By.ID, "identify-answer").text
    finally:
        if browser is not None:
            browser.quit()
        process.terminate()
        process.wait(timeout=30)
