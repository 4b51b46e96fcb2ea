"""scipy.sparse input (seqlearn's ``X``, ``lengths``): the model equals, bitwise, the
model of the equivalent token dicts; every prediction method reads the matrix; bad
input is refused naming the argument."""

import numpy as np
import pytest
import scipy.sparse as sp

from fastcrf import CRF, Dataset

LENGTHS = [3, 5, 1, 4, 6, 2, 5, 4] * 4


def _problem(seed=0, n_features=12, density=0.35):
    """A CSR token matrix with unit and non-unit weights, its lengths and labels that
    depend on the features (so the fit has something to learn)."""
    rng = np.random.default_rng(seed)
    n = sum(LENGTHS)
    X = sp.random(n, n_features, density=density, random_state=seed, format="csr")
    X.data = np.where(rng.random(X.nnz) < 0.6, 1.0, np.round(X.data * 4) / 2 + 0.5)
    first = np.asarray(X[:, :3].argmax(axis=1)).ravel()
    labels = np.array(["A", "B", "C"])[first].tolist()
    return X, LENGTHS, labels


def _dicts(X, lengths, names=None):
    """The token dicts a CSR matrix means: ``{name of column j: X[t, j]}`` over the
    canonical entries of row t, in column order."""
    X = X.tocsr().astype(np.float64)
    X.sum_duplicates()
    X.eliminate_zeros()
    names = [str(j) for j in range(X.shape[1])] if names is None else names
    tokens = []
    for t in range(X.shape[0]):
        lo, hi = X.indptr[t], X.indptr[t + 1]
        tokens.append({names[j]: float(v)
                       for j, v in zip(X.indices[lo:hi].tolist(), X.data[lo:hi].tolist())})
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    return [tokens[offsets[s]:offsets[s + 1]] for s in range(len(lengths))]


def _nested(labels, lengths):
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    return [labels[offsets[s]:offsets[s + 1]] for s in range(len(lengths))]


