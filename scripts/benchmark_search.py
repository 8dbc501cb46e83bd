"""Identification at scale: queries/s, memory and recall of the gallery search.

Galleries of synthetic unit vectors (dimension 512 by default; 10,000,
100,000 and 1,000,000 classes), queries that are noisy copies of gallery
vectors (so the top-1 is well defined), searched top-5 in batches of
`--batch` queries. Contenders, interleaved round by round in one process:

- `numpy`: exact, `gallery.search(..., use_faiss=False)` (matmul and
  partial sort in batches);
- `faiss_flat`: exact, faiss ``IndexFlatIP`` (`use_faiss=True`);
- `faiss_ivf`: approximate, faiss ``IndexIVFFlat`` (inner product, nlist =
  4·√C, `--nprobe` lists searched), with its recall@1 against exact search.

Memory is the index's own size (the NumPy array; faiss' serialized index),
and the build time is reported apart (the IVF's k-means training). The
medians of the rounds are kept. Writes OUTPUT.json and OUTPUT.md:

    python scripts/benchmark_search.py --classes 10000 100000 1000000 --output results/benchmark_search
"""

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from arcface_keras.toolkit import gallery  # noqa: E402
from arcface_keras.toolkit.io import write_record  # noqa: E402


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


def make_gallery(classes, dim, queries, noise, rng):
    centers = np.empty((classes, dim), dtype="float32")
    for start in range(0, classes, 100_000):  # in slices: float64 noise for 1M × 512 would need 4 GB
        stop = min(classes, start + 100_000)
        centers[start:stop] = unit(rng.standard_normal((stop - start, dim), dtype="float32"))
    truth = rng.integers(0, classes, size=queries)
    query = unit(centers[truth] + noise * rng.standard_normal((queries, dim), dtype="float32") / math.sqrt(dim))
    return centers, query, truth


def timed(search, queries, batch):
    start = time.perf_counter()
    results = [search(queries[i:i + batch]) for i in range(0, len(queries), batch)]
    seconds = time.perf_counter() - start
    return len(queries) / seconds, np.concatenate([r[0] for r in results])


def measure(classes, args, rng):
    import faiss

    centers, queries, truth = make_gallery(classes, args.dim, args.queries, args.noise, rng)
    start = time.perf_counter()
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(centers)
    flat_build = time.perf_counter() - start
    nlist = int(4 * math.sqrt(classes))
    start = time.perf_counter()
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(args.dim), args.dim, nlist, faiss.METRIC_INNER_PRODUCT)
    train = centers[rng.choice(classes, size=min(classes, 64 * nlist), replace=False)]
    ivf.train(train)
    ivf.add(centers)
    ivf.nprobe = args.nprobe
    ivf_build = time.perf_counter() - start
    contenders = {
        "numpy": lambda q: gallery.search(centers, q, args.top_k, use_faiss=False),
        "faiss_flat": lambda q: flat.search(q, args.top_k)[::-1],
        "faiss_ivf": lambda q: ivf.search(q, args.top_k)[::-1],
    }
    rates = {name: [] for name in contenders}
    found = {}
    for _ in range(args.rounds):
        for name, search in contenders.items():
            rate, indices = timed(search, queries, args.batch)
            rates[name].append(rate)
            found[name] = indices
    exact = found["numpy"][:, 0]
    memory = {"numpy": centers.nbytes, "faiss_flat": faiss.serialize_index(flat).nbytes,
              "faiss_ivf": faiss.serialize_index(ivf).nbytes}
    build = {"numpy": 0.0, "faiss_flat": flat_build, "faiss_ivf": ivf_build}
    return {
        "classes": classes, "nlist": nlist, "nprobe": args.nprobe,
        "top1_of_truth_exact": float(np.mean(exact == truth)),
        "contenders": {name: {"queries_per_second": statistics.median(rates[name]), "every_round": rates[name],
                              "memory_mb": memory[name] / 2**20, "build_seconds": build[name],
                              "recall_at_1": float(np.mean(found[name][:, 0] == exact))}
                       for name in contenders},
    }


def render(summary):
    lines = [f"Gallery search, dimension {summary['dim']}, top-{summary['top_k']}, {summary['queries']} queries in "
             f"batches of {summary['batch']}, {summary['rounds']} interleaved rounds (median), faiss "
             f"{summary['faiss']}, {summary['threads']} threads; recall@1 against exact search.",
             f"`{summary['command']}`", "",
             "| classes | search | queries/s | ratio to NumPy | memory MB | build s | recall@1 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in summary["galleries"]:
        base = row["contenders"]["numpy"]["queries_per_second"]
        for name, c in row["contenders"].items():
            label = name if name != "faiss_ivf" else f"faiss_ivf (nlist {row['nlist']}, nprobe {row['nprobe']})"
            lines.append(f"| {row['classes']:,} | {label} | {c['queries_per_second']:,.0f} | "
                         f"{c['queries_per_second'] / base:.2f} | {c['memory_mb']:,.0f} | {c['build_seconds']:.1f} | "
                         f"{c['recall_at_1']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64, help="queries per search call")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--noise", type=float, default=1.0, help="query noise, relative to a unit vector")
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", default=None, help="write OUTPUT.json and OUTPUT.md")
    args = parser.parse_args(argv)
    try:
        import faiss
    except ImportError:
        parser.exit(2, "error: faiss is not installed: pip install faiss-cpu\n")
    rng = np.random.default_rng(0)
    summary = {"command": "python scripts/benchmark_search.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "dim": args.dim, "top_k": args.top_k, "queries": args.queries, "batch": args.batch,
               "rounds": args.rounds, "faiss": faiss.__version__, "threads": faiss.omp_get_max_threads(),
               "galleries": []}
    for classes in args.classes:
        summary["galleries"].append(measure(classes, args, rng))
        print(render(summary), flush=True)
    text = render(summary)
    if args.output:
        write_record(args.output, summary, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
