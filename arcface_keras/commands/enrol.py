"""Enrol classes into a gallery: embed every image of each class subfolder
with a run's exported model; no retraining.

    python scripts/enrol.py saved_models/omniglot-arcface --data new_characters/ --output gallery.npz
    python scripts/enrol.py saved_models/omniglot-arcface --data more/ --output gallery.npz --append
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras import cli, gallery  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_folder", help="a finished run folder (its saved_model/ is used)")
    parser.add_argument("--data", required=True, help="a folder of class subfolders (folder name = class name)")
    parser.add_argument("--output", required=True, help="the gallery file (.npz)")
    parser.add_argument("--keep-all", action="store_true", help="also keep every image's embedding")
    parser.add_argument("--append", action="store_true", help="add the classes to an existing gallery")
    parser.add_argument("--replace", action="store_true", help="with --append: re-enrol classes already there")
    args = parser.parse_args(argv)
    result, images = cli.run_or_explain(gallery.enrol_folder, args.run_folder, args.data, args.output,
                                        args.keep_all, args.append, args.replace)
    print(f"enrolled {images} images; gallery {args.output}: {len(result.class_names)} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
