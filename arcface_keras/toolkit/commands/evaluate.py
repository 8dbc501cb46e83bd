"""Recompute every metric and figure of a saved run and write its report.md.

    python scripts/evaluate.py saved_models/mnist-arcface
    python scripts/evaluate.py saved_models/mnist-arcface --flip-test   # into <run>/flip_test/
    python scripts/evaluate.py saved_models/cifar10-arcface --flip-test --translate-test   # into <run>/tta/
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_folder", help="a folder written by scripts/train.py")
    parser.add_argument("--flip-test", action="store_true",
                        help="average each image's embedding with its mirror image's (written to <run>/flip_test/)")
    parser.add_argument("--translate-test", action="store_true",
                        help="also average one-pixel shifts up-left and down-right (written to <run>/tta/, "
                             "without --flip-test to <run>/shift_test/)")
    args = parser.parse_args(argv)
    from arcface_keras.toolkit.report import evaluate_folder, evaluation_subfolder

    metrics = cli.run_or_explain(evaluate_folder, args.run_folder, flip_test=args.flip_test,
                                 translate_test=args.translate_test)
    subfolder = evaluation_subfolder(args.flip_test, args.translate_test)
    print(
        f"test accuracy {metrics['test_accuracy']:.4f}, macro F1 {metrics['macro_f1']:.4f}, "
        f"precision@1 {metrics['precision_at_1']:.4f}, MAP@R {metrics['map_at_r']:.4f}, EER {metrics['eer']:.4f}\n"
        f"report: {os.path.join(args.run_folder, subfolder, 'report.md')}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
