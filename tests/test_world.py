"""The generated world: scenes, masks, captions, held-out pairs, palette segmentation, shape classifier."""

import numpy as np
import pytest
import torch

from daam_store import world
from daam_store.models import load_clip_tokenizer


def scenes(batch=512, seed=0):
    return world.sample_scenes(batch, torch.Generator().manual_seed(seed))


def test_same_seed_same_scenes_and_different_seed_different_scenes():
    a, b, c = scenes(seed=3), scenes(seed=3), scenes(seed=4)
    assert torch.equal(a.centres, b.centres) and torch.equal(a.shapes, b.shapes)
    assert not torch.equal(a.centres, c.centres)


def test_objects_do_not_overlap_stay_inside_and_have_their_area():
    batch = scenes(2000)
    images, masks = world.render(batch)
    assert images.shape == (2000, 3, 32, 32) and masks.shape == (2000, 3, 32, 32)
    assert int(masks.sum(dim=1).max()) <= 1, "two objects share a pixel"
    for i in range(200):
        for k in range(int(batch.count[i])):
            cx, cy = batch.centres[i, k].tolist()
            r = float(batch.radii[i, k])
            assert r <= cx <= 32 - r and r <= cy <= 32 - r, "object leaves the image"
            shape = world.SHAPES[int(batch.shapes[i, k])]
            expected = world.expected_area(shape, r)
            assert abs(int(masks[i, k].sum()) - expected) <= 0.15 * expected + 4
        for k in range(int(batch.count[i]), 3):
            assert not masks[i, k].any()


def test_pixels_take_exact_palette_colours():
    batch = scenes(64)
    pixels = world.to_uint8(world.render(batch)[0]).reshape(-1, 3)
    allowed = {world.BACKGROUND, *world.PALETTE.values()}
    assert {tuple(int(v) for v in p) for p in np.unique(pixels, axis=0)} <= allowed


def test_held_out_pairs_never_appear_and_every_training_pair_does():
    batch = scenes(3000)
    seen = {pair for i in range(3000) for pair in batch.objects(i)}
    assert seen.isdisjoint(world.HELD_OUT_PAIRS)
    assert seen == set(world.training_pairs())


def test_colours_are_distinct_within_a_scene_and_counts_follow_the_mix():
    batch = scenes(4000)
    for i in range(300):
        colours = [c for c, _ in batch.objects(i)]
        assert len(set(colours)) == len(colours)
    shares = torch.bincount(batch.count, minlength=4)[1:].float() / 4000
    assert torch.allclose(shares, torch.tensor(world.OBJECT_COUNT_PROBS), atol=0.03)


def test_object_counts_set_the_share_of_each_scene_size():
    default = scenes(4000, seed=5)
    mixed = world.sample_scenes(4000, torch.Generator().manual_seed(5), object_counts=(0.2, 0.6, 0.2))
    # the same random draws: only the counts change, so other recipes keep their scenes
    assert torch.equal(default.colours, mixed.colours) and torch.equal(default.shapes, mixed.shapes)
    assert not torch.equal(default.count, mixed.count)
    shares = torch.bincount(mixed.count, minlength=4)[1:].float() / 4000
    assert torch.allclose(shares, torch.tensor([0.2, 0.6, 0.2]), atol=0.03)
    only_pairs = world.sample_scenes(500, torch.Generator().manual_seed(5), object_counts=(0.0, 1.0, 0.0))
    assert set(only_pairs.count.tolist()) == {2}
    for bad in ((0.5, 0.5), (0.2, 0.2, 0.2), (-0.2, 0.6, 0.6)):
        with pytest.raises(ValueError, match="object_counts must be three shares"):
            world.sample_scenes(4, torch.Generator().manual_seed(5), object_counts=bad)


