"""``arcface-keras <command>``: every job of the toolkit behind one command.

``scripts/<command>.py`` runs the same code. Keras and TensorFlow load only
when a command runs, so ``--help`` answers at once.
"""

import importlib
import os
import sys

def toolkit_backend_problem():
    """Why the commands cannot run here, in one sentence, or None.

    The commands are the toolkit: tf.data pipelines, SavedModel, LiteRT and
    ONNX export, tf.distribute. They need TensorFlow, as Keras' backend. The
    library (`ArcFaceClassifier`, the layers, the losses) does not.
    """
    import importlib.util

    try:
        found = importlib.util.find_spec("tensorflow") is not None
    except ValueError:  # a module entry of None: treated as absent
        found = False
    if not found:
        return ("the toolkit's commands need TensorFlow (tf.data, SavedModel, tf.distribute): pip install tensorflow. "
                "The library (ArcFaceClassifier, the layers, the losses) runs on JAX and PyTorch without it.")
    backend = sys.modules["keras"].backend.backend() if "keras" in sys.modules else os.environ.get("KERAS_BACKEND")
    if backend not in (None, "", "tensorflow"):
        return (f"the toolkit's commands run on Keras' TensorFlow backend; KERAS_BACKEND is {backend!r}. Unset it "
                "(or set it to tensorflow), or train ArcFaceClassifier directly on that backend.")
    return None


_PROBLEM = toolkit_backend_problem()
if _PROBLEM is not None:  # before any command imports TensorFlow: one line, not a traceback
    print(f"arcface-keras: {_PROBLEM}", file=sys.stderr)
    sys.exit(2)

COMMANDS = {
    "train": "train", "evaluate": "evaluate", "compare": "compare", "sweep": "sweep", "imbalance": "imbalance",
    "convergence": "convergence", "open-set": "open_set", "enrol": "enrol", "identify": "identify",
    "verify": "verify", "export": "export", "embedding-spread": "embedding_spread", "partial-fc": "partial_fc",
    "ablation": "ablation", "jpeg-cost": "jpeg_cost", "serve": "serve",
}


def main(argv=None):
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to a command's `main`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        from arcface_keras import __version__

        print(f"arcface-keras {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"error: unknown command {argv[0]!r}; one of: {', '.join(COMMANDS)} (see --help)", file=sys.stderr)
        return 2
    module = importlib.import_module(f"arcface_keras.toolkit.commands.{COMMANDS[argv[0]]}")
    if not {"-h", "--help"} & set(argv[1:]):
        import arcface_keras

        arcface_keras.load()  # quietly, before the command imports Keras itself
    program, sys.argv[0] = sys.argv[0], f"arcface-keras {argv[0]}"  # usage lines name the command
    try:
        return module.main(argv[1:])
    finally:
        sys.argv[0] = program


def usage():
    lines = ["usage: arcface-keras <command> [options]   (arcface-keras <command> --help for its options)", "",
             "commands:"]
    for name, module in COMMANDS.items():
        doc = (importlib.import_module(f"arcface_keras.toolkit.commands.{module}").__doc__ or "").strip()
        first = " ".join(doc.split("\n\n")[0].split())
        lines.append(f"  {name:<17} {first if len(first) <= 72 else first[:71] + '…'}")
    return "\n".join(lines)
