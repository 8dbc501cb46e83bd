"""Identify images against a gallery: the best enrolled class, or "unknown"
below a cosine threshold; CSV out (path,label,score,label_2,score_2,…).

    python scripts/identify.py saved_models/omniglot-arcface --gallery gallery.npz --data probes/ --output predictions.csv --far 1e-3
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli, gallery  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_folder", help="the run folder the gallery was enrolled with")
    parser.add_argument("--gallery", required=True, help="a gallery file from scripts/enrol.py")
    parser.add_argument("--data", required=True, help="an image file, or a folder (searched recursively)")
    parser.add_argument("--output", required=True, help="the CSV to write")
    parser.add_argument("--top-k", type=int, default=1, help="classes per image in the CSV")
    parser.add_argument("--threshold", type=float, default=None, help="accept at cosine ≥ T, else 'unknown'")
    parser.add_argument("--far", type=float, default=None,
                        help="accept at the run's calibrated threshold for this false-accept rate (1e-2, 1e-3, 1e-4)")
    args = parser.parse_args(argv)
    images, summary = cli.run_or_explain(gallery.identify_folder, args.run_folder, args.gallery, args.data,
                                         args.output, args.top_k, args.threshold, args.far)
    print(f"identified {images} images: {args.output}")
    if summary:
        print(", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in summary.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