def test_captions_follow_the_grammar_with_both_object_orders():
    assert world.caption([("red", "circle")]) == "a red circle"
    assert world.caption([("red", "circle"), ("blue", "square")]) == "a red circle and a blue square"
    three = world.caption([("red", "circle"), ("blue", "square"), ("green", "triangle")])
    assert three == "a red circle, a blue square and a green triangle"
    objects = [("red", "circle"), ("blue", "square"), ("green", "triangle")]
    words = world.caption_words(objects)
    assert [(words[c], words[s]) for c, s in world.object_word_indices(objects)] == objects
    captions = set(scenes(3000).captions())
    assert "a yellow circle and a red square" in captions and "a red square and a yellow circle" in captions


def test_extra_colours_take_every_shape_and_leave_the_benchmark_pairs_as_they_were():
    generator = torch.Generator().manual_seed(5)
    batch = world.sample_scenes(3000, generator, extra_colours=2)
    seen = {pair for i in range(3000) for pair in batch.objects(i)}
    extras = {(c, s) for c in world.EXTRA_COLOURS[:2] for s in world.SHAPES}
    assert seen == set(world.training_pairs()) | extras
    # without extras the draw is the one made before they existed (values from then), so checkpoints of
    # earlier recipes resume on the same batches
    plain = world.sample_scenes(6, torch.Generator().manual_seed(9))
    assert plain.count.tolist() == [2, 1, 2, 2, 3, 3]
    assert plain.colours.tolist() == [[0, 2, 3], [2, 3, 1], [3, 1, 0], [0, 1, 2], [3, 2, 1], [3, 1, 0]]
    assert plain.shapes.tolist() == [[1, 2, 2], [2, 2, 1], [0, 2, 1], [0, 2, 0], [2, 2, 1], [2, 1, 1]]
    assert plain.centres[:, 0, 0].tolist() == pytest.approx([8.952, 12.593, 24.243, 15.347, 6.678, 7.085], abs=1e-3)
    # and with four extras it is the one made before eight were possible: four-extra checkpoints resume alike
    four = world.sample_scenes(6, torch.Generator().manual_seed(9), extra_colours=4)
    assert four.colours.tolist() == [[6, 7, 0], [3, 4, 1], [3, 2, 7], [6, 5, 7], [3, 6, 1], [3, 0, 5]]
    assert four.shapes.tolist() == [[1, 0, 0], [0, 0, 2], [0, 2, 1], [2, 1, 0], [1, 1, 1], [2, 1, 1]]
    with pytest.raises(ValueError, match="extra_colours must be between 0 and 8"):
        world.sample_scenes(4, generator, extra_colours=9)


def test_extra_shapes_come_in_every_colour_and_leave_the_benchmark_draw_as_it_was():
    batch = world.sample_scenes(3000, torch.Generator().manual_seed(5), extra_colours=1, extra_shapes=2)
    seen = {pair for i in range(3000) for pair in batch.objects(i)}
    colours = world.COLOURS + world.EXTRA_COLOURS[:1]
    shapes = world.SHAPES + world.EXTRA_SHAPES[:2]
    assert seen == {(c, s) for c in colours for s in shapes} - set(world.HELD_OUT_PAIRS)
    # extra shapes change the shapes drawn and nothing else (the draw without them is pinned above)
    plain, shaped = (world.sample_scenes(64, torch.Generator().manual_seed(9), extra_shapes=n) for n in (0, 3))
    assert torch.equal(plain.count, shaped.count) and torch.equal(plain.colours, shaped.colours)
    assert torch.equal(plain.centres, shaped.centres) and not torch.equal(plain.shapes, shaped.shapes)
    with pytest.raises(ValueError, match="extra_shapes must be between 0 and 3"):
        world.sample_scenes(4, torch.Generator(), extra_shapes=4)


