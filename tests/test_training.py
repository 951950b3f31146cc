"""Sample grids of the training loop: rows of panels under their labels, a title line on top."""
import numpy as np
import pytest

import training

WHITE, YELLOW = (255, 255, 255), (255, 255, 0)   # make_grid's label and title colours


def ink_rows(strip, colour):
    """Indices of the rows of a text strip (HxWx3 uint8) holding pixels near `colour`."""
    near = np.all(np.abs(strip.astype(int) - colour) < 100, axis=2) & (strip.max(axis=2) > 128)
    return np.flatnonzero(near.any(axis=1))


def test_grid_has_labels_and_panels_side_by_side():
    panels = [np.zeros((5, 7, 3), np.float32), np.ones((1, 5, 7, 1), np.float32)]
    grid = training.make_grid([panels], [['a', 'b']])
    strip = training.strip_height(training.label_size(5))
    assert strip == 12 + 2 * 4                          # the 12-pixel minimum text, margins of 0.3 x 12
    assert grid.shape == (5 + strip, 14, 3)
    assert grid[strip:, 7:].min() == 255 and grid[strip:, :7].max() == 0
    assert len(ink_rows(grid[:strip], WHITE)) > 0       # the labels are drawn in their strip


def test_two_row_grid_of_eval15_sized_panels_is_readable():
    """Stage 1's layout on 400 x 600 panels: a title line, then low (input, R, I) over high (input, R,
    I); text at least 1/30 of the panel height; an empty cell stays black."""
    height, width = 400, 600
    low, high = np.full((height, width, 3), 0.25, np.float32), np.full((height, width, 1), 0.75, np.float32)
    rows = [[low, low, low], [high, None, high]]
    labels = [['input low', 'R low', 'I low'], ['input high', '', 'I high']]
    grid = training.make_grid(rows, labels, title='decomposition: 1, epoch 200, step 9700, loss 0.0123')
    size = training.label_size(height)
    strip = training.strip_height(size)
    assert size == 23 and strip == 23 + 2 * 7           # ceil(400 / 18) pixels of text
    assert grid.shape == (3 * strip + 2 * height, 3 * width, 3)
    title = ink_rows(grid[:strip], YELLOW)
    label_low = ink_rows(grid[strip:2 * strip, :width], WHITE)
    label_high = ink_rows(grid[2 * strip + height:3 * strip + height, :width], WHITE)
    for ink in (title, label_low, label_high):          # cap height of the text, in pixels
        assert ink.max() - ink.min() + 1 >= height / 30
    assert ink_rows(grid[strip:2 * strip, width:2 * width], WHITE).size > 0           # 'R low'
    assert ink_rows(grid[2 * strip + height:3 * strip + height, width:2 * width], WHITE).size == 0  # ''
    panel_low = grid[2 * strip:2 * strip + height, :width]
    panel_high = grid[3 * strip + height:, 2 * width:]
    assert np.all(panel_low == 63) and np.all(panel_high == 191)   # uint8(clip(255 y)), truncated
    assert grid[3 * strip + height:, width:2 * width].max() == 0   # the empty cell


@pytest.mark.parametrize('panel_height,size', [(5, 12), (216, 12), (217, 13), (400, 23), (1080, 60)])
def test_label_size_is_a_fixed_fraction_of_the_panel_with_a_floor(panel_height, size):
    assert training.label_size(panel_height) == size
    assert size >= panel_height / 30
