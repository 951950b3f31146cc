"""--ratio auto on photos without ground truth (exposure.py with the shipped weights), judged by the
four classes' criteria of exposure_checks: generated scenes of each class pass, the tone curve's
ratio map is a pointwise function of I with no halo at a light/dark edge, and the curve and the
target behave as documented. Generated images only (synthetic.py); no LOL."""
import math
import os

import numpy as np
import pytest

import data
import evaluate
import exposure
import exposure_checks
import synthetic
from conftest import ROOT

HEIGHT, WIDTH = 160, 240          # small scenes: the properties, not detail


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
    assert (chosen.scene == 'night') == (kind == 'night')


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


def test_a_night_scenes_black_is_kept_by_the_toe_and_its_lit_part_lifted(shipped, enhanced):
    """The night curve's map is about 1 over the black sky and lifts the lit windows and street; it is
    pointwise in I, so a tile's is cut from the image's."""
    label = 'night sky with lights 3'
    pixels, sky, chosen = SCENES[label][1], SKIES[label], enhanced[label][1]
    assert chosen.scene == 'night' and chosen.toe > 0, chosen.describe()
    illumination = shipped.decompose(data.normalise(pixels))['illumination']
    ratios = chosen.ratio_map(illumination)[..., 0]
    np.testing.assert_array_equal(chosen.ratio_map(illumination[20:100, 40:200])[..., 0], ratios[20:100, 40:200])
    lit = exposure_checks.luminance(pixels) >= exposure_checks.LIT_LEVEL
    assert np.median(ratios[sky]) < 1.3 and np.median(ratios[lit]) > 0.9 * chosen.alpha > 1.5, chosen.describe()


