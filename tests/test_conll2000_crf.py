"""CoNLL-2000 chunking with the CRF++ chunking template: the estimator must reach the
published accuracy (crfasgd 93.75, CRF++ 93.74 chunk F1).  Skipped when the corpus
is absent (see tests/_data.py)."""

import pytest
from _data import conll2000_file

from fastcrf import CRF
from fastcrf.io import load_conll
from fastcrf.metrics import chunk_scores
from fastcrf.templates import CHUNKING_TEMPLATE, Template


@pytest.fixture(scope="module")
def conll2000():
    train, test = conll2000_file("train.txt.gz"), conll2000_file("test.txt.gz")
    template = Template(CHUNKING_TEMPLATE)
    X_train, y_train = load_conll(train)
    X_test, y_test = load_conll(test)
    return template.transform(X_train), y_train, template.transform(X_test), y_test


def test_default_crf_reaches_published_chunk_f1(conll2000):
    X_train, y_train, X_test, y_test = conll2000
    crf = CRF(random_state=0).fit(X_train, y_train)
    scores = chunk_scores(y_test, crf.predict(X_test))
    assert scores.f1 >= 0.935, scores.report()
