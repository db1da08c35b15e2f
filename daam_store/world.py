"""The generated world the built-in models learn: coloured shapes on gray, with known ground truth.

A scene is a gray 32x32 image with 1-3 non-overlapping objects (circle, square, triangle in the
benchmark colours red, green, blue, yellow; colours distinct within a scene; recipes may add training-only
colours and shapes), a mask per object and a caption from a small grammar whose object order is random
("a red circle and a blue square" or "a blue square and a red circle"). Some colour-shape pairs never
appear in training scenes (`HELD_OUT_PAIRS`): the evaluation asks for them.

Scenes are sampled in batches with torch (CPU or GPU) and no rejection sampling: each layout splits
the image into disjoint regions, one per object, so objects cannot overlap by construction.

The palette segmentation and the shape classifier work on any RGB image (numpy), so the evaluation
can read generated images the same way it reads rendered ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import permutations

import numpy as np
import torch

IMAGE_SIZE = 32
MAX_OBJECTS = 3
BACKGROUND = (128, 128, 128)
COLOURS = ("red", "green", "blue", "yellow")
# Training-only colours (single CLIP tokens), far from the benchmark palette and the background (RGB
# distance >= 127; the reader's tolerance is 90) so that the palette reader never takes one for a benchmark
# colour. A recipe uses the first N: new ones go at the end, so a recipe's draw never changes.
EXTRA_COLOURS = ("magenta", "white", "black", "purple", "pink", "teal", "olive", "navy")
ALL_COLOURS = COLOURS + EXTRA_COLOURS
PALETTE = {
    "red": (255, 0, 0),
    "green": (0, 204, 0),
    "blue": (0, 0, 255),
    "yellow": (255, 255, 0),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "purple": (128, 0, 128),
    "pink": (255, 192, 203),
    "teal": (0, 128, 128),
    "olive": (128, 128, 0),
    "navy": (0, 0, 128),
}
SHAPES = ("circle", "square", "triangle")
# Training-only shapes (single CLIP tokens), each in every colour; like EXTRA_COLOURS a recipe uses the first N.
# Their templates are no nearer a benchmark shape's than circle and square are to each other (IoU <= 0.79), so
# a reader given them (`read_objects(image, ALL_SHAPES)`) reads a benchmark object drawn as one as that shape.
EXTRA_SHAPES = ("diamond", "cross", "ring")
ALL_SHAPES = SHAPES + EXTRA_SHAPES
# A cross's arms are this share of its box wide; a ring's hole is this share of its outer radius.
CROSS_ARM = 0.4
RING_HOLE = 0.5
# Each colour and each shape still appears in training, only these pairs do not.
HELD_OUT_PAIRS = (("red", "triangle"), ("green", "circle"), ("blue", "square"))
# Share of scenes with 1, 2 and 3 objects.
OBJECT_COUNT_PROBS = (0.4, 0.45, 0.15)
# Radius ranges (half the side of the bounding box) by object count: larger objects keep their shape
# through the factor-2 VAE; two or three objects must share the 32x32 image.
RADIUS_ONE = (7.0, 12.0)
RADIUS_TWO = (6.0, 10.0)  # and r1 + r2 <= 16
RADIUS_THREE = (5.0, 8.0)
# A palette pixel must lie this close (RGB distance) to its colour; edge blends stay unassigned.
PALETTE_TOLERANCE = 90.0
# The most a training recipe may shade an object toward the background (see `render`): at 0.3 every
# benchmark colour stays within 66 RGB of itself, inside the reader's tolerance.
MAX_SHADING = 0.3
MIN_OBJECT_PIXELS = 16

Pair = tuple[str, str]


def training_pairs() -> list[Pair]:
    return [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT_PAIRS]


def caption(objects: list[Pair]) -> str:
    """The grammar: 'a red circle', 'a red circle and a blue square', 'a red circle, a blue square and ...'."""
    phrases = [f"a {colour} {shape}" for colour, shape in objects]
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def caption_words(objects: list[Pair]) -> list[str]:
    """The caption's words in order, without punctuation (what a heat map's word index counts)."""
    return caption(objects).replace(",", "").split()


def object_word_indices(objects: list[Pair]) -> list[tuple[int, int]]:
    """For each object, the indices among `caption_words` of its colour word and its shape word."""
    words = caption_words(objects)
    starts = [i for i, word in enumerate(words) if word == "a"]
    return [(start + 1, start + 2) for start in starts]


def heldout_prompts() -> tuple[list[list[Pair]], list[list[Pair]]]:
    """Evaluation prompts: each held-out pair alone, and each held-out pair with every other pair of
    another colour (held-out or not), in both orders."""
    singles = [[pair] for pair in HELD_OUT_PAIRS]
    pairs = [list(p) for p in permutations(training_pairs() + list(HELD_OUT_PAIRS), 2)]
    doubles = [p for p in pairs if p[0][0] != p[1][0] and (p[0] in HELD_OUT_PAIRS or p[1] in HELD_OUT_PAIRS)]
    return singles, doubles


def training_prompts() -> tuple[list[list[Pair]], list[list[Pair]]]:
    """Prompts made of training pairs only (the in-distribution check)."""
    singles = [[pair] for pair in training_pairs()]
    doubles = [list(p) for p in permutations(training_pairs(), 2) if p[0][0] != p[1][0]]
    return singles, doubles


@dataclass
class Scenes:
    """A batch of scenes; object slot k is the k-th object of the caption. Unused slots have count <= k."""

    count: torch.Tensor  # (B,) long, 1..3
    colours: torch.Tensor  # (B, 3) long index into ALL_COLOURS (COLOURS first)
    shapes: torch.Tensor  # (B, 3) long index into ALL_SHAPES (SHAPES first)
    centres: torch.Tensor  # (B, 3, 2) float pixel coordinates (x, y)
    radii: torch.Tensor  # (B, 3) float

    def objects(self, i: int) -> list[Pair]:
        n = int(self.count[i])
        return [(ALL_COLOURS[int(self.colours[i, k])], ALL_SHAPES[int(self.shapes[i, k])]) for k in range(n)]

    def captions(self) -> list[str]:
        return [caption(self.objects(i)) for i in range(len(self.count))]


def _uniform(low, high, shape, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, device=generator.device)
    return low + (high - low) * u


def sample_scenes(
    batch: int,
    generator: torch.Generator,
    exclude: tuple[Pair, ...] = HELD_OUT_PAIRS,
    extra_colours: int = 0,
    object_counts: tuple[float, ...] = OBJECT_COUNT_PROBS,
    extra_shapes: int = 0,
) -> Scenes:
    """Sample `batch` scenes on the generator's device. Colours are distinct within a scene, drawn from
    COLOURS and the first `extra_colours` of EXTRA_COLOURS; shapes from SHAPES and the first `extra_shapes` of
    EXTRA_SHAPES; `object_counts` are the shares of 1, 2 and 3 objects."""
    if not 0 <= extra_colours <= len(EXTRA_COLOURS):
        raise ValueError(f"extra_colours must be between 0 and {len(EXTRA_COLOURS)}, got {extra_colours}")
    allowed_shapes = training_shapes(extra_shapes)
    if not valid_object_counts(object_counts):
        raise ValueError(f"object_counts must be three shares (1, 2, 3 objects) that sum to 1, got {object_counts}")
    device = generator.device
    u = torch.rand(batch, generator=generator, device=device)
    bounds = np.cumsum(object_counts)[:-1]
    count = 1 + sum((u >= float(b)).long() for b in bounds)
    n_colours = len(COLOURS) + extra_colours
    colours = torch.rand(batch, n_colours, generator=generator, device=device).argsort(dim=1)[:, :MAX_OBJECTS]
    shapes = _sample_allowed_shapes(colours, exclude, generator, allowed_shapes)
    centres, radii = _sample_layout(batch, count, generator)
    return Scenes(count=count, colours=colours, shapes=shapes, centres=centres, radii=radii)


def training_shapes(extra_shapes: int) -> tuple[str, ...]:
    """The shapes a recipe with `extra_shapes` draws (and its images are read with): SHAPES, then that many
    of EXTRA_SHAPES."""
    if not 0 <= extra_shapes <= len(EXTRA_SHAPES):
        raise ValueError(f"extra_shapes must be between 0 and {len(EXTRA_SHAPES)}, got {extra_shapes}")
    return ALL_SHAPES[: len(SHAPES) + extra_shapes]


def valid_object_counts(shares: tuple[float, ...]) -> bool:
    return len(shares) == MAX_OBJECTS and all(0 <= s <= 1 for s in shares) and abs(sum(shares) - 1) <= 1e-6


def _sample_allowed_shapes(
    colours: torch.Tensor, exclude: tuple[Pair, ...], generator, shapes: tuple[str, ...]
) -> torch.Tensor:
    """For each colour, a uniform choice among `shapes` it may take (held-out pairs removed)."""
    allowed = [[ALL_SHAPES.index(s) for s in shapes if (c, s) not in exclude] for c in ALL_COLOURS]
    if any(not choices for choices in allowed):
        raise ValueError("every colour needs at least one allowed shape")
    table = torch.tensor([a + [a[0]] * (len(shapes) - len(a)) for a in allowed], device=colours.device)
    n_allowed = torch.tensor([len(a) for a in allowed], device=colours.device)
    u = torch.rand(colours.shape, generator=generator, device=colours.device)
    choice = (u * n_allowed[colours]).long().clamp(max=len(shapes) - 1)
    return table[colours, choice]


def _sample_layout(batch: int, count: torch.Tensor, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres and radii for every layout, then the one matching each scene's object count.

    Two objects: a split line divides the image, one object on each side. Three objects: a split
    line leaves one object on one side, and a second split divides the other side between two. A
    random flip and transpose of the whole layout puts slot 0 on any side.
    """
    size = float(IMAGE_SIZE)
    u = lambda lo, hi: _uniform(lo, hi, (batch,), generator)  # noqa: E731

    # One object anywhere.
    r1 = u(*RADIUS_ONE)
    one = torch.stack([u(r1, size - r1), u(r1, size - r1)], dim=1)

    # Two objects split along x at s.
    ra = u(*RADIUS_TWO)
    rb = u(RADIUS_TWO[0], torch.clamp(size / 2 - ra, max=RADIUS_TWO[1]))
    s = u(2 * ra, size - 2 * rb)
    two = torch.stack(
        [torch.stack([u(ra, s - ra), u(ra, size - ra)], 1), torch.stack([u(s + rb, size - rb), u(rb, size - rb)], 1)],
        dim=1,
    )

    # Three objects: slot 0 left of s; slots 1 and 2 right of s, split along y at t.
    r3 = torch.stack([u(*RADIUS_THREE) for _ in range(3)], dim=1)
    s3 = u(2 * r3[:, 0], size - 2 * torch.maximum(r3[:, 1], r3[:, 2]))
    t3 = u(2 * r3[:, 1], size - 2 * r3[:, 2])
    three = torch.stack(
        [
            torch.stack([u(r3[:, 0], s3 - r3[:, 0]), u(r3[:, 0], size - r3[:, 0])], 1),
            torch.stack([u(s3 + r3[:, 1], size - r3[:, 1]), u(r3[:, 1], t3 - r3[:, 1])], 1),
            torch.stack([u(s3 + r3[:, 2], size - r3[:, 2]), u(t3 + r3[:, 2], size - r3[:, 2])], 1),
        ],
        dim=1,
    )

    zeros = torch.zeros_like(r1)
    radii = torch.where(
        (count == 1)[:, None],
        torch.stack([r1, zeros, zeros], 1),
        torch.where((count == 2)[:, None], torch.stack([ra, rb, zeros], 1), r3),
    )
    one3 = torch.cat([one[:, None], torch.zeros(batch, 2, 2, device=one.device)], dim=1)
    two3 = torch.cat([two, torch.zeros(batch, 1, 2, device=one.device)], dim=1)
    centres = torch.where((count == 1)[:, None, None], one3, torch.where((count == 2)[:, None, None], two3, three))

    flips = torch.rand(batch, 3, generator=generator, device=one.device) < 0.5
    x, y = centres[..., 0], centres[..., 1]
    x = torch.where(flips[:, 0:1], size - x, x)
    y = torch.where(flips[:, 1:2], size - y, y)
    x, y = torch.where(flips[:, 2:3], y, x), torch.where(flips[:, 2:3], x, y)
    return torch.stack([x, y], dim=-1), radii


