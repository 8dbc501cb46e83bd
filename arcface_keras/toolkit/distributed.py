"""Training on several machines: `tf.distribute.MultiWorkerMirroredStrategy`.

Every worker runs the same command with its own ``TF_CONFIG`` (TensorFlow's
cluster description). `start` creates the strategy before any other
TensorFlow op, as TensorFlow requires. Worker 0 (or the ``chief`` task) is
the chief: it alone writes the run folder; the others write what Keras and
the callbacks produce to a temporary folder of their own, removed at the
end. Each worker reads its own shard of the training data
(`distributed_dataset`: worker *i* of *N* takes images *i*, *i + N*, …, every
shard the same size, so every image is read once per epoch by one worker);
the global batch is split evenly between them and their gradients are summed
by all-reduce each step. A job whose worker dies is restarted as a whole by
the cluster manager (every worker reruns the same command): the chief
decides from its newest epoch backup where the job resumes and shares it
(`agree_on_resume`); a run folder the workers do not share stops every
worker with one line.
"""

import dataclasses
import json
import os
import shutil
import tempfile

import numpy as np

from arcface_keras.errors import UserInputError

TF_CONFIG_HINT = ('TF_CONFIG=\'{"cluster": {"worker": ["host1:port", "host2:port"]}, '
                  '"task": {"type": "worker", "index": 0}}\'')


@dataclasses.dataclass
class Worker:
    """This process's place in the job."""

    strategy: object  # the MultiWorkerMirroredStrategy
    count: int  # workers in the job
    index: int  # this worker's number, 0 … count − 1 (the chief is 0)
    chief: bool
    scratch: str | None = None  # a non-chief worker's temporary folder (`scratch_folder`)

    def folder(self, run_folder):
        """Where this worker writes: the run folder for the chief, its scratch folder otherwise."""
        return run_folder if self.chief else self.scratch

    def finish(self):
        """Remove the scratch folder of a non-chief worker."""
        if self.scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


def read_tf_config(environ=os.environ):
    """``(workers, index, chief)`` from ``TF_CONFIG``; one clear line when it is missing or malformed."""
    text = environ.get("TF_CONFIG")
    if not text:
        raise UserInputError(f"--strategy multiworker needs the cluster in TF_CONFIG, e.g. {TF_CONFIG_HINT}. "
                             "Received: no TF_CONFIG")
    try:
        spec = json.loads(text)
        cluster, task = spec["cluster"], spec["task"]
        chiefs, workers = list(cluster.get("chief", [])), list(cluster.get("worker", []))
        kind, index = task["type"], int(task["index"])
        if kind not in ("chief", "worker") or len(chiefs) > 1 or not chiefs + workers:
            raise ValueError(kind)
        if not 0 <= index < len(chiefs if kind == "chief" else workers):
            raise ValueError(index)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UserInputError(f"TF_CONFIG must describe the cluster and this task, e.g. {TF_CONFIG_HINT}. "
                             f"Received: TF_CONFIG={text!r}") from None
    number = index if kind == "chief" else len(chiefs) + index
    return len(chiefs) + len(workers), number, number == 0


def start(config):
    """The `Worker` of a ``multiworker`` run (its strategy created now, before any
    other TensorFlow op), or None for every other strategy."""
    if config.strategy != "multiworker":
        return None
    count, index, chief = read_tf_config()
    if config.batch_size % count:
        raise UserInputError(f"--batch-size is the global batch, split evenly over the {count} workers; "
                             f"it must be a multiple of {count}. Received: batch_size={config.batch_size}")
    if config.loss == "triplet":
        raise UserInputError("--strategy multiworker trains the classification losses; the triplet loss's P×K "
                             "batches are not sharded. Received: loss='triplet'")
    import tensorflow as tf

    try:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:  # TensorFlow ran ops before: the strategy must come first
        raise RuntimeError(f"MultiWorkerMirroredStrategy must be created before any TensorFlow op: {error}") from None
    _patch_keras_reduction()
    return Worker(strategy, count, index, chief, None if chief else scratch_folder(config.run_folder, index))


SCRATCH_PREFIX = "arcface-keras-worker"


def scratch_folder(run_folder, index):
    """The scratch folder of worker `index` of the run in `run_folder`, made
    empty: its name comes from the run folder's path, so a restarted job
    removes what its own killed attempt left, and never another run's."""
    import hashlib

    digest = hashlib.sha256(os.path.abspath(run_folder).encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"{SCRATCH_PREFIX}{index}-{digest}")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def all_sum(worker, values):
    """The sum over all workers of each worker's `values` (small integers), as
    integers; every worker must call it at the same point."""
    import tensorflow as tf

    local = tf.constant([float(v) for v in values], tf.float32)

    @tf.function
    def total():
        return worker.strategy.reduce("SUM", worker.strategy.run(lambda: tf.identity(local)), axis=None)

    return [int(round(v)) for v in total().numpy()]


