"""``dltools similar``: the tiles of a feature set most like a query tile."""

from __future__ import annotations

import argparse
from pathlib import Path

from dltools.cli._common import DefaultsHelpFormatter, add_force, parse_args, reports_errors


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dltools similar",
        formatter_class=DefaultsHelpFormatter,
        description="Find the tiles most like QUERY (cosine similarity of feature vectors) in "
        "a feature set made by `dltools features`: exact search over every vector, or, when "
        "the set has an index (FEATURES.faiss), over the candidates it proposes. Writes "
        "OUT.csv (rank, similarity, path, row, col, size, class) and OUT.png (a contact sheet).",
    )
    parser.add_argument(
        "query",
        metavar="QUERY",
        help="a tile number of the feature set's manifest (its `index`), or an image file "
        "(embedded with the set's model)",
    )
    parser.add_argument(
        "-f", "--features", required=True, metavar="FEATURES", help="feature set base name"
    )
    parser.add_argument(
        "-k", type=int, default=20, help="how many tiles to return (default: %(default)s)"
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="base name of the CSV and the contact sheet (default: FEATURES_similar_QUERY)",
    )
    parser.add_argument(
        "--exact",
        action="store_true",
        help="search every vector even when the set has an index (slower on large sets)",
    )
    add_force(parser)
    return parser


@reports_errors
def run(args: argparse.Namespace) -> None:
    from dltools.errors import DltoolsError
    from dltools.figures.panels import contact_sheet, save_figure
    from dltools.io.outputs import ensure_new
    from dltools.pipeline.features import (
        match_pictures,
        read_features,
        similar,
        write_matches,
    )

    if args.k < 1:
        raise DltoolsError("-k must be at least 1")
    base = args.output or f"{args.features}_similar_{Path(args.query).stem}"
    paths = [Path(f"{base}.csv"), Path(f"{base}.png")]
    ensure_new(paths, args.force)
    features = read_features(args.features)
    query, matches = similar(features, args.query, args.k, args.exact)
    searched = "exact" if args.exact or features.index is None else "index"
    print(f"search: {searched} over {len(features.manifest):,} tiles")
    write_matches(paths[0], matches)
    captions = [f"{m.rank}: {m.similarity:.3f} {m.tile['class']}".strip() for m in matches]
    title = f"{len(matches)} tiles most like {args.query}"
    save_figure(contact_sheet(query, match_pictures(matches), captions, title), paths[1])
    for m in matches[:5]:
        where = f" row {m.tile['row']} col {m.tile['col']}" if m.tile["size"] else ""
        print(f"{m.rank:3d}  {m.similarity:.4f}  {m.tile['path']}{where}  {m.tile['class']}")
    for path in paths:
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(build_parser(), argv))
