"""CRF.save(path, metadata=...) and CRF.load(path).metadata_: the hook through which
`fastcrf train` stores its feature template in the model file."""

import json

import numpy as np
import pytest

from fastcrf import CRF
from fastcrf.datasets import make_sequences


@pytest.fixture(scope="module")
def fitted():
    X, y = make_sequences(40, n_labels=3, random_state=0)
    return CRF(max_iterations=2, random_state=0).fit(X, y), X


def test_metadata_round_trip(fitted, tmp_path):
    crf, X = fitted
    meta = {"template": "U00:%x[0,0]\nB\n", "n_fields": 2, "nested": {"sep": None}}
    crf.save(tmp_path / "m.npz", metadata=meta)
    loaded = CRF.load(tmp_path / "m.npz")
    assert loaded.metadata_ == meta
    assert loaded.predict(X) == crf.predict(X)


def test_metadata_is_empty_without_one(fitted, tmp_path):
    crf, _ = fitted
    assert crf.metadata_ == {}
    crf.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as z:
        assert "metadata.json" not in z.files  # files without metadata are unchanged
    assert CRF.load(tmp_path / "m.npz").metadata_ == {}


@pytest.mark.parametrize("bad", [["a list"], {"x": object()}, "text"])
def test_metadata_must_be_a_json_dict(fitted, tmp_path, bad):
    crf, _ = fitted
    with pytest.raises(TypeError, match="metadata must be"):
        crf.save(tmp_path / "m.npz", metadata=bad)
    assert not (tmp_path / "m.npz").exists()


def test_corrupt_metadata_is_a_clear_error(fitted, tmp_path):
    crf, _ = fitted
    crf.save(tmp_path / "m.npz", metadata={"a": 1})
    with np.load(tmp_path / "m.npz") as z:
        arrays = {name: z[name] for name in z.files}
    arrays["metadata.json"] = np.frombuffer(json.dumps([1, 2]).encode(), dtype=np.uint8)
    np.savez(tmp_path / "list.npz", **arrays)
    with pytest.raises(ValueError, match="metadata is not a JSON object"):
        CRF.load(tmp_path / "list.npz")
    arrays["metadata.json"] = np.frombuffer(b"{not json", dtype=np.uint8)
    np.savez(tmp_path / "junk.npz", **arrays)
    with pytest.raises(ValueError, match="metadata is corrupted"):
        CRF.load(tmp_path / "junk.npz")