def room_beside_a_black_wall():
    """A room (coffee) 5 stops under, nothing lit in it (its brightest pixels below 0.25), whose
    left third is a smooth, featureless wall at a night sky's level."""
    rng = np.random.default_rng(11)
    pixels = synthetic.capture(synthetic.photo('coffee', WIDTH)[:HEIGHT], 5, *synthetic.SENSORS[0][1:], rng)
    wall = np.full((HEIGHT, WIDTH // 3, 3), synthetic.NIGHT_SKY)
    pixels[:, :WIDTH // 3] = synthetic.expose(wall, *synthetic.SENSORS[0][1:], rng)
    return pixels


def test_an_underexposed_room_without_lights_is_no_night_scene(shipped, monkeypatch):
    """Featureless black without a light in the frame (LOL's rooms, most of them) is lifted as a
    dark scene, though its wall alone would make it a night scene (metered with lights ignored)."""
    pixels = room_beside_a_black_wall()
    assert np.percentile(exposure_checks.luminance(pixels), exposure.NIGHT_LIGHTS[0]) < exposure.NIGHT_LIGHTS[1]
    output, chosen = shipped.enhance_pixels(pixels, 'auto')
    assert chosen.scene == 'scene' and not chosen.toe, chosen.describe()
    assert exposure_checks.failures('dark_scene', pixels, output) == [], chosen.describe()
    monkeypatch.setattr(exposure, 'NIGHT_LIGHTS', (exposure.NIGHT_LIGHTS[0], 0.0))
    assert shipped.meter(pixels)[0].scene == 'night'


def fire_in_the_dark():
    """A fire (a clipped orange disc) in a dark scene with texture: scikit-image's motorcycle 9
    stops under, 71 % of the frame near-black."""
    linear = (synthetic.photo('motorcycle', WIDTH)[:HEIGHT].astype(np.float64) / 255.0) ** synthetic.GAMMA / 2.0 ** 9
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    linear[(rows - 0.75 * HEIGHT) ** 2 + (cols - 0.5 * WIDTH) ** 2 < (HEIGHT / 10) ** 2] = (1.0, 0.6, 0.2)
    return synthetic.expose(linear, *synthetic.SENSORS[0][1:], np.random.default_rng(5))


def test_a_frame_mostly_black_around_a_light_is_a_night_scene_whatever_its_texture(shipped, monkeypatch):
    """Exposed for its light, a frame mostly near-black keeps its black, though its dark part has
    texture (metered without this rule, it is no night scene, and a lift would raise the black)."""
    pixels = fire_in_the_dark()
    assert exposure_checks.black_mask(pixels).mean() >= exposure.NIGHT_MOSTLY_BLACK
    output, chosen = shipped.enhance_pixels(pixels, 'auto')
    assert chosen.scene == 'night' and chosen.toe > 0, chosen.describe()
    assert exposure_checks.failures('night', pixels, output) == [], chosen.describe()
    monkeypatch.setattr(exposure, 'NIGHT_MOSTLY_BLACK', 1.01)
    lifted, chosen = shipped.enhance_pixels(pixels, 'auto')
    assert chosen.scene == 'scene'
    assert exposure_checks.failures('night', pixels, lifted)[0].startswith('black rose'), chosen.describe()


def edge_scene():
    """A dim room (coffee, 4 stops under) whose right third is a bright lamp-lit wall: a vertical
    light/dark edge at column 160."""
    rng = np.random.default_rng(9)
    room = synthetic.capture(synthetic.photo('coffee', WIDTH)[:HEIGHT], 4, *synthetic.SENSORS[0][1:], rng)
    room[:, 160:] = 235
    return room


def test_the_ratio_map_follows_the_illumination_and_leaves_no_halo_at_an_edge(shipped):
    """A is a pointwise function of I (equal I, equal A; so tiles cut it like the image), and on the
    dark side of a light/dark edge the output reaches its plateau within a few pixels: no dark
    ring like a blurred map's (clip(0.35 / blur(I, 12 px), 1, 6) of the issue draws one 20 px wide)."""
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
    brighter = curve.at(8.0)
    assert brighter.alpha == 8.0 and np.all(brighter.target() >= target)


def test_a_global_share_of_one_is_a_constant_ratio():
    curve = exposure.ToneCurve(3.5, white=1.0, slope=0.25, dark=1.0, response=linear_response())
    illumination = np.random.default_rng(0).random((5, 7, 1)).astype(np.float32)
    np.testing.assert_array_equal(curve.ratio_map(illumination), np.full((5, 7, 1), 3.5, np.float32))


def test_a_toe_keeps_the_illumination_below_it_and_lifts_fully_an_octave_above():
    """A night scene's curve: the identity up to the toe, the untoed curve from 2 x the toe on,
    never decreasing; through the response its map is 1 below the toe."""
    plain = exposure.ToneCurve(6.0, white=1.0, slope=0.25, dark=1.0, response=linear_response())
    toed = exposure.ToneCurve(6.0, white=1.0, slope=0.25, dark=1.0, response=linear_response(), toe=0.03)
    levels, target = exposure.RESPONSE_LEVELS, toed.target()
    np.testing.assert_allclose(target[levels <= 0.03], levels[levels <= 0.03], rtol=1e-12)
    np.testing.assert_allclose(target[levels >= 0.06], plain.target()[levels >= 0.06], rtol=1e-12)
    assert np.all(np.diff(target) >= 0) and np.all(target >= levels * (1 - 1e-12))
    ratios = toed.ratio_map(np.array([[[0.005], [0.02], [0.1], [0.15]]], np.float32))[0, :, 0]
    np.testing.assert_allclose(ratios, [1.0, 1.0, 6.0, 6.0], rtol=0.01)
    assert toed.at(3.0).toe == 0.03 and 'kept below illumination 0.03' in toed.describe()


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


def test_choose_keeps_alpha_near_one_where_a_bright_photos_highlights_are_out_of_reach():
    """choose on a bright photo whose renders top their highlights at 0.95, below the input's 0.98:
    its never-darker floor is met within a level of 0.95 and alpha stays moderate (with the floor at
    the end of the range, as before, it was 500)."""
    raw = np.full((40, 40, 3), 0.3)
    raw[:, :20] = 0.98                                            # half the frame near-white
    stages = {'reflectance': raw, 'illumination': exposure.luminance(raw)[..., None]}
    rendered = []

    def render(curve):                                          # a gentle gain, highlights capped
        output = np.minimum(raw * curve.alpha ** 0.1, 0.95)
        rendered.append(exposure.luminance(output)[:, :20].mean())
        return output

    chosen = exposure.choose(raw, stages, render, linear_response(), 1.0)
    assert max(rendered) < 0.98 - exposure.NOT_DARKER                     # the floor is out of reach
    assert 1.0 < chosen.alpha < 3.0, chosen.describe()


def test_the_lol_regression_meters_a_dark_room_but_not_a_night_scenes_lit_part():
    """A dark frame whose top half is near-black (0.01) over a dim scene (0.08, with clipped lamps),
    rendered through its ratio map and a linear response, the regression predicting an output mean
    of 0.34: with a featureless black part (a sky) it is a night scene, whose lit part is metered to
    18 % grey (the regression is fit on LOL's rooms, which have neither lights nor sky); with texture
    under the black it is a dark room, metered to the prediction."""
    raw = np.full((60, 60, 3), 0.08)
    raw[:30] = 0.01
    raw[54:, :4] = 1.0                                            # lamps: 0.7 % of the frame
    illumination = exposure.luminance(raw)[..., None]
    predicted = []

    def metered(reflectance):
        def render(curve):
            return data.to_uint8(np.minimum(1.0, raw * curve.ratio_map(illumination))) / 255.0

        def predict():
            predicted.append(0.34)
            return 0.34

        stages = {'reflectance': reflectance, 'illumination': illumination}
        chosen = exposure.choose(raw, stages, render, linear_response(), 1.0, predict)
        return chosen, render(chosen), exposure.Scene(raw, reflectance, 1.0).metered

    night, output, lit = metered(np.full_like(raw, 0.5))
    assert night.scene == 'night' and not predicted, night.describe()
    assert exposure.luminance(output)[lit].mean() == pytest.approx(exposure.MID_GREY, abs=0.04), night.describe()
    textured = np.full_like(raw, 0.5)
    textured[:30:2] = 0.9                                         # stripes: structure under the black
    room, output, metered_part = metered(textured)
    assert room.scene == 'scene' and metered_part.all() and predicted == [0.34], room.describe()
    assert output.mean() == pytest.approx(0.34, abs=0.02), room.describe()


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
    backlit = np.full((40, 40, 3), 240, np.uint8)
    backlit[20:] = 10
    shadows_lifted = backlit.copy()
    shadows_lifted[20:] = 20                                      # 2x and +0.039
    assert exposure_checks.failures('backlit', backlit, shadows_lifted) == []
    shadows_lifted[20:] = 15                                      # 1.5x
    assert exposure_checks.failures('backlit', backlit, shadows_lifted)[0].startswith('shadows')
