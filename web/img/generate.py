#!/usr/bin/env python3
"""generate.py: writes the storefront's product images (web/img/products/<category>/<n>.svg,
one per kind of product, the n the catalog's demo generator puts in image_url), a generic
placeholder and the favicon. Deterministic: the same input gives byte-identical files.
The kinds are read from services/catalog/demo.c so the pictures follow the demo catalog.
Run: python3 web/img/generate.py"""
import hashlib
import os
import re
import sys
from xml.sax.saxutils import escape

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "..", "services", "catalog", "demo.c")
W, H = 400, 300

# One hue per category (HSL degrees) and a simple line glyph drawn in a 100x100 box.
CATEGORIES = {
    "kitchen": (18, '<path d="M22 38h44v30a14 14 0 0 1-14 14H36a14 14 0 0 1-14-14z"/><path d="M66 44h6a9 9 0 0 1 0 18h-6"/>'
                    '<path d="M34 16c-4 6 4 8 0 14M46 16c-4 6 4 8 0 14M58 16c-4 6 4 8 0 14"/>'),
    "home": (205, '<path d="M14 50 50 20l36 30"/><path d="M24 42v40h52V42"/><path d="M43 82V62h14v20"/>'),
    "outdoors": (140, '<path d="M10 82 50 22l40 60z"/><path d="M50 22v60M38 82l12-22 12 22"/>'),
    "electronics": (230, '<path d="M22 58v-8a28 28 0 0 1 56 0v8"/><rect x="16" y="56" width="14" height="24" rx="5"/>'
                         '<rect x="70" y="56" width="14" height="24" rx="5"/>'),
    "books": (350, '<path d="M50 30c-10-8-24-8-36-4v52c12-4 26-4 36 4 10-8 24-8 36-4V26c-12-4-26-4-36 4z"/><path d="M50 30v52"/>'),
    "toys": (45, '<rect x="16" y="52" width="30" height="30" rx="3"/><rect x="54" y="52" width="30" height="30" rx="3"/>'
                 '<rect x="35" y="20" width="30" height="30" rx="3"/>'),
    "apparel": (265, '<path d="M36 18 14 30l8 16 10-5v41h36V41l10 5 8-16-22-12c-2 8-8 12-14 12s-12-4-14-12z"/>'),
    "footwear": (25, '<path d="M14 70V40h18l6 12c10 4 30 6 40 10 6 3 8 8 8 12v0H14z"/><path d="M14 70h72"/>'),
    "beauty": (320, '<rect x="34" y="38" width="32" height="46" rx="8"/><path d="M42 38V28h16v10M46 28v-8h8v8"/>'),
    "sports": (95, '<circle cx="50" cy="50" r="32"/><path d="M18 50h64M50 18v64M27 27c12 12 12 34 0 46M73 27c-12 12-12 34 0 46"/>'),
    "garden": (120, '<path d="M50 86V46"/><path d="M50 56c-22 0-32-16-30-36 20-2 32 10 30 36z"/><path d="M50 48c4-18 18-26 32-24 0 16-12 26-32 24z"/>'),
    "office": (190, '<path d="M24 76 68 32l10 10-44 44H24z"/><path d="M60 40l10 10M24 76l10 10"/>'),
    "grocery": (35, '<path d="M26 34h48l-4 50H30z"/><path d="M38 34c0-10 5-16 12-16s12 6 12 16"/>'),
    "pets": (15, '<circle cx="30" cy="38" r="7"/><circle cx="44" cy="26" r="7"/><circle cx="58" cy="26" r="7"/><circle cx="72" cy="38" r="7"/>'
                 '<path d="M34 70c0-12 8-22 16-22s16 10 16 22c0 8-8 10-16 8-8 2-16 0-16-8z"/>'),
}


def kinds_by_category(src):
    """{'kitchen': ['Pour-Over Coffee Stand', …], …} in the order demo.c numbers them."""
    out = {}
    for m in re.finditer(r"static const struct kind (\w+)_kinds\[\] = \{(.*?)\n\};", src, re.S):
        out[m.group(1)] = re.findall(r'^\s*\{"([^"]+)",', m.group(2), re.M)
    return out


def rand(seed):
    """A tiny deterministic stream of numbers in [0, 1) from a string."""
    counter = 0
    while True:
        d = hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        for i in range(0, 32, 4):
            yield int.from_bytes(d[i:i + 4], "big") / 2**32
        counter += 1


def image(hue, glyph, label, seed):
    r = rand(seed)
    shift = int(next(r) * 24) - 12
    h1, h2 = (hue + shift) % 360, (hue + shift + 28) % 360
    blobs = []
    for _ in range(5):
        cx, cy, rad = int(next(r) * W), int(next(r) * H), int(40 + next(r) * 90)
        blobs.append(f'<circle cx="{cx}" cy="{cy}" r="{rad}" fill="#fff" fill-opacity="{0.05 + next(r) * 0.08:.2f}"/>')
    text = ""
    if label:
        size = 22 if len(label) <= 22 else 18
        text = (f'<text x="200" y="262" text-anchor="middle" font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" '
                f'font-size="{size}" font-weight="600" fill="#fff" fill-opacity="0.92">{escape(label)}</text>')
    gy = 28 if label else 50
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{escape(label or "product")}">'
            f'<defs><linearGradient id="g" x1="0" y1="0" x2="1" y2="1">'
            f'<stop offset="0" stop-color="hsl({h1},45%,58%)"/><stop offset="1" stop-color="hsl({h2},50%,40%)"/></linearGradient></defs>'
            f'<rect width="{W}" height="{H}" fill="url(#g)"/>{"".join(blobs)}'
            f'<g transform="translate(130 {gy}) scale(1.4)" fill="none" stroke="#fff" stroke-width="4" stroke-linecap="round" stroke-linejoin="round">{glyph}</g>'
            f'{text}</svg>\n')


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(data)


def main():
    with open(DEMO, encoding="utf-8") as f:
        kinds = kinds_by_category(f.read())
    missing = set(CATEGORIES) - set(kinds)
    if missing:
        sys.exit(f"generate.py: no kinds found in demo.c for {sorted(missing)}")
    n = 0
    for cat, (hue, glyph) in CATEGORIES.items():
        for i, noun in enumerate(kinds[cat], start=1):
            write(os.path.join(HERE, "products", cat, f"{i}.svg"), image(hue, glyph, noun, f"{cat}/{i}"))
            n += 1
    write(os.path.join(HERE, "products", "placeholder.svg"),
          image(30, '<rect x="20" y="28" width="60" height="48" rx="6"/><circle cx="38" cy="44" r="6"/><path d="M22 72l20-18 14 12 10-8 14 14"/>', "", "placeholder"))
    write(os.path.join(HERE, "favicon.svg"),
          '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect x="6" y="6" width="20" height="20" rx="4" '
          'transform="rotate(45 16 16)" fill="#b4532a"/></svg>\n')
    print(f"generate.py: {n} product images, placeholder, favicon")


if __name__ == "__main__":
    main()