def test_extra_shapes_render_with_their_area_and_read_back_only_when_the_reader_knows_them():
    batch = world.sample_scenes(400, torch.Generator().manual_seed(3), exclude=(), extra_colours=8, extra_shapes=3)
    images, masks = world.render(batch)
    assert int(masks.sum(dim=1).max()) <= 1
    drawn = set()
    for i, image in enumerate(world.to_uint8(images)):
        benchmark_objects = {c: s for c, s in batch.objects(i) if c in world.COLOURS}
        found = world.read_objects(image, world.ALL_SHAPES)
        assert {c: shape for c, (_, shape) in found.items()} == benchmark_objects
        plain = world.read_objects(image)  # the benchmark's own reader answers among its shapes only
        assert all(shape in world.SHAPES for _, shape in plain.values())
        for k, (_, shape) in enumerate(batch.objects(i)):
            drawn.add(shape)
            area = float(masks[i, k].sum())
            assert area == pytest.approx(world.expected_area(shape, float(batch.radii[i, k])), rel=0.25)
    assert drawn == set(world.ALL_SHAPES)


def test_extra_colours_are_never_read_as_a_benchmark_colour():
    batch = world.sample_scenes(400, torch.Generator().manual_seed(2), extra_colours=len(world.EXTRA_COLOURS))
    images = world.to_uint8(world.render(batch)[0])
    for i in range(400):
        benchmark_colours = {c for c, _ in batch.objects(i) if c in world.COLOURS}
        assert set(world.read_objects(images[i])) == benchmark_colours


