"""What the estimator's ``X`` becomes before the encoder sees it.

Two inputs are not token features yet:

- a scipy.sparse token matrix with ``lengths`` (fastcrf._sparse_input), which
  becomes a :class:`fastcrf.Dataset`;
- raw column rows, when the CRF has a feature ``template`` (``CRF(template=...)``, or
  a model written by ``fastcrf train`` loaded with ``CRF.load(path,
  raw_rows=True)``): a sequence is a list of rows, a row a list of str columns (the
  token columns of a column file, the label column left out), and the template
  extracts the attributes.  The template is stored as its text, never as code, and
  compiled (so checked) where it is read.

A CRF without a template never reads a list of str as a row: there a list of str is
a token's attribute names, as in python-crfsuite.
"""

from ._dataset import is_encoded
from ._sparse_input import as_input, column_names, is_sparse


def compiled_template(template):
    """The :class:`fastcrf.Template` of a ``template`` parameter (a Template, its
    text, or None -> None).

    Raises
    ------
    TypeError
        For anything else.
    ValueError
        For text that is not a valid CRF++ template (naming the line).
    """
    from .templates import Template

    if template is None or isinstance(template, Template):
        return template
    if isinstance(template, str):
        return Template(template)
    raise TypeError(f"template must be a fastcrf.Template, its text (str) or None, got "
                    f"{type(template).__name__}")


def template_text(template):
    """The text of a ``template`` parameter (what a model file stores), or None."""
    template = compiled_template(template)
    return None if template is None else template.text


#: Where ``fastcrf train`` keeps its template in a model file's metadata (the key
#: and its ``template`` field are fastcrf.cli's ``_META_KEY``).
CLI_METADATA_KEY = "fastcrf_cli"


def cli_template(metadata, path):
    """The template text ``fastcrf train`` stored in a model's ``metadata``.

    Raises
    ------
    ValueError
        When the metadata holds none (naming ``path``).
    """
    meta = metadata.get(CLI_METADATA_KEY)
    text = meta.get("template") if isinstance(meta, dict) else None
    if type(text) is not str:
        raise ValueError(f"{path!r}: raw_rows=True needs the feature template that "
                         "'fastcrf train' stores in its model files; this file holds "
                         "none (set template= to the one that made its attributes)")
    return text


def fit_input(template, X, y, X_dev, lengths, feature_names):
    """``(X, y, X_dev, columns)`` for :func:`fastcrf._fit.fit_model`: a sparse ``X``
    as a Dataset (``columns``: its validated ``feature_names``, or None), or raw rows
    featurized by ``template``."""
    columns = None
    if is_sparse(X):
        if template is not None:
            raise TypeError("a CRF with a template reads raw column rows; X is a "
                            "scipy.sparse matrix: leave template=None")
        if feature_names is not None:
            columns = column_names(feature_names, X.shape[1])
        X, y = as_input(X, y, lengths, columns)
        if is_sparse(X_dev):
            raise TypeError("X_dev cannot be a scipy.sparse matrix (its lengths are not "
                            "given): pass fastcrf.Dataset.from_sparse(X_dev, y_dev, "
                            "lengths=...) as X_dev and y_dev=None")
        return X, y, X_dev, columns
    as_input(X, y, lengths, feature_names)   # raises for lengths without a sparse X
    template = compiled_template(template)
    if template is not None:
        X = X if is_encoded(X) else _rows(template, X, "X")
        if X_dev is not None and not is_encoded(X_dev):
            X_dev = _rows(template, X_dev, "X_dev")
    return X, y, X_dev, columns


def predict_input(template, model, X, lengths, feature_names):
    """``X`` as :meth:`fastcrf._model.CRFModel.encode` takes it: a sparse ``X`` as a
    Dataset (its columns named by ``feature_names``, else those the model was fitted
    with, else ``"0"``, ``"1"``, ...), raw rows encoded by ``template``, anything else
    unchanged."""
    if is_sparse(X):
        if template is not None:
            raise TypeError("a CRF with a template reads raw column rows; X is a "
                            "scipy.sparse matrix")
        return as_input(X, None, lengths, feature_names, model.feature_names)[0]
    as_input(X, None, lengths, feature_names)
    template = compiled_template(template)
    if template is None or is_encoded(X):
        return X
    if getattr(model, "edge_weights", None) is not None:
        # The template's B lines with macros give the transition attributes.
        from ._edges import encode_for

        return encode_for(model, template, _checked_rows(X, "X"))
    return template.encode(_checked_rows(X, "X"), vocabulary=model.vocabulary)[1]


def _checked_rows(X, what):
    """``X`` as a list, after checking that its tokens look like rows (a token dict
    is a sure sign of features given to a CRF that extracts its own)."""
    X = X if isinstance(X, (list, tuple)) else list(X)
    for i, seq in enumerate(X):
        for j, row in enumerate(seq if isinstance(seq, (list, tuple)) else ()):
            if isinstance(row, dict):
                raise TypeError(f"{what}[{i}][{j}] is a dict of features, but this CRF has "
                                "a template: give raw rows (lists of str columns), or "
                                "set template=None to pass features")
            break
    return X


def _rows(template, X, what):
    """Raw rows -> per-token attribute lists (``Template.transform``)."""
    return template.transform(_checked_rows(X, what))
