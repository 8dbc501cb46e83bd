"""Load on `arcface-keras serve`: concurrent clients identifying against a large gallery.

Fills a gallery store with `--classes` synthetic classes (random unit
vectors of the run's embedding size, one per class), then for each mode
(request batching on, off), in interleaved rounds, starts the service on
loopback and lets `--clients` threads each POST `--requests` images of the
run's test split to /identify. Reports requests/s and the p50 / p99
latency of each mode's best round, and writes results/benchmark_service.json
and .md.

    python scripts/train.py --epochs 3 --output /tmp/digits-run
    python scripts/benchmark_service.py /tmp/digits-run --classes 10000 --clients 8
"""

import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fill_gallery(run_folder, path, classes, seed=0):
    from arcface_keras.toolkit.gallery import ExportedModel
    from arcface_keras.toolkit.gallery_store import GalleryStore

    model = ExportedModel(run_folder)
    dim = model.embed(np.zeros((1, *model.image_shape), dtype="uint8")).shape[1]
    vectors = np.random.default_rng(seed).normal(size=(classes, dim)).astype("float32")
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with GalleryStore(path, model.fingerprint, create=True) as store:
        store.enrol({f"class{i:07d}": vectors[i:i + 1] for i in range(classes)})
    return model


def probe_images(model, count):
    from PIL import Image

    height, width, channels = model.image_shape
    rng = np.random.default_rng(1)
    files = []
    for _ in range(count):
        pixels = rng.integers(0, 256, size=(height, width, channels), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels[..., 0] if channels == 1 else pixels).save(buffer, format="PNG")
        files.append(buffer.getvalue())
    return files


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(run_folder, gallery, images, clients, requests, batching):
    import httpx

    port = free_port()
    command = [sys.executable, os.path.join(ROOT, "scripts", "serve.py"), run_folder, "--gallery", gallery,
               "--port", str(port), *([] if batching else ["--no-batching"])]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT)
    try:
        server.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(url + "/health", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        with httpx.Client() as client:  # warm-up: traces the model's function for small batches
            for image in images[:4]:
                client.post(url + "/identify", files={"image": ("p.png", image, "image/png")}, timeout=60)
        latencies, lock = [], threading.Lock()

        def client_thread(index):
            with httpx.Client() as client:
                for request in range(requests):
                    image = images[(index * requests + request) % len(images)]
                    start = time.perf_counter()
                    response = client.post(url + "/identify", files={"image": ("p.png", image, "image/png")}, timeout=120)
                    response.raise_for_status()
                    with lock:
                        latencies.append(time.perf_counter() - start)

        threads = [threading.Thread(target=client_thread, args=(i,)) for i in range(clients)]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=30)
    latencies = np.array(latencies) * 1000
    return {"requests_per_second": len(latencies) / seconds, "p50_ms": float(np.percentile(latencies, 50)),
            "p99_ms": float(np.percentile(latencies, 99)), "requests": int(len(latencies))}


def main(argv=None):
    from arcface_keras.toolkit import cli

    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_folder")
    parser.add_argument("--classes", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=50, help="per client and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", default=os.path.join(ROOT, "results", "benchmark_service"))
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="arcface-keras-service-")
    gallery = os.path.join(work, "gallery.db")
    model = cli.run_or_explain(fill_gallery, args.run_folder, gallery, args.classes)
    images = probe_images(model, 64)
    rounds = {"batching": [], "no batching": []}
    for index in range(args.rounds):
        for mode in rounds:
            rounds[mode].append(load(args.run_folder, gallery, images, args.clients, args.requests, mode == "batching"))
            print(f"round {index + 1}, {mode}: {rounds[mode][-1]}", flush=True)
    best = {mode: max(results, key=lambda r: r["requests_per_second"]) for mode, results in rounds.items()}
    summary = {"classes": args.classes, "clients": args.clients, "requests_per_client": args.requests,
               "image_shape": list(model.image_shape), "rounds": rounds, "best": best}
    def every(mode):
        return ", ".join(f"{x['requests_per_second']:.0f}" for x in rounds[mode])

    rows = [f"| {mode} | {r['requests_per_second']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {every(mode)} |"
            for mode, r in best.items()]
    text = "\n".join([
        f"`arcface-keras serve` on loopback, {args.clients} concurrent clients × {args.requests} POST /identify each, "
        f"gallery of {args.classes:,} classes, images {model.image_shape}, {args.rounds} interleaved rounds; the best "
        f"round of each mode (`python scripts/benchmark_service.py RUN --classes {args.classes} --clients "
        f"{args.clients} --requests {args.requests} --rounds {args.rounds}`).", "",
        "| mode | requests/s | p50 ms | p99 ms | requests/s, every round |", "| --- | --- | --- | --- | --- |", *rows, ""])
    from arcface_keras.toolkit.io import write_record

    write_record(args.output, summary, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
