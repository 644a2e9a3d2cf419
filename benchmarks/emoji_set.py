"""A diverse folder of real colour pictures to measure recipes on, from a Debian package.

    apt-get download fonts-noto-color-emoji && dpkg -x fonts-noto-color-emoji_*.deb /tmp/noto
    python -m benchmarks.emoji_set /tmp/noto/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf /tmp/emoji
    python -m benchmarks.quality --data /tmp/emoji --recipes seed,lite

Google's Noto Color Emoji (SIL Open Font License 1.1; Debian 12's fonts-noto-color-emoji 2.042)
draws every emoji as a 136x128 colour bitmap, made by people: faces, people in five skin tones,
animals, food, flags, objects, symbols. That is the issue's "diverse folder" (many kinds of
picture, strong colour), and the people with skin tones are the closest thing to colour faces
that a package ships. Each glyph is drawn with Pillow (FreeType, and raqm for the skin-tone
sequences) over white, centred on a 128 px square, and saved as PNG. Nothing is committed or
needed by CI.

Which glyphs: every code point in the emoji blocks the font draws (an empty picture means the
font has no glyph there), and each of those followed by one of the five skin-tone modifiers
when the font draws the pair as one glyph (it does for the ~300 people and hands).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# The Unicode blocks emoji live in (Unicode 15): symbols and pictographs, emoticons, transport,
# supplemental and extended-A pictographs, and the older dingbats and miscellaneous symbols.
BLOCKS = ((0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F680, 0x1F6FF), (0x1F900, 0x1F9FF), (0x1FA70, 0x1FAFF))
OLDER = ((0x2600, 0x26FF), (0x2700, 0x27BF))
SKIN_TONES = tuple(chr(c) for c in range(0x1F3FB, 0x1F400))
FONT_SIZE = 109  # the one size the font's bitmaps exist at (FreeType refuses others for CBDT)
CANVAS = 128


def render(font, text: str):
    """The glyph(s) of ``text`` over white on a CANVAS square, or None when nothing is drawn."""
    from PIL import Image, ImageDraw

    layer = Image.new("RGBA", (CANVAS + 64, CANVAS + 16), (0, 0, 0, 0))
    # black for a font without colour glyphs; colour bitmaps keep their own colours
    ImageDraw.Draw(layer).text((0, 0), text, font=font, fill=(0, 0, 0, 255), embedded_color=True)
    box = layer.getbbox()
    if box is None:
        return None
    glyph = layer.crop(box)
    if glyph.width > CANVAS or glyph.height > CANVAS:  # two glyphs side by side: not one picture
        return None
    out = Image.new("RGB", (CANVAS, CANVAS), (255, 255, 255))
    out.paste(glyph, ((CANVAS - glyph.width) // 2, (CANVAS - glyph.height) // 2), glyph)
    return out


def candidates():
    """(name, text) for every code point of the emoji blocks; skin tones are tried by ``extract``."""
    for low, high in BLOCKS + OLDER:
        for code in range(low, high + 1):
            if 0x1F3FB <= code <= 0x1F3FF:  # the modifiers themselves are swatches, not pictures
                continue
            # U+FE0F asks for the emoji presentation of the older symbols that default to text.
            yield f"u{code:05x}", chr(code) + ("\ufe0f" if code < 0x1F000 else "")


def extract(font_path: Path, out: Path) -> int:
    """Write every glyph the font draws under ``out`` as a PNG; returns how many."""
    from PIL import ImageFont

    font = ImageFont.truetype(str(font_path), FONT_SIZE)
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, text in candidates():
        picture = render(font, text)
        if picture is None:
            continue
        picture.save(out / f"{name}.png")
        count += 1
        for i, tone in enumerate(SKIN_TONES, start=1):
            toned = render(font, text.rstrip("\ufe0f") + tone)
            if toned is not None and toned.tobytes() != picture.tobytes():
                toned.save(out / f"{name}_tone{i}.png")
                count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.emoji_set", description=__doc__.split("\n\n")[0])
    ap.add_argument("font", type=Path, help="NotoColorEmoji.ttf, from Debian's fonts-noto-color-emoji")
    ap.add_argument("out", type=Path, help="a folder to write the PNGs into")
    args = ap.parse_args(argv)
    if not args.font.is_file():
        print(f"{args.font}: no such file; see `python -m benchmarks.emoji_set --help`", file=sys.stderr)
        return 1
    try:
        count = extract(args.font, args.out)
    except OSError as e:
        print(f"{args.font}: cannot read it as a font ({e}); it must be NotoColorEmoji.ttf", file=sys.stderr)
        return 1
    print(f"{count} pictures in {args.out}")
    return 0 if count else 1


if __name__ == "__main__":
    sys.exit(main())
