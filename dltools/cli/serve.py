"""``dltools serve``: trained models over HTTP, with a web page to try them."""

from __future__ import annotations

import argparse

from dltools.cli._common import parse_args, reports_errors
from dltools.errors import DltoolsError

DEFAULT_PORT = 8000
DEFAULT_UPLOAD_MB = 200.0
DEFAULT_QUEUE = 8


def build_parser() -> argparse.ArgumentParser:
    """``dltools serve``: models, address, token, limits."""
    parser = argparse.ArgumentParser(
        prog="dltools serve",
        description="Serve step-4 tile models, step-8 FCN runs and spectral models over HTTP "
        "(FastAPI + uvicorn): GET /health, GET /models, POST /models/NAME/segment (an image -> "
        "label raster or ?format=json class fractions), POST /models/NAME/classify (spectra -> "
        "classes), a web page at / and OpenAPI docs at /docs. Every model is loaded once, "
        "before the server listens; a model that fails to load stops it.",
    )
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="PATH[:LABELDEFS]",
        help="a tile model (SavedModel folder, .keras, .pb), an FCN run folder or a spectral "
        "model folder; repeat for several. Its URL name is the last part of PATH without "
        "suffix. Tile models take class colours from LABELDEFS (name, R, G, B per line, "
        "matched by name; needed for models that do not record class names), else matplotlib's "
        "tab10",
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; other than 127.0.0.1 only with --token-file "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="TCP port (default: %(default)s)"
    )
    parser.add_argument(
        "--token-file",
        metavar="F",
        help="file whose first line is the bearer token every route but /health, / and /docs "
        "then needs (Authorization: Bearer TOKEN); without it the server is local only "
        "(default: none)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=float,
        default=DEFAULT_UPLOAD_MB,
        metavar="MB",
        help="larger request bodies are refused with 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="requests computed at the same time, each on its own thread (default: %(default)s)",
    )
    parser.add_argument(
        "--queue",
        type=int,
        default=DEFAULT_QUEUE,
        metavar="N",
        help="requests that may wait for a worker; beyond that 503 with Retry-After "
        "(default: %(default)s)",
    )
    return parser


@reports_errors
def run(args: argparse.Namespace) -> None:
    import uvicorn

    from dltools.server.app import ServerSettings, check_binding, create_app, read_token
    from dltools.server.registry import load_all

    token = None if args.token_file is None else read_token(args.token_file)
    check_binding(args.host, token)
    if not 0 < args.port < 65536:
        raise DltoolsError(f"--port must lie in 1..65535, got {args.port}")
    settings = ServerSettings(token, round(args.max_upload_mb * 2**20), args.workers, args.queue)
    models = load_all(args.model)
    for model in models.values():
        print(f"loaded {model.name} ({model.kind}) from {model.path}")
    if token is None:
        print(f"no --token-file: listening on {args.host} only, for this machine's users")
    print(f"serving on http://{args.host}:{args.port}/ (API docs at /docs)", flush=True)
    uvicorn.run(create_app(models, settings), host=args.host, port=args.port, log_level="info")


def main(argv: list[str] | None = None) -> int:
    """``dltools serve ...``; return the exit status."""
    return run(parse_args(build_parser(), argv))
