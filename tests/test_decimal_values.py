"""Feature values of type decimal.Decimal (what database drivers and pandas object
columns hand out) weigh their attribute by their float, as in python-crfsuite."""

from decimal import Decimal

import numpy as np
import pytest

from fastcrf import CRF
from fastcrf.pycrfsuite import ItemSequence


def _tokens(number):
    return [[{"w": "a", "len": number("1.5")}, {"w": "b", "len": number("-2")}],
            [{"w": "b", "len": number("0.25")}, {"w": "a", "len": number("3")}]] * 3


@pytest.mark.parametrize("hash_features", [None, 1024])
def test_decimal_weighs_like_its_float(hash_features):
    y = [["A", "B"], ["B", "A"]] * 3
    kw = dict(max_iterations=3, random_state=0, hash_features=hash_features)
    as_decimal = CRF(**kw).fit(_tokens(Decimal), y)
    as_float = CRF(**kw).fit(_tokens(float), y)
    assert as_decimal.state_features_ == as_float.state_features_
    np.testing.assert_array_equal(as_decimal.predict_proba(_tokens(Decimal))[1],
                                  as_float.predict_proba(_tokens(float))[1])


def test_non_finite_decimal_is_refused():
    with pytest.raises(ValueError, match=r"X\[0\]\[0\]\['len'\] = Decimal\('NaN'\)"):
        CRF().fit([[{"len": Decimal("NaN")}]], [["A"]])
    with pytest.raises(ValueError, match="finite"):
        CRF().fit([[{"len": Decimal("1e999")}]], [["A"]])


def test_pycrfsuite_item_sequence():
    assert ItemSequence([{"len": Decimal("0.25")}]).items() == [{"len": 0.25}]