def agree_on_resume(worker, folder, latest):
    """The epoch backup every worker resumes from: the chief's `latest`.

    The chief decides (its newest backup, or None) and shares it; a worker
    that cannot see the chief's run folder, or that backup, would train other
    epochs than the rest and hang the job, so then every worker stops with
    the same one-line error. The chief proves the folder shared by a marker
    file whose random name it shares with the others.
    """
    import random

    token = random.randrange(1, 1 << 20) if worker.chief else 0
    marker = os.path.join(folder, f".tmp-shared-{token}")
    if worker.chief:
        with open(marker, "w"):
            pass
    token, epoch = all_sum(worker, [token, latest[0] if worker.chief and latest else 0])
    marker = os.path.join(folder, f".tmp-shared-{token}")
    backup = os.path.join(folder, "backup", f"epoch-{epoch}.weights.h5")
    sees = os.path.exists(marker) and (epoch == 0 or os.path.exists(backup))
    (blind,) = all_sum(worker, [0 if sees else 1])
    if worker.chief:
        os.remove(marker)
    if blind:
        raise UserInputError(
            f"--output {folder!r} is not shared by the workers: {blind} of {worker.count} cannot see the chief's run "
            "folder; put it on storage every worker mounts at the same path.")
    return None if epoch == 0 else (epoch, backup)


def _patch_keras_reduction():
    """Make Keras' step results reducible across workers.

    Keras 3's TensorFlow trainer averages each step's logs over the workers
    with ``strategy.reduce("MEAN", value, axis=0)``, which fails for the
    scalar loss and metrics ("Invalid reduction dimension 0 for input with 0
    dimensions", tensorflow/tensorflow#72388). Scalars are averaged with
    ``axis=None`` instead; everything else goes to Keras unchanged.

    A patch of a private Keras function (Keras has no hook for it): it waits
    for tensorflow/tensorflow#72388, and Keras is pinned to the range it is
    tested with (setup.cfg).
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer

    original = getattr(trainer.reduce_per_replica, "__wrapped__", trainer.reduce_per_replica)

    def reduce_per_replica(values, strategy, reduction):
        if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or reduction not in ("auto", "mean"):
            return original(values, strategy, reduction)

        def mean(value):
            if not (tf.is_tensor(value) or isinstance(value, tf.distribute.DistributedValues)):
                return value
            local = strategy.experimental_local_results(value)[0] if isinstance(
                value, tf.distribute.DistributedValues) else value
            return strategy.reduce("MEAN", value, axis=0 if local.shape.rank else None)

        return tf.nest.map_structure(mean, values)

    reduce_per_replica.__wrapped__ = original
    trainer.reduce_per_replica = reduce_per_replica


def distributed_dataset(worker, images, labels, global_batch, make):
    """Each worker's shard of the training data, as a `DistributedDataset`, and the steps of an epoch.

    Worker *i* of *N* keeps images *i*, *i + N*, … (the first ``n // N`` of
    them, so every shard has the same size and every worker the same number
    of steps); `make(images, labels, batch)` builds its pipeline (shuffled
    anew each epoch, full batches only), repeated.
    """
    import tensorflow as tf

    labels = np.asarray(labels)
    share = len(labels) // worker.count
    per_worker = global_batch // worker.count
    steps = share // per_worker
    if steps < 1:
        raise UserInputError(f"each of the {worker.count} workers holds {share} training images, fewer than its "
                             f"share of the batch ({per_worker}); lower --batch-size. Received: "
                             f"batch_size={global_batch}")

    def dataset_fn(context):
        keep = np.arange(context.input_pipeline_id, len(labels), context.num_input_pipelines)[:share]
        batch = context.get_per_replica_batch_size(global_batch)
        dataset = make(images[keep], labels[keep], batch)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
        return dataset.repeat().with_options(options)

    return worker.strategy.distribute_datasets_from_function(dataset_fn), steps


def patch_symbolic_build(model):
    """Let Keras' `fit` build `model` from the first batch of a multi-worker dataset.

    Keras 3.15's TensorFlow trainer averages that batch across the workers
    with `strategy.reduce` (only its shapes are used); eagerly, under a
    MultiWorkerMirroredStrategy with two or more workers, the reduce fails
    ("Attempt to convert a value (PerReplica...)"). This instance takes the
    local copy instead, which has the same shapes. It replaces the private
    ``_maybe_symbolic_build`` of this one model (no public hook builds a
    model from a distributed batch); the same cause as
    tensorflow/tensorflow#72388, and Keras is pinned as for
    `_patch_keras_reduction`.
    """
    import tensorflow as tf
    import keras

    def build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                batch = next(it)
                data_batch = keras.tree.map_structure(
                    lambda x: model.distribute_strategy.experimental_local_results(x)[0]
                    if isinstance(x, tf.distribute.DistributedValues) else x, batch)
                break
        with model.distribute_strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = build
    return model


def barrier(worker):
    """Wait until every worker gets here (an all-reduce of one number)."""
    import tensorflow as tf

    @tf.function
    def meet():
        return worker.strategy.reduce("SUM", worker.strategy.run(lambda: tf.constant(1.0)), axis=None)

    return float(meet())


def is_multi_worker(model):
    """Whether `model` was built under a MultiWorkerMirroredStrategy."""
    import tensorflow as tf

    strategy = getattr(model, "distribute_strategy", None)
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def local_predict(model, batches):
    """`model`'s outputs over `batches` computed in this process alone.

    Keras' `predict` under a MultiWorkerMirroredStrategy shards the data
    and gathers the outputs across workers; validation needs every output
    here, and no collective op that another worker would have to match.
    """
    import tensorflow as tf

    call = getattr(model, "_local_predict", None)
    if call is None:  # one function per model, traced for the batch shape and the last, smaller batch
        call = model._local_predict = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
    outputs = [call(batch) for batch in batches]
    if isinstance(outputs[0], dict):
        return {key: np.concatenate([np.asarray(o[key]) for o in outputs]) for key in outputs[0]}
    return np.concatenate([np.asarray(o) for o in outputs])
