"""Tile classifier training recipes, free of TensorFlow (`dltools retrain --help` reads them).

``RECIPE`` is the default, measured on river frames nobody tuned on (README, step 5): classes
drawn equally often, tiles mirrored and brightened at random, the module's top layers
fine-tuned. ``LEGACY`` is dl_tools' training of 2018 (``--legacy``): a frozen module, tiles as
they come, no distortion.
"""

RECIPE = {
    "balance": True,
    "flip_left_right": True,
    "random_brightness": 10.0,
    "fine_tune_layers": 20,
}
FINE_TUNE_STEPS = 300  # steps of the fine-tuning phase, whenever there is one
SPLIT_UNITS = ("image", "tile")  # what a training / validation / testing split keeps whole
MIN_SPLIT_IMAGES = 3  # a library cut from fewer source images is split by tile
LEGACY = {
    "balance": False,
    "flip_left_right": False,
    "random_brightness": 0.0,
    "fine_tune_layers": 0,
}
