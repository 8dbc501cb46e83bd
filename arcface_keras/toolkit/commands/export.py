"""Export a run for deployment: LiteRT (TFLite, float32 or dynamic-range int8,
optionally the embedding alone), ONNX, or the SavedModel itself; checks the
export against the SavedModel on the run's own test images and reports size
and CPU latency per image.

    python scripts/export.py saved_models/omniglot-arcface --format litert
    python scripts/export.py saved_models/omniglot-arcface --format litert --quantize --embedding-only
    python scripts/export.py saved_models/omniglot-arcface --format saved_model --gallery gallery.db --far 1e-3

With --gallery the export is a SavedModel with an `identify` signature: images
in; the top-k enrolled class names and scores and the label ("unknown" below
the threshold) out. With --format litert also <run>/litert/identify.tflite
(class ids, scores, unknown) and its class names beside it.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_folder", help="a finished run folder")
    parser.add_argument("--format", default="litert", choices=("litert", "onnx", "saved_model"))
    parser.add_argument("--quantize", action="store_true", help="litert: dynamic-range int8 weights")
    parser.add_argument("--embedding-only", action="store_true", help="litert: the embedding output alone")
    parser.add_argument("--images", type=int, default=256, help="test images for the parity check and latency")
    parser.add_argument("--gallery", help="saved_model: put this gallery inside, with an identify signature")
    parser.add_argument("--top-k", type=int, default=5, help="with --gallery: classes per image")
    parser.add_argument("--threshold", type=float, default=None, help="with --gallery: unknown below this cosine")
    parser.add_argument("--far", type=float, default=None,
                        help="with --gallery: unknown below the run's calibrated threshold at this rate "
                             "(default: its EER threshold)")
    parser.add_argument("--output", help="with --gallery: where to write (default <run>/saved_model_identify)")
    args = parser.parse_args(argv)
    from arcface_keras.toolkit.deploy import export_and_check, export_identify_and_check

    if args.images < 1:
        parser.error(f"argument --images: must be ≥ 1. Received: {args.images}")
    if args.gallery is None and any(v is not None for v in (args.threshold, args.far, args.output)):
        parser.error("--threshold, --far and --output go with --gallery")
    if args.gallery is not None:
        if args.format == "onnx" or args.quantize or args.embedding_only:
            parser.error("--gallery exports --format saved_model or litert, without --quantize or --embedding-only")
        report = cli.run_or_explain(export_identify_and_check, args.run_folder, args.gallery, args.top_k,
                                    args.threshold, args.far, args.output, args.images, args.format)
        print(", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in report.items()))
        return 0
    report = cli.run_or_explain(export_and_check, args.run_folder, args.format, args.quantize, args.embedding_only,
                                args.images)
    print(", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in report.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
