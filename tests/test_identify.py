"""The sold-box rule: the text-visual plausibility times the detector's objectness and category probability."""

import numpy as np
import pytest

from vitrina.runtime.identify import colour_shares, pick_sold_box, sold_box_scores

PLAUS = np.array([0.90, 0.80, 0.30])
# box 0: a faint partial box the title fits; box 1: a confident whole product; box 2: another product
OBJECTNESS = np.array([0.10, 0.95, 0.90])
CATEGORY_PROBS = np.array([[0.5, 0.5], [0.8, 0.2], [0.1, 0.9]])


def test_plausibility_alone_picks_the_most_plausible_box() -> None:
    assert pick_sold_box(PLAUS) == 0
    np.testing.assert_allclose(sold_box_scores(PLAUS), np.log(PLAUS))


def test_objectness_outvotes_a_faint_partial_box() -> None:
    assert pick_sold_box(PLAUS, objectness=OBJECTNESS) == 1
    np.testing.assert_allclose(sold_box_scores(PLAUS, objectness=OBJECTNESS), np.log(PLAUS * OBJECTNESS))


def test_the_title_category_weighs_each_box() -> None:
    plaus = np.array([0.6, 0.7])
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert pick_sold_box(plaus, category_probs=probs, category=0) == 0
    assert pick_sold_box(plaus, category_probs=probs, category=1) == 1


@pytest.mark.parametrize("category", [-1, 2, 99])
def test_an_unknown_category_leaves_the_factor_out(category: int) -> None:
    scores = sold_box_scores(PLAUS, objectness=OBJECTNESS, category_probs=CATEGORY_PROBS, category=category)
    np.testing.assert_allclose(scores, np.log(PLAUS * OBJECTNESS))


def test_zero_probabilities_are_floored_not_minus_infinity() -> None:
    scores = sold_box_scores(np.array([0.0, 1.0]), objectness=np.array([1.0, 0.0]))
    assert np.isfinite(scores).all()


def test_no_box_picks_none() -> None:
    assert pick_sold_box(np.zeros(0), objectness=np.zeros(0), category_probs=np.zeros((0, 3)), category=1) is None


def test_evidence_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValueError, match=r"objectness must have shape \(3,\)"):
        sold_box_scores(PLAUS, objectness=np.ones(2))
    with pytest.raises(ValueError, match="category_probs must have shape"):
        sold_box_scores(PLAUS, category_probs=np.ones((2, 2)), category=0)


def test_colour_shares_read_the_middle_of_each_box() -> None:
    family_map = np.zeros((20, 20), np.int64)
    family_map[5:15, 5:15] = 3  # a product of family 3 in the middle of the photo
    boxes = np.array([[5, 5, 15, 15], [0, 0, 20, 20], [0, 0, 4, 4]], np.float32)
    shares = colour_shares(family_map, boxes, 3)
    assert shares[0] == 1.0  # the box's middle is all product
    assert shares[1] == pytest.approx(100 / 144)  # the photo's middle 12×12 pixels hold the 10×10 product
    assert shares[2] == 0.0
    assert colour_shares(family_map, boxes, 1).tolist() == [0.0, 0.0, 0.0]
    tiny = colour_shares(family_map, np.array([[9.6, 9.6, 9.8, 9.8]]), 3)  # under a pixel: one pixel read
    assert tiny.tolist() == [1.0]


def test_the_product_colour_outvotes_a_box_of_another_colour() -> None:
    plaus = np.array([0.7, 0.6])
    shares = np.array([0.05, 0.8])
    assert pick_sold_box(plaus) == 0
    assert pick_sold_box(plaus, colour_share=shares) == 1
    np.testing.assert_allclose(sold_box_scores(plaus, colour_share=shares), np.log(plaus) + np.log(shares + 0.01))
    with pytest.raises(ValueError, match="colour_share must have shape"):
        sold_box_scores(plaus, colour_share=np.ones(3))


# --- weights -------------------------------------------------------------------------------------


def test_weights_scale_each_factor_and_zero_leaves_it_out() -> None:
    from vitrina.runtime.identify import FactorWeights

    plain = sold_box_scores(PLAUS, objectness=OBJECTNESS)
    halved = sold_box_scores(PLAUS, objectness=OBJECTNESS, weights=FactorWeights(plausibility=0.5))
    np.testing.assert_allclose(halved - plain, -0.5 * np.log(PLAUS))
    no_objectness = FactorWeights(objectness=0.0)
    assert pick_sold_box(PLAUS, objectness=OBJECTNESS, weights=no_objectness) == pick_sold_box(PLAUS) == 0


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"plausibility": 1, "objectness": 1, "category": 1}, "must name exactly"),
        ({"plausibility": 1, "objectness": 1, "category": 1, "colour": 1, "size": 1}, "must name exactly"),
        ({"plausibility": -1, "objectness": 1, "category": 1, "colour": 1}, "plausibility must be a finite number"),
        ({"plausibility": 1, "objectness": float("nan"), "category": 1, "colour": 1}, "objectness must be"),
        ({"plausibility": 1, "objectness": 1, "category": True, "colour": 1}, "category must be"),
        ({"plausibility": 1, "objectness": 1, "category": 1, "colour": "2"}, "colour must be"),
        ([1, 1, 1, 1], "must name exactly"),
    ],
)
def test_malformed_weights_are_refused_by_name(entry, match) -> None:
    from vitrina.runtime.identify import FactorWeights

    with pytest.raises(ValueError, match=match):
        FactorWeights.from_json(entry)


def _query(plausibility, objectness, right):
    from vitrina.runtime.identify import CandidateFactors

    return CandidateFactors(np.array(plausibility), np.array(objectness), None, -1, None, np.array(right))


def test_the_fit_halves_a_plausibility_that_outvotes_the_detector() -> None:
    from vitrina.export.identify_products import best_weights
    from vitrina.runtime.identify import EQUAL_WEIGHTS, identify_accuracy

    # the wrong box 0 fits the title a little better, the detector is much surer of the right box 1
    hard = [_query([0.95, 0.30], [0.40, 0.95], [False, True])] * 3
    easy = [_query([0.90, 0.20], [0.90, 0.90], [True, False])] * 2
    queries = hard + easy + [_query([], [], [])]  # a photo without boxes: always missed
    assert identify_accuracy(queries, EQUAL_WEIGHTS) == pytest.approx(2 / 6)
    fitted = best_weights(queries)
    assert identify_accuracy(queries, fitted) == pytest.approx(5 / 6)
    assert fitted.plausibility / fitted.objectness < 1.0
    # nothing to gain: the equal weights stay (ties go to them)
    assert best_weights(easy) == EQUAL_WEIGHTS