def shape_masks(scenes: Scenes, size: int = IMAGE_SIZE) -> torch.Tensor:
    """(B, 3, size, size) bool: pixel centres inside each object; unused slots are empty."""
    device = scenes.centres.device
    grid = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    px = grid[None, None, None, :]
    py = grid[None, None, :, None]
    cx = scenes.centres[..., 0][..., None, None]
    cy = scenes.centres[..., 1][..., None, None]
    r = scenes.radii[..., None, None]
    circle = (px - cx) ** 2 + (py - cy) ** 2 <= r**2
    square = ((px - cx).abs() <= r) & ((py - cy).abs() <= r)
    # Upright isosceles triangle in the same 2r x 2r box: apex at the top, base at the bottom.
    triangle = (py <= cy + r) & ((px - cx).abs() <= (py - cy + r) / 2)
    diamond = (px - cx).abs() + (py - cy).abs() <= r
    arm = CROSS_ARM * r
    cross = square & (((px - cx).abs() <= arm) | ((py - cy).abs() <= arm))
    ring = circle & ((px - cx) ** 2 + (py - cy) ** 2 >= (RING_HOLE * r) ** 2)
    inside = _by_shape(scenes.shapes, (circle, square, triangle, diamond, cross, ring))
    used = torch.arange(MAX_OBJECTS, device=device)[None, :] < scenes.count[:, None]
    return inside & used[..., None, None]


