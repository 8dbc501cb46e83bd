"""The studies: drivers that train many runs and tabulate them (compare,
sweep, imbalance, convergence, open set, Partial FC, the ablation and the
JPEG-cost study), with one shared runner. Their commands are in
`arcface_keras.toolkit.commands` (``arcface-keras compare …``).
"""
