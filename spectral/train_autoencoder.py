"""``dltools spectral train-ae``; the logic lives in :mod:`dltools.cli.spectral`."""

from dltools.cli.spectral import train_autoencoder

if __name__ == "__main__":
    raise SystemExit(train_autoencoder())
