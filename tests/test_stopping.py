"""The stopping rules shared by the trainers (fastcrf._train.stopping)."""

import math

from fastcrf._train.stopping import EarlyStopping, RelativeImprovement


def test_relative_improvement_waits_for_period_then_compares():
    rule = RelativeImprovement(period=2, delta=0.01)
    assert not rule.update(100.0)
    assert not rule.update(90.0)
    # 100 -> 99.5 over two epochs: 0.5 % < 1 %
    assert rule.update(99.5)


def test_relative_improvement_keeps_going_while_it_improves():
    rule = RelativeImprovement(period=1, delta=0.01)
    values = [100.0, 90.0, 80.0, 79.9]
    assert [rule.update(v) for v in values] == [False, False, False, True]


def test_relative_improvement_disabled_by_zero_delta():
    rule = RelativeImprovement(period=1, delta=0.0)
    assert not any(rule.update(5.0) for _ in range(10))


def test_relative_improvement_stops_when_the_objective_rises():
    rule = RelativeImprovement(period=1, delta=1e-6)
    rule.update(10.0)
    assert rule.update(11.0)


def test_early_stopping_keeps_the_best_epoch():
    rule = EarlyStopping(n_iter_no_change=2)
    scores = [0.5, 0.7, 0.6, 0.65, 0.9]
    stops = []
    for k, s in enumerate(scores):
        stops.append(rule.update(k + 1, s, lambda k=k: f"w{k + 1}"))
        if stops[-1]:
            break
    # 0.7 at epoch 2, then two epochs without a better score: stop after epoch 4.
    assert stops == [False, False, False, True]
    assert (rule.best_epoch, rule.best_weights, rule.best_score) == (2, "w2", 0.7)


def test_early_stopping_tolerance_counts_small_gains_as_none():
    rule = EarlyStopping(n_iter_no_change=2, tol=0.05)
    calls = []

    def weights(epoch):
        calls.append(epoch)
        return epoch

    assert not rule.update(1, 0.50, lambda: weights(1))
    assert not rule.update(2, 0.52, lambda: weights(2))   # better, but not by tol
    assert rule.update(3, 0.53, lambda: weights(3))
    # The best weights are still the best-scoring epoch's, fetched only then.
    assert rule.best_epoch == 3 and calls == [1, 2, 3]


def test_early_stopping_starts_empty():
    rule = EarlyStopping(n_iter_no_change=1)
    assert rule.best_weights is None and math.isinf(rule.best_score)