def test_caption_tokens_match_the_real_tokenizer():
    tokenizer = load_clip_tokenizer()
    batch = scenes(300)
    expected = tokenizer(batch.captions(), padding="max_length", max_length=77, return_tensors="pt").input_ids
    tokens = world.CaptionTokens(tokenizer)
    assert torch.equal(tokens(batch), expected)
    with_extras = world.sample_scenes(300, torch.Generator().manual_seed(1), extra_colours=len(world.EXTRA_COLOURS))
    expected = tokenizer(with_extras.captions(), padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert torch.equal(tokens(with_extras), expected)
    empty = tokenizer([""] * 2, padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert torch.equal(tokens.empty(2, "cpu"), empty)


def test_colourless_phrases_drop_only_the_chosen_colour_words():
    tokenizer = load_clip_tokenizer()
    batch = scenes(40, seed=3)
    without = torch.rand(40, 3, generator=torch.Generator().manual_seed(0)) < 0.5
    tokens = world.CaptionTokens(tokenizer)
    captions = []
    for i, objects in enumerate(batch.objects(i) for i in range(40)):
        phrases = [(shape,) if without[i, k] else (colour, shape) for k, (colour, shape) in enumerate(objects)]
        words = [" ".join(("a", *phrase)) for phrase in phrases]
        captions.append(words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1])
    expected = tokenizer(captions, padding="max_length", max_length=77, return_tensors="pt").input_ids
    assert torch.equal(tokens(batch, without), expected)
    assert torch.equal(tokens(batch, torch.zeros(40, 3, dtype=torch.bool)), tokens(batch))


def test_reading_rendered_scenes_recovers_every_colour_and_shape():
    batch = scenes(300, seed=7)
    images = world.to_uint8(world.render(batch)[0])
    for i in range(300):
        found = world.read_objects(images[i])
        assert {c: shape for c, (_, shape) in found.items()} == dict(batch.objects(i))


def test_shaded_scenes_keep_their_masks_and_read_back_every_colour_and_shape():
    batch = world.sample_scenes(300, torch.Generator().manual_seed(8), exclude=(), extra_colours=8)
    flat, flat_masks = world.render(batch)
    shaded, masks = world.render(batch, shading=world.MAX_SHADING)
    assert torch.equal(masks, flat_masks) and torch.equal(world.render(batch, shading=0.0)[0], flat)
    inside = masks.any(dim=1, keepdim=True).expand_as(flat)
    assert torch.equal(shaded[~inside], flat[~inside]) and not torch.equal(shaded[inside], flat[inside])
    for i, image in enumerate(world.to_uint8(shaded)):
        read = {c: shape for c, (_, shape) in world.read_objects(image).items()}
        assert read == {c: s for c, s in batch.objects(i) if c in world.COLOURS}


@pytest.mark.parametrize(
    "shape, unshaded, most_shaded",
    [("circle", (16, 16), (16, 24)), ("square", (16, 7), (16, 24)), ("triangle", (8, 16), (24, 16))],
)
def test_shading_pattern_is_the_shapes(shape, unshaded, most_shaded):
    """A red object of radius 9 at the centre: the pixel (y, x) where its shape's pattern starts keeps the palette
    colour, the one where it ends is blended toward the gray by nearly the whole shading."""
    batch = world.Scenes(
        count=torch.tensor([1]),
        colours=torch.tensor([[0, 0, 0]]),
        shapes=torch.tensor([[world.SHAPES.index(shape), 0, 0]]),
        centres=torch.tensor([[[16.0, 16.0], [0.0, 0.0], [0.0, 0.0]]]),
        radii=torch.tensor([9.0, 0.0, 0.0]).view(1, 3),
    )
    image = world.to_uint8(world.render(batch, shading=0.3)[0])[0].astype(int)
    red, gray = np.array(world.PALETTE["red"]), np.array(world.BACKGROUND)
    blend = lambda pixel: np.dot(pixel - red, gray - red) / np.dot(gray - red, gray - red)  # noqa: E731
    assert blend(image[unshaded]) < 0.05 and 0.2 < blend(image[most_shaded]) <= 0.3


def test_segmentation_leaves_blends_unassigned_and_tolerates_small_errors():
    image = np.full((4, 4, 3), 128, np.uint8)
    image[0, 0] = (250, 10, 5)  # nearly red
    image[0, 1] = (191, 64, 64)  # half red, half gray: no colour
    image[0, 2] = (10, 190, 20)  # nearly green
    segments = world.segment_by_palette(image)
    assert segments["red"][0, 0] and not segments["red"][0, 1] and segments["green"][0, 2]
    assert sum(int(m.sum()) for m in segments.values()) == 2


def test_shape_classifier_on_drawn_shapes_of_other_proportions():
    yy, xx = np.mgrid[0:32, 0:32] + 0.5
    ellipse = ((xx - 16) / 12) ** 2 + ((yy - 16) / 8) ** 2 <= 1
    rectangle = (np.abs(xx - 12) <= 9) & (np.abs(yy - 20) <= 6)
    triangle = (yy <= 28) & (np.abs(xx - 16) <= (yy - 8) / 2)
    assert world.classify_shape(ellipse) == "circle"
    assert world.classify_shape(rectangle) == "square"
    assert world.classify_shape(triangle) == "triangle"
    assert world.classify_shape(np.zeros((32, 32), bool)) is None
    tiny = np.zeros((32, 32), bool)
    tiny[3:6, 3:6] = True
    assert world.classify_shape(tiny) is None


def test_largest_component_ignores_stray_pixels():
    mask = np.zeros((10, 10), bool)
    mask[1:5, 1:5] = True
    mask[8, 8] = True
    mask[7, 1:3] = True
    component = world.largest_component(mask)
    assert component.sum() == 16 and not component[8, 8]


def test_held_out_prompts_each_hold_a_held_out_pair_with_distinct_colours():
    singles, doubles = world.heldout_prompts()
    assert [p[0] for p in singles] == list(world.HELD_OUT_PAIRS)
    assert len(doubles) == len({tuple(p) for p in doubles}) > 20
    for first, second in doubles:
        assert first[0] != second[0]
        assert first in world.HELD_OUT_PAIRS or second in world.HELD_OUT_PAIRS
    assert ([("red", "triangle"), ("blue", "circle")] in doubles) and (
        [("blue", "circle"), ("red", "triangle")] in doubles
    )
    train_singles, train_doubles = world.training_prompts()
    assert all(p not in world.HELD_OUT_PAIRS for prompt in train_singles + train_doubles for p in prompt)


@pytest.mark.parametrize("exclude", [(("red", "circle"), ("red", "square"), ("red", "triangle"))])
def test_a_colour_without_any_allowed_shape_is_refused(exclude):
    with pytest.raises(ValueError, match="allowed shape"):
        world.sample_scenes(4, torch.Generator().manual_seed(0), exclude=exclude)
