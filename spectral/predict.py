"""``dltools spectral predict``; the logic lives in :mod:`dltools.cli.spectral`."""

from dltools.cli.spectral import predict

if __name__ == "__main__":
    raise SystemExit(predict())