def _assert_same_model(a, b):
    assert a.attributes_ == b.attributes_
    assert a.classes_ == b.classes_
    for name in ("state_weights_", "transition_weights_", "start_weights_", "end_weights_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.filterwarnings("ignore:.*too few to converge")
@pytest.mark.parametrize("algorithm", ["asgd", "lbfgs"])
def test_csr_fit_is_bitwise_the_fit_of_the_token_dicts(algorithm):
    X, lengths, labels = _problem()
    params = {"algorithm": algorithm, "random_state": 0, "max_iterations": 15,
              "batch_size": 2}
    a = CRF(**params).fit(X, labels, lengths=lengths)
    b = CRF(**params).fit(_dicts(X, lengths), _nested(labels, lengths))
    _assert_same_model(a, b)
    assert np.abs(a.state_weights_).sum() > 0


def test_non_canonical_matrix_is_read_as_its_canonical_form():
    """Duplicates summed, unsorted columns, stored zeros dropped, any sparse format."""
    X, lengths, labels = _problem(1)
    coo = X.tocoo()
    empty = np.argwhere(X.toarray() == 0)[:5]
    # Each entry split in two exact halves (duplicates), in reverse order (unsorted
    # columns), plus stored zeros on cells without an entry.
    rows = np.concatenate((coo.row, coo.row, empty[:, 0]))[::-1]
    cols = np.concatenate((coo.col, coo.col, empty[:, 1]))[::-1]
    vals = np.concatenate((coo.data / 2, coo.data / 2, np.zeros(len(empty))))[::-1]
    order = np.argsort(rows, kind="stable")
    indptr = np.searchsorted(rows[order], np.arange(X.shape[0] + 1))
    raw = sp.csr_matrix((vals[order], cols[order], indptr), shape=X.shape)
    assert not raw.has_sorted_indices or raw.nnz > X.nnz
    inputs = (raw, sp.coo_matrix((vals, (rows, cols)), shape=X.shape), sp.csr_array(X))
    reference = CRF(algorithm="lbfgs", max_iterations=10).fit(
        _dicts(X, lengths), _nested(labels, lengths))
    for m in inputs:
        crf = CRF(algorithm="lbfgs", max_iterations=10).fit(m, labels, lengths=lengths)
        _assert_same_model(crf, reference)


def test_flat_and_nested_y_give_the_same_model_and_the_input_is_untouched():
    X, lengths, labels = _problem(2)
    before = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    a = CRF(algorithm="lbfgs", max_iterations=10).fit(X, labels, lengths=lengths)
    b = CRF(algorithm="lbfgs", max_iterations=10).fit(X, _nested(labels, lengths),
                                                       lengths=np.array(lengths))
    c = CRF(algorithm="lbfgs", max_iterations=10).fit(X, np.array(labels), lengths=lengths)
    _assert_same_model(a, b)
    _assert_same_model(a, c)
    for x, y in zip(before, (X.data, X.indices, X.indptr)):
        np.testing.assert_array_equal(x, y)


def test_min_freq_and_thread_count():
    X, lengths, labels = _problem(3)
    y = _nested(labels, lengths)
    cut = float(np.median(np.bincount(X.indices, minlength=X.shape[1]))) + 0.5
    a = CRF(algorithm="lbfgs", min_freq=cut, max_iterations=10).fit(X, labels,
                                                                    lengths=lengths)
    b = CRF(algorithm="lbfgs", min_freq=cut, max_iterations=10).fit(_dicts(X, lengths), y)
    _assert_same_model(a, b)
    assert len(a.attributes_) < X.shape[1]
    one, two = (CRF(algorithm="lbfgs", max_iterations=10, n_jobs=n).fit(
        X, labels, lengths=lengths) for n in (1, 2))
    _assert_same_model(one, two)


def test_every_prediction_method_reads_the_matrix():
    X, lengths, labels = _problem(4)
    crf = CRF(algorithm="lbfgs", max_iterations=20).fit(X, labels, lengths=lengths)
    D = _dicts(X, lengths)
    y = _nested(labels, lengths)
    assert crf.predict(X, lengths=lengths) == crf.predict(D)
    assert crf.predict(X, lengths=lengths, decoder="mbr") == crf.predict(D, decoder="mbr")
    assert crf.predict_marginals(X, lengths=lengths) == crf.predict_marginals(D)
    for name in ("predict_proba", "predict_indices", "predict_edge_marginals"):
        for a, b in zip(getattr(crf, name)(X, lengths=lengths), getattr(crf, name)(D)):
            np.testing.assert_array_equal(a, b)
    assert crf.predict_nbest(X, 3, lengths=lengths) == crf.predict_nbest(D, 3)
    np.testing.assert_array_equal(crf.sequence_log_probability(X, labels, lengths=lengths),
                                  crf.sequence_log_probability(D, y))
    np.testing.assert_array_equal(crf.sequence_probability(X, y, lengths=lengths),
                                  crf.sequence_probability(D, y))
    assert crf.score(X, labels, lengths=lengths) == crf.score(D, y)
    # Columns the model never saw are ignored, as unseen dict attributes are.
    wider = sp.hstack([X, sp.random(X.shape[0], 3, density=0.5, random_state=0)]).tocsr()
    assert crf.predict(wider, lengths=lengths) == crf.predict(D)


def test_feature_names_are_kept_by_the_model_and_its_file(tmp_path):
    X, lengths, labels = _problem(5)
    names = [f"f={j}" for j in range(X.shape[1])]
    crf = CRF(algorithm="lbfgs", max_iterations=10).fit(X, labels, lengths=lengths,
                                                        feature_names=names)
    D = _dicts(X, lengths, names)
    ref = CRF(algorithm="lbfgs", max_iterations=10).fit(D, _nested(labels, lengths))
    _assert_same_model(crf, ref)
    expected = ref.predict(D)
    assert crf.predict(X, lengths=lengths) == expected    # names from the model
    assert crf.predict(D) == expected                     # dicts keyed by those names
    crf.save(tmp_path / "m.npz")
    loaded = CRF.load(tmp_path / "m.npz")
    assert loaded.predict(X, lengths=lengths) == expected
    with pytest.raises(ValueError, match="feature_names has 12 names but X has 13"):
        loaded.predict(sp.hstack([X, X[:, :1]]).tocsr(), lengths=lengths)
    # Without names, column j is the attribute "j".
    plain = CRF(algorithm="lbfgs", max_iterations=10).fit(X, labels, lengths=lengths)
    assert plain.attributes_ == ref.attributes_ or set(plain.attributes_) <= {
        str(j) for j in range(X.shape[1])}


def test_dataset_from_sparse_is_the_same_training_set():
    X, lengths, labels = _problem(6)
    data = Dataset.from_sparse(X, labels, lengths=lengths)
    assert data.n_sequences == len(lengths) and data.n_tokens == X.shape[0]
    a = CRF(algorithm="lbfgs", max_iterations=10).fit(data)
    b = CRF(algorithm="lbfgs", max_iterations=10).fit(X, labels, lengths=lengths)
    _assert_same_model(a, b)
    dev = Dataset.from_sparse(X[:10], labels[:10], lengths=[3, 5, 1, 1])
    c = CRF(algorithm="lbfgs", max_iterations=5).fit(X, labels, dev, lengths=lengths)
    assert "dev_accuracy" in c.training_log_.last_iteration


@pytest.mark.parametrize("kwargs, error, match", [
    ({}, ValueError, "lengths is required"),
    ({"lengths": [3, 4]}, ValueError, "lengths sum to 7 but X has"),
    ({"lengths": [0] + LENGTHS}, ValueError, r"lengths\[0\] = 0"),
    ({"lengths": [[3]]}, ValueError, "lengths must be 1-d"),
    ({"lengths": [1.5]}, TypeError, "lengths must hold ints"),
    ({"lengths": []}, ValueError, "lengths is empty"),
    ({"lengths": LENGTHS, "feature_names": ["a"]}, ValueError, "feature_names has 1 names"),
    ({"lengths": LENGTHS, "feature_names": ["a"] * 12}, ValueError, "distinct"),
    ({"lengths": LENGTHS, "feature_names": list(range(12))}, TypeError,
     r"feature_names\[0\] must be a str"),
    ({"lengths": LENGTHS, "feature_names": "abc"}, TypeError, "single str"),
])
def test_bad_lengths_and_names(kwargs, error, match):
    X, _, labels = _problem()
    with pytest.raises(error, match=match):
        CRF().fit(X, labels, **kwargs)


def test_bad_matrix_and_labels():
    X, lengths, labels = _problem()
    bad = X.copy()
    bad.data[5] = np.nan
    with pytest.raises(ValueError, match=r"X\[\d+, \d+\] = nan: feature values must be "
                                         "finite"):
        CRF().fit(bad, labels, lengths=lengths)
    with pytest.raises(TypeError, match="X must hold real numbers"):
        CRF().fit(X.astype(np.complex128), labels, lengths=lengths)
    with pytest.raises(ValueError, match="y holds 3 labels but X has"):
        CRF().fit(X, ["A", "B", "C"], lengths=lengths)
    with pytest.raises(ValueError, match=r"y\[0\] has 2 labels but X\[0\] has 3 tokens"):
        CRF().fit(X, [["A", "B"]] + _nested(labels, lengths)[1:], lengths=lengths)
    with pytest.raises(ValueError, match="lengths and feature_names are for a scipy.sparse X"):
        CRF().fit(_dicts(X, lengths), _nested(labels, lengths), lengths=lengths)
    with pytest.raises(TypeError, match="X_dev cannot be a scipy.sparse matrix"):
        CRF().fit(X, labels, X, labels, lengths=lengths)
    crf = CRF(algorithm="lbfgs", max_iterations=3).fit(X, labels, lengths=lengths)
    with pytest.raises(ValueError, match="lengths is required"):
        crf.predict(X)
    with pytest.raises(ValueError, match="lengths sum to"):
        crf.predict_marginals(X, lengths=[1])