def _by_shape(kinds: torch.Tensor, per_shape: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """(B, 3, H, W): for each object, the plane of `per_shape` (one per ALL_SHAPES) its shape picks."""
    assert len(per_shape) == len(ALL_SHAPES), "one plane per shape, in ALL_SHAPES order"
    stacked = torch.stack(torch.broadcast_tensors(*per_shape))  # (shapes, B, 3, H, W)
    index = kinds[None, :, :, None, None].expand(1, *stacked.shape[1:])
    return stacked.gather(0, index)[0]


def render(scenes: Scenes, size: int = IMAGE_SIZE, shading: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (B, 3, size, size) float in [0, 1] and object masks (B, 3, size, size) bool.

    `shading` > 0 blends each object toward the background by up to that share, in a pattern its shape
    decides (`shape_shading`), so a shape shows inside the object and not only along its outline.
    """
    masks = shape_masks(scenes, size)
    palette = torch.tensor([PALETTE[c] for c in ALL_COLOURS], device=masks.device, dtype=torch.float32) / 255
    batch = len(scenes.count)
    background = torch.tensor(BACKGROUND, device=masks.device, dtype=torch.float32).div(255).view(1, 3, 1, 1)
    images = background.expand(batch, 3, size, size).clone()
    fade = shading * shape_shading(scenes, size) if shading else None
    for k in range(MAX_OBJECTS):
        colour = palette[scenes.colours[:, k]].view(batch, 3, 1, 1)
        if fade is not None:
            colour = colour + fade[:, k : k + 1] * (background - colour)
        images = torch.where(masks[:, k : k + 1], colour, images)
    return images, masks


def shape_shading(scenes: Scenes, size: int = IMAGE_SIZE) -> torch.Tensor:
    """(B, 3, size, size) in [0, 1]: how far each object's pixels fade, by shape. A circle fades toward its
    rim like a lit ball, a square from its left side to its right, a triangle from its apex to its base; an
    extra shape like the circle."""
    grid = torch.arange(size, device=scenes.centres.device, dtype=torch.float32) + 0.5
    r = scenes.radii[..., None, None]
    u = (grid[None, None, None, :] - scenes.centres[..., 0][..., None, None]) / r  # -1 (left) .. 1 (right)
    v = (grid[None, None, :, None] - scenes.centres[..., 1][..., None, None]) / r  # -1 (top) .. 1 (bottom)
    circle = u**2 + v**2
    square = (u + 1) / 2
    triangle = (v + 1) / 2
    return _by_shape(scenes.shapes, (circle, square, triangle) + (circle,) * len(EXTRA_SHAPES)).clamp(0, 1)


class CaptionTokens:
    """Turns scenes into CLIP token ids without running the tokenizer per caption (fast on a GPU).

    Every word of the grammar is one CLIP token; the constructor checks that against the tokenizer.
    """

    def __init__(self, tokenizer) -> None:
        def single(word: str) -> int:
            ids = tokenizer(word, add_special_tokens=False).input_ids
            if len(ids) != 1:
                raise ValueError(f"grammar word {word!r} is not a single CLIP token: {ids}")
            return ids[0]

        self.bos, self.eos, self.pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
        self.length = tokenizer.model_max_length
        self.a, self.comma, self.and_ = single("a"), single(","), single("and")
        self.colour_ids = torch.tensor([single(c) for c in ALL_COLOURS])
        self.shape_ids = torch.tensor([single(s) for s in ALL_SHAPES])

    def __call__(self, scenes: Scenes, without_colour: torch.Tensor | None = None) -> torch.Tensor:
        """(B, model_max_length) long token ids, padded like the pipeline's tokenizer call.

        `without_colour` (B, 3) bool: phrases written without their colour word ("a triangle"), a caption
        variation of the training data (the image keeps its colours).
        """
        ids = self._full_captions(scenes)
        if without_colour is None:
            return ids
        for i in without_colour[:, :MAX_OBJECTS].any(dim=1).nonzero().flatten().tolist():
            ids[i] = self._caption_row(scenes, i, without_colour[i].tolist())
        return ids

    def _caption_row(self, scenes: Scenes, i: int, without_colour: list[bool]) -> torch.Tensor:
        count = int(scenes.count[i])
        words = [self.bos]
        for k in range(count):
            if k > 0:
                words.append(self.and_ if k == count - 1 else self.comma)
            words.append(self.a)
            if not without_colour[k]:
                words.append(int(self.colour_ids[scenes.colours[i, k]]))
            words.append(int(self.shape_ids[scenes.shapes[i, k]]))
        words.append(self.eos)
        words += [self.pad] * (self.length - len(words))
        return torch.tensor(words, dtype=torch.long, device=scenes.count.device)

    def _full_captions(self, scenes: Scenes) -> torch.Tensor:
        device = scenes.count.device
        batch = len(scenes.count)
        colour = self.colour_ids.to(device)[scenes.colours]
        shape = self.shape_ids.to(device)[scenes.shapes]
        a = torch.full((batch,), self.a, device=device)
        full = lambda v: torch.full((batch,), v, device=device)  # noqa: E731
        one = [full(self.bos), a, colour[:, 0], shape[:, 0], full(self.eos)]
        two = one[:4] + [full(self.and_), a, colour[:, 1], shape[:, 1], full(self.eos)]
        three = one[:4] + [full(self.comma), a, colour[:, 1], shape[:, 1]]
        three += [full(self.and_), a, colour[:, 2], shape[:, 2], full(self.eos)]
        ids = torch.full((batch, self.length), self.pad, device=device, dtype=torch.long)
        for n, words in ((1, one), (2, two), (3, three)):
            rows = scenes.count == n
            ids[:, : len(words)] = torch.where(rows[:, None], torch.stack(words, 1), ids[:, : len(words)])
        return ids

    def empty(self, batch: int, device) -> torch.Tensor:
        """Token ids of the empty caption (the unconditional input of classifier-free guidance)."""
        ids = torch.full((batch, self.length), self.pad, device=device, dtype=torch.long)
        ids[:, 0], ids[:, 1] = self.bos, self.eos
        return ids


# ---------------------------------------------------------------------------------------------
# Reading images: palette segmentation and the shape classifier (numpy, one image at a time).


def palette_distances(image, colours: tuple[str, ...] = COLOURS) -> np.ndarray:
    """(H, W, 1 + len(colours)) RGB distance of each pixel to the background, then to each of `colours`."""
    rgb = np.asarray(image, dtype=np.float32)[..., :3]
    centres = np.array([BACKGROUND, *(PALETTE[c] for c in colours)], dtype=np.float32)
    return np.linalg.norm(rgb[..., None, :] - centres, axis=-1)


def segment_by_palette(image) -> dict[str, np.ndarray]:
    """Per benchmark colour (COLOURS), the (H, W) bool mask of pixels within PALETTE_TOLERANCE of it and
    nearer to it than to any other benchmark colour or the background."""
    names = ["background", *COLOURS]
    distance = palette_distances(image)
    nearest = distance.argmin(-1)
    close = distance.min(-1) <= PALETTE_TOLERANCE
    return {name: (nearest == i) & close for i, name in enumerate(names) if name != "background"}


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of a bool mask (empty mask -> empty mask)."""
    height, width = mask.shape
    labels = np.zeros(mask.shape, dtype=np.int32)
    best_label, best_size, label = 0, 0, 0
    for start in zip(*np.nonzero(mask), strict=True):
        if labels[start]:
            continue
        label += 1
        labels[start] = label
        stack, size = [start], 0
        while stack:
            y, x = stack.pop()
            size += 1
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = label
                    stack.append((ny, nx))
        if size > best_size:
            best_label, best_size = label, size
    return labels == best_label if best_label else np.zeros_like(mask)


def shape_templates(box: tuple[int, int, int, int], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Each shape of ALL_SHAPES drawn to fill the pixel box (y0, x0, y1, x1), inclusive, in an image of `size`."""
    y0, x0, y1, x1 = box
    height, width = size
    py, px = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    cx, cy = (x0 + x1 + 1) / 2, (y0 + y1 + 1) / 2
    rx, ry = (x1 + 1 - x0) / 2, (y1 + 1 - y0) / 2
    in_box = (np.abs(px - cx) <= rx) & (np.abs(py - cy) <= ry)
    ellipse = ((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2 <= 1
    triangle = in_box & (np.abs(px - cx) <= rx * (py - (cy - ry)) / (2 * ry))
    diamond = np.abs(px - cx) / rx + np.abs(py - cy) / ry <= 1
    cross = in_box & ((np.abs(px - cx) <= CROSS_ARM * rx) | (np.abs(py - cy) <= CROSS_ARM * ry))
    ring = ellipse & (((px - cx) / rx) ** 2 + ((py - cy) / ry) ** 2 >= RING_HOLE**2)
    return {
        "circle": ellipse,
        "square": in_box,
        "triangle": triangle,
        "diamond": diamond,
        "cross": cross,
        "ring": ring,
    }


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def classify_shape(mask: np.ndarray, shapes: tuple[str, ...] = SHAPES) -> str | None:
    """The shape among `shapes` whose template, fitted to the largest component's bounding box, overlaps it
    best. A model trained with extra shapes is read with them too, so drawing one is not taken for a benchmark
    shape.

    None when the component is too small to read (fewer than MIN_OBJECT_PIXELS pixels).
    """
    component = largest_component(mask)
    if component.sum() < MIN_OBJECT_PIXELS:
        return None
    ys, xs = np.nonzero(component)
    templates = shape_templates((ys.min(), xs.min(), ys.max(), xs.max()), component.shape)
    scores = {name: _iou(component, templates[name]) for name in shapes}
    return max(scores, key=scores.get)


def read_objects(image, shapes: tuple[str, ...] = SHAPES) -> dict[str, tuple[np.ndarray, str | None]]:
    """For each benchmark colour with at least MIN_OBJECT_PIXELS pixels: (its mask, the shape read among
    `shapes`)."""
    found = {}
    for colour, mask in segment_by_palette(image).items():
        if mask.sum() >= MIN_OBJECT_PIXELS:
            found[colour] = (mask, classify_shape(mask, shapes))
    return found


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) floats in [0, 1] -> (B, H, W, 3) uint8, for the numpy readers above."""
    return (images.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def expected_area(shape: str, radius: float) -> float:
    """Area in pixels of a shape of this radius (for sanity checks of the renderer)."""
    arm = 2 * CROSS_ARM * radius  # the width of a cross's arm
    return {
        "circle": math.pi * radius**2,
        "square": 4 * radius**2,
        "triangle": 2 * radius**2,
        "diamond": 2 * radius**2,
        "cross": 2 * (2 * radius * arm) - arm**2,
        "ring": math.pi * radius**2 * (1 - RING_HOLE**2),
    }[shape]
