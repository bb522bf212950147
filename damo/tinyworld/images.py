"""Random scenes and their images: coloured shapes on a plain background, rendered with PIL.

Everything is drawn from a ``random.Random`` the caller seeds, so a scene and its PNG bytes are a
pure function of the seed. Shapes sit in equal-width columns (left to right, as the caption lists
them), so they never overlap and the description's order is visible in the image.
"""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

from damo.tinyworld.vocab import COLOURS, SHAPES, Scene, Shape

# Per-channel jitter of shape colours and of the grey background: perception must generalise.
COLOUR_JITTER = 25
BACKGROUND_GREY = (200, 240)


def random_scene(rng: random.Random, image_size: int, max_shapes: int, size: tuple[float, float]) -> Scene:
    """1..``max_shapes`` shapes of random colour and kind, one per column, left to right; each
    shape's half-size is drawn from ``size`` (fractions of the image side), capped by its column."""
    count = rng.randint(1, max_shapes)
    column = image_size // count
    shapes = []
    for i in range(count):
        lo = max(2, round(size[0] * image_size))
        hi = min(round(size[1] * image_size), column // 2 - 1)
        radius = rng.randint(min(lo, hi), hi)
        x = rng.randint(i * column + radius, (i + 1) * column - radius - 1)
        y = rng.randint(radius, image_size - radius - 1)
        shapes.append(Shape(rng.choice(sorted(COLOURS)), rng.choice(SHAPES), x, y, radius))
    return Scene(tuple(shapes))


def _jitter(rng: random.Random, rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    r, g, b = (min(255, max(0, c + rng.randint(-COLOUR_JITTER, COLOUR_JITTER))) for c in rgb)
    return (r, g, b)


def render(scene: Scene, image_size: int, rng: random.Random) -> Image.Image:
    """The scene as an RGB image of ``image_size``² pixels (``rng`` draws the colour jitter)."""
    grey = rng.randint(*BACKGROUND_GREY)
    image = Image.new("RGB", (image_size, image_size), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    for s in scene.shapes:
        fill = _jitter(rng, COLOURS[s.colour])
        box = (s.x - s.radius, s.y - s.radius, s.x + s.radius, s.y + s.radius)
        if s.shape == "circle":
            draw.ellipse(box, fill=fill)
        elif s.shape == "square":
            draw.rectangle(box, fill=fill)
        elif s.shape == "triangle":
            draw.polygon([(s.x, s.y - s.radius), (s.x - s.radius, s.y + s.radius),
                          (s.x + s.radius, s.y + s.radius)], fill=fill)
        else:
            raise ValueError(f"cannot draw shape {s.shape!r}; known shapes: {SHAPES}")
    return image


def png_bytes(image: Image.Image) -> bytes:
    """PNG encoding with fixed settings: the same image always gives the same bytes."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()
