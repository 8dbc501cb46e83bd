"""Verify: are two images of the same class? Cosine similarity against the
run's threshold; or an LFW-style pairs file, with 10-fold accuracy, ROC AUC,
EER and TAR at FAR 1e-3.

    python scripts/verify.py saved_models/omniglot-arcface a.png b.png
    python scripts/verify.py saved_models/lfw-arcface --pairs pairs.txt --root lfw/
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli, gallery  # noqa: E402


def _pair(run_folder, first, second, threshold, far):
    model = gallery.ExportedModel(run_folder)
    for path in (first, second):
        if not os.path.isfile(path):
            raise gallery.DataError(f"image {path!r} does not exist.")
    accept = model.threshold(far, threshold)
    if accept is None:
        accept = (model.calibration or {}).get("thresholds", {}).get("eer")
    a, b = model.embed([first, second])
    return float(a @ b), accept


def _pairs(run_folder, pairs_file, root):
    model = gallery.ExportedModel(run_folder)
    pairs = gallery.read_pairs(pairs_file, root)
    paths = sorted({p for pair in pairs for p in pair[:2]})
    index = {p: i for i, p in enumerate(paths)}
    embeddings = model.embed(paths)
    scores = [float(embeddings[index[a]] @ embeddings[index[b]]) for a, b, _ in pairs]
    return gallery.verification_report(scores, [same for _, _, same in pairs])


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_folder")
    parser.add_argument("images", nargs="*", help="two image files")
    parser.add_argument("--pairs", help="an LFW-style pairs file")
    parser.add_argument("--root", help="with --pairs: the folder holding name/name_0001.jpg …")
    parser.add_argument("--threshold", type=float, default=None, help="same at cosine ≥ T (default: the run's EER threshold)")
    parser.add_argument("--far", type=float, default=None, help="use the run's threshold at this false-accept rate")
    args = parser.parse_args(argv)
    if args.pairs:
        if args.images or not args.root:
            parser.error("--pairs takes --root and no image arguments")
        report = cli.run_or_explain(_pairs, args.run_folder, args.pairs, args.root)
        print(json.dumps(report, indent=2))
        return 0
    if len(args.images) != 2:
        parser.error(f"give two images (or --pairs FILE --root DIR). Received: {len(args.images)}")
    cosine, accept = cli.run_or_explain(_pair, args.run_folder, *args.images, args.threshold, args.far)
    verdict = "unknown (no threshold)" if accept is None else ("same" if cosine >= accept else "different")
    print(f"cosine {cosine:.4f}; threshold {accept if accept is None else round(accept, 4)}: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
