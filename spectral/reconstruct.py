"""``dltools spectral reconstruct``; the logic lives in :mod:`dltools.cli.spectral`."""

from dltools.cli.spectral import reconstruct

if __name__ == "__main__":
    raise SystemExit(reconstruct())
