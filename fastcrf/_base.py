"""The scikit-learn estimator protocol, without depending on scikit-learn.

:class:`ParamsMixin` gives an estimator whose ``__init__`` only stores its keyword
parameters ``get_params``, ``set_params``, a ``repr`` of the changed parameters and
scikit-learn's tags, as ``sklearn.base.BaseEstimator`` does.
"""

import inspect


class ParamsMixin:
    """``get_params`` / ``set_params`` / ``repr`` from the signature of ``__init__``."""

    @classmethod
    def _get_param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def _store_params(self, values):
        """Set every constructor parameter from ``values`` (``__init__``'s locals())."""
        for name in self._get_param_names():
            setattr(self, name, values[name])

    def get_params(self, deep=True):
        """Return the constructor parameters as a dict (scikit-learn protocol).

        Parameters
        ----------
        deep : bool, default=True
            Ignored: the estimator holds no sub-estimators.

        Returns
        -------
        dict
        """
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        """Set constructor parameters (scikit-learn protocol); return ``self``.

        Raises
        ------
        ValueError
            For a name that is not a parameter.
        """
        valid = set(self._get_param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"invalid parameter {name!r} for {type(self).__name__}; valid "
                    f"parameters: {sorted(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = inspect.signature(type(self).__init__).parameters
        changed = []
        for name in self._get_param_names():
            value, default = getattr(self, name), defaults[name].default
            if value is not default and value != default:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        # Only called by scikit-learn, so importing it here adds no dependency.
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=True))
