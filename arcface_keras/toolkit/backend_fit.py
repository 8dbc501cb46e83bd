"""The fit of a run on another Keras backend, in its own process.

``python -m arcface_keras.toolkit.backend_fit CONFIG_JSON`` with
``KERAS_BACKEND`` set: `training.train` starts it for ``--backend torch``,
then evaluates and exports the trained run on TensorFlow. Exit status 2
with the message as the last line on stderr for input the run refuses, 3
when training diverged (the parent raises it again).
"""

import json
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    from arcface_keras.errors import TrainingDiverged, UserInputError
    from arcface_keras.toolkit import training

    config = training.TrainConfig(**json.loads(argv[0]))
    try:
        training.fit_only(config)
    except UserInputError as error:
        print(error, file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(error, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
