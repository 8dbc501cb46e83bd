"""Enrol classes into a gallery: embed every image of each class subfolder
with a run's exported model; no retraining.

    python scripts/enrol.py saved_models/omniglot-arcface --data new_characters/ --output gallery.db
    python scripts/enrol.py saved_models/omniglot-arcface --data more/ --output gallery.db --append
    python scripts/enrol.py saved_models/omniglot-arcface --convert old.npz --output gallery.db

A gallery path ending in .npz is written as before (one file rewritten whole);
any other path is a store: a SQLite file where each enrolment is one
transaction, safe beside other writers and against kill -9.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from arcface_keras.toolkit import cli, gallery  # noqa: E402


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_folder", help="a finished run folder (its saved_model/ is used)")
    parser.add_argument("--data", help="a folder of class subfolders (folder name = class name)")
    parser.add_argument("--output", required=True, help="the gallery: a store (e.g. gallery.db) or an .npz file")
    parser.add_argument("--convert", metavar="NPZ", help="instead of --data: copy this .npz gallery into a new store")
    parser.add_argument("--keep-all", action="store_true", help=".npz galleries: also keep every image's embedding "
                                                                 "(a store always does)")
    parser.add_argument("--append", action="store_true", help="add the classes to an existing gallery")
    parser.add_argument("--replace", action="store_true", help="with --append: re-enrol classes already there")
    args = parser.parse_args(argv)
    if (args.data is None) == (args.convert is None):
        parser.error("give --data (enrol class subfolders) or --convert (an .npz gallery), one of them")
    if args.convert:
        result = cli.run_or_explain(gallery.convert_gallery, args.convert, args.output)
        print(f"converted {args.convert}: gallery {args.output}, {len(result.class_names)} classes")
        return 0
    result, images = cli.run_or_explain(gallery.enrol_folder, args.run_folder, args.data, args.output,
                                        args.keep_all, args.append, args.replace)
    print(f"enrolled {images} images; gallery {args.output}: {len(result.class_names)} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
