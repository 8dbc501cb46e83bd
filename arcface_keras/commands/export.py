"""Export a run for deployment: LiteRT (TFLite, float32 or dynamic-range int8,
optionally the embedding alone), ONNX, or the SavedModel itself; checks the
export against the SavedModel on the run's own test images and reports size
and CPU latency per image.

    python scripts/export.py saved_models/omniglot-arcface --format litert
    python scripts/export.py saved_models/omniglot-arcface --format litert --quantize --embedding-only
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras import cli  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_folder", help="a finished run folder")
    parser.add_argument("--format", default="litert", choices=("litert", "onnx", "saved_model"))
    parser.add_argument("--quantize", action="store_true", help="litert: dynamic-range int8 weights")
    parser.add_argument("--embedding-only", action="store_true", help="litert: the embedding output alone")
    parser.add_argument("--images", type=int, default=256, help="test images for the parity check and latency")
    args = parser.parse_args(argv)
    from arcface_keras.deploy import export_and_check

    if args.images < 1:
        parser.error(f"argument --images: must be ≥ 1. Received: {args.images}")
    report = cli.run_or_explain(export_and_check, args.run_folder, args.format, args.quantize, args.embedding_only,
                                args.images)
    print(", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
