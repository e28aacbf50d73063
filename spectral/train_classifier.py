"""``dltools spectral train-classifier``; the logic lives in :mod:`dltools.cli.spectral`."""

from dltools.cli.spectral import train_classifier

if __name__ == "__main__":
    raise SystemExit(train_classifier())
