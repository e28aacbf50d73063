"""Tile classifier training recipes, free of TensorFlow (`dltools retrain --help` reads them).

``RECIPE`` is the default, measured on river frames nobody tuned on (README, step 5): classes
drawn equally often, tiles mirrored and brightened at random, the module's top layers
fine-tuned, and a module that takes any input size fed the tiles at about their own size
(:data:`MODULE_INPUT_RANGE`). ``LEGACY`` is dl_tools' training of 2018 (``--legacy``): a frozen
module at 224 px, tiles as they come, no distortion.
"""

RECIPE = {
    "balance": True,
    "flip_left_right": True,
    "random_brightness": 10.0,
    "fine_tune_layers": 20,
    "tile_sized_input": True,
}
FINE_TUNE_STEPS = 300  # steps of the fine-tuning phase, whenever there is one
SPLIT_UNITS = ("image", "tile")  # what a training / validation / testing split keeps whole
MIN_SPLIT_IMAGES = 3  # a library cut from fewer source images is split by tile
# tile_sized_input: the input side of a size-agnostic module is the tiles' side kept in this
# range (96: MobileNetV2's smallest ImageNet size; 224: the size it learnt at, and LEGACY's)
MODULE_INPUT_RANGE = (96, 224)
LEGACY = {
    "balance": False,
    "flip_left_right": False,
    "random_brightness": 0.0,
    "fine_tune_layers": 0,
    "tile_sized_input": False,
}
