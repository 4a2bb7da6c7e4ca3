"""Slides with bounds (MIRAX, Leica SCN): the staged copy is cut to the imaged rectangle, as QuPath shows the
slide (qupath#1278), so coordinates start at the bounds' corner; OpenSlide's own origin is kept for the summary."""

from PIL import Image

from pcam_pipeline.wsi.openslide_view import OpenSlideView, bounds_of

BOUNDS = {"openslide.bounds-x": "1000", "openslide.bounds-y": "500",
          "openslide.bounds-width": "2000", "openslide.bounds-height": "1000"}  # fmt: skip


class FakeSlide:
    """What OpenSlideView reads of an openslide.OpenSlide: properties, levels, regions (recorded)."""

    def __init__(self, properties):
        self.properties, self.dimensions = properties, (5000, 3000)
        self.level_dimensions, self.level_downsamples = [(5000, 3000), (1250, 750)], [1.0, 4.0]
        self.reads = []

    def read_region(self, corner, level, size):
        self.reads.append((corner, level, size))
        return Image.new("RGBA", size, (200, 100, 150, 255))


def test_a_slide_with_bounds_is_read_from_the_bounds_corner_at_every_level():
    slide = FakeSlide(BOUNDS)
    view = OpenSlideView(slide)
    assert (view.width, view.height, view.origin) == (2000, 1000, (1000, 500))
    assert [(level.width, level.height, level.downsample) for level in view.levels] == [(2000, 1000, 1.0),
                                                                                      (500, 250, 4.0)]  # fmt: skip
    region = view.read_region(1, 10, 20, 8, 8)
    assert slide.reads == [((1000 + 40, 500 + 80), 1, (8, 8))] and region.shape == (8, 8, 3)


def test_a_slide_without_usable_bounds_keeps_openslides_own_frame():
    view = OpenSlideView(FakeSlide({}))
    assert (view.width, view.height, view.origin) == (5000, 3000, (0, 0))
    assert [(level.width, level.height) for level in view.levels] == [(5000, 3000), (1250, 750)]
    outside = {**BOUNDS, "openslide.bounds-width": "4500"}  # past level 0's edge: a damaged property
    assert bounds_of(outside, (5000, 3000)) == (0, 0, 5000, 3000)
    assert bounds_of({**BOUNDS, "openslide.bounds-x": "n/a"}, (5000, 3000)) == (0, 0, 5000, 3000)
