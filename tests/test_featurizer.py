"""Models that carry their featurizer: ``CRF(template=...)`` fits and predicts on raw
column rows, its model file keeps the template as text, and a model written by
``fastcrf train`` predicts raw rows after ``CRF.load(path, raw_rows=True)``."""

import io
import json
import zipfile

import numpy as np
import pytest
from helpers import run_cli

from fastcrf import CRF
from fastcrf.datasets import make_sequences
from fastcrf.io import load_conll, write_conll
from fastcrf.templates import Template

TEMPLATE = "U00:%x[0,0]\nU01:%x[-1,0]\nU02:%x[0,1]\nU03:%x[-1,0]/%x[0,0]\nB\n"


def _rows(n=80, seed=0):
    """Raw rows (word, word class) and their labels."""
    X, y = make_sequences(n, n_labels=3, scheme="BIO", length=(3, 9), random_state=seed)
    rows = [[[tok[0].split("=", 1)[1], f"c{len(tok[0]) % 3}"] for tok in seq] for seq in X]
    return rows, y


@pytest.mark.parametrize("template", [TEMPLATE, Template(TEMPLATE)])
def test_template_model_is_the_model_of_the_extracted_features(template):
    rows, y = _rows()
    crf = CRF(algorithm="lbfgs", max_iterations=20, template=template).fit(rows, y)
    features = Template(TEMPLATE).transform(rows)
    ref = CRF(algorithm="lbfgs", max_iterations=20).fit(features, y)
    assert crf.attributes_ == ref.attributes_
    np.testing.assert_array_equal(crf.state_weights_, ref.state_weights_)
    np.testing.assert_array_equal(crf.transition_weights_, ref.transition_weights_)
    test, _ = _rows(20, seed=1)
    test_features = Template(TEMPLATE).transform(test)
    assert crf.predict(test) == ref.predict(test_features)
    assert crf.predict_marginals(test) == ref.predict_marginals(test_features)
    assert crf.predict_single(test[0]) == ref.predict_single(test_features[0])
    assert crf.predict_nbest(test, 2) == ref.predict_nbest(test_features, 2)
    assert crf.score(test, _rows(20, seed=1)[1]) == ref.score(test_features,
                                                              _rows(20, seed=1)[1])
    # A dev set is raw rows too.
    dev = CRF(algorithm="lbfgs", max_iterations=3, template=template).fit(rows, y, test,
                                                                          _rows(20, 1)[1])
    assert "dev_accuracy" in dev.training_log_.last_iteration


def test_template_survives_the_model_file_as_text(tmp_path):
    rows, y = _rows()
    crf = CRF(algorithm="lbfgs", max_iterations=10, template=Template(TEMPLATE)).fit(rows, y)
    path = tmp_path / "m.npz"
    crf.save(path)
    with zipfile.ZipFile(path) as z:
        header = json.loads(np.load(z.open("header.json.npy")).tobytes())
    assert header["params"]["template"] == TEMPLATE
    loaded = CRF.load(path)
    assert loaded.template == TEMPLATE
    assert loaded.predict(rows) == crf.predict(rows)
    assert CRF(model_filename=path, template=TEMPLATE).predict(rows) == crf.predict(rows)


def test_stored_template_is_checked_on_load(tmp_path):
    rows, y = _rows()
    path = tmp_path / "m.npz"
    CRF(algorithm="lbfgs", max_iterations=3, template=TEMPLATE).fit(rows, y).save(path)
    with zipfile.ZipFile(path) as z:
        header = json.loads(np.load(z.open("header.json.npy")).tobytes())
        members = {item.filename: z.read(item) for item in z.infolist()}
    header["params"]["template"] = "X00:%x[0,0]\n"
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    members["header.json.npy"] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    with pytest.raises(ValueError, match="the stored feature template is not valid"):
        CRF.load(tmp_path / "bad.npz")


def test_model_of_the_command_line_predicts_raw_rows(tmp_path, capsys):
    rows, y = _rows()
    labelled = [[(*row, label) for row, label in zip(seq, labels)]
                for seq, labels in zip(rows, y)]
    write_conll(tmp_path / "train.txt", labelled)
    (tmp_path / "template").write_text(TEMPLATE)
    model = str(tmp_path / "model.npz")
    status, _, err = run_cli(capsys, "train", "-t", str(tmp_path / "template"), "-m", model,
                             "-q", str(tmp_path / "train.txt"))
    assert status == 0, err
    status, out, err = run_cli(capsys, "tag", "-m", model, "-q", str(tmp_path / "train.txt"))
    assert status == 0, err
    tagged = [line.split()[-1] for line in out.splitlines() if line.strip()]
    crf = CRF.load(model, raw_rows=True)
    assert crf.template == TEMPLATE
    assert [label for seq in crf.predict(rows) for label in seq] == tagged
    # Without raw_rows the model takes extracted features, as before.
    X, _ = load_conll(tmp_path / "train.txt")
    plain = CRF.load(model)
    assert plain.template is None
    assert plain.predict(Template(TEMPLATE).transform(X)) == crf.predict(rows)
    # A file without a template cannot give one.
    plain.save(tmp_path / "bare.npz")
    with pytest.raises(ValueError, match="raw_rows=True needs the feature template"):
        CRF.load(tmp_path / "bare.npz", raw_rows=True)


def test_bad_template_and_inputs():
    rows, y = _rows(30)
    with pytest.raises(ValueError, match="template line 1"):
        CRF(template="X00:%x[0,0]").fit(rows, y)
    with pytest.raises(TypeError, match="template must be a fastcrf.Template"):
        CRF(template=3).fit(rows, y)
    crf = CRF(algorithm="lbfgs", max_iterations=3, template=TEMPLATE).fit(rows, y)
    with pytest.raises(TypeError, match=r"X\[0\]\[0\] is a dict of features"):
        crf.predict([[{"w": "a"}]])
    with pytest.raises(ValueError, match="reads column 1"):
        crf.predict([[["only-one-column"]]])
    sp = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="a CRF with a template reads raw column rows"):
        crf.predict(sp.csr_matrix(np.eye(3)), lengths=[3])
    # clone / get_params carry the template.
    sklearn_base = pytest.importorskip("sklearn.base")
    clone = sklearn_base.clone(crf)
    assert clone.template == TEMPLATE
