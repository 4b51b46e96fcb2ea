"""CoNLL-2002 Spanish named entities with sklearn-crfsuite's tutorial features (no POS).

sklearn-crfsuite's tutorial setting (lbfgs, c1 = c2 = 0.1, 100 iterations) scores
77.7 entity F1 on esp.testb; fastcrf's lbfgs with the same setting (OWL-QN) must match
it, and the default (averaged SGD with the per-row AdaGrad step, 8 epochs) must reach
77.0 (it measures 78.06 at seed 0, 77.88-78.06 over seeds 0-2).
Skipped when the corpus is absent (see tests/_data.py)."""

import pytest
from _data import conll2002_file

from fastcrf import CRF
from fastcrf.io import load_conll
from fastcrf.metrics import chunk_scores


def _token_features(words, i):
    # The sklearn-crfsuite tutorial's word2features, without the POS tags.
    word = words[i]
    features = {"bias": 1.0, "word.lower()": word.lower(), "word[-3:]": word[-3:],
                "word[-2:]": word[-2:], "word.isupper()": word.isupper(),
                "word.istitle()": word.istitle(), "word.isdigit()": word.isdigit()}
    for offset, prefix, edge in ((-1, "-1:", "BOS"), (1, "+1:", "EOS")):
        j = i + offset
        if 0 <= j < len(words):
            other = words[j]
            features.update({prefix + "word.lower()": other.lower(),
                             prefix + "word.istitle()": other.istitle(),
                             prefix + "word.isupper()": other.isupper()})
        else:
            features[edge] = True
    return features


def _load(name):
    X, y = load_conll(conll2002_file(name))
    sentences = [[fields[0] for fields in sent] for sent in X]
    return [[_token_features(words, i) for i in range(len(words))]
            for words in sentences], y


@pytest.fixture(scope="module")
def conll2002():
    return _load("esp.train.gz") + _load("esp.testb.gz")


def test_default_crf_entity_f1(conll2002):
    X_train, y_train, X_test, y_test = conll2002
    crf = CRF(random_state=0).fit(X_train, y_train)
    scores = chunk_scores(y_test, crf.predict(X_test))
    # Measured 0.7806 (seeds 1, 2: 0.7804, 0.7788); the calibrated step of the earlier
    # default measured 0.7643.
    assert scores.f1 >= 0.770, scores.report()


def test_lbfgs_tutorial_setting_matches_crfsuite(conll2002):
    X_train, y_train, X_test, y_test = conll2002
    crf = CRF(algorithm="lbfgs", c1=0.1, c2=0.1, max_iterations=100).fit(X_train, y_train)
    scores = chunk_scores(y_test, crf.predict(X_test))
    # sklearn-crfsuite: 77.70 with the same features and setting.
    assert scores.f1 >= 0.775, scores.report()
    # OWL-QN keeps most weights at exactly 0 (CRFsuite: 26,910 non-zero).
    assert crf.n_nonzero_weights_ < 50_000
