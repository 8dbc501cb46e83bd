"""The toolkit: from a folder of images to a trained, evaluated, exported and
served model. Configuration, run folders, the trainer, distribution, data
pipelines, evaluation reports and plots, export, the gallery and the service,
and the ``arcface-keras`` commands. It runs on Keras' TensorFlow backend and
may use TensorFlow, scikit-learn and matplotlib; the library around it
(`arcface_keras`) does not need them.
"""
