"""The dense-CRF options shared by every step that runs the CRF engine (label, fcn infer-crf)."""

from __future__ import annotations

import argparse

from dltools.cli._common import settings_from
from dltools.engines.crf import CRFParams


def add_crf_options(
    parser: argparse.ArgumentParser, defaults: CRFParams, evidence: str = "the strokes"
) -> None:
    """Add ``--theta --scale --compat --gt-prob --iters --gaussian --gaussian-compat
    --median-radius`` with ``defaults``; ``evidence`` names what ``--gt-prob`` trusts."""
    crf = parser.add_argument_group("CRF options")
    crf.add_argument(
        "--theta",
        type=float,
        default=defaults.theta,
        help="spatial std of the bilateral kernel, in working pixels (default: %(default)s)",
    )
    crf.add_argument(
        "--scale",
        type=float,
        default=defaults.scale,
        help="colour std of the bilateral kernel, in 8-bit grey levels (other dtypes are "
        "stretched to 0-255 first; default: %(default)s)",
    )
    crf.add_argument(
        "--compat",
        type=float,
        default=defaults.compat,
        help="weight of the bilateral (appearance) kernel (default: %(default)s)",
    )
    crf.add_argument(
        "--gt-prob",
        type=float,
        default=defaults.gt_prob,
        help=f"confidence in {evidence}, 0-1 (default: %(default)s)",
    )
    crf.add_argument(
        "--iters",
        type=int,
        default=defaults.iters,
        help="maximum mean-field iterations (default: %(default)s)",
    )
    crf.add_argument(
        "--gaussian",
        type=float,
        metavar="SXY",
        default=defaults.gaussian_sxy,
        help="add a Gaussian smoothness kernel with this spatial std (working pixels; default: "
        "none)",
    )
    crf.add_argument(
        "--gaussian-compat",
        type=float,
        default=defaults.gaussian_compat,
        help="weight of the Gaussian smoothness kernel (default: %(default)s)",
    )
    crf.add_argument(
        "--median-radius",
        type=int,
        default=defaults.median_radius,
        help="radius of the median filter applied after upsampling, 0: none (default: %(default)s)",
    )


def crf_params(args: argparse.Namespace) -> CRFParams:
    """The CRF settings named by the options of :func:`add_crf_options`."""
    return settings_from(CRFParams, args, gaussian_sxy=args.gaussian, tol=CRFParams.tol)
