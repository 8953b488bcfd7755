"""The quadruplet loss on a tiny batch: high when the colour order is broken, falling to 0 as it is satisfied."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from vitrina.export.training.quadruplet import QuadrupletOptions, quadruplet_loss  # noqa: E402

# four products: 0 and 1 same category and colour, 2 same category other colour, 3 other category
CATEGORIES = tf.constant([0, 0, 0, 1])
COLOURS = tf.constant([5, 5, 7, 5])


def unit(rows):
    rows = np.asarray(rows, dtype=np.float32)
    return tf.constant(rows / np.linalg.norm(rows, axis=1, keepdims=True))


def at(degrees):
    r = np.radians(np.asarray(degrees, dtype=np.float64))
    return tf.constant(np.stack([np.cos(r), np.sin(r)], axis=1).astype(np.float32))


def test_loss_falls_as_the_order_is_satisfied():
    # sketch i sits where photo i ends up: same colour at 0 and 5 degrees, other colour at 40, other category at 150
    ordered = np.array([0.0, 5.0, 40.0, 150.0])
    broken = np.array([40.0, 45.0, 0.0, 10.0])  # other colour and other category closest: the order broken
    sketches = at(ordered)
    loss = {}
    for t in (0.0, 0.3, 0.5, 0.6, 1.0):
        loss[t] = float(quadruplet_loss(sketches, at((1 - t) * broken + t * ordered), CATEGORIES, COLOURS))
    assert loss[0.0] > 0.5
    assert loss[0.0] > loss[0.3] > loss[0.5] > loss[0.6] > 0  # falls as the photos move into the order
    assert loss[1.0] == pytest.approx(0.0, abs=1e-6)  # zero once it holds with both margins


def test_each_margin_counts():
    sketch = unit([[1.0, 0.0]] * 4)
    # same-colour and other-colour photos equally close: only the semi margin is violated
    photos = unit([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    loss = float(quadruplet_loss(sketch, photos, CATEGORIES, COLOURS, QuadrupletOptions(semi_margin=0.3)))
    assert loss == pytest.approx(0.3, abs=1e-5)
    assert float(quadruplet_loss(sketch, photos, CATEGORIES, COLOURS, QuadrupletOptions(semi_margin=0.0))) == 0.0


def test_gradient_descent_learns_the_order():
    rng = np.random.default_rng(0)
    sketches = tf.Variable(rng.normal(size=(4, 8)).astype(np.float32))
    photos = tf.Variable(rng.normal(size=(4, 8)).astype(np.float32))
    opt = tf.keras.optimizers.SGD(0.2)
    losses = []
    for _ in range(150):
        with tf.GradientTape() as tape:
            loss = quadruplet_loss(
                tf.math.l2_normalize(sketches, axis=1), tf.math.l2_normalize(photos, axis=1), CATEGORIES, COLOURS
            )
        opt.apply_gradients(zip(tape.gradient(loss, [sketches, photos]), [sketches, photos]))
        losses.append(float(loss))
    assert losses[-1] < 0.25 * losses[0]
    s = tf.math.l2_normalize(sketches, axis=1).numpy()
    p = tf.math.l2_normalize(photos, axis=1).numpy()
    d = 2 - 2 * s @ p.T
    assert d[0, 1] < d[0, 2] < d[0, 3]  # same colour < other colour < other category


def test_bad_margins_are_refused():
    with pytest.raises(ValueError, match="margins"):
        QuadrupletOptions(semi_margin=-0.1)
