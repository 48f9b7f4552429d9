"""Constants the page's JavaScript shares with the server, sent once per page as JSON.

Each value is read from the Python module that owns it, so a change there reaches the
page without a second copy in JS (the page reads them through static/js/constants.js).
The colours have no other owner in Python, so they are defined here.
"""

from __future__ import annotations

from app.data.plane import PLANE
from app.layout import MARKS
from app.nn.activations import ACTIVATIONS, ELU_ALPHA, LEAKY_SLOPE
from app.settings import Settings, env_settings

# RGB. The diverging scale runs negative → neutral → positive; classes 0 and 1 take the
# negative and positive ends. "present" is for projectors and colour-blind viewers:
# Okabe–Ito vermillion and blue, darker and further apart, on white.
PALETTES = {
    "normal": {"negative": [245, 147, 34], "neutral": [232, 234, 235], "positive": [8, 119, 189]},
    "present": {"negative": [213, 94, 0], "neutral": [255, 255, 255], "positive": [0, 90, 181]},
}
COLORS = {
    "palettes": PALETTES,
    # Classes 2…9 (Okabe–Ito, distinguishable with colour-blindness); a class k ≥ 10 reuses k mod 10.
    "more_classes": [
        [0, 158, 115],
        [204, 121, 167],
        [86, 180, 233],
        [213, 94, 0],
        [240, 228, 66],
        [110, 110, 110],
        [0, 114, 178],
        [150, 80, 30],
    ],
    "link_zero": [200, 204, 210],  # a zero weight: mid grey, so weak links stay visible on white
    "train_edge": [255, 255, 255],  # outline of a training point on the output plot
    "test_edge": [26, 26, 26],  # outline of a test point, and the probe's ring
    "paper": [255, 255, 255],  # an exported figure's background when the stylesheet names none; a digit's blank
    "ink": [0, 0, 0],  # a digit's strokes (the probe image and the drawing pad)
}

GRAD_DECADES = [-5, 0]


def page_constants(settings: Settings | None = None) -> dict:
    """The constants block for one page; `settings` are the app's (None: the environment's)."""
    if settings is None:
        settings = env_settings()
    return {
        "plane": PLANE,  # half-width of the input plane [−PLANE, PLANE]²
        "history_len": settings.history_len,  # loss-history points the chart keeps, as the server does
        # Names in menu order, with the formula the inspector writes out; the JS plots
        # f(z) itself (static/js/activations.js) with these parameters.
        "activations": [{"name": a.name, "formula": a.formula} for a in ACTIVATIONS.values()],
        "activation_params": {"leaky_slope": LEAKY_SLOPE, "elu_alpha": ELU_ALPHA},
        "bar_width": MARKS.bar_width,  # a probability bar at p = 1 (the template draws its track)
        "colors": COLORS,
        # The gradient view's fixed log scale of |∂loss/∂w|: 10^lo and below a hairline, 10^hi and
        # above the thickest line (static/js/network.js gradShare), the same in every frame.
        "grad_decades": GRAD_DECADES,
    }
