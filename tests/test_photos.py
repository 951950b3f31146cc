"""--ratio auto on photos without ground truth (exposure.py with the shipped weights), judged by the
four classes' criteria of exposure_checks: generated scenes of each class pass; a family moving
from a dark room to a night scene changes its exposure smoothly (no cliff); a region holding
nothing to show is not painted, whatever the photo-level judgement, while a dark room's structured
walls are lifted; the ratio map is a pointwise function of I with no halo; the curve, the target
and the metering behave as documented; exposure.py imports neither TensorFlow nor pipeline.py.
Generated images only (synthetic.py); no LOL."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import data
import evaluate
import exposure
import exposure_checks
import synthetic
from conftest import ROOT

HEIGHT, WIDTH = 160, 240          # small scenes: the properties, not detail
FAMILY_STEPS = np.linspace(0.0, 1.0, 11)


@pytest.fixture(scope='module')
def shipped():
    kind = evaluate.KinD(os.path.join(ROOT, 'checkpoint'))
    yield kind
    kind.close()


SCENES, SKIES = synthetic.class_scenes(HEIGHT, WIDTH)


@pytest.fixture(scope='module')
def enhanced(shipped):
    return {label: shipped.enhance_pixels(pixels, 'auto') for label, (_, pixels) in SCENES.items()}


@pytest.mark.parametrize('label', sorted(SCENES))
def test_each_class_of_generated_scene_passes_its_check(enhanced, label):
    kind, pixels = SCENES[label]
    output, chosen = enhanced[label]
    assert exposure_checks.failures(kind, pixels, output) == [], chosen.describe()
    assert (chosen.scene == 'night') == (kind == 'night'), chosen.describe()


def test_the_authors_fixed_ratio_lifts_the_night_sky(shipped):
    """What the night check is for: --ratio 5 lifts a black sky into a grey haze."""
    for label in ('night sky with lights 3', 'night sky with lights 4'):
        kind, pixels = SCENES[label]
        assert exposure_checks.failures(kind, pixels, shipped.enhance_pixels(pixels, 5.0)[0])[0].startswith(
            'black rose'), label


def test_never_darker_than_the_input(enhanced):
    for label, (_, pixels) in SCENES.items():
        output = enhanced[label][0]
        assert exposure_checks.luminance(output).mean() >= exposure_checks.luminance(pixels).mean() - 1 / 255, label


def family_levels(kind):
    """[(step, dark part's output level, lit part's, output mean, night weight)] of the generated
    family from a dark room to a night scene (synthetic.room_to_night)."""
    rows = []
    for step in FAMILY_STEPS:
        pixels, dark, lit = synthetic.room_to_night(step)
        output, chosen = kind.enhance_pixels(pixels, 'auto')
        level = exposure_checks.luminance(output)
        rows.append((step, level[dark].mean(), level[lit].mean(), level.mean(), chosen.night))
    return np.array(rows)


def largest_step_share(column):
    """The largest change between neighbouring steps as a share of the whole change."""
    return np.abs(np.diff(column)).max() / np.ptp(column)


def test_a_photo_between_a_dark_room_and_a_night_scene_gets_an_exposure_between(shipped, monkeypatch):
    """No cliff: over eleven steps from a room to a night scene the black part falls from a lifted
    room to a kept sky, and it, the lit part and the mean each move by at most about 40 % of their
    whole change in one step, the night weight passing through values between; a hard threshold
    on the empty share (the old rule's kind of decision), with a lit photo's black released at
    alpha 2-6 and guarded within 0.12 as the first versions of the hold and the guard had it,
    moves the black part in one step."""
    rows = family_levels(shipped)
    dark, lit, mean, night = rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4]
    assert dark[0] > 0.3 and dark[-1] < 0.03 and night[0] == 0 and night[-1] > 0.99, rows
    assert ((night > 0.1) & (night < 0.9)).sum() >= 2, night
    for name, column in (('dark part', dark), ('lit part', lit), ('mean', mean)):
        assert largest_step_share(column) < 0.65 if name == 'lit part' else largest_step_share(column) < 0.45, (
            name, column)
    for name, value in synthetic.CLIFF_RULE.items():
        monkeypatch.setattr(exposure, name, value)
    assert largest_step_share(family_levels(shipped)[:, 1]) > 0.45


def room_beside_an_empty_black():
    """(pixels, empty mask, wall mask): a lamp-lit room (coffee, 4 stops under, the lamp clipped)
    whose left third is an empty black (a night sky's level, featureless) and whose bottom-right
    quarter is a dark wall a few code values above black with texture (coffee, 7 stops under)."""
    rng = np.random.default_rng(21)
    pixels = synthetic.lamp_lit_room(HEIGHT, WIDTH, rng, *synthetic.SENSORS[0][1:])[0]
    empty = np.zeros((HEIGHT, WIDTH), bool)
    empty[:, :WIDTH // 3] = True
    sky = np.full((HEIGHT, WIDTH // 3, 3), synthetic.NIGHT_SKY / 4)
    pixels[:, :WIDTH // 3] = synthetic.expose(sky, *synthetic.SENSORS[0][1:], rng)
    wall = np.zeros((HEIGHT, WIDTH), bool)
    wall[HEIGHT // 2:, 2 * WIDTH // 3:] = True
    texture = synthetic.capture(synthetic.photo('coffee', WIDTH)[:HEIGHT], 7, *synthetic.SENSORS[0][1:], rng)
    pixels[wall] = texture[wall]
    return pixels, empty, wall


def test_a_region_holding_nothing_is_not_painted_whatever_the_photo_level_judgement(shipped, monkeypatch):
    """The empty black is told from the input alone and held within EMPTY_RISE of its input (its
    own noise, no invented texture: the output there is the input's texture, not the nets'), also
    with the night weight forced to 0 (a dark room); the textured wall a few code values above
    black is not empty and is lifted. --ratio 5 paints the empty black."""
    pixels, empty, wall = room_beside_an_empty_black()
    darkness = exposure.Darkness(pixels / 255.0)
    keep = darkness.keep_at((slice(None), slice(None)), pixels.shape)
    assert np.median(keep[empty]) > 0.9 and np.median(keep[wall]) < 0.1
    assert 2 < np.median(exposure_checks.luminance(pixels)[wall]) * 255 < 12     # a few code values above black
    original = exposure.Darkness.__init__

    def as_a_room(self, raw, judgement=None):
        original(self, raw, judgement)
        self.night = 0.0
    monkeypatch.setattr(exposure.Darkness, '__init__', as_a_room)
    output, chosen = shipped.enhance_pixels(pixels, 'auto')
    assert chosen.night == 0 and chosen.alpha > 2, chosen.describe()
    inner = empty & np.roll(empty, -8, axis=1)                   # 8 px or more from the room
    rise = (output.astype(float) - pixels)[inner] / 255
    assert rise.mean() < exposure.EMPTY_RISE[0] + 0.01 and rise.max() < exposure.EMPTY_RISE[0] + 2 / 255
    # however far the exposure is pushed (past where a lit photo's toe lets its black go), the empty
    # black is its input raised (its own noise, not the restoration's texture) and no more, while the
    # textured wall is lifted; a constant ratio of 20 paints the empty black
    pushed = shipped.enhance_pixels(pixels, chosen.at(1.5 * exposure.HOLD_ALPHAS[1]))[0]
    rise = (pushed.astype(float) - pixels)[inner] / 255
    assert rise.max() < exposure.EMPTY_RISE[0] + 2 / 255 and rise.mean() > exposure.EMPTY_RISE[0] - 0.02
    assert np.corrcoef(pushed[inner].ravel(), pixels[inner].ravel())[0, 1] > 0.9
    lifted = exposure_checks.luminance(pushed)[wall].mean() - exposure_checks.luminance(pixels)[wall].mean()
    assert lifted > 0.25, chosen.describe()
    painted = (shipped.enhance_pixels(pixels, 20.0)[0].astype(float) - pixels)[inner] / 255
    assert painted.mean() > exposure.EMPTY_RISE[0] + 0.1


def test_a_lit_photo_misjudged_as_a_room_is_never_ruined(shipped, monkeypatch):
    """With the night weight forced to 0, a generated night scene is lifted as a room, but its
    near-black part rises at most about BLACK_GUARD (a ruined photo's rises more than 0.15)."""
    original = exposure.Darkness.__init__

    def as_a_room(self, raw, judgement=None):
        original(self, raw, judgement)
        self.night = 0.0
    monkeypatch.setattr(exposure.Darkness, '__init__', as_a_room)
    for label in ('night sky with lights 3', 'night sky with lights 4'):
        kind, pixels = SCENES[label]
        output, chosen = shipped.enhance_pixels(pixels, 'auto')
        rise = exposure_checks.measures(pixels, output)['black_rise']
        assert chosen.night == 0 and rise < exposure.BLACK_GUARD + 0.02, (label, rise, chosen.describe())
        assert not exposure_checks.ruined(kind, pixels, output)


def test_the_rule_imports_neither_tensorflow_nor_the_pipeline():
    code = ('import sys, exposure; bad = {"tensorflow", "pipeline", "evaluate"} & set(sys.modules); '
            'print(sorted(bad)); sys.exit(1 if bad else 0)')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_night_scenes_black_is_kept_by_the_toe_and_its_lit_part_lifted(shipped, enhanced):
    """The night curve's map is about 1 over the black sky and lifts the lit windows and street; it is
    pointwise in I, so a tile's is cut from the image's."""
    label = 'night sky with lights 3'
    pixels, sky, chosen = SCENES[label][1], SKIES[label], enhanced[label][1]
    assert chosen.scene == 'night' and chosen.toe > 0 and chosen.hold == 1, chosen.describe()
    illumination = shipped.decompose(data.normalise(pixels))['illumination']
    ratios = chosen.ratio_map(illumination)[..., 0]
    np.testing.assert_array_equal(chosen.ratio_map(illumination[20:100, 40:200])[..., 0], ratios[20:100, 40:200])
    lit = exposure_checks.luminance(pixels) >= exposure_checks.LIT_LEVEL
    assert np.median(ratios[sky]) < 1.3 and np.median(ratios[lit]) > 0.9 * chosen.alpha > 1.5, chosen.describe()


def test_the_empty_dark_is_cut_into_tiles_like_the_image(enhanced):
    """compose reads the empty dark at each pixel's place in the whole image: a tile's output is
    the whole image's, cut."""
    pixels = SCENES['night sky with lights 3'][1]
    chosen = enhanced['night sky with lights 3'][1]
    assert chosen.darkness.empty > 0.2
    image = data.normalise(pixels)
    output = np.clip(image * 20.0, 0, 1).astype(np.float32)          # a strong lift
    whole = chosen.compose(output, image, (slice(None), slice(None)), pixels.shape)
    window = (slice(37, 121), slice(50, 203))
    np.testing.assert_allclose(chosen.compose(output[window], image[window], window, pixels.shape), whole[window],
                               atol=1e-6)
    assert np.abs(whole - output).max() > 0.1                  # the empty sky is held


def test_a_lit_photos_near_black_part_rises_at_most_the_guard_on_every_pixel(shipped):
    """compose holds a lit photo's near-black part within ToneCurve.guard on each pixel of each
    tile, however much the nets lift it (the meter keeps its mean there on a smaller copy only);
    +EV lets it rise as much more, -EV keeps it."""
    pixels = room_beside_an_empty_black()[0]
    chosen = shipped.meter(pixels)[0]
    assert chosen.darkness.guarded and chosen.guard == pytest.approx(exposure.BLACK_GUARD / chosen.lit ** 0.25), \
        chosen.describe()
    image = data.normalise(pixels)
    output = np.clip(image * 20.0 + 0.1, 0, 1).astype(np.float32)      # the nets lifting far past it
    whole = (slice(None), slice(None))
    composed = chosen.compose(output, image, whole, pixels.shape)
    guard = exposure.resample(chosen.darkness.near_black, whole, pixels.shape)
    full = (guard == 1.0) & (exposure_checks.luminance(pixels) * 255 < exposure.LIT_GATE[0])
    assert full.mean() > 0.1
    assert (output - image)[full].max() > chosen.guard + 0.1
    assert (composed - image)[full].max() <= chosen.guard + 1e-6
    box, empty, black = chosen.darkness.held(image, whole, pixels.shape)
    untouched = np.ones(pixels.shape[:2], bool)
    untouched[box] = (empty == 0) & (black == 0)
    assert untouched.mean() > 0.3 and np.abs(composed - output)[untouched].max() == 0     # the rest as the nets
    window = (slice(23, 131), slice(61, 199))
    np.testing.assert_allclose(chosen.compose(output[window], image[window], window, pixels.shape),
                               composed[window], atol=1e-6)
    assert chosen.at(4 * chosen.alpha).guard == pytest.approx(4 * chosen.guard)
    assert chosen.at(chosen.alpha / 2).guard == chosen.guard


def edge_scene():
    """A dim room (coffee, 4 stops under) whose right third is a bright lamp-lit wall: a vertical
    light/dark edge at column 160."""
    rng = np.random.default_rng(9)
    room = synthetic.capture(synthetic.photo('coffee', WIDTH)[:HEIGHT], 4, *synthetic.SENSORS[0][1:], rng)
    room[:, 160:] = 235
    return room


def test_a_metering_render_fused_by_choose_is_the_nets_own_output(shipped, monkeypatch):
    """pipeline.meter's render fetches the adjustment net's I-hat alone on the metering copy, and
    choose fuses it as Prediction does: the nets' own plain output exactly, and their fusion (the
    gray trick's Gaussian in TF against OpenCV's) to float32 round-off."""
    captured = {}
    choose = exposure.choose

    def capture(raw, image, stages, response, darkness, scale, mode, predict, render):
        captured.update(image=image, stages=stages, render=render)
        return choose(raw, image, stages, response, darkness, scale, mode, predict, render)
    monkeypatch.setattr(exposure, 'choose', capture)
    chosen = shipped.meter(edge_scene())[0]
    image, stages = captured['image'], captured['stages']
    assert image.shape[0] < HEIGHT                                  # the copy, not the photo
    adjusted = captured['render'](chosen)
    assert adjusted.shape == stages['illumination'].shape
    ratio_map = chosen.ratio_map(stages['illumination'])
    for mode in ('plain', 'fusion'):
        prediction = exposure.Prediction(image, stages, exposure.gray_trick_weight(stages['reflectance']), mode)
        nets = np.moveaxis(shipped.relight_tile(image, stages, ratio_map, mode), -1, 0)   # channels first
        if mode == 'plain':
            np.testing.assert_array_equal(prediction.fused(adjusted), nets)
        else:
            np.testing.assert_allclose(prediction.fused(adjusted), nets, atol=1e-6)


def test_the_ratio_map_follows_the_illumination_and_leaves_no_halo_at_an_edge(shipped):
    """A is a pointwise function of I (equal I, equal A; so tiles cut it like the image), and on the
    dark side of a light/dark edge the output reaches its plateau within a few pixels: no dark
    ring like a blurred map's (clip(0.35 / blur(I, 12 px), 1, 6) draws one over 10 px wide)."""
    pixels = edge_scene()
    image = data.normalise(pixels)
    stages = shipped.decompose(image)
    chosen = shipped.meter(pixels)[0]
    ratios = chosen.ratio_map(stages['illumination'])
    levels = stages['illumination'][..., 0]
    _, first = np.unique(levels, return_index=True)
    np.testing.assert_array_equal(ratios[..., 0], np.interp(levels, levels.ravel()[first], ratios.ravel()[first]))
    np.testing.assert_array_equal(chosen.ratio_map(stages['illumination'][30:90, 50:170]), ratios[30:90, 50:170])
    assert ratios.max() > 1.2 * ratios.min()                    # a map, not a constant, in this scene
    from scipy.ndimage import gaussian_filter
    blurred_map = np.clip(0.35 / gaussian_filter(levels, 12), 1, 6)[..., None].astype(np.float32)
    widths = {}
    for name, relit in (('tone curve', chosen), ('blurred map', FixedMap(blurred_map))):
        profile = exposure_checks.luminance(data.to_uint8(shipped.relight(image, stages, relit)))[:, :160].mean(0)
        plateau = np.median(profile[120:150])                   # the dark side, 10-40 px from the edge
        widths[name] = int((profile[120:] < plateau - 0.03).sum())   # columns of a ring darker than it
    assert widths['tone curve'] <= 4 and widths['blurred map'] >= 10, widths


class FixedMap(exposure.Exposure):
    """A given ratio map (for the comparison above)."""

    def __init__(self, ratios):
        super().__init__(1.0, 'given')
        self.ratios = ratios

    def ratio_map(self, illumination):
        return self.ratios


def test_the_predicted_output_is_the_nets_within_a_level_or_two(shipped, enhanced):
    """choose meters on the nets' output predicted from the response (I-hat = T(I)): on a generated
    night and a room, at three alphas, its mean is theirs within 2 levels."""
    for label in ('night sky with lights 3', 'dim room with a lamp 3'):
        pixels = SCENES[label][1]
        image = data.normalise(pixels)
        stages = shipped.decompose(image)
        chosen = enhanced[label][1]
        prediction = exposure.Prediction(image, stages, exposure.gray_trick_weight(stages['reflectance']), 'fusion')
        for alpha in (1.0, 4.0, 16.0):
            curve = chosen.at(alpha)
            predicted = prediction(curve)
            nets = shipped.relight(image, stages, exposure.ToneCurve(
                alpha, curve.white, curve.slope, curve.dark, curve.response, night=curve.night, lit=curve.lit,
                toe=curve.toe))
            assert abs(predicted.mean() - nets.mean()) < 2 / 255, (label, alpha)


# ---- the tone curve and the target, on an analytic response F(i, a) = min(1, i a) -------------------

def linear_response():
    levels, alphas = exposure.RESPONSE_LEVELS, exposure.RESPONSE_ALPHAS
    return exposure.AdjustmentResponse(np.minimum(1.0, levels[:, None] * alphas[None, :]))


def test_the_tone_curve_lifts_shadows_by_alpha_keeps_highlights_and_keeps_the_order():
    curve = exposure.ToneCurve(4.0, white=0.45, slope=0.4, dark=0.0, response=linear_response())
    levels = exposure.RESPONSE_LEVELS
    target = curve.target()
    assert np.all(np.diff(target) > 0)                                   # tones keep their order
    assert np.all(target >= levels - 1e-12)                               # never below the identity
    np.testing.assert_allclose(target[levels < 0.01], 4.0 * levels[levels < 0.01], rtol=0.01)
    np.testing.assert_allclose(target[levels >= 0.45], levels[levels >= 0.45])
    # through a response F(i, a) = i a the map is T(i) / i, looked up pointwise
    illumination = np.array([[[0.005], [0.1], [0.3], [0.8]]], np.float32)
    expected = np.interp(np.log(illumination), np.log(levels), np.log(target / levels))
    np.testing.assert_allclose(np.log(curve.ratio_map(illumination)), expected, atol=5e-3)   # grid interpolation
    np.testing.assert_allclose(curve.adjusted(illumination), np.interp(np.log(illumination), np.log(levels), target),
                               rtol=1e-3)                                 # what the net is predicted to give
    brighter = curve.at(8.0)
    assert brighter.alpha == 8.0 and np.all(brighter.target() >= target)


def test_the_guard_stays_under_the_ruin_line_for_dim_lights_and_lets_go_smoothly():
    """A lit photo's near-black guard is BLACK_GUARD (0.04, what a night photo's black may rise) at
    full lights, under the ruin line while the photo is at all lit (down to lit 0.005: a dim lamp,
    lit 0.5, 0.048), and lets go without a step towards an unlit dark room (no guard at lit 0)."""
    response = linear_response()
    lits = np.linspace(0.0, 1.0, 10001)
    guards = np.array([exposure.ToneCurve(8.0, 1.0, 0.25, 1.0, response, lit=lit).guard for lit in lits])
    assert exposure.BLACK_GUARD == exposure_checks.BLACK_RISE and guards[-1] == pytest.approx(exposure.BLACK_GUARD)
    assert guards[0] == np.inf and np.isfinite(guards[1:]).all() and np.all(np.diff(guards) <= 0)
    assert guards[lits >= 0.0051].max() < exposure_checks.RUINED_RISE < guards[lits <= 0.0050].min()
    assert guards[lits == 0.5][0] == pytest.approx(0.04 / 0.5 ** 0.25, abs=1e-6)
    assert guards[1] > 0.35                                                       # nearly a room: 0.4


def test_a_global_share_of_one_is_a_constant_ratio():
    curve = exposure.ToneCurve(3.5, white=1.0, slope=0.25, dark=1.0, response=linear_response())
    illumination = np.random.default_rng(0).random((5, 7, 1)).astype(np.float32)
    np.testing.assert_array_equal(curve.ratio_map(illumination), np.full((5, 7, 1), 3.5, np.float32))


def test_a_toe_keeps_the_illumination_below_it_and_lifts_fully_at_toe_span_above():
    """A night scene's curve (hold 1): the identity up to the toe, the untoed curve from TOE_SPAN x
    the toe on, never decreasing; through the response its map is 1 below the toe. A lit photo at a
    large alpha holds nothing (no black blobs in a lifted room); at a small one it holds."""
    plain = exposure.ToneCurve(6.0, white=1.0, slope=0.25, dark=1.0, response=linear_response())
    toed = exposure.ToneCurve(6.0, white=1.0, slope=0.25, dark=1.0, response=linear_response(), night=1.0,
                              toe=0.03)
    assert toed.hold == 1.0
    levels, target = exposure.RESPONSE_LEVELS, toed.target()
    np.testing.assert_allclose(target[levels <= 0.03], levels[levels <= 0.03], rtol=1e-12)
    above = levels >= 0.03 * exposure.TOE_SPAN
    np.testing.assert_allclose(target[above], plain.target()[above], rtol=1e-12)
    assert np.all(np.diff(target) >= 0) and np.all(target >= levels * (1 - 1e-12))
    ratios = toed.ratio_map(np.array([[[0.005], [0.02], [0.15], [0.2]]], np.float32))[0, :, 0]
    np.testing.assert_allclose(ratios, [1.0, 1.0, 6.0, 6.0], rtol=0.01)
    assert toed.at(3.0).toe == 0.03 and 'below illumination 0.03' in toed.describe()
    lit = dict(white=1.0, slope=0.25, dark=1.0, response=linear_response(), lit=1.0, toe=0.03)
    assert exposure.ToneCurve(exposure.HOLD_ALPHAS[1], **lit).hold == 0
    assert exposure.ToneCurve(exposure.HOLD_ALPHAS[0], **lit).hold == 1
    assert exposure.ToneCurve(3.0, **dict(lit, lit=0.0, night=0.25)).hold == pytest.approx(0.5)   # HOLD_GAIN


def test_the_adjustment_response_is_measured_on_constant_patches():
    response = exposure.AdjustmentResponse.measure(lambda i, a: np.minimum(1.0, i * a))
    np.testing.assert_allclose(response.table, np.minimum(1.0, exposure.RESPONSE_LEVELS[:, None]
                                                           * exposure.RESPONSE_ALPHAS[None, :]), atol=1e-6)
    assert response.at_alpha(2.0)[0] == pytest.approx(2 * exposure.RESPONSE_LEVELS[0], rel=0.01)   # interpolated


def test_the_exposure_target_by_the_input_mean():
    assert exposure.exposure_target(0.05) == pytest.approx(exposure.MID_GREY)
    assert exposure.exposure_target(0.05, predicted=0.9) == exposure.DARK_TARGET_BAND[1]
    assert exposure.exposure_target(0.05, predicted=0.2) == exposure.DARK_TARGET_BAND[0]
    assert exposure.exposure_target(0.22) == pytest.approx(0.31)                # at most +0.09 ...
    assert exposure.exposure_target(0.5) == 0.5                                 # ... and the own mean above


def test_never_darker_is_met_within_a_level_of_the_brightest_output_where_the_input_is_out_of_reach():
    """The floor is the first alpha within NOT_DARKER of the input's level; where the nets' output tops
    out below it (a bright office's windows at 1600 px: the brightest tenth of the global lift's
    output, measured on the metering grid), within NOT_DARKER of the highest, not alpha 500."""
    log_alphas = np.linspace(math.log(exposure.ALPHA_RANGE[0]), math.log(exposure.ALPHA_RANGE[1]),
                             exposure.METER_GRID)
    windows = np.array([0.86299, 0.87718, 0.90225, 0.9239, 0.92806, 0.92864] + [0.92875] * 9)
    chosen = exposure._not_darker(log_alphas, windows, 0.93302)
    assert np.interp(chosen, log_alphas, windows) == pytest.approx(0.92875 - exposure.NOT_DARKER)
    assert log_alphas[3] < chosen < log_alphas[4] and math.exp(chosen) < 1.5
    reached = exposure._not_darker(log_alphas, windows, 0.925)                # within reach: as before
    assert np.interp(reached, log_alphas, windows) == pytest.approx(0.925 - exposure.NOT_DARKER)
    assert exposure._not_darker(log_alphas, windows, 0.5) == log_alphas[0]


def metered_by(raw, reflectance, predict=None):
    """choose on a raw frame whose stages are R = `reflectance`, I = its luminance, R-hat = R: the
    predicted plain output is then R T(I) (a linear response), and the render, I-hat, is that
    prediction. Returns the exposure and the output [h,w,3] under any curve."""
    illumination = exposure.luminance(raw)[..., None]
    stages = {'reflectance': reflectance, 'illumination': illumination, 'restored': np.ones_like(raw)}

    def render(curve):
        return np.minimum(1.0, curve.adjusted(illumination))
    return (exposure.choose(raw, raw, stages, linear_response(), exposure.Darkness(raw), 1.0, 'plain', predict,
                            render), lambda curve: render(curve) * np.ones_like(raw))


def test_the_bounds_bisection_is_guided_by_the_predictions_bias():
    """Where the nets' output is brighter than the predicted one (by 3 %), the target met on it
    exceeds the mean's ceiling (the predicted mean there) and alpha is bisected down: first on the
    prediction less its bias, then confirmed on the nets' own output, so 2 renders do what 6 did;
    the alpha is the last feasible one on the nets' own output within the bisection's resolution."""
    rng = np.random.default_rng(0)
    raw = np.clip(0.06 + 0.04 * rng.random((48, 64, 3)) + np.linspace(0, 0.05, 64)[None, :, None], 0, 1)
    illumination = exposure.luminance(raw)[..., None]
    stages = {'reflectance': raw, 'illumination': illumination, 'restored': np.ones_like(raw)}
    renders = []

    def render(curve):
        renders.append(curve.alpha)
        return np.minimum(1.0, 1.03 * curve.adjusted(illumination))
    chosen = exposure.choose(raw, raw, stages, linear_response(), exposure.Darkness(raw), 1.0, 'plain', None, render)
    assert len(renders) <= exposure.TARGET_REFINE + 3, renders          # a plain bisection: + 7
    goal = exposure.exposure_target(exposure.luminance(raw).mean()) - exposure.TARGET_TOLERANCE

    def rendered_mean(alpha):
        return exposure.luminance(data.to_uint8(render(chosen.at(alpha)) * np.ones_like(raw)) / 255.0).mean()
    step = math.exp(math.log(exposure.ALPHA_RANGE[1] / exposure.ALPHA_RANGE[0]) / (exposure.METER_GRID - 1)
                    / 2 ** exposure.METER_REFINE)                        # the bisection's resolution
    assert rendered_mean(chosen.alpha) <= goal < rendered_mean(chosen.alpha * step * 1.01)


def test_the_bounds_bisection_confirms_its_grid_end_on_the_nets_own_output():
    """Where the target falls just above a grid alpha, the bisection's low end is that grid alpha,
    feasible on the prediction; where the nets' output (3 % brighter) exceeds the mean's ceiling
    there, the search goes on below it. It returned the grid alpha unchecked: as a scene brightened
    by 0.002 a step, alpha stuck on it (3.7747 twice) and then fell by 5 %, and a still scene's
    metered alpha switched between the grid alpha and the one below it from frame to frame."""
    rng = np.random.default_rng(0)
    base = 0.04 * rng.random((48, 64, 3)) + np.linspace(0, 0.05, 64)[None, :, None]
    alphas = []
    for offset in np.arange(0.066, 0.0781, 0.002):
        raw = np.clip(offset + base, 0, 1)
        illumination = exposure.luminance(raw)[..., None]
        stages = {'reflectance': raw, 'illumination': illumination, 'restored': np.ones_like(raw)}

        def render(curve):
            return np.minimum(1.0, 1.03 * curve.adjusted(illumination))
        alphas.append(exposure.choose(raw, raw, stages, linear_response(), exposure.Darkness(raw), 1.0, 'plain',
                                      None, render).alpha)
    steps = -np.diff(np.log(alphas))
    assert (steps > 0.005).all() and steps.max() < 0.035, np.round(alphas, 4)   # were 0 and 0.050


def test_the_guided_bisection_follows_a_bias_that_changes_with_alpha(monkeypatch):
    """Where the nets' output is brighter than the predicted one by a share that grows with alpha,
    the bias at the first alpha rendered misleads the first guided round; the next round starts from
    the bias where the last render was, and ends within the bisection's resolution of a plain
    bisection on the nets' own output, with fewer renders (7 against 9 here)."""
    rng = np.random.default_rng(0)
    raw = np.clip(0.06 + 0.04 * rng.random((48, 64, 3)) + np.linspace(0, 0.05, 64)[None, :, None], 0, 1)
    illumination = exposure.luminance(raw)[..., None]
    stages = {'reflectance': raw, 'illumination': illumination, 'restored': np.ones_like(raw)}

    def chosen(rounds):
        monkeypatch.setattr(exposure, 'GUIDED_ROUNDS', rounds)
        renders = []

        def render(curve):
            renders.append(curve.alpha)
            return np.minimum(1.0, (1.03 + 0.02 * math.log(curve.alpha)) * curve.adjusted(illumination))
        alpha = exposure.choose(raw, raw, stages, linear_response(), exposure.Darkness(raw), 1.0, 'plain', None,
                                render).alpha
        return alpha, len(renders)

    (guided, guided_renders), (plain, plain_renders) = chosen(exposure.GUIDED_ROUNDS), chosen(0)
    assert guided_renders > exposure.TARGET_REFINE + 3                  # the first round's bracket failed
    assert guided_renders < plain_renders, (guided_renders, plain_renders)
    step = (math.log(exposure.ALPHA_RANGE[1] / exposure.ALPHA_RANGE[0]) / (exposure.METER_GRID - 1)
            / 2 ** exposure.METER_REFINE)                                # at most the bisection's resolution
    assert abs(math.log(guided / plain)) < step, (guided, plain)


def lamp_lit_wall(black_side):
    """A dim wall (0.05-0.09) with a clipped lamp (1.2 % of the frame: a lit photo) and a black
    square of `black_side` px: 160x240 RGB in [0, 1]."""
    rng = np.random.default_rng(3)
    raw = 0.05 + 0.02 * rng.random((160, 240, 3)) + np.linspace(0, 0.02, 240)[None, :, None]
    raw[10:30, 200:222] = 1.0
    raw[70:70 + black_side, 100:100 + black_side] = 0.0
    return raw


def test_a_speck_of_black_does_not_decide_a_photos_exposure(monkeypatch):
    """The near-black part's bounds weigh in with its share of the frame (BLACK_SHARE): where the
    nets lift black by 0.05 (more than a lit photo's held black may rise), a black speck of 0.08 %
    of the frame leaves alpha where the wall alone has it, and a black square of 4 % holds it down;
    weighed fully whatever its size (as before), the speck holds it down as much (a pan's frames
    then jumped between two alphas as a few pixels of black came and went)."""
    def alpha(raw):
        illumination = exposure.luminance(raw)[..., None]
        stages = {'reflectance': raw, 'illumination': illumination, 'restored': np.ones_like(raw)}

        def render(curve):                                  # the nets, lifting black by 0.05
            return np.minimum(1.0, curve.adjusted(illumination) + 0.05 * (illumination < 0.01))
        darkness = exposure.Darkness(raw)
        assert darkness.lit == 1
        return exposure.choose(raw, raw, stages, linear_response(), darkness, 1.0, 'plain', None, render).alpha

    shares = {side: exposure_checks.black_mask(data.to_uint8(lamp_lit_wall(side))).mean() for side in (12, 40)}
    assert 0 < shares[12] < exposure.BLACK_SHARE[0] and shares[40] > exposure.BLACK_SHARE[1], shares
    wall, speck, square = alpha(lamp_lit_wall(0)), alpha(lamp_lit_wall(12)), alpha(lamp_lit_wall(40))
    assert speck == pytest.approx(wall, rel=0.02) and square < 0.8 * wall, (wall, speck, square)
    monkeypatch.setattr(exposure, 'BLACK_SHARE', (0.0, 1e-9))
    assert alpha(lamp_lit_wall(12)) < 0.8 * wall


def test_choose_keeps_alpha_near_one_where_a_bright_photos_highlights_are_out_of_reach(monkeypatch):
    """choose on a bright photo whose outputs top their highlights at 0.95, below the input's 0.98:
    its never-darker floor is met within a level of 0.95 and alpha stays moderate (with the floor at
    the end of the range, as before, it was 500)."""
    raw = np.full((40, 40, 3), 0.3)
    raw[:, :20] = 0.98                                            # half the frame near-white
    stages = {'reflectance': raw, 'illumination': exposure.luminance(raw)[..., None], 'restored': raw}
    predicted = []

    def capped_output(prediction, curve):                          # a gentle gain, highlights capped
        output = np.minimum(raw * curve.alpha ** 0.1, 0.95)
        predicted.append(exposure.luminance(output)[:, :20].mean())
        return np.moveaxis(output, -1, 0)                          # channels first, as Prediction's
    monkeypatch.setattr(exposure.Prediction, '__call__', capped_output)
    chosen = exposure.choose(raw, raw, stages, linear_response(), exposure.Darkness(raw), 1.0)
    assert max(predicted) < 0.98 - exposure.NOT_DARKER                    # the floor is out of reach
    assert 1.0 < chosen.alpha < 3.0, chosen.describe()


def test_the_lol_regression_meters_a_dark_room_but_not_a_night_scenes_lit_part():
    """A dark frame whose top 3/4 are an empty black (0.004) over a dim scene (0.08) with lamps, the
    regression predicting an output mean of 0.34: with the black featureless it is a night scene,
    whose lit part is metered to 18 % grey and the regression is not called (it is fit on LOL's
    rooms, which have neither lights nor sky); a dark room with texture everywhere and no lights
    is metered to the prediction."""
    raw = np.full((60, 60, 3), 0.08)
    raw[:45] = 0.004
    raw[54:, :4] = 1.0                                            # lamps: 0.7 % of the frame
    asked = []

    def predict():
        asked.append(0.34)
        return 0.34
    night, render = metered_by(raw, np.full_like(raw, 0.5), predict)
    assert night.night == 1 and not asked, night.describe()
    lit = exposure.luminance(raw) > 0.05
    assert exposure.luminance(data.to_uint8(render(night)) / 255.0)[lit].mean() == pytest.approx(
        exposure.MID_GREY, abs=0.04), night.describe()
    room = np.full((60, 60, 3), 0.06)
    room[::2] = 0.1                                               # stripes: structure everywhere, no lamp
    dark_room, render = metered_by(room, room, predict)
    assert dark_room.night == 0 and asked == [0.34], dark_room.describe()
    assert (data.to_uint8(render(dark_room)) / 255.0).mean() == pytest.approx(0.34, abs=0.02), dark_room.describe()


def test_the_tone_shape_moves_from_a_global_lift_to_a_shadow_lift():
    assert exposure.tone_shape(0.05) == {'white': 1.0, 'slope': 0.25, 'dark': 1.0}
    assert exposure.tone_shape(0.5) == {'white': 0.45, 'slope': 0.4, 'dark': 0.0}
    middle = exposure.tone_shape(0.25)
    assert middle['dark'] == pytest.approx(0.5) and 0.45 < middle['white'] < 1.0


# ---- the checks themselves (exposure_checks), on hand-made outputs ------------------------------------

def test_the_class_checks_read_the_issues_definitions():
    gray = np.full((40, 40, 3), 100, np.uint8)
    assert exposure_checks.luminance(gray)[0, 0] == pytest.approx(100 / 255)
    assert exposure_checks.failures('well_exposed', gray, gray) == []
    assert exposure_checks.failures('well_exposed', gray, gray + 30)[0].startswith('mean moved +0.118')
    dark = np.full((40, 40, 3), 20, np.uint8)
    assert exposure_checks.failures('dark_scene', dark, np.full_like(dark, 100)) == []
    assert exposure_checks.failures('dark_scene', dark, np.full_like(dark, 70)) == ['mean 0.275']
    night = np.zeros((60, 60, 3), np.uint8)
    night[:, 40:] = 120                                           # a lit third beside a black sky
    lifted = night.copy()
    lifted[:, :33] = 12                                           # the sky rises by 0.047
    black = exposure_checks.black_mask(night)
    assert black[:, :32].all() and not black[:, 40:].any()
    assert exposure_checks.failures('night', night, lifted) == ['black rose %.3f' % (12 / 255 * black[:, :33].sum()
                                                                                     / black.sum())]
    assert exposure_checks.failures('night', night, night) == []
    assert not exposure_checks.ruined('night', night, lifted)
    lifted[:, :33] = 50                                           # 0.196 over the black part's 33 columns
    assert exposure_checks.ruined('night', night, lifted) and not exposure_checks.ruined('dark_scene', night, lifted)
    backlit = np.full((40, 40, 3), 240, np.uint8)
    backlit[20:] = 10
    shadows_lifted = backlit.copy()
    shadows_lifted[20:] = 20                                      # 2x and +0.039
    assert exposure_checks.failures('backlit', backlit, shadows_lifted) == []
    shadows_lifted[20:] = 15                                      # 1.5x
    assert exposure_checks.failures('backlit', backlit, shadows_lifted)[0].startswith('shadows')
