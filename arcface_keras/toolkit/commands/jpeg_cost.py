"""What the data set's JPEG round trip costs in accuracy: the recipe trained on further-degraded copies.

Writes copies of the .npz round-tripped again at each --qualities (kept in the study
folder), trains the same flags on each and on the data as given, and extrapolates
accuracy against distortion to none (arcface_keras/studies/jpeg.py says how).
    python scripts/jpeg_cost.py --dataset cifar10 --data ../shared/data/cifar10.npz --epochs 10 [recipe flags]
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli  # noqa: E402
from arcface_keras.studies import presets  # noqa: E402
from arcface_keras.toolkit.data import data_name  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    cli.add_training_arguments(parser, exclude=("output",), verbose=0)
    parser.add_argument("--qualities", type=int, nargs="+", default=[50, 30],
                        help="JPEG qualities of the further round trips (default 50 30)")
    parser.add_argument("--base-psnr", type=float, default=presets.SHARED_CIFAR10_COPY_PSNR,
                        help="PSNR (dB) of the data as given against its originals (default "
                             f"{presets.SHARED_CIFAR10_COPY_PSNR:g}: the lab's CIFAR-10 copy, presets.SHARED_CIFAR10_COPY_PSNR)")
    parser.add_argument("--folder", default=None, help="study folder (default saved_models/jpeg-cost-<dataset>)")
    args = parser.parse_args(argv)
    from arcface_keras.studies import jpeg

    base = cli.config_from_args(args)
    folder = args.folder or os.path.join("saved_models", f"jpeg-cost-{data_name(args.dataset, args.data)}")
    summary = cli.run_or_explain(jpeg.jpeg_cost, base, folder, args.base_psnr, tuple(args.qualities))
    print(jpeg.jpeg_cost_markdown(summary))
    print(f"written: {folder}/jpeg_cost.json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
